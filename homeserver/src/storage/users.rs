//! Users and their profiles.

use super::{Backend, Db, now_ms};

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user_id: String,
    pub password_hash: Option<String>,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub is_admin: bool,
    pub deactivated: bool,
}

/// A user about to be created, with an optional unverified email.
pub struct NewUser<'a> {
    pub user_id: &'a str,
    pub password_hash: &'a str,
    pub displayname: Option<&'a str>,
    pub email: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("user id already taken")]
    UserInUse,
    #[error("email address already in use")]
    ThreepidInUse,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

type UserRow = (String, Option<String>, Option<String>, Option<String>, i64, i64);

impl Db {
    pub async fn user(&self, user_id: &str) -> sqlx::Result<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT user_id, password_hash, displayname, avatar_url, is_admin, deactivated FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(user_id, password_hash, displayname, avatar_url, is_admin, deactivated)| UserRecord {
            user_id,
            password_hash,
            displayname,
            avatar_url,
            is_admin: is_admin != 0,
            deactivated: deactivated != 0,
        }))
    }

    pub async fn user_exists(&self, user_id: &str) -> sqlx::Result<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM users WHERE user_id = $1").bind(user_id).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }

    /// Creates the user and, in the same transaction, its email 3PID (not yet validated).
    pub async fn create_user(&self, user: NewUser<'_>) -> Result<(), CreateUserError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let inserted =
            sqlx::query("INSERT INTO users (user_id, password_hash, displayname, created_ts) VALUES ($1, $2, $3, $4)")
                .bind(user.user_id)
                .bind(user.password_hash)
                .bind(user.displayname)
                .bind(now)
                .execute(&mut *tx)
                .await;
        match inserted {
            Err(error) if Backend::is_unique_violation(&error) => return Err(CreateUserError::UserInUse),
            other => other?,
        };
        if let Some(email) = user.email {
            let inserted = sqlx::query(
                "INSERT INTO user_threepids (medium, address, user_id, validated_ts, added_ts) VALUES ('email', $1, $2, NULL, $3)",
            )
            .bind(email)
            .bind(user.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(error) if Backend::is_unique_violation(&error) => return Err(CreateUserError::ThreepidInUse),
                other => other?,
            };
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE user_id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_displayname(&self, user_id: &str, displayname: Option<&str>) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET displayname = $1 WHERE user_id = $2")
            .bind(displayname)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_avatar_url(&self, user_id: &str, avatar_url: Option<&str>) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET avatar_url = $1 WHERE user_id = $2")
            .bind(avatar_url)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deactivates the account in one transaction: no password, no devices, no tokens, no 3PIDs;
    /// with `erase`, no profile either. The user id stays reserved forever.
    pub async fn deactivate_user(&self, user_id: &str, erase: bool) -> sqlx::Result<()> {
        let mut tx = self.pool().begin().await?;
        let profile_sql = if erase {
            "UPDATE users SET deactivated = 1, password_hash = NULL, displayname = NULL, avatar_url = NULL WHERE user_id = $1"
        } else {
            "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = $1"
        };
        for sql in [
            profile_sql,
            "DELETE FROM access_tokens WHERE user_id = $1",
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            "DELETE FROM devices WHERE user_id = $1",
            "DELETE FROM user_threepids WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}
