//! The federation outbox (see migrations/*/0014_federation_outbox.sql).

use super::Db;

impl Db {
    /// Servers with events waiting.
    pub async fn outbox_destinations(&self) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT destination FROM federation_outbox").fetch_all(self.pool()).await?;
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
}
