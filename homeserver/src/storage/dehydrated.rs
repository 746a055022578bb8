//! Dehydrated devices (MSC3814): one per user, stored beside an ordinary device row (so keys and
//! to-device messages work as for any device) but without an access token.

use super::{Db, now_ms};

impl Db {
    /// Makes `device_id` the user's dehydrated device (a device without a token); returns the
    /// id of the one it replaces, whose device row the caller deletes.
    pub async fn set_dehydrated_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
        device_data: &str,
    ) -> sqlx::Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let previous: Option<(String,)> = sqlx::query_as("SELECT device_id FROM dehydrated_devices WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, device_id) DO UPDATE SET display_name = $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(display_name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET device_id = $2, device_data = $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(device_data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous.map(|(id,)| id).filter(|id| id != device_id))
    }

    /// The user's dehydrated device: (device id, device data).
    pub async fn dehydrated_device(&self, user_id: &str) -> sqlx::Result<Option<(String, String)>> {
        sqlx::query_as("SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn forget_dehydrated_device(&self, user_id: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM dehydrated_devices WHERE user_id = $1").bind(user_id).execute(self.pool()).await?;
        Ok(())
    }

    /// The device's to-device messages after position (`stream`, `seq`), oldest first, at most
    /// `limit`: (stream, seq, sender, type, content).
    pub async fn to_device_page(
        &self,
        user_id: &str,
        device_id: &str,
        after: (i64, i64),
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, i64, String, String, String)>> {
        sqlx::query_as(
            "SELECT stream_ordering, seq, sender, event_type, content FROM to_device_messages
             WHERE user_id = $1 AND device_id = $2
               AND (stream_ordering > $3 OR (stream_ordering = $3 AND seq > $4))
             ORDER BY stream_ordering, seq LIMIT $5",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }
}
