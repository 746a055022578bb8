//! Sending and reading events: /send, /state, /event, /messages, /redact.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::{rooms::NewEvent, sync::filter::EventFilter},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rooms/{room_id}/send/{event_type}/{txn_id}", put(send))
        .route("/rooms/{room_id}/state", get(all_state))
        .route("/rooms/{room_id}/state/{event_type}", get(get_state_empty_key).put(put_state_empty_key))
        .route("/rooms/{room_id}/state/{event_type}/", get(get_state_empty_key).put(put_state_empty_key))
        .route("/rooms/{room_id}/state/{event_type}/{state_key}", get(get_state).put(put_state))
        .route("/rooms/{room_id}/event/{event_id}", get(get_event))
        .route("/rooms/{room_id}/messages", get(messages))
        .route("/rooms/{room_id}/redact/{event_id}/{txn_id}", put(redact))
        .route("/rooms/{room_id}/context/{event_id}", get(context))
        .route("/rooms/{room_id}/report/{event_id}", post(report_event))
        .route("/rooms/{room_id}/report", post(report_room))
}

/// PUT /rooms/{roomId}/send/{eventType}/{txnId} — idempotent per device, room, event type and
/// txn id (the endpoint it went to, as Synapse scopes them).
async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_type, txn_id)): MatrixPath<(String, String, String)>,
    MatrixJson(content): MatrixJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    if event_type == "m.room.redaction" {
        return Err(ApiError::invalid_param("Use the /redact endpoint to redact events"));
    }
    let event_id = state
        .rooms
        .append(NewEvent {
            room_id: &room_id,
            sender: &user.user_id,
            event_type: &event_type,
            state_key: None,
            content: Value::Object(content),
            transaction: Some((&user.device_id, &txn_id)),
        })
        .await?;
    Ok(Json(json!({"event_id": event_id})))
}

async fn set_state(
    state: &AppState,
    user: &AuthUser,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: serde_json::Map<String, Value>,
) -> ApiResult<Json<Value>> {
    if event_type == "m.room.member" || event_type == "m.room.create" {
        // Membership goes through the membership endpoints, so their checks apply.
        if event_type == "m.room.create" || state_key != user.user_id || user.is_guest {
            return Err(ApiError::forbidden(format!("{event_type} cannot be set through /state")));
        }
    }
    state.rooms.visibility(&user.user_id, room_id).await?;
    let event_id = state.rooms.set_state(&user.user_id, room_id, event_type, state_key, Value::Object(content)).await?;
    Ok(Json(json!({"event_id": event_id})))
}

/// PUT /rooms/{roomId}/state/{eventType}/{stateKey}
async fn put_state(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_type, state_key)): MatrixPath<(String, String, String)>,
    MatrixJson(content): MatrixJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    set_state(&state, &user, &room_id, &event_type, &state_key, content).await
}

/// PUT /rooms/{roomId}/state/{eventType} (empty state key)
async fn put_state_empty_key(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_type)): MatrixPath<(String, String)>,
    MatrixJson(content): MatrixJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    set_state(&state, &user, &room_id, &event_type, "", content).await
}

/// GET /rooms/{roomId}/state
async fn all_state(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    let events = state.rooms.state_events(&user.user_id, &room_id).await?;
    Ok(Json(Value::Array(state.rooms.format_events(&events, false).await?)))
}

#[derive(Deserialize)]
struct StateQuery {
    format: Option<String>,
}

async fn one_state(
    state: &AppState,
    user: &AuthUser,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    format: Option<&str>,
) -> ApiResult<Json<Value>> {
    let event = state.rooms.state_event(&user.user_id, room_id, event_type, state_key).await?;
    let formatted = state.rooms.format_events(std::slice::from_ref(&event), false).await?.remove(0);
    Ok(Json(if format == Some("event") { formatted } else { formatted["content"].clone() }))
}

/// GET /rooms/{roomId}/state/{eventType}/{stateKey}
async fn get_state(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_type, state_key)): MatrixPath<(String, String, String)>,
    MatrixQuery(query): MatrixQuery<StateQuery>,
) -> ApiResult<Json<Value>> {
    one_state(&state, &user, &room_id, &event_type, &state_key, query.format.as_deref()).await
}

/// GET /rooms/{roomId}/state/{eventType}
async fn get_state_empty_key(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_type)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<StateQuery>,
) -> ApiResult<Json<Value>> {
    one_state(&state, &user, &room_id, &event_type, "", query.format.as_deref()).await
}

/// GET /rooms/{roomId}/event/{eventId}
async fn get_event(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.rooms.event_for_user(&user.user_id, &room_id, &event_id).await?))
}

#[derive(Deserialize)]
struct MessagesQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<String>,
    filter: Option<String>,
}

/// GET /rooms/{roomId}/messages
async fn messages(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<MessagesQuery>,
) -> ApiResult<Json<Value>> {
    let backwards = match query.dir.as_deref() {
        Some("b") => true,
        Some("f") => false,
        Some(_) => return Err(ApiError::invalid_param("dir must be 'b' or 'f'")),
        None => return Err(ApiError::missing_param("'dir' is required")),
    };
    let limit = match query.limit.as_deref() {
        Some(limit) => limit.parse::<i64>().map_err(|_| ApiError::invalid_param("limit must be an integer"))?,
        None => 10,
    };
    let filter = match query.filter.as_deref() {
        Some(json) => EventFilter::from_json(
            &serde_json::from_str(json).map_err(|_| ApiError::bad_json("filter is not valid JSON"))?,
        ),
        None => EventFilter::default(),
    };
    let limit = filter.limit.unwrap_or(limit);
    let ignored = state.account_data.ignored_users(&user.user_id).await?.iter().cloned().collect();
    let page = state
        .rooms
        .messages(
            &user.user_id,
            &room_id,
            query.from.as_deref(),
            query.to.as_deref(),
            backwards,
            limit,
            &ignored,
            &filter,
        )
        .await?;
    let mut body = json!({"chunk": page.chunk, "start": page.start});
    if let Some(end) = page.end {
        body["end"] = end.into();
    }
    if !page.state.is_empty() {
        body["state"] = Value::Array(page.state);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct RedactBody {
    reason: Option<String>,
}

/// PUT /rooms/{roomId}/redact/{eventId}/{txnId}
async fn redact(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id, txn_id)): MatrixPath<(String, String, String)>,
    MatrixJson(body): MatrixJson<RedactBody>,
) -> ApiResult<Json<Value>> {
    let event_id = state
        .rooms
        .redact(&user.user_id, &user.device_id, &room_id, &event_id, &txn_id, body.reason.as_deref())
        .await?;
    Ok(Json(json!({"event_id": event_id})))
}

#[derive(Deserialize)]
struct ContextQuery {
    limit: Option<String>,
}

/// GET /rooms/{roomId}/context/{eventId}
async fn context(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    MatrixQuery(query): MatrixQuery<ContextQuery>,
) -> ApiResult<Json<Value>> {
    let limit = match query.limit.as_deref() {
        Some(limit) => limit.parse::<i64>().map_err(|_| ApiError::invalid_param("limit must be an integer"))?,
        None => 10,
    };
    let context = state.rooms.context(&user.user_id, &room_id, &event_id, limit).await?;
    Ok(Json(json!({
        "event": context.event,
        "events_before": context.before,
        "events_after": context.after,
        "start": context.start,
        "end": context.end,
        "state": context.state,
    })))
}

#[derive(Deserialize)]
struct ReportBody {
    reason: Option<String>,
    score: Option<i64>,
}

/// POST /rooms/{roomId}/report/{eventId}
async fn report_event(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    MatrixJson(body): MatrixJson<ReportBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.report(&user.user_id, &room_id, Some(&event_id), body.reason.as_deref(), body.score).await?;
    Ok(Json(json!({})))
}

/// POST /rooms/{roomId}/report
async fn report_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<ReportBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.report(&user.user_id, &room_id, None, body.reason.as_deref(), None).await?;
    Ok(Json(json!({})))
}
