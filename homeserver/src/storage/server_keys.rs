//! Other servers' signing keys, as fetched (see migrations/*/0013_remote_server_keys.sql).

use super::Db;

/// One stored key of a remote server.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RemoteKey {
    pub key_id: String,
    /// Unpadded base64, as servers publish it.
    pub public_key: String,
    pub valid_until_ts: i64,
    pub expired_ts: Option<i64>,
    /// The signed key document the key came in.
    pub document: String,
}

impl Db {
    /// Stores keys from one signed document (`keys`: key id, public key, expired_ts), replacing
    /// what was stored for those key ids. A key already known as expired stays expired.
    pub async fn store_remote_keys(
        &self,
        server_name: &str,
        keys: &[(String, String, Option<i64>)],
        valid_until_ts: i64,
        document: &str,
        fetched_ts: i64,
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        for (key_id, public_key, expired_ts) in keys {
            sqlx::query(
                "INSERT INTO remote_server_keys
                     (server_name, key_id, public_key, valid_until_ts, expired_ts, document, fetched_ts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (server_name, key_id) DO UPDATE SET
                     public_key = $3,
                     valid_until_ts = CASE WHEN $4 > remote_server_keys.valid_until_ts
                                           THEN $4 ELSE remote_server_keys.valid_until_ts END,
                     expired_ts = COALESCE(remote_server_keys.expired_ts, $5),
                     document = CASE WHEN $5 IS NULL THEN $6 ELSE remote_server_keys.document END,
                     fetched_ts = $7",
            )
            .bind(server_name)
            .bind(key_id)
            .bind(public_key)
            .bind(valid_until_ts)
            .bind(expired_ts)
            .bind(document)
            .bind(fetched_ts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Every stored key of `server_name`.
    pub async fn remote_keys(&self, server_name: &str) -> sqlx::Result<Vec<RemoteKey>> {
        sqlx::query_as(
            "SELECT key_id, public_key, valid_until_ts, expired_ts, document
             FROM remote_server_keys WHERE server_name = $1",
        )
        .bind(server_name)
        .fetch_all(self.pool())
        .await
    }
}
