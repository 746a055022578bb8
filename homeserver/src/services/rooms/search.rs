//! Server-side search (spec: Client-Server API § Server Side Search): room events in the rooms
//! the user is in, ranked or most recent first, with highlights, context and pagination.

use serde_json::{Map, Value, json};

use super::{Rooms, read::Visibility};
use crate::{
    error::{ApiError, ApiResult},
    storage::search::SearchQuery,
};

/// The `room_events` criteria of a search request.
pub struct RoomEventsSearch {
    pub search_term: String,
    pub keys: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
    pub limit: Option<i64>,
    pub order_by_recent: bool,
    pub context: Option<(i64, i64)>,
    pub next_batch: Option<String>,
}

const DEFAULT_KEYS: &[&str] = &["content.body", "content.name", "content.topic"];

impl Rooms {
    pub async fn search(&self, user_id: &str, request: RoomEventsSearch) -> ApiResult<Value> {
        let keys: Vec<String> = match request.keys {
            Some(keys) => {
                if let Some(bad) = keys.iter().find(|k| !DEFAULT_KEYS.contains(&k.as_str())) {
                    return Err(ApiError::invalid_param(format!("Unknown search key {bad}")));
                }
                keys
            }
            None => DEFAULT_KEYS.iter().map(|k| (*k).to_owned()).collect(),
        };
        let joined: Vec<String> = self
            .db
            .rooms_for_user(user_id)
            .await?
            .into_iter()
            .filter(|m| m.membership == "join")
            .map(|m| m.room_id)
            .collect();
        let rooms: Vec<String> = match request.rooms {
            Some(wanted) => wanted.into_iter().filter(|room| joined.contains(room)).collect(),
            None => joined,
        };
        let offset = match request.next_batch.as_deref() {
            Some(token) => token
                .strip_prefix('o')
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid_param("Invalid next_batch"))?,
            None => 0,
        };
        let limit = request.limit.unwrap_or(10).clamp(1, 100);
        let query = SearchQuery {
            term: &request.search_term,
            rooms: &rooms,
            keys: &keys,
            by_recent: request.order_by_recent,
            offset,
            limit,
        };
        let (hits, count) = self.db.search(&query).await?;
        let ids: Vec<String> = hits.iter().map(|h| h.event_id.clone()).collect();
        let events = self.db.events(&ids).await?;
        let mut results = Vec::with_capacity(hits.len());
        for hit in &hits {
            let Some(event) = events.iter().find(|e| e.event_id == hit.event_id) else { continue };
            let mut result = json!({"rank": hit.rank, "result": self.format_for(user_id, std::slice::from_ref(event), false).await?.remove(0)});
            if let Some((before, after)) = request.context {
                let visibility = self.visibility(user_id, &event.room_id).await?;
                let ceiling = match visibility {
                    Visibility::Member => self.notifier().current().stream,
                    Visibility::Until(stream) => stream,
                };
                let earlier =
                    self.db.room_events(&event.room_id, 0, event.stream - 1, before.clamp(0, 20), true).await?;
                let later =
                    self.db.room_events(&event.room_id, event.stream, ceiling, after.clamp(0, 20), false).await?;
                result["context"] = json!({
                    "events_before": self.format_for(user_id, &earlier, false).await?,
                    "events_after": self.format_for(user_id, &later, false).await?,
                    "start": format!("s{}", earlier.last().map_or(event.stream - 1, |e| e.stream - 1)),
                    "end": format!("s{}", later.last().map_or(event.stream, |e| e.stream)),
                });
            }
            results.push(result);
        }
        let highlights: Vec<String> = request
            .search_term
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut room_events = Map::new();
        room_events.insert("results".into(), Value::Array(results));
        room_events.insert("count".into(), count.into());
        room_events.insert("highlights".into(), json!(highlights));
        if offset + (hits.len() as i64) < count {
            room_events.insert("next_batch".into(), format!("o{}", offset + hits.len() as i64).into());
        }
        Ok(json!({"search_categories": {"room_events": room_events}}))
    }
}
