//! The state an event from another branch of a room's history was sent in, kept where it
//! differs from the state recorded just before the event's position (migration 0019). The
//! room's state history is linear; from a merging event's position on it holds the resolved
//! state, so the branch's own state has to be kept beside it for the events that follow on
//! that branch and for /state_ids.

use std::collections::HashMap;

use super::Db;

/// One difference: (type, state key, the event in force there on the branch, None if absent).
pub type BranchEntry = (String, String, Option<String>);

impl Db {
    /// The branch-state differences recorded for any of `event_ids`, by event id.
    pub async fn branch_states(&self, event_ids: &[String]) -> sqlx::Result<HashMap<String, Vec<BranchEntry>>> {
        let mut found = HashMap::new();
        for chunk in event_ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT event_id, delta FROM event_branch_state WHERE event_id IN ({})",
                placeholders.join(",")
            );
            let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for (event_id, delta) in query.fetch_all(self.pool()).await? {
                // Written by this server from the same type: unreadable only if the row is
                // damaged, and then the linear state is the best left.
                if let Ok(entries) = serde_json::from_str::<Vec<BranchEntry>>(&delta) {
                    found.insert(event_id, entries);
                }
            }
        }
        Ok(found)
    }
}

/// Records an event's branch-state differences in the event's transaction.
pub(super) async fn write_branch_state(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event_id: &str,
    room_id: &str,
    entries: &[BranchEntry],
) -> sqlx::Result<()> {
    let delta = serde_json::to_string(entries).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query("INSERT INTO event_branch_state (event_id, room_id, delta) VALUES ($1, $2, $3)")
        .bind(event_id)
        .bind(room_id)
        .bind(delta)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
