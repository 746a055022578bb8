//! Aliases, the public room directory, the user directory and reports.

use super::{Db, now_ms};

/// A user directory hit.
#[derive(Debug, Clone)]
pub struct UserHit {
    pub user_id: String,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

impl Db {
    pub async fn aliases_of_room(&self, room_id: &str) -> sqlx::Result<Vec<(String, String)>> {
        sqlx::query_as("SELECT alias, creator FROM room_aliases WHERE room_id = $1 ORDER BY alias")
            .bind(room_id)
            .fetch_all(self.pool())
            .await
    }

    pub async fn alias_creator(&self, alias: &str) -> sqlx::Result<Option<(String, String)>> {
        sqlx::query_as("SELECT room_id, creator FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn delete_alias(&self, alias: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM room_aliases WHERE alias = $1").bind(alias).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn set_room_public(&self, room_id: &str, public: bool) -> sqlx::Result<()> {
        if public {
            sqlx::query("INSERT INTO public_rooms (room_id) VALUES ($1) ON CONFLICT (room_id) DO NOTHING")
                .bind(room_id)
                .execute(self.pool())
                .await?;
        } else {
            sqlx::query("DELETE FROM public_rooms WHERE room_id = $1").bind(room_id).execute(self.pool()).await?;
        }
        Ok(())
    }

    pub async fn room_is_public(&self, room_id: &str) -> sqlx::Result<bool> {
        let row: Option<(String,)> = sqlx::query_as("SELECT room_id FROM public_rooms WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Public rooms with their joined member counts, largest first.
    pub async fn public_rooms(&self) -> sqlx::Result<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT p.room_id, (SELECT COUNT(*) FROM room_memberships m WHERE m.room_id = p.room_id AND m.membership = 'join') AS members
             FROM public_rooms p ORDER BY members DESC, p.room_id",
        )
        .fetch_all(self.pool())
        .await
    }

    /// Users whose id or display name contains `term` and who share a joined room with
    /// `searcher` or are in a public room; at most `limit`.
    pub async fn search_users(&self, searcher: &str, term: &str, limit: i64) -> sqlx::Result<Vec<UserHit>> {
        let escaped = term.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT u.user_id, u.displayname, u.avatar_url FROM users u
             WHERE u.deactivated = 0
               AND (LOWER(u.user_id) LIKE $2 ESCAPE '\\' OR LOWER(COALESCE(u.displayname, '')) LIKE $2 ESCAPE '\\')
               AND (u.user_id = $1
                    OR EXISTS (SELECT 1 FROM room_memberships mine JOIN room_memberships theirs ON theirs.room_id = mine.room_id
                               WHERE mine.user_id = $1 AND mine.membership = 'join' AND theirs.user_id = u.user_id AND theirs.membership = 'join')
                    OR EXISTS (SELECT 1 FROM room_memberships theirs JOIN public_rooms p ON p.room_id = theirs.room_id
                               WHERE theirs.user_id = u.user_id AND theirs.membership = 'join'))
             ORDER BY u.user_id LIMIT $3",
        )
        .bind(searcher)
        .bind(pattern)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, displayname, avatar_url)| UserHit { user_id, displayname, avatar_url })
            .collect())
    }

    pub async fn add_report(
        &self,
        user_id: &str,
        room_id: &str,
        event_id: Option<&str>,
        reason: Option<&str>,
        score: Option<i64>,
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        let (max,): (Option<i64>,) = sqlx::query_as("SELECT MAX(report_id) FROM reports").fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO reports (report_id, user_id, room_id, event_id, reason, score, ts) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(max.unwrap_or(0) + 1)
            .bind(user_id)
            .bind(room_id)
            .bind(event_id)
            .bind(reason)
            .bind(score)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// The first event at or after (`forwards`) or at or before `ts` in the room, within
    /// stream position `up_to`.
    pub async fn event_near_time(
        &self,
        room_id: &str,
        ts: i64,
        forwards: bool,
        up_to: i64,
    ) -> sqlx::Result<Option<(String, i64)>> {
        let sql = if forwards {
            "SELECT event_id, origin_server_ts FROM events WHERE room_id = $1 AND origin_server_ts >= $2 AND stream_ordering <= $3 AND outlier = 0
             ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1"
        } else {
            "SELECT event_id, origin_server_ts FROM events WHERE room_id = $1 AND origin_server_ts <= $2 AND stream_ordering <= $3 AND outlier = 0
             ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1"
        };
        sqlx::query_as(sql).bind(room_id).bind(ts).bind(up_to).fetch_optional(self.pool()).await
    }
}
