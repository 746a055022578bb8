//! Third-party identifiers (email addresses) bound to users.

use super::Db;

#[derive(Debug, Clone)]
pub struct ThreepidRecord {
    pub medium: String,
    pub address: String,
    pub validated_ts: Option<i64>,
    pub added_ts: i64,
}

impl Db {
    pub async fn threepids(&self, user_id: &str) -> sqlx::Result<Vec<ThreepidRecord>> {
        let rows: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT medium, address, validated_ts, added_ts FROM user_threepids WHERE user_id = $1 ORDER BY added_ts, address",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(medium, address, validated_ts, added_ts)| ThreepidRecord { medium, address, validated_ts, added_ts })
            .collect())
    }

    pub async fn user_by_threepid(&self, medium: &str, address: &str) -> sqlx::Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT user_id FROM user_threepids WHERE medium = $1 AND address = $2")
                .bind(medium)
                .bind(address)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(user_id,)| user_id))
    }
}
