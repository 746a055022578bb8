//! GET /sync and sync filters (spec: Client-Server API § Syncing, § Filtering).

use std::{future::Future, pin::Pin, time::Duration};

use axum::{
    Json, Router,
    extract::{FromRequestParts, Request, State},
    handler::Handler,
    response::{IntoResponse, Response},
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
        .route("/sync", get(SyncEndpoint))
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

/// GET /sync. A handler of its own instead of an async fn with extractors: axum's future for
/// those keeps the request's head (about 250 B) for as long as the handler runs, and a long-poll
/// runs for its whole wait. Here the head is read in a boxed step and dropped before the wait.
#[derive(Clone, Copy)]
struct SyncEndpoint;

impl Handler<SyncEndpoint, AppState> for SyncEndpoint {
    type Future = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn call(self, request: Request, state: AppState) -> Self::Future {
        // The request is boxed: a future keeps room for its arguments for as long as it lives.
        Box::pin(sync(state, Box::new(request)))
    }
}

async fn sync(state: AppState, request: Box<Request>) -> Response {
    // Boxed, so that neither the head nor the reading of it (the token lookup, a stored
    // filter's query, presence) is part of the future a waiting long-poll keeps.
    let (user, request) = match Box::pin(read_sync(&state, request)).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    match state.sync.sync(&user.user_id, &user.device_id, request).await {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The caller and what their /sync asks for. The query string and the filter's JSON are dropped
/// here, before the long-poll; the parsed filter is shared (see `SyncService::filter`).
async fn read_sync(state: &AppState, request: Box<Request>) -> ApiResult<(AuthUser, Box<SyncRequest>)> {
    let (mut parts, _body) = request.into_parts();
    let user = AuthUser::from_request_parts(&mut parts, state).await?;
    let MatrixQuery(query) = MatrixQuery::<SyncQuery>::from_request_parts(&mut parts, state).await?;
    drop(parts);
    let request = sync_request(state, &user, query).await?;
    Ok((user, request))
}

/// What a /sync asks for, from its query string and filter.
async fn sync_request(state: &AppState, user: &AuthUser, query: SyncQuery) -> ApiResult<Box<SyncRequest>> {
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
