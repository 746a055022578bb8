//! What other servers read of a room they are in (spec: Server-Server API § Retrieving events,
//! § Backfilling and retrieving missing events): one event, the state at an event (whole or as
//! ids), an event's auth chain, missing events between two points, and history before an event
//! (/backfill). The asking server must have a joined member in the room, and events none of its
//! users may see (history visibility) reach it redacted.

use std::collections::{HashSet, VecDeque};

use axum::{
    Json, Router,
    extract::State,
    http::Uri,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Signed;
use crate::{
    api::extract::{MatrixPath, MatrixQuery, query_values},
    error::{ApiError, ApiResult},
    services::{
        rooms::{
            federated::{cited, raw_json},
            read::ServerHistory,
        },
        usernames::server_of,
    },
    state::AppState,
    storage::{now_ms, rooms::StoredEvent},
};

/// Events one /backfill or /get_missing_events answer carries at most.
const MAX_EVENTS: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/event/{event_id}", get(event))
        .route("/_matrix/federation/v1/state/{room_id}", get(state_at))
        .route("/_matrix/federation/v1/state_ids/{room_id}", get(state_ids_at))
        .route("/_matrix/federation/v1/event_auth/{room_id}/{event_id}", get(event_auth))
        .route("/_matrix/federation/v1/backfill/{room_id}", get(backfill))
        .route("/_matrix/federation/v1/get_missing_events/{room_id}", post(get_missing_events))
}

/// The asking server has a joined member in the room and the room's ACL lets it in.
pub(super) async fn origin_in_room(state: &AppState, room_id: &str, origin: &str) -> ApiResult<()> {
    state.rooms.rules(room_id).await?;
    state.rooms.check_server_acl(room_id, origin).await?;
    let joined = state.db.room_members(room_id, "join").await?;
    if joined.iter().any(|user| server_of(user) == origin) {
        Ok(())
    } else {
        Err(ApiError::forbidden("Your server is not in this room"))
    }
}

/// Events as `origin` may read them: whole, or redacted (spec: Server-Server API § Retrieving
/// events; what Synapse does too) where the room's history visibility hides them from every
/// user of that server, so the graph stays whole without their content.
async fn as_readable_by(
    state: &AppState,
    room_id: &str,
    origin: &str,
    events: &[StoredEvent],
) -> ApiResult<Vec<Value>> {
    let history: ServerHistory = state.rooms.server_history(room_id, origin).await?;
    let rules = state.rooms.rules(room_id).await?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let json = raw_json(event);
        if history.can_see(event) {
            out.push(json);
            continue;
        }
        let redacted = hearth_federation::to_canonical_object(json)
            .ok()
            .and_then(|object| ruma::canonical_json::redact(object, &rules.redaction, None).ok())
            .and_then(|object| serde_json::to_value(object).ok());
        // An event that cannot be redacted is left out rather than shown.
        out.extend(redacted);
    }
    Ok(out)
}

/// A room event by id, or 404.
async fn room_event(state: &AppState, room_id: &str, event_id: &str) -> ApiResult<StoredEvent> {
    state
        .db
        .event(event_id)
        .await?
        .filter(|event| event.room_id == room_id)
        .ok_or_else(|| ApiError::not_found("Unknown event"))
}

/// GET /_matrix/federation/v1/event/{eventId}
async fn event(
    State(state): State<AppState>,
    MatrixPath(event_id): MatrixPath<String>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let event = state.db.event(&event_id).await?.ok_or_else(|| ApiError::not_found("Unknown event"))?;
    origin_in_room(&state, &event.room_id, signed.origin.as_str()).await?;
    let pdus = as_readable_by(&state, &event.room_id, signed.origin.as_str(), std::slice::from_ref(&event)).await?;
    Ok(Json(json!({"origin": state.config.server_name, "origin_server_ts": now_ms(), "pdus": pdus})))
}

#[derive(Deserialize)]
struct AtEvent {
    event_id: String,
}

/// The state before `event_id` (what the event was checked against) and its auth chain.
async fn state_before(
    state: &AppState,
    room_id: &str,
    event_id: &str,
) -> ApiResult<(Vec<StoredEvent>, Vec<StoredEvent>)> {
    let at = room_event(state, room_id, event_id).await?;
    let ids: Vec<String> = state.rooms.state_event_ids_before(&at).await?;
    let events = state.db.events(&ids).await?;
    let chain = state.rooms.auth_chain(&events).await?;
    Ok((events, chain))
}

/// GET /_matrix/federation/v1/state/{roomId}?event_id=…
async fn state_at(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<AtEvent>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    origin_in_room(&state, &room_id, signed.origin.as_str()).await?;
    let (events, chain) = state_before(&state, &room_id, &query.event_id).await?;
    Ok(Json(json!({
        "pdus": events.iter().map(raw_json).collect::<Vec<_>>(),
        "auth_chain": chain.iter().map(raw_json).collect::<Vec<_>>(),
    })))
}

/// GET /_matrix/federation/v1/state_ids/{roomId}?event_id=…
async fn state_ids_at(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<AtEvent>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    origin_in_room(&state, &room_id, signed.origin.as_str()).await?;
    let (events, chain) = state_before(&state, &room_id, &query.event_id).await?;
    Ok(Json(json!({
        "pdu_ids": events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(),
        "auth_chain_ids": chain.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(),
    })))
}

/// GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}
async fn event_auth(
    State(state): State<AppState>,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    origin_in_room(&state, &room_id, signed.origin.as_str()).await?;
    let event = room_event(&state, &room_id, &event_id).await?;
    let chain = state.rooms.auth_chain([&event]).await?;
    Ok(Json(json!({"auth_chain": chain.iter().map(raw_json).collect::<Vec<_>>()})))
}

/// Every `v` of the query string and the limit.
fn backfill_query(uri: &Uri) -> (Vec<String>, usize) {
    let limit = query_values(uri, "limit").first().and_then(|l| l.parse().ok()).unwrap_or(10);
    (query_values(uri, "v"), limit.clamp(1, MAX_EVENTS))
}

/// GET /_matrix/federation/v1/backfill/{roomId}?v=…&limit=…: the given events and those before
/// them, newest first.
async fn backfill(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
    uri: Uri,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    origin_in_room(&state, &room_id, signed.origin.as_str()).await?;
    let (from, limit) = backfill_query(&uri);
    let mut newest = i64::MIN;
    for event_id in &from {
        if let Some(event) = state.db.event(event_id).await?.filter(|e| e.room_id == room_id) {
            newest = newest.max(event.stream);
        }
    }
    if newest == i64::MIN {
        return Err(ApiError::not_found("None of those events is known here"));
    }
    let events = state.db.room_events(&room_id, i64::MIN, newest, limit as i64, true).await?;
    let pdus = as_readable_by(&state, &room_id, signed.origin.as_str(), &events).await?;
    Ok(Json(json!({"origin": state.config.server_name, "origin_server_ts": now_ms(), "pdus": pdus})))
}

#[derive(Deserialize)]
struct MissingEvents {
    #[serde(default)]
    earliest_events: Vec<String>,
    latest_events: Vec<String>,
    limit: Option<usize>,
}

/// POST /_matrix/federation/v1/get_missing_events/{roomId}: events reachable backwards from
/// `latest_events` through prev_events, stopping at `earliest_events`, oldest first.
async fn get_missing_events(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
    signed: Signed<MissingEvents>,
) -> ApiResult<Json<Value>> {
    origin_in_room(&state, &room_id, signed.origin.as_str()).await?;
    let wanted = signed.body;
    let limit = wanted.limit.unwrap_or(10).clamp(1, MAX_EVENTS);
    let stop: HashSet<String> = wanted.earliest_events.into_iter().collect();
    let mut seen: HashSet<String> = wanted.latest_events.iter().cloned().collect();
    let mut queue: VecDeque<String> = VecDeque::new();
    for latest in state.db.events(&wanted.latest_events).await? {
        queue.extend(cited(&latest, "prev_events"));
    }
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        if found.len() >= limit {
            break;
        }
        if stop.contains(&id) || !seen.insert(id.clone()) {
            continue;
        }
        let Some(event) = state.db.event(&id).await?.filter(|e| e.room_id == room_id) else {
            continue;
        };
        queue.extend(cited(&event, "prev_events"));
        found.push(event);
    }
    found.sort_by_key(|event| event.stream);
    let events = as_readable_by(&state, &room_id, signed.origin.as_str(), &found).await?;
    Ok(Json(json!({"events": events})))
}
