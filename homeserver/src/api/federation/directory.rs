//! What other servers ask of this server's rooms without being in them, or to find a point in
//! one they are in (spec: Server-Server API § Public Room Directory, § Spaces, § Timestamp to
//! event): the public room directory (GET, and POST with a search filter), a space's rooms, and
//! the event nearest a time.

use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{auth::Signed, room_reads::origin_in_room};
use crate::{
    api::extract::{MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/publicRooms", get(public_rooms_get).post(public_rooms_post))
        .route("/_matrix/federation/v1/timestamp_to_event/{room_id}", get(timestamp_to_event))
        .route("/_matrix/federation/v1/hierarchy/{room_id}", get(hierarchy))
}

#[derive(Deserialize)]
struct PublicRoomsQuery {
    limit: Option<String>,
    since: Option<String>,
}

/// GET /_matrix/federation/v1/publicRooms
async fn public_rooms_get(
    State(state): State<AppState>,
    MatrixQuery(query): MatrixQuery<PublicRoomsQuery>,
    _signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let limit = crate::api::extract::numeric_param(query.limit.as_deref(), "limit")?;
    Ok(Json(state.rooms.public_rooms(None, query.since.as_deref(), limit).await?.to_json()))
}

/// POST /_matrix/federation/v1/publicRooms
async fn public_rooms_post(State(state): State<AppState>, signed: Signed<Value>) -> ApiResult<Json<Value>> {
    let body = signed.body;
    let limit = match &body["limit"] {
        Value::Null => None,
        value => Some(value.as_u64().ok_or_else(|| ApiError::bad_json("limit must be a number"))? as usize),
    };
    let since = body["since"].as_str();
    let search = body["filter"]["generic_search_term"].as_str();
    Ok(Json(state.rooms.public_rooms(search, since, limit).await?.to_json()))
}

#[derive(Deserialize)]
struct TimestampQuery {
    ts: String,
    dir: String,
}

/// GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=…&dir=f|b
async fn timestamp_to_event(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<TimestampQuery>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let ts: i64 = query.ts.parse().map_err(|_| ApiError::invalid_param("ts must be a timestamp in milliseconds"))?;
    let forwards = match query.dir.as_str() {
        "f" => true,
        "b" => false,
        _ => return Err(ApiError::invalid_param("dir must be f or b")),
    };
    origin_in_room(&state, &room_id, signed.origin.as_str()).await?;
    let (event_id, origin_server_ts) = state.rooms.event_near_time(&room_id, ts, forwards).await?;
    Ok(Json(json!({"event_id": event_id, "origin_server_ts": origin_server_ts})))
}

#[derive(Deserialize)]
struct HierarchyQuery {
    suggested_only: Option<String>,
}

/// GET /_matrix/federation/v1/hierarchy/{roomId}?suggested_only=…
async fn hierarchy(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<HierarchyQuery>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let suggested_only = matches!(query.suggested_only.as_deref(), Some("true"));
    Ok(Json(state.rooms.hierarchy_for_server(signed.origin.as_str(), &room_id, suggested_only).await?))
}
