//! End-to-end encryption keys: device identity keys, one-time and fallback keys, cross-signing
//! keys and the signatures users upload on them, and the record of whose keys changed when. Key
//! JSON is stored exactly as uploaded (clients verify signatures over it).

use super::Db;

/// A device's keys with the device's display name (for /keys/query `unsigned`).
#[derive(Debug, Clone)]
pub struct DeviceKeysRecord {
    pub device_id: String,
    pub key_json: String,
    pub display_name: Option<String>,
}

/// A signature someone uploaded on one of `target_user_id`'s keys.
#[derive(Debug, Clone)]
pub struct SignatureRecord {
    pub signer_user_id: String,
    pub signer_key_id: String,
    pub target_key_id: String,
    pub signature: String,
}

/// A one-time key upload that reuses a key id with different content.
#[derive(Debug)]
pub struct KeyConflict(pub String);

impl Db {
    /// Stores a device's identity keys; true when they differ from what was stored.
    pub async fn set_device_keys(&self, user_id: &str, device_id: &str, key_json: &str) -> sqlx::Result<bool> {
        let existing: Option<(String,)> =
            sqlx::query_as("SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2")
                .bind(user_id)
                .bind(device_id)
                .fetch_optional(self.pool())
                .await?;
        if existing.is_some_and(|(json,)| json == key_json) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(key_json)
        .execute(self.pool())
        .await?;
        Ok(true)
    }

    /// The keys of the user's devices that have uploaded some, all of them or those named.
    pub async fn device_keys(&self, user_id: &str, only: &[String]) -> sqlx::Result<Vec<DeviceKeysRecord>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT k.device_id, k.key_json, d.display_name FROM device_keys k
             JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
             WHERE k.user_id = $1 ORDER BY k.device_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter(|(device_id, _, _)| only.is_empty() || only.contains(device_id))
            .map(|(device_id, key_json, display_name)| DeviceKeysRecord { device_id, key_json, display_name })
            .collect())
    }

    /// Adds one-time keys `(algorithm, key id, json)`. Re-uploading a key unchanged is fine;
    /// the same id with other content is a conflict (and nothing of this upload is stored).
    pub async fn add_one_time_keys(
        &self,
        user_id: &str,
        device_id: &str,
        keys: &[(String, String, String)],
    ) -> sqlx::Result<Result<(), KeyConflict>> {
        let mut tx = self.begin_write().await?;
        for (algorithm, key_id, json) in keys {
            // Insert first, compare only when the id exists: two concurrent uploads of the
            // same keys (clients retry) both succeed instead of racing on the key.
            let inserted = sqlx::query(
                "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(algorithm)
            .bind(key_id)
            .bind(json)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                continue;
            }
            let (stored,): (String,) = sqlx::query_as(
                "SELECT key_json FROM one_time_keys
                 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(algorithm)
            .bind(key_id)
            .fetch_one(&mut *tx)
            .await?;
            if stored != *json {
                return Ok(Err(KeyConflict(format!("{algorithm}:{key_id}"))));
            }
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// How many unclaimed one-time keys the device has, per algorithm.
    pub async fn one_time_key_counts(&self, user_id: &str, device_id: &str) -> sqlx::Result<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT algorithm, COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(self.pool())
        .await
    }

    /// Replaces the device's fallback key for `algorithm` (a new key starts unused).
    pub async fn set_fallback_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
        key_id: &str,
        json: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = $4, key_json = $5,
               used = CASE WHEN fallback_keys.key_id = $4 AND fallback_keys.key_json = $5 THEN fallback_keys.used ELSE 0 END",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(algorithm)
        .bind(key_id)
        .bind(json)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The algorithms of the device's fallback keys not yet handed out.
    pub async fn unused_fallback_key_types(&self, user_id: &str, device_id: &str) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND used = 0 ORDER BY algorithm",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Claims one key of `algorithm` for the device: a one-time key, deleted as it is handed
    /// out (the DELETE decides: of two concurrent claims of the same key only one deletes a
    /// row, and the other tries the next key), else the fallback key, marked used.
    pub async fn claim_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> sqlx::Result<Option<(String, String)>> {
        for _ in 0..16 {
            let candidate: Option<(String, String)> = sqlx::query_as(
                "SELECT key_id, key_json FROM one_time_keys
                 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(algorithm)
            .fetch_optional(self.pool())
            .await?;
            let Some((key_id, json)) = candidate else { break };
            let deleted = sqlx::query(
                "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(algorithm)
            .bind(&key_id)
            .execute(self.pool())
            .await?;
            if deleted.rows_affected() == 1 {
                return Ok(Some((key_id, json)));
            }
        }
        let fallback: Option<(String, String)> = sqlx::query_as(
            "SELECT key_id, key_json FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(algorithm)
        .fetch_optional(self.pool())
        .await?;
        if fallback.is_some() {
            sqlx::query("UPDATE fallback_keys SET used = 1 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3")
                .bind(user_id)
                .bind(device_id)
                .bind(algorithm)
                .execute(self.pool())
                .await?;
        }
        Ok(fallback)
    }

    pub async fn set_cross_signing_key(&self, user_id: &str, key_type: &str, json: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = $3",
        )
        .bind(user_id)
        .bind(key_type)
        .bind(json)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user's cross-signing keys as (type, json): master, self_signing, user_signing.
    pub async fn cross_signing_keys(&self, user_id: &str) -> sqlx::Result<Vec<(String, String)>> {
        sqlx::query_as("SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(self.pool())
            .await
    }

    pub async fn add_key_signature(
        &self,
        signer_user_id: &str,
        signer_key_id: &str,
        target_user_id: &str,
        target_key_id: &str,
        signature: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO key_signatures (signer_user_id, signer_key_id, target_user_id, target_key_id, signature)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (signer_user_id, signer_key_id, target_user_id, target_key_id) DO UPDATE SET signature = $5",
        )
        .bind(signer_user_id)
        .bind(signer_key_id)
        .bind(target_user_id)
        .bind(target_key_id)
        .bind(signature)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Signatures on the user's keys made by `signers` (the user, and whoever asks).
    pub async fn key_signatures(&self, target_user_id: &str, signers: &[&str]) -> sqlx::Result<Vec<SignatureRecord>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT signer_user_id, signer_key_id, target_key_id, signature FROM key_signatures WHERE target_user_id = $1",
        )
        .bind(target_user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter(|(signer, ..)| signers.contains(&signer.as_str()))
            .map(|(signer_user_id, signer_key_id, target_key_id, signature)| SignatureRecord {
                signer_user_id,
                signer_key_id,
                target_key_id,
                signature,
            })
            .collect())
    }

    /// The position of the user's latest device list change (0 when it never changed): the
    /// `stream_id` other servers see in /user/devices.
    pub async fn device_list_stream(&self, user_id: &str) -> sqlx::Result<i64> {
        let (stream,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(stream_ordering) FROM device_list_changes WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(self.pool())
                .await?;
        Ok(stream.unwrap_or(0))
    }

    /// Records that the user's devices or keys changed at `stream`.
    pub async fn record_device_list_change(&self, user_id: &str, stream: i64) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO device_list_changes (stream_ordering, user_id) VALUES ($1, $2)")
            .bind(stream)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Users whose keys changed in (`after`, `up_to`] and who share a joined room with `user_id`
    /// (or are that user).
    pub async fn device_list_changes_seen_by(
        &self,
        user_id: &str,
        after: i64,
        up_to: i64,
    ) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT c.user_id FROM device_list_changes c
             WHERE c.stream_ordering > $2 AND c.stream_ordering <= $3
               AND (c.user_id = $1 OR EXISTS (
                 SELECT 1 FROM room_memberships theirs JOIN room_memberships mine ON mine.room_id = theirs.room_id
                 WHERE theirs.user_id = c.user_id AND theirs.membership = 'join'
                   AND mine.user_id = $1 AND mine.membership = 'join'))",
        )
        .bind(user_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Membership changes in (`after`, `up_to`] in rooms the user is in or just left, as
    /// (room, user, membership).
    pub async fn membership_changes_around(
        &self,
        user_id: &str,
        after: i64,
        up_to: i64,
    ) -> sqlx::Result<Vec<(String, String, String)>> {
        sqlx::query_as(
            "SELECT m.room_id, m.user_id, m.membership FROM room_memberships m
             WHERE m.stream_ordering > $2 AND m.stream_ordering <= $3 AND m.room_id IN (
               SELECT room_id FROM room_memberships WHERE user_id = $1 AND (membership = 'join' OR stream_ordering > $2))",
        )
        .bind(user_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await
    }

    /// Everyone who shares a joined room with the user (the user included when in any room).
    pub async fn users_sharing_rooms(&self, user_id: &str) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT theirs.user_id FROM room_memberships mine
             JOIN room_memberships theirs ON theirs.room_id = mine.room_id AND theirs.membership = 'join'
             WHERE mine.user_id = $1 AND mine.membership = 'join'",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// The joined members of a room.
    pub async fn joined_member_ids(&self, room_id: &str) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT user_id FROM room_memberships WHERE room_id = $1 AND membership = 'join'")
                .bind(room_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }
}
