//! Send-to-device messages: each device's inbox, written at one stream position per request
//! and deleted once the device syncs past it.

use super::{Db, dialect::Backend};

/// A message waiting for a device.
#[derive(Debug, Clone)]
pub struct ToDeviceRecord {
    pub sender: String,
    pub event_type: String,
    pub content: String,
}

/// One message to deliver: (user, device, content JSON).
pub type Delivery = (String, String, String);

impl Db {
    /// Stores the messages of one PUT /sendToDevice at `stream`, unless this (sender, device,
    /// txn id) was stored before; false then (the retry changes nothing).
    pub async fn store_to_device(
        &self,
        sender: (&str, &str),
        txn_id: &str,
        event_type: &str,
        deliveries: &[Delivery],
        stream: i64,
    ) -> sqlx::Result<bool> {
        let mut tx = self.begin_write().await?;
        let recorded =
            sqlx::query("INSERT INTO to_device_transactions (user_id, device_id, txn_id) VALUES ($1, $2, $3)")
                .bind(sender.0)
                .bind(sender.1)
                .bind(txn_id)
                .execute(&mut *tx)
                .await;
        match recorded {
            Err(error) if Backend::is_unique_violation(&error) => return Ok(false),
            other => other?,
        };
        for (seq, (user_id, device_id, content)) in deliveries.iter().enumerate() {
            sqlx::query(
                "INSERT INTO to_device_messages (stream_ordering, seq, user_id, device_id, sender, event_type, content)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(stream)
            .bind(seq as i64)
            .bind(user_id)
            .bind(device_id)
            .bind(sender.0)
            .bind(event_type)
            .bind(content)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes what the device received up to `up_to` (it synced past it), remembering the
    /// position so it is never handed out again after a restart.
    pub async fn acknowledge_to_device(&self, user_id: &str, device_id: &str, up_to: i64) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND stream_ordering <= $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(up_to)
        .execute(&mut *tx)
        .await?;
        if deleted.rows_affected() > 0 {
            sqlx::query("UPDATE stream_floor SET position = $1 WHERE id = 1 AND position < $1")
                .bind(up_to)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// The device's messages in (`after`, `up_to`], oldest first.
    pub async fn to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: i64,
        up_to: i64,
    ) -> sqlx::Result<Vec<ToDeviceRecord>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT sender, event_type, content FROM to_device_messages
             WHERE user_id = $1 AND device_id = $2 AND stream_ordering > $3 AND stream_ordering <= $4
             ORDER BY stream_ordering, seq",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(after)
        .bind(up_to)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sender, event_type, content)| ToDeviceRecord { sender, event_type, content })
            .collect())
    }

    /// (user, device) of every inbox holding messages.
    pub async fn occupied_inboxes(&self) -> sqlx::Result<Vec<(String, String)>> {
        sqlx::query_as("SELECT DISTINCT user_id, device_id FROM to_device_messages").fetch_all(self.pool()).await
    }
}
