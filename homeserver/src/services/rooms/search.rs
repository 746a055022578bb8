//! Server-side search (spec: Client-Server API § Server Side Search): room events in the rooms
//! the user is in, ranked or most recent first, with highlights, context and pagination.

use serde_json::{Map, Value, json};

use super::Rooms;
use crate::{
    error::{ApiError, ApiResult},
    services::sync::filter::EventFilter,
    storage::{rooms::StoredEvent, search::SearchQuery},
};

/// The `room_events` criteria of a search request.
pub struct RoomEventsSearch {
    pub search_term: String,
    pub keys: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
    pub limit: Option<i64>,
    /// The rest of the RoomEventFilter (types, senders, not_rooms, contains_url).
    pub filter: EventFilter,
    pub order_by_recent: bool,
    pub context: Option<(i64, i64)>,
    /// `event_context.include_profile`: senders' display names and avatars with the context.
    pub include_profile: bool,
    /// `include_state`: the current state of each room with results.
    pub include_state: bool,
    /// `groupings.group_by` keys: `room_id` and/or `sender`.
    pub group_by: Vec<String>,
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
        let joined = self.joined_room_ids(user_id).await?;
        let rooms: Vec<String> = match request.rooms {
            Some(wanted) => wanted.into_iter().filter(|room| joined.contains(room)).collect(),
            None => joined,
        };
        let rooms: Vec<String> = rooms.into_iter().filter(|room| request.filter.allows_room(room)).collect();
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
        let mut found: Vec<&StoredEvent> = Vec::with_capacity(hits.len());
        let mut views = std::collections::HashMap::new();
        for hit in &hits {
            let Some(event) = events.iter().find(|e| e.event_id == hit.event_id) else { continue };
            if !views.contains_key(&event.room_id) {
                let visibility = self.visibility(user_id, &event.room_id).await?;
                let view = self.history_view(user_id, &event.room_id, visibility).await?;
                views.insert(event.room_id.clone(), (visibility, view));
            }
            let (visibility, view) = &views[&event.room_id];
            if !view.can_see(event) || !request.filter.allows(event) {
                continue;
            }
            let mut result = json!({"rank": hit.rank, "result": self.format_for(user_id, std::slice::from_ref(event), false).await?.remove(0)});
            if let Some((before, after)) = request.context {
                let ceiling = visibility.limit(self.notifier().current().stream);
                let wanted = |e: &crate::storage::rooms::StoredEvent| view.can_see(e);
                let (earlier, _) = self
                    .scan(&event.room_id, view.floor(), event.stream - 1, true, before.clamp(0, 20), wanted)
                    .await?;
                let (later, _) =
                    self.scan(&event.room_id, event.stream, ceiling, false, after.clamp(0, 20), wanted).await?;
                result["context"] = json!({
                    "events_before": self.format_for(user_id, &earlier, false).await?,
                    "events_after": self.format_for(user_id, &later, false).await?,
                    "start": format!("s{}", earlier.last().map_or(event.stream - 1, |e| e.stream - 1)),
                    "end": format!("s{}", later.last().map_or(event.stream, |e| e.stream)),
                });
                if request.include_profile {
                    let mut senders: Vec<&str> = earlier
                        .iter()
                        .chain(later.iter())
                        .chain(std::iter::once(event))
                        .map(|e| e.sender.as_str())
                        .collect();
                    senders.sort_unstable();
                    senders.dedup();
                    result["context"]["profile_info"] =
                        self.profiles_at(&event.room_id, &senders, event.stream).await?;
                }
            }
            results.push(result);
            found.push(event);
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
        let next_batch = (offset + (hits.len() as i64) < count).then(|| format!("o{}", offset + hits.len() as i64));
        if let Some(next_batch) = &next_batch {
            room_events.insert("next_batch".into(), next_batch.clone().into());
        }
        if !request.group_by.is_empty() {
            room_events.insert("groups".into(), groups(&request.group_by, &found, next_batch.as_deref()));
        }
        if request.include_state {
            let mut state = Map::new();
            for room_id in found.iter().map(|e| e.room_id.as_str()) {
                if !state.contains_key(room_id) {
                    let events = self.state_events(user_id, room_id).await?;
                    state.insert(room_id.to_owned(), Value::Array(self.format_events(&events, false).await?));
                }
            }
            room_events.insert("state".into(), Value::Object(state));
        }
        Ok(json!({"search_categories": {"room_events": room_events}}))
    }
}

/// `groups` of a search response (spec: ResultRoomEvents): per grouping key, per value, the
/// ids of this page's results in order and the group's rank among the others.
fn groups(keys: &[String], found: &[&StoredEvent], next_batch: Option<&str>) -> Value {
    let mut out = Map::new();
    for key in keys {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for event in found {
            let value = if key == "room_id" { &event.room_id } else { &event.sender };
            match groups.iter_mut().find(|(v, _)| v == value) {
                Some((_, ids)) => ids.push(event.event_id.clone()),
                None => groups.push((value.clone(), vec![event.event_id.clone()])),
            }
        }
        let mut by_value = Map::new();
        for (order, (value, ids)) in groups.into_iter().enumerate() {
            let mut group = json!({"results": ids, "order": order});
            if let Some(next_batch) = next_batch {
                group["next_batch"] = next_batch.into();
            }
            by_value.insert(value, group);
        }
        out.insert(key.clone(), Value::Object(by_value));
    }
    Value::Object(out)
}

impl Rooms {
    /// Display names and avatars of `users` in the room as of stream position `at`.
    async fn profiles_at(&self, room_id: &str, users: &[&str], at: i64) -> ApiResult<Value> {
        let keys: Vec<(String, String)> = users.iter().map(|u| ("m.room.member".to_owned(), (*u).to_owned())).collect();
        let ids: Vec<String> =
            self.db.state_entries_at(room_id, &keys, at).await?.into_iter().map(|e| e.event_id).collect();
        let mut profiles = Map::new();
        for event in self.db.events(&ids).await? {
            let parsed: Value = serde_json::from_str(&event.json).unwrap_or_default();
            let mut profile = Map::new();
            for field in ["displayname", "avatar_url"] {
                if let Some(value) = parsed["content"].get(field).filter(|v| v.is_string()) {
                    profile.insert(field.into(), value.clone());
                }
            }
            if let Some(user) = event.state_key {
                profiles.insert(user, Value::Object(profile));
            }
        }
        Ok(Value::Object(profiles))
    }
}
