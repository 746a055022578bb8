//! GET /_matrix/client/v1/rooms/{roomId}/relations/... and /threads (spec: Client-Server API
//! § Relationships, § Threading).

use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::rooms::relations::RelationsPage,
    state::AppState,
    storage::relations::RECURSION_DEPTH,
};

pub fn v1_routes() -> Router<AppState> {
    Router::new()
        .route("/rooms/{room_id}/relations/{event_id}", get(all_relations))
        .route("/rooms/{room_id}/relations/{event_id}/{rel_type}", get(relations_of_type))
        .route("/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}", get(relations_of_type_and_event_type))
        .route("/rooms/{room_id}/threads", get(threads))
        .route("/rooms/{room_id}/timestamp_to_event", get(timestamp_to_event))
}

#[derive(Deserialize)]
struct PageQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<String>,
    include: Option<String>,
    recurse: Option<String>,
}

fn limit(query: &PageQuery) -> ApiResult<i64> {
    match query.limit.as_deref() {
        Some(limit) => limit.parse::<i64>().map_err(|_| ApiError::invalid_param("limit must be an integer")),
        None => Ok(50),
    }
}

fn page_json(page: RelationsPage) -> Value {
    let mut body = json!({"chunk": page.chunk});
    if let Some(next) = page.next_batch {
        body["next_batch"] = next.into();
    }
    body
}

async fn relations(
    state: &AppState,
    user: &AuthUser,
    (room_id, event_id): (&str, &str),
    rel_type: Option<&str>,
    event_type: Option<&str>,
    query: &PageQuery,
) -> ApiResult<Json<Value>> {
    let backwards = match query.dir.as_deref() {
        None | Some("b") => true,
        Some("f") => false,
        Some(_) => return Err(ApiError::invalid_param("dir must be 'b' or 'f'")),
    };
    let recurse = match query.recurse.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::invalid_param("recurse must be true or false")),
    };
    let page = state
        .rooms
        .relations(
            &user.user_id,
            room_id,
            event_id,
            rel_type,
            event_type,
            query.from.as_deref(),
            query.to.as_deref(),
            backwards,
            limit(query)?,
            recurse.unwrap_or(false),
        )
        .await?;
    let mut body = page_json(page);
    // Present exactly when the client asked about recursion (spec: GET /relations).
    if let Some(recurse) = recurse {
        body["recursion_depth"] = (if recurse { RECURSION_DEPTH } else { 1 }).into();
    }
    Ok(Json(body))
}

/// GET /rooms/{roomId}/relations/{eventId}
async fn all_relations(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    relations(&state, &user, (&room_id, &event_id), None, None, &query).await
}

/// GET /rooms/{roomId}/relations/{eventId}/{relType}
async fn relations_of_type(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id, rel_type)): MatrixPath<(String, String, String)>,
    MatrixQuery(query): MatrixQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    relations(&state, &user, (&room_id, &event_id), Some(&rel_type), None, &query).await
}

/// GET /rooms/{roomId}/relations/{eventId}/{relType}/{eventType}
async fn relations_of_type_and_event_type(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id, rel_type, event_type)): MatrixPath<(String, String, String, String)>,
    MatrixQuery(query): MatrixQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    relations(&state, &user, (&room_id, &event_id), Some(&rel_type), Some(&event_type), &query).await
}

/// GET /rooms/{roomId}/threads
async fn threads(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let participated = match query.include.as_deref() {
        None | Some("all") => false,
        Some("participated") => true,
        Some(_) => return Err(ApiError::invalid_param("include must be 'all' or 'participated'")),
    };
    let page =
        state.rooms.threads(&user.user_id, &room_id, participated, query.from.as_deref(), limit(&query)?).await?;
    Ok(Json(page_json(page)))
}

#[derive(Deserialize)]
struct TimestampQuery {
    ts: Option<String>,
    dir: Option<String>,
}

/// GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
async fn timestamp_to_event(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<TimestampQuery>,
) -> ApiResult<Json<Value>> {
    let ts = query.ts.as_deref().ok_or_else(|| ApiError::missing_param("'ts' is required"))?;
    let ts: i64 = ts.parse().map_err(|_| ApiError::invalid_param("ts must be a timestamp in milliseconds"))?;
    let forwards = match query.dir.as_deref() {
        Some("f") => true,
        Some("b") => false,
        _ => return Err(ApiError::invalid_param("dir must be 'f' or 'b'")),
    };
    let (event_id, origin_server_ts) = state.rooms.timestamp_to_event(&user.user_id, &room_id, ts, forwards).await?;
    Ok(Json(json!({"event_id": event_id, "origin_server_ts": origin_server_ts})))
}
