//! Devices. A device owns at most one access token (and one refresh token); deleting a device
//! deletes its tokens, its encryption keys and its to-device inbox in the same transaction.

use super::Db;

#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<i64>,
}

type DeviceRow = (String, Option<String>, Option<String>, Option<i64>);

fn to_record((device_id, display_name, last_seen_ip, last_seen_ts): DeviceRow) -> DeviceRecord {
    DeviceRecord { device_id, display_name, last_seen_ip, last_seen_ts }
}

impl Db {
    pub async fn devices(&self, user_id: &str) -> sqlx::Result<Vec<DeviceRecord>> {
        let rows: Vec<DeviceRow> = sqlx::query_as(
            "SELECT device_id, display_name, last_seen_ip, last_seen_ts FROM devices WHERE user_id = $1 ORDER BY device_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(to_record).collect())
    }

    pub async fn device(&self, user_id: &str, device_id: &str) -> sqlx::Result<Option<DeviceRecord>> {
        let row: Option<DeviceRow> = sqlx::query_as(
            "SELECT device_id, display_name, last_seen_ip, last_seen_ts FROM devices WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(to_record))
    }

    /// Renames a device; false when the user has no such device.
    pub async fn rename_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> sqlx::Result<bool> {
        let result = sqlx::query("UPDATE devices SET display_name = $1 WHERE user_id = $2 AND device_id = $3")
            .bind(display_name)
            .bind(user_id)
            .bind(device_id)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Records where and when a device was last seen (called at most every few minutes per
    /// device), also in the cached token it authenticated with.
    pub async fn touch_device(
        &self,
        token_hash: &str,
        user_id: &str,
        device_id: &str,
        ip: &str,
        ts: i64,
    ) -> sqlx::Result<()> {
        self.tokens.touch(token_hash, ts);
        sqlx::query("UPDATE devices SET last_seen_ip = $1, last_seen_ts = $2 WHERE user_id = $3 AND device_id = $4")
            .bind(ip)
            .bind(ts)
            .bind(user_id)
            .bind(device_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes the given devices and their tokens.
    pub async fn delete_devices(&self, user_id: &str, device_ids: &[String]) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        for device_id in device_ids {
            for sql in [
                // Undelivered messages take their positions with them: keep the floor above.
                "UPDATE stream_floor SET position = (SELECT MAX(stream_ordering) FROM to_device_messages WHERE user_id = $1 AND device_id = $2)
                 WHERE id = 1 AND position < (SELECT MAX(stream_ordering) FROM to_device_messages WHERE user_id = $1 AND device_id = $2)",
                "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM device_keys WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM fallback_keys WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM dehydrated_devices WHERE user_id = $1 AND device_id = $2",
                "DELETE FROM devices WHERE user_id = $1 AND device_id = $2",
            ] {
                sqlx::query(sql).bind(user_id).bind(device_id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        self.tokens.forget_user(user_id);
        Ok(())
    }

    /// Deletes every device of the user except `keep` (if given), with their tokens.
    pub async fn delete_other_devices(&self, user_id: &str, keep: Option<&str>) -> sqlx::Result<()> {
        let keep = keep.unwrap_or("");
        let mut tx = self.begin_write().await?;
        for sql in [
            "UPDATE stream_floor SET position = (SELECT MAX(stream_ordering) FROM to_device_messages WHERE user_id = $1 AND device_id <> $2)
             WHERE id = 1 AND position < (SELECT MAX(stream_ordering) FROM to_device_messages WHERE user_id = $1 AND device_id <> $2)",
            "DELETE FROM access_tokens WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM device_keys WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM fallback_keys WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM dehydrated_devices WHERE user_id = $1 AND device_id <> $2",
            "DELETE FROM devices WHERE user_id = $1 AND device_id <> $2",
        ] {
            sqlx::query(sql).bind(user_id).bind(keep).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.tokens.forget_user(user_id);
        Ok(())
    }
}
