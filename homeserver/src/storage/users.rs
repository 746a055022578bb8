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
    pub is_guest: bool,
}

/// A user about to be created, with an optional unverified email.
pub struct NewUser<'a> {
    pub user_id: &'a str,
    /// None for a guest, who has no password.
    pub password_hash: Option<&'a str>,
    pub displayname: Option<&'a str>,
    pub email: Option<&'a str>,
    pub is_guest: bool,
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

type UserRow = (String, Option<String>, Option<String>, Option<String>, i64, i64, i64);

impl Db {
    pub async fn user(&self, user_id: &str) -> sqlx::Result<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT user_id, password_hash, displayname, avatar_url, is_admin, deactivated, is_guest FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(user_id, password_hash, displayname, avatar_url, is_admin, deactivated, is_guest)| UserRecord {
            user_id,
            password_hash,
            displayname,
            avatar_url,
            is_admin: is_admin != 0,
            deactivated: deactivated != 0,
            is_guest: is_guest != 0,
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
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, password_hash, displayname, created_ts, is_guest) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.user_id)
        .bind(user.password_hash)
        .bind(user.displayname)
        .bind(now)
        .bind(i64::from(user.is_guest))
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

    /// Replaces the password hash only if it is still `old` (a rehash must not undo a
    /// password change that landed meanwhile).
    pub async fn replace_password_hash(&self, user_id: &str, old: &str, new: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE user_id = $2 AND password_hash = $3")
            .bind(new)
            .bind(user_id)
            .bind(old)
            .execute(&self.pool)
            .await?;
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

    /// Turns a guest into a full account with a password; false when the user is no guest
    /// (any more).
    pub async fn upgrade_guest(&self, user_id: &str, password_hash: &str) -> sqlx::Result<bool> {
        let result =
            sqlx::query("UPDATE users SET password_hash = $1, is_guest = 0 WHERE user_id = $2 AND is_guest = 1")
                .bind(password_hash)
                .bind(user_id)
                .execute(self.pool())
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Which of `user_ids` are guests.
    pub async fn guests_among(&self, user_ids: &[String]) -> sqlx::Result<Vec<String>> {
        let mut guests = Vec::new();
        for chunk in user_ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql =
                format!("SELECT user_id FROM users WHERE is_guest = 1 AND user_id IN ({})", placeholders.join(","));
            let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            guests.extend(query.fetch_all(self.pool()).await?.into_iter().map(|(id,)| id));
        }
        Ok(guests)
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
        let mut tx = self.begin_write().await?;
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
        tx.commit().await?;
        self.tokens.forget_user(user_id);
        Ok(())
    }
}
