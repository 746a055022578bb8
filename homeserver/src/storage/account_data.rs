//! Account data, global (room_id '') and per room, and receipts and presence: the non-event
//! streams a /sync reads. Every write records the stream position it was given.

use super::Db;

/// An account data entry: (room id or '' for global, type, content JSON).
#[derive(Debug, Clone)]
pub struct AccountDataRecord {
    pub room_id: String,
    pub data_type: String,
    pub content: String,
}

/// A receipt row.
#[derive(Debug, Clone)]
pub struct ReceiptRecord {
    pub room_id: String,
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
}

/// A user's stored presence.
#[derive(Debug, Clone)]
pub struct PresenceRecord {
    pub user_id: String,
    pub state: String,
    pub status_msg: Option<String>,
    pub last_active_ts: i64,
}

impl Db {
    pub async fn set_account_data(
        &self,
        user_id: &str,
        room_id: &str,
        data_type: &str,
        content: &str,
        stream: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO account_data (user_id, room_id, data_type, content, stream_ordering) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, room_id, data_type) DO UPDATE SET content = $4, stream_ordering = $5",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(data_type)
        .bind(content)
        .bind(stream)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn account_data(&self, user_id: &str, room_id: &str, data_type: &str) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3")
                .bind(user_id)
                .bind(room_id)
                .bind(data_type)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(c,)| c))
    }

    /// The user's account data changed in (`after`, `up_to`], all rooms and global.
    pub async fn account_data_since(
        &self,
        user_id: &str,
        after: i64,
        up_to: i64,
    ) -> sqlx::Result<Vec<AccountDataRecord>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT room_id, data_type, content FROM account_data
             WHERE user_id = $1 AND stream_ordering > $2 AND stream_ordering <= $3 ORDER BY stream_ordering",
        )
        .bind(user_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(room_id, data_type, content)| AccountDataRecord { room_id, data_type, content })
            .collect())
    }

    pub async fn set_receipt(&self, receipt: &ReceiptRecord, stream: i64) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_ordering)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = $5, ts = $6, stream_ordering = $7",
        )
        .bind(&receipt.room_id)
        .bind(&receipt.user_id)
        .bind(&receipt.receipt_type)
        .bind(&receipt.thread_id)
        .bind(&receipt.event_id)
        .bind(receipt.ts)
        .bind(stream)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Receipts in the room changed in (`after`, `up_to`].
    pub async fn receipts_since(&self, room_id: &str, after: i64, up_to: i64) -> sqlx::Result<Vec<ReceiptRecord>> {
        let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts
             WHERE room_id = $1 AND stream_ordering > $2 AND stream_ordering <= $3",
        )
        .bind(room_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(room_id, user_id, receipt_type, thread_id, event_id, ts)| ReceiptRecord {
                room_id,
                user_id,
                receipt_type,
                thread_id,
                event_id,
                ts,
            })
            .collect())
    }

    /// Rooms of the user (joined) with receipts changed in (`after`, `up_to`].
    pub async fn rooms_with_new_receipts(&self, user_id: &str, after: i64, up_to: i64) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT r.room_id FROM receipts r JOIN room_memberships m ON m.room_id = r.room_id
             WHERE m.user_id = $1 AND m.membership = 'join' AND r.stream_ordering > $2 AND r.stream_ordering <= $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn set_presence(&self, presence: &PresenceRecord, stream: i64) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_ordering) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id) DO UPDATE SET state = $2, status_msg = $3, last_active_ts = $4, stream_ordering = $5",
        )
        .bind(&presence.user_id)
        .bind(&presence.state)
        .bind(&presence.status_msg)
        .bind(presence.last_active_ts)
        .bind(stream)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn presence(&self, user_id: &str) -> sqlx::Result<Option<PresenceRecord>> {
        let row: Option<(String, String, Option<String>, i64)> =
            sqlx::query_as("SELECT user_id, state, status_msg, last_active_ts FROM presence WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(user_id, state, status_msg, last_active_ts)| PresenceRecord {
            user_id,
            state,
            status_msg,
            last_active_ts,
        }))
    }

    /// Presence changed in (`after`, `up_to`] of users who share a joined room with `user_id`
    /// (the user's own presence included).
    pub async fn presence_since(&self, user_id: &str, after: i64, up_to: i64) -> sqlx::Result<Vec<PresenceRecord>> {
        let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT p.user_id, p.state, p.status_msg, p.last_active_ts FROM presence p
             WHERE p.stream_ordering > $2 AND p.stream_ordering <= $3 AND (p.user_id = $1 OR EXISTS (
                 SELECT 1 FROM room_memberships mine JOIN room_memberships theirs ON theirs.room_id = mine.room_id
                 WHERE mine.user_id = $1 AND mine.membership = 'join' AND theirs.user_id = p.user_id AND theirs.membership = 'join'))",
        )
        .bind(user_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, state, status_msg, last_active_ts)| PresenceRecord {
                user_id,
                state,
                status_msg,
                last_active_ts,
            })
            .collect())
    }

    /// Whether `user_id` is joined to any room this server holds.
    pub async fn is_joined_anywhere(&self, user_id: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM room_memberships WHERE user_id = $1 AND membership = 'join' LIMIT 1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.is_some())
    }
}
