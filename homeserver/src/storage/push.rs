//! Push actions (what each event means for each member), unread counts, notifications and
//! pushers.

use super::{Db, now_ms};

/// The push result every joined member shares unless a `PushActionRow` sets them apart; only
/// stored when it notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPush {
    pub actions: String,
    pub highlight: bool,
}

/// One member's push result for one event, stored when it differs from the shared one.
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
/// `{alias}.user_id` / `{alias}.room_id`.
fn read_up_to(alias: &str) -> String {
    format!(
        "COALESCE((SELECT MAX(e.stream_ordering) FROM receipts r JOIN events e ON e.event_id = r.event_id
        WHERE r.user_id = {alias}.user_id AND r.room_id = {alias}.room_id AND r.receipt_type IN ('m.read', 'm.read.private')), 0)"
    )
}

/// Every notification of user `$1`, as rows (room_id, event_id, stream_ordering, actions,
/// highlight, read): the member's own results, and the shared results of events in rooms they
/// are joined to, sent by someone else since they joined, that no own result overrides.
fn notifications_sql() -> String {
    format!(
        "SELECT p.room_id AS room_id, p.event_id AS event_id, p.stream_ordering AS stream_ordering, p.actions AS actions,
                p.highlight AS highlight, CASE WHEN p.stream_ordering <= {own_read} THEN 1 ELSE 0 END AS is_read
         FROM event_push_actions p WHERE p.user_id = $1 AND p.notify = 1
         UNION ALL
         SELECT s.room_id, s.event_id, s.stream_ordering, s.actions, s.highlight,
                CASE WHEN s.stream_ordering <= {member_read} THEN 1 ELSE 0 END
         FROM event_push_summary s
         JOIN room_memberships m ON m.room_id = s.room_id AND m.user_id = $1 AND m.membership = 'join'
         WHERE s.sender <> $1 AND s.stream_ordering > m.joined_stream
           AND NOT EXISTS (SELECT 1 FROM event_push_actions o WHERE o.event_id = s.event_id AND o.user_id = $1)",
        own_read = read_up_to("p"),
        member_read = read_up_to("m"),
    )
}

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
            "SELECT n.room_id, COUNT(*), CAST(SUM(n.highlight) AS BIGINT) FROM ({}) n WHERE n.is_read = 0 GROUP BY n.room_id",
            notifications_sql()
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
            "SELECT n.room_id, n.event_id, n.stream_ordering, n.actions, n.is_read FROM ({}) n
             WHERE n.stream_ordering < $2 AND ($3 = 0 OR n.highlight = 1)
             ORDER BY n.stream_ordering DESC LIMIT $4",
            notifications_sql()
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
        let mut tx = self.begin_write().await?;
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
