//! Push actions (what each event means for each member), unread counts, notifications and
//! pushers.

use super::{Db, now_ms};

/// One member's push result for one event.
#[derive(Debug, Clone)]
pub struct PushActionRow {
    pub user_id: String,
    pub actions: String,
    pub notify: bool,
    pub highlight: bool,
}

/// A notification for GET /notifications.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub room_id: String,
    pub event_id: String,
    pub stream: i64,
    pub actions: String,
    pub read: bool,
}

type PusherTuple = (String, String, String, String, String, Option<String>, String, String);

#[derive(Debug, Clone)]
pub struct PusherRow {
    pub app_id: String,
    pub pushkey: String,
    pub kind: String,
    pub app_display_name: String,
    pub device_display_name: String,
    pub profile_tag: Option<String>,
    pub lang: String,
    pub data: String,
}

/// The position of the user's latest read receipt in a room, as a SQL expression over
/// `p.user_id` / `p.room_id`.
const READ_UP_TO: &str =
    "COALESCE((SELECT MAX(e.stream_ordering) FROM receipts r JOIN events e ON e.event_id = r.event_id
    WHERE r.user_id = p.user_id AND r.room_id = p.room_id AND r.receipt_type IN ('m.read', 'm.read.private')), 0)";

impl Db {
    /// Joined members with their display names in the room.
    pub async fn joined_member_names(&self, room_id: &str) -> sqlx::Result<Vec<(String, Option<String>)>> {
        sqlx::query_as("SELECT user_id, displayname FROM room_memberships WHERE room_id = $1 AND membership = 'join'")
            .bind(room_id)
            .fetch_all(self.pool())
            .await
    }

    /// The stored `m.push_rules` of those of `users` who changed their rules.
    pub async fn stored_push_rules(&self, users: &[String]) -> sqlx::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for chunk in users.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT user_id, content FROM account_data WHERE room_id = '' AND data_type = 'm.push_rules' AND user_id IN ({})",
                placeholders.join(",")
            );
            let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
            for user in chunk {
                query = query.bind(user);
            }
            out.extend(query.fetch_all(self.pool()).await?);
        }
        Ok(out)
    }

    /// Unread notification and highlight counts per room: events that notified the user after
    /// their latest read receipt.
    pub async fn unread_counts(&self, user_id: &str) -> sqlx::Result<Vec<(String, i64, i64)>> {
        let sql = format!(
            "SELECT p.room_id, COUNT(*), CAST(SUM(p.highlight) AS BIGINT) FROM event_push_actions p
             WHERE p.user_id = $1 AND p.notify = 1 AND p.stream_ordering > {READ_UP_TO}
             GROUP BY p.room_id"
        );
        let rows: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|(room, count, highlights)| (room, count, highlights.unwrap_or(0))).collect())
    }

    /// Notifications older than `before`, newest first.
    pub async fn notifications(
        &self,
        user_id: &str,
        before: i64,
        limit: i64,
        only_highlight: bool,
    ) -> sqlx::Result<Vec<NotificationRow>> {
        let sql = format!(
            "SELECT p.room_id, p.event_id, p.stream_ordering, p.actions, CASE WHEN p.stream_ordering <= {READ_UP_TO} THEN 1 ELSE 0 END
             FROM event_push_actions p
             WHERE p.user_id = $1 AND p.notify = 1 AND p.stream_ordering < $2 AND ($3 = 0 OR p.highlight = 1)
             ORDER BY p.stream_ordering DESC LIMIT $4"
        );
        let rows: Vec<(String, String, i64, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(before)
            .bind(i64::from(only_highlight))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(room_id, event_id, stream, actions, read)| NotificationRow {
                room_id,
                event_id,
                stream,
                actions,
                read: read != 0,
            })
            .collect())
    }

    pub async fn pushers(&self, user_id: &str) -> sqlx::Result<Vec<PusherRow>> {
        let rows: Vec<PusherTuple> = sqlx::query_as(
            "SELECT app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data FROM pushers
             WHERE user_id = $1 ORDER BY created_ts",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data)| PusherRow {
                app_id,
                pushkey,
                kind,
                app_display_name,
                device_display_name,
                profile_tag,
                lang,
                data,
            })
            .collect())
    }

    /// Adds or replaces a pusher; without `append`, other users' pushers with the same app id and
    /// pushkey are removed (spec: POST /pushers/set).
    pub async fn set_pusher(&self, user_id: &str, pusher: &PusherRow, append: bool) -> sqlx::Result<()> {
        let mut tx = self.pool().begin().await?;
        if !append {
            sqlx::query("DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2")
                .bind(&pusher.app_id)
                .bind(&pusher.pushkey)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3")
                .bind(user_id)
                .bind(&pusher.app_id)
                .bind(&pusher.pushkey)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, created_ts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(user_id)
        .bind(&pusher.app_id)
        .bind(&pusher.pushkey)
        .bind(&pusher.kind)
        .bind(&pusher.app_display_name)
        .bind(&pusher.device_display_name)
        .bind(&pusher.profile_tag)
        .bind(&pusher.lang)
        .bind(&pusher.data)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub async fn delete_pusher(&self, user_id: &str, app_id: &str, pushkey: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3")
            .bind(user_id)
            .bind(app_id)
            .bind(pushkey)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
