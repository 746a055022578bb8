//! Server-side key backup: versions (algorithm + auth data) and, in each, the encrypted room
//! keys clients upload. The server cannot read `session_data`; it only decides which of two
//! uploads of the same session to keep, from the metadata beside it.

use super::Db;

#[derive(Debug, Clone)]
pub struct BackupVersion {
    pub version: i64,
    pub algorithm: String,
    pub auth_data: String,
    pub etag: i64,
}

/// One backed-up session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSession {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: i64,
    pub forwarded_count: i64,
    pub is_verified: bool,
    pub session_data: String,
}

impl BackupSession {
    /// The spec's rule for a new upload of a session already stored: a verified key beats an
    /// unverified one, then the lower first message index, then the fewer forwards.
    pub fn better_than(&self, stored: &BackupSession) -> bool {
        if self.is_verified != stored.is_verified {
            return self.is_verified;
        }
        if self.first_message_index != stored.first_message_index {
            return self.first_message_index < stored.first_message_index;
        }
        self.forwarded_count < stored.forwarded_count
    }
}

type SessionRow = (String, String, i64, i64, i64, String);

fn to_session(
    (room_id, session_id, first_message_index, forwarded_count, verified, session_data): SessionRow,
) -> BackupSession {
    BackupSession {
        room_id,
        session_id,
        first_message_index,
        forwarded_count,
        is_verified: verified != 0,
        session_data,
    }
}

impl Db {
    /// Creates the next backup version; it becomes the current one. Two creations at once may
    /// pick the same number: the loser tries again.
    pub async fn create_backup_version(&self, user_id: &str, algorithm: &str, auth_data: &str) -> sqlx::Result<i64> {
        let mut attempts = 0;
        loop {
            match self.try_create_backup_version(user_id, algorithm, auth_data).await {
                Err(error) if super::Backend::is_unique_violation(&error) && attempts < 5 => attempts += 1,
                other => return other,
            }
        }
    }

    async fn try_create_backup_version(&self, user_id: &str, algorithm: &str, auth_data: &str) -> sqlx::Result<i64> {
        let mut tx = self.begin_write().await?;
        let (last,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM key_backup_versions WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let version = last.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data, etag, deleted) VALUES ($1, $2, $3, $4, 0, 0)",
        )
        .bind(user_id)
        .bind(version)
        .bind(algorithm)
        .bind(auth_data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// A version (not deleted), or the current (newest) one when `version` is None.
    pub async fn backup_version(&self, user_id: &str, version: Option<i64>) -> sqlx::Result<Option<BackupVersion>> {
        let row: Option<(i64, String, String, i64)> = match version {
            Some(version) => {
                sqlx::query_as(
                    "SELECT version, algorithm, auth_data, etag FROM key_backup_versions
                     WHERE user_id = $1 AND version = $2 AND deleted = 0",
                )
                .bind(user_id)
                .bind(version)
                .fetch_optional(self.pool())
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT version, algorithm, auth_data, etag FROM key_backup_versions
                     WHERE user_id = $1 AND deleted = 0 ORDER BY version DESC LIMIT 1",
                )
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
            }
        };
        Ok(row.map(|(version, algorithm, auth_data, etag)| BackupVersion { version, algorithm, auth_data, etag }))
    }

    pub async fn update_backup_auth_data(&self, user_id: &str, version: i64, auth_data: &str) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND deleted = 0",
        )
        .bind(user_id)
        .bind(version)
        .bind(auth_data)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes a version and every key in it; false when there was no such version.
    pub async fn delete_backup_version(&self, user_id: &str, version: i64) -> sqlx::Result<bool> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE key_backup_versions SET deleted = 1 WHERE user_id = $1 AND version = $2 AND deleted = 0",
        )
        .bind(user_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2")
            .bind(user_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Stores the sessions that are better than what the version holds (all of it in one
    /// transaction, under a lock on the version row) and bumps the etag if any was; returns
    /// how many were stored.
    pub async fn put_backup_sessions(
        &self,
        user_id: &str,
        version: i64,
        sessions: &[BackupSession],
    ) -> sqlx::Result<usize> {
        let mut tx = self.begin_write().await?;
        // Taking the version row first serialises concurrent uploads to one backup.
        sqlx::query("UPDATE key_backup_versions SET etag = etag WHERE user_id = $1 AND version = $2")
            .bind(user_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let mut stored = 0;
        for session in sessions {
            let existing: Option<SessionRow> = sqlx::query_as(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
                 FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4",
            )
            .bind(user_id)
            .bind(version)
            .bind(&session.room_id)
            .bind(&session.session_id)
            .fetch_optional(&mut *tx)
            .await?;
            if existing.map(to_session).is_some_and(|existing| !session.better_than(&existing)) {
                continue;
            }
            sqlx::query(
                "INSERT INTO key_backup_sessions
                   (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
                   first_message_index = $5, forwarded_count = $6, is_verified = $7, session_data = $8",
            )
            .bind(user_id)
            .bind(version)
            .bind(&session.room_id)
            .bind(&session.session_id)
            .bind(session.first_message_index)
            .bind(session.forwarded_count)
            .bind(i64::from(session.is_verified))
            .bind(&session.session_data)
            .execute(&mut *tx)
            .await?;
            stored += 1;
        }
        if stored > 0 {
            sqlx::query("UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2")
                .bind(user_id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// The version's sessions, all, of one room, or one session.
    pub async fn backup_sessions(
        &self,
        user_id: &str,
        version: i64,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> sqlx::Result<Vec<BackupSession>> {
        let rows: Vec<SessionRow> = sqlx::query_as(
            "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
             FROM key_backup_sessions WHERE user_id = $1 AND version = $2
               AND ($3 = '' OR room_id = $3) AND ($4 = '' OR session_id = $4)
             ORDER BY room_id, session_id",
        )
        .bind(user_id)
        .bind(version)
        .bind(room_id.unwrap_or(""))
        .bind(session_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(to_session).collect())
    }

    /// Deletes the version's sessions (all, a room's, or one) and bumps the etag.
    pub async fn delete_backup_sessions(
        &self,
        user_id: &str,
        version: i64,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2
               AND ($3 = '' OR room_id = $3) AND ($4 = '' OR session_id = $4)",
        )
        .bind(user_id)
        .bind(version)
        .bind(room_id.unwrap_or(""))
        .bind(session_id.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2")
            .bind(user_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    pub async fn backup_session_count(&self, user_id: &str, version: i64) -> sqlx::Result<i64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2")
                .bind(user_id)
                .bind(version)
                .fetch_one(self.pool())
                .await?;
        Ok(count)
    }
}
