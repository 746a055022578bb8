//! Access and refresh tokens, stored as SHA-256 hashes of the secret the client holds.

use super::{Db, now_ms};

/// What an access token resolves to.
#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    pub user_id: String,
    pub device_id: String,
    pub expires_ts: Option<i64>,
    pub last_seen_ts: Option<i64>,
    pub is_guest: bool,
}

/// A login session for a device: its new access token and, optionally, refresh token.
pub struct NewSession<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub initial_display_name: Option<&'a str>,
    pub access_token_hash: &'a str,
    pub expires_ts: Option<i64>,
    pub refresh_token_hash: Option<&'a str>,
}

/// (user, device, expires, device last seen, is guest).
type TokenRow = (String, String, Option<i64>, Option<i64>, i64);

impl Db {
    /// Creates the device if new, and replaces whatever tokens it had with the new ones.
    pub async fn create_session(&self, session: NewSession<'_>) -> sqlx::Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, device_id) DO NOTHING",
        )
        .bind(session.user_id)
        .bind(session.device_id)
        .bind(session.initial_display_name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_tokens(&mut tx, &session, now).await?;
        tx.commit().await?;
        self.tokens.forget_user(session.user_id);
        Ok(())
    }

    /// The token's owner, from memory when it was looked up before (see `token_cache.rs`).
    pub async fn lookup_access_token(&self, token_hash: &str) -> sqlx::Result<Option<AccessTokenRecord>> {
        if let Some(record) = self.tokens.get(token_hash) {
            return Ok(Some(record));
        }
        let generation = self.tokens.generation();
        let record = self.read_access_token(token_hash).await?;
        if let Some(record) = &record {
            self.tokens.fill(token_hash, record, generation);
        }
        Ok(record)
    }

    async fn read_access_token(&self, token_hash: &str) -> sqlx::Result<Option<AccessTokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT t.user_id, t.device_id, t.expires_ts, d.last_seen_ts, u.is_guest
             FROM access_tokens t JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id
             JOIN users u ON u.user_id = t.user_id
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(user_id, device_id, expires_ts, last_seen_ts, is_guest)| AccessTokenRecord {
            user_id,
            device_id,
            expires_ts,
            last_seen_ts,
            is_guest: is_guest != 0,
        }))
    }

    /// Consumes a refresh token and issues the device's next pair in one transaction. Returns
    /// the (user, device) it belonged to, or None if the token is unknown or already used.
    pub async fn rotate_refresh_token(
        &self,
        old_refresh_hash: &str,
        new_access_hash: &str,
        expires_ts: i64,
        new_refresh_hash: &str,
    ) -> sqlx::Result<Option<(String, String)>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let owner: Option<(String, String)> =
            sqlx::query_as("DELETE FROM refresh_tokens WHERE token_hash = $1 RETURNING user_id, device_id")
                .bind(old_refresh_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user_id, device_id)) = owner else {
            return Ok(None);
        };
        let session = NewSession {
            user_id: &user_id,
            device_id: &device_id,
            initial_display_name: None,
            access_token_hash: new_access_hash,
            expires_ts: Some(expires_ts),
            refresh_token_hash: Some(new_refresh_hash),
        };
        insert_tokens(&mut tx, &session, now).await?;
        tx.commit().await?;
        self.tokens.forget_user(&user_id);
        Ok(Some((user_id, device_id)))
    }
}

async fn insert_tokens(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session: &NewSession<'_>,
    now: i64,
) -> sqlx::Result<()> {
    for sql in [
        "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2",
        "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2",
    ] {
        sqlx::query(sql).bind(session.user_id).bind(session.device_id).execute(&mut **tx).await?;
    }
    sqlx::query("INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts, created_ts) VALUES ($1, $2, $3, $4, $5)")
        .bind(session.access_token_hash)
        .bind(session.user_id)
        .bind(session.device_id)
        .bind(session.expires_ts)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    if let Some(refresh) = session.refresh_token_hash {
        sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)")
            .bind(refresh)
            .bind(session.user_id)
            .bind(session.device_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
