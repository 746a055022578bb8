//! The federation outbox (see migrations/*/0014_federation_outbox.sql) and the durable EDU
//! outbox beside it (0017_federation_edu_outbox.sql).

use super::Db;

impl Db {
    /// Servers with events waiting.
    pub async fn outbox_destinations(&self) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT destination FROM federation_outbox UNION SELECT destination FROM federation_edu_outbox",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// The oldest `limit` events waiting for `destination`: (stream position, event JSON).
    pub async fn outbox_batch(&self, destination: &str, limit: i64) -> sqlx::Result<Vec<(i64, String)>> {
        sqlx::query_as(
            "SELECT o.stream_ordering, e.json FROM federation_outbox o JOIN events e ON e.event_id = o.event_id
             WHERE o.destination = $1 ORDER BY o.stream_ordering LIMIT $2",
        )
        .bind(destination)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Removes what `destination` acknowledged: every row up to `through`.
    pub async fn outbox_sent(&self, destination: &str, through: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM federation_outbox WHERE destination = $1 AND stream_ordering <= $2")
            .bind(destination)
            .bind(through)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Queues an EDU for each of `destinations`, in one transaction.
    pub async fn queue_durable_edu(&self, destinations: &[String], edu: &str) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        for destination in destinations {
            sqlx::query("INSERT INTO federation_edu_outbox (destination, edu) VALUES ($1, $2)")
                .bind(destination)
                .bind(edu)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// The oldest `limit` durable EDUs waiting for `destination`: (id, EDU JSON).
    pub async fn edu_outbox_batch(&self, destination: &str, limit: i64) -> sqlx::Result<Vec<(i64, String)>> {
        sqlx::query_as("SELECT id, edu FROM federation_edu_outbox WHERE destination = $1 ORDER BY id LIMIT $2")
            .bind(destination)
            .bind(limit)
            .fetch_all(self.pool())
            .await
    }

    /// Removes the durable EDUs `destination` acknowledged: every one up to id `through`.
    pub async fn edu_outbox_sent(&self, destination: &str, through: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM federation_edu_outbox WHERE destination = $1 AND id <= $2")
            .bind(destination)
            .bind(through)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
