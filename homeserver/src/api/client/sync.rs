//! GET /sync and sync filters (spec: Client-Server API § Syncing, § Filtering).

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::sync::{SyncRequest, token::SyncToken},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sync", get(sync))
        .route("/user/{user_id}/filter", post(create_filter))
        .route("/user/{user_id}/filter/{filter_id}", get(get_filter))
}

/// The longest long-poll a client may ask for.
const MAX_TIMEOUT_MS: u64 = 5 * 60 * 1000;
const DEFAULT_TIMELINE_LIMIT: i64 = 10;

#[derive(Deserialize)]
struct SyncQuery {
    since: Option<String>,
    timeout: Option<String>,
    full_state: Option<String>,
    filter: Option<String>,
    set_presence: Option<String>,
}

/// GET /sync
async fn sync(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(query): MatrixQuery<Box<SyncQuery>>,
) -> ApiResult<Json<Value>> {
    // Read in its own function so the query and the filter's JSON are dropped before the
    // long-poll (about 4 KiB less per client; the parsed filter is shared, see
    // `SyncService::filter`), and boxed so that its state (a stored filter's query, presence)
    // is not part of the future a waiting long-poll keeps. The query and the
    // request are boxed too: a future keeps room for its arguments for as long as it lives, so
    // inline they would cost their size twice over for the whole wait (about 1 KiB).
    let request = Box::pin(sync_request(&state, &user, query)).await?;
    Ok(Json(state.sync.sync(&user.user_id, &user.device_id, request).await?))
}

/// What a /sync asks for, from its query string and filter.
async fn sync_request(state: &AppState, user: &AuthUser, query: Box<SyncQuery>) -> ApiResult<Box<SyncRequest>> {
    let since = query.since.as_deref().map(SyncToken::parse).transpose()?;
    let timeout_ms = match query.timeout.as_deref() {
        Some(t) => t.parse::<u64>().map_err(|_| ApiError::invalid_param("timeout must be a number of milliseconds"))?,
        None => 0,
    };
    let full_state = match query.full_state.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid_param("full_state must be true or false")),
    };
    let filter = match query.filter.as_deref() {
        None => state.sync.filter("", |_| Ok(Value::Null))?,
        Some(inline) if inline.trim_start().starts_with('{') => state.sync.filter(inline, |text| {
            serde_json::from_str(text).map_err(|_| ApiError::bad_json("filter is not valid JSON"))
        })?,
        Some(id) => {
            let id: i64 = id.parse().map_err(|_| ApiError::invalid_param("Unknown filter"))?;
            let stored =
                state.db.filter(&user.user_id, id).await?.ok_or_else(|| ApiError::not_found("Unknown filter"))?;
            // Stored filters were checked when created; one that no longer parses filters nothing.
            state.sync.filter(&stored, |text| Ok(serde_json::from_str(text).unwrap_or(Value::Null)))?
        }
    };
    let timeline_limit = filter.timeline.limit.unwrap_or(DEFAULT_TIMELINE_LIMIT).clamp(1, 500);
    match query.set_presence.as_deref() {
        None => state.presence.touch_from_sync(&user.user_id, "online").await?,
        Some("offline") => {}
        Some(presence @ ("online" | "unavailable")) => state.presence.touch_from_sync(&user.user_id, presence).await?,
        Some(_) => return Err(ApiError::invalid_param("set_presence must be online, offline or unavailable")),
    }
    Ok(Box::new(SyncRequest {
        since,
        timeout: Duration::from_millis(timeout_ms.min(MAX_TIMEOUT_MS)),
        full_state,
        timeline_limit,
        lazy_load_members: filter.state.lazy_load_members,
        filter,
    }))
}

/// POST /user/{userId}/filter
async fn create_filter(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(user_id): MatrixPath<String>,
    MatrixJson(filter): MatrixJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    if user_id != user.user_id {
        return Err(ApiError::forbidden("You may only create filters for yourself"));
    }
    let json = serde_json::to_string(&filter).map_err(ApiError::internal)?;
    let id = state.db.create_filter(&user.user_id, &json).await?;
    Ok(Json(json!({"filter_id": id.to_string()})))
}

/// GET /user/{userId}/filter/{filterId}
async fn get_filter(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, filter_id)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    if user_id != user.user_id {
        return Err(ApiError::forbidden("You may only read your own filters"));
    }
    let id: i64 = filter_id.parse().map_err(|_| ApiError::not_found("Unknown filter"))?;
    let stored = state.db.filter(&user.user_id, id).await?.ok_or_else(|| ApiError::not_found("Unknown filter"))?;
    Ok(Json(serde_json::from_str(&stored).map_err(ApiError::internal)?))
}
