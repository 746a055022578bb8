//! Spaces (spec: Client-Server API § Spaces, GET /v1/rooms/{roomId}/hierarchy; Server-Server
//! API § Spaces, GET /v1/hierarchy/{roomId}): a space's rooms, walked breadth first through
//! its m.space.child events. Rooms this server holds are summarised from their state; the
//! others are asked of the servers each child event names (`via`), whose answer also carries
//! that room's own children. A room is listed only to those who may see it: members and
//! invitees, or anyone when it is world-readable, public or knockable, or (restricted) when
//! they are in one of its allowed rooms.

use std::collections::{HashMap, HashSet, VecDeque};

use ruma::ServerName;
use serde_json::{Value, json};

use super::{Rooms, format::stripped_state};
use crate::{
    error::{ApiError, ApiResult},
    services::federation::query_value,
};

/// Rooms one walk visits at most, and other servers it asks at most.
const MAX_ROOMS: usize = 1_000;
const MAX_REMOTE_ASKS: usize = 50;
/// Rooms one page holds when the client names no limit, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

/// A room as the walk sees it: its summary (with `children_state`), and where it came from.
struct SpaceRoom {
    summary: Value,
    /// Rooms the summary's `allowed_room_ids` name (restricted join rules).
    allowed: Vec<String>,
}

/// A child link of a space: the child's id, the servers to ask, and how it sorts.
struct Child {
    room_id: String,
    via: Vec<String>,
    order: Option<String>,
    ts: i64,
    suggested: bool,
}

/// The children of a summary's `children_state`, in the spec's order: by `order` (when
/// valid), then by the child event's timestamp, then by room id. Links without `via` are
/// removed children and are skipped.
fn children(summary: &Value) -> Vec<Child> {
    let mut children: Vec<Child> = summary["children_state"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| {
            let via: Vec<String> = event["content"]["via"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .filter(|server| ServerName::parse(*server).is_ok())
                .map(str::to_owned)
                .collect();
            if via.is_empty() {
                return None;
            }
            let order = event["content"]["order"]
                .as_str()
                .filter(|order| order.len() <= 50 && order.chars().all(|c| ('\x20'..='\x7e').contains(&c)))
                .map(str::to_owned);
            Some(Child {
                room_id: event["state_key"].as_str()?.to_owned(),
                via,
                order,
                ts: event["origin_server_ts"].as_i64().unwrap_or(0),
                suggested: event["content"]["suggested"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    children.sort_by(|a, b| {
        let by_order = match (&a.order, &b.order) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_order.then(a.ts.cmp(&b.ts)).then(a.room_id.cmp(&b.room_id))
    });
    children
}

fn allowed_room_ids(join_rules: &Value) -> Vec<String> {
    join_rules["allow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rule| rule["type"] == "m.room_membership")
        .filter_map(|rule| rule["room_id"].as_str().map(str::to_owned))
        .collect()
}

impl Rooms {
    /// A room this server holds, summarised for a space walk (None for a room it does not
    /// know).
    async fn local_space_room(&self, room_id: &str) -> ApiResult<Option<SpaceRoom>> {
        if self.db.room_version(room_id).await?.is_none() {
            return Ok(None);
        }
        let members = self.db.room_members(room_id, "join").await?.len() as i64;
        let mut summary = self.room_summary(room_id, members).await?;
        let entries = self.db.current_state(room_id).await?;
        let child_ids: Vec<String> =
            entries.iter().filter(|e| e.event_type == "m.space.child").map(|e| e.event_id.clone()).collect();
        let mut children_state = Vec::new();
        for event in self.db.events(&child_ids).await? {
            let mut stripped = stripped_state(&event);
            let json: Value = serde_json::from_str(&event.json).unwrap_or_default();
            stripped["origin_server_ts"] = json["origin_server_ts"].clone();
            // A child event without `via` is a removed child.
            if stripped["content"]["via"].as_array().is_some_and(|via| !via.is_empty()) {
                children_state.push(stripped);
            }
        }
        summary["children_state"] = children_state.into();
        let join_rules = self.db.current_state_event(room_id, "m.room.join_rules", "").await?;
        let join_rules: Value = join_rules
            .and_then(|event| serde_json::from_str::<Value>(&event.json).ok())
            .map(|json| json["content"].clone())
            .unwrap_or_default();
        let allowed = allowed_room_ids(&join_rules);
        if !allowed.is_empty() {
            summary["allowed_room_ids"] = json!(allowed);
        }
        if let Some(version) = self.db.room_version(room_id).await? {
            summary["room_version"] = version.into();
        }
        Ok(Some(SpaceRoom { summary, allowed }))
    }

    /// Whether the summary's join rule or visibility opens the room to anyone.
    fn open_to_all(summary: &Value) -> bool {
        summary["world_readable"] == true || matches!(summary["join_rule"].as_str(), Some("public" | "knock"))
    }

    /// Whether `user_id` may see a room in a space walk.
    async fn user_may_see(&self, user_id: &str, room: &SpaceRoom) -> ApiResult<bool> {
        if Self::open_to_all(&room.summary) {
            return Ok(true);
        }
        let room_id = room.summary["room_id"].as_str().unwrap_or_default();
        let membership = self.db.membership(room_id, user_id).await?.map(|m| m.membership);
        if matches!(membership.as_deref(), Some("join" | "invite" | "knock")) {
            return Ok(true);
        }
        if matches!(room.summary["join_rule"].as_str(), Some("restricted" | "knock_restricted")) {
            for allowed in &room.allowed {
                if self.db.membership(allowed, user_id).await?.is_some_and(|m| m.membership == "join") {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Whether server `origin` may see a room's summary: open rooms, restricted ones (the
    /// asking server filters by `allowed_room_ids`), and rooms it has a member in.
    async fn server_may_see(&self, origin: &str, room: &SpaceRoom) -> ApiResult<bool> {
        if Self::open_to_all(&room.summary)
            || matches!(room.summary["join_rule"].as_str(), Some("restricted" | "knock_restricted"))
        {
            return Ok(true);
        }
        let room_id = room.summary["room_id"].as_str().unwrap_or_default();
        let joined = self.db.room_members(room_id, "join").await?;
        Ok(joined.iter().any(|user| crate::services::usernames::server_of(user) == origin))
    }

    /// GET /_matrix/federation/v1/hierarchy/{roomId} for server `origin`: the room, the
    /// children this server holds that `origin` may see, and those it may not.
    pub async fn hierarchy_for_server(&self, origin: &str, room_id: &str, suggested_only: bool) -> ApiResult<Value> {
        self.check_server_acl(room_id, origin).await?;
        let root = self.local_space_room(room_id).await?.ok_or_else(|| ApiError::not_found("Unknown room"))?;
        if !self.server_may_see(origin, &root).await? {
            return Err(ApiError::not_found("Unknown room"));
        }
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        for child in children(&root.summary).into_iter().filter(|c| c.suggested || !suggested_only) {
            match self.local_space_room(&child.room_id).await? {
                Some(room) if self.server_may_see(origin, &room).await? => visible.push(room.summary),
                Some(_) => hidden.push(child.room_id),
                None => {}
            }
        }
        for summary in &mut visible {
            // Grandchildren are the asking server's to fetch.
            if let Value::Object(fields) = summary {
                fields.remove("children_state");
            }
        }
        Ok(json!({"room": root.summary, "children": visible, "inaccessible_children": hidden}))
    }

    /// A room this server does not hold, asked of `via` (GET /_matrix/federation/v1/hierarchy):
    /// its summary, and the summaries of its children the answering server sent, kept in
    /// `learned` for later in the walk.
    async fn remote_space_room(
        &self,
        room_id: &str,
        via: &[String],
        suggested_only: bool,
        learned: &mut HashMap<String, Value>,
        asks: &mut usize,
    ) -> Option<SpaceRoom> {
        let path = format!("/_matrix/federation/v1/hierarchy/{}?suggested_only={suggested_only}", query_value(room_id));
        for server in self.candidate_servers(room_id, via) {
            if *asks >= MAX_REMOTE_ASKS {
                return None;
            }
            *asks += 1;
            let answer = match self.federation.get(&server, &path).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::info!(%error, room_id, server = %server, "a space hierarchy request failed");
                    continue;
                }
            };
            if answer["room"]["room_id"] != room_id {
                continue;
            }
            for child in answer["children"].as_array().into_iter().flatten() {
                if let Some(id) = child["room_id"].as_str() {
                    learned.entry(id.to_owned()).or_insert_with(|| child.clone());
                }
            }
            return Some(remote_room(answer["room"].clone()));
        }
        None
    }

    /// GET /_matrix/client/v1/rooms/{roomId}/hierarchy: the space's rooms that `user_id` may
    /// see, breadth first, a page at a time (`from` is the previous page's `next_batch`).
    pub async fn hierarchy(
        &self,
        user_id: &str,
        room_id: &str,
        suggested_only: bool,
        max_depth: Option<usize>,
        limit: Option<usize>,
        from: Option<&str>,
    ) -> ApiResult<Value> {
        let offset = match from {
            Some(token) => token
                .strip_prefix('h')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ApiError::invalid_param("Invalid from token"))?,
            None => 0,
        };
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let max_depth = max_depth.unwrap_or(usize::MAX);
        let wanted = offset.saturating_add(limit).saturating_add(1).min(MAX_ROOMS);

        let mut learned: HashMap<String, Value> = HashMap::new();
        let mut asks = 0;
        let mut seen: HashSet<String> = HashSet::from([room_id.to_owned()]);
        let mut queue: VecDeque<(String, usize, Vec<String>)> = VecDeque::from([(room_id.to_owned(), 0, Vec::new())]);
        let mut listed: Vec<Value> = Vec::new();
        while let Some((current, depth, via)) = queue.pop_front() {
            if listed.len() >= wanted {
                break;
            }
            let room = match self.local_space_room(&current).await? {
                Some(room) => Some(room),
                None => {
                    // A child's summary from its parent's server carries no children_state:
                    // the room itself is asked for when its children are wanted.
                    let known = learned.remove(&current);
                    if depth >= max_depth && known.is_some() {
                        known.map(remote_room)
                    } else {
                        match self.remote_space_room(&current, &via, suggested_only, &mut learned, &mut asks).await {
                            Some(room) => Some(room),
                            None => known.map(remote_room),
                        }
                    }
                }
            };
            let Some(room) = room else {
                if depth == 0 {
                    return Err(ApiError::not_found("Unknown room"));
                }
                continue;
            };
            if !self.user_may_see(user_id, &room).await? {
                if depth == 0 {
                    return Err(ApiError::forbidden("You may not see this space"));
                }
                continue;
            }
            if depth < max_depth {
                for child in children(&room.summary).into_iter().filter(|c| c.suggested || !suggested_only) {
                    if seen.len() < MAX_ROOMS && seen.insert(child.room_id.clone()) {
                        queue.push_back((child.room_id, depth + 1, child.via));
                    }
                }
            }
            let mut summary = room.summary;
            if let Value::Object(fields) = &mut summary {
                fields.remove("allowed_room_ids");
                fields.entry("children_state").or_insert_with(|| json!([]));
            }
            listed.push(summary);
        }
        let more = listed.len() > offset + limit;
        let rooms: Vec<Value> = listed.into_iter().skip(offset).take(limit).collect();
        let mut answer = json!({"rooms": rooms});
        if more {
            answer["next_batch"] = format!("h{}", offset + limit).into();
        }
        Ok(answer)
    }
}

/// A summary another server sent, as the walk keeps it.
fn remote_room(summary: Value) -> SpaceRoom {
    let allowed = summary["allowed_room_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    SpaceRoom { summary, allowed }
}
