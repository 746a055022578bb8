//! Typing, receipts, read markers and presence (spec: Client-Server API § Typing Notifications,
//! § Receipts, § Read and unread markers, § Presence).

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath},
    error::{ApiError, ApiResult},
    services::rooms::read::Visibility,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rooms/{room_id}/typing/{user_id}", put(typing))
        .route("/rooms/{room_id}/receipt/{receipt_type}/{event_id}", post(receipt))
        .route("/rooms/{room_id}/read_markers", post(read_markers))
        .route("/presence/{user_id}/status", get(get_presence).put(set_presence))
}

#[derive(Deserialize)]
struct TypingBody {
    typing: bool,
    timeout: Option<u64>,
}

/// PUT /rooms/{roomId}/typing/{userId}
async fn typing(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, user_id)): MatrixPath<(String, String)>,
    MatrixJson(body): MatrixJson<TypingBody>,
) -> ApiResult<Json<Value>> {
    if user_id != user.user_id {
        return Err(ApiError::forbidden("You may only set your own typing state"));
    }
    state.rooms.rules(&room_id).await?;
    if !matches!(state.rooms.visibility(&user.user_id, &room_id).await?, Visibility::Member) {
        return Err(ApiError::forbidden("You are not in this room"));
    }
    let timeout = Duration::from_millis(body.timeout.unwrap_or(30_000));
    state.typing.set(&room_id, &user.user_id, body.typing, timeout);
    let edu = json!({"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": user.user_id, "typing": body.typing}});
    state.rooms.send_edu_to_room(&room_id, edu).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
struct ReceiptBody {
    thread_id: Option<String>,
}

/// POST /rooms/{roomId}/receipt/{receiptType}/{eventId}
async fn receipt(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, receipt_type, event_id)): MatrixPath<(String, String, String)>,
    MatrixJson(body): MatrixJson<ReceiptBody>,
) -> ApiResult<Json<Value>> {
    // "main" is the spec's name for the main timeline of a threaded room; stored like unthreaded.
    let thread = body.thread_id.as_deref();
    state.receipts.post(&user.user_id, &room_id, &receipt_type, &event_id, thread).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct MarkersBody {
    #[serde(rename = "m.fully_read")]
    fully_read: Option<String>,
    #[serde(rename = "m.read")]
    read: Option<String>,
    #[serde(rename = "m.read.private")]
    read_private: Option<String>,
}

/// POST /rooms/{roomId}/read_markers
async fn read_markers(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<MarkersBody>,
) -> ApiResult<Json<Value>> {
    state
        .receipts
        .read_markers(
            &user.user_id,
            &room_id,
            body.fully_read.as_deref(),
            body.read.as_deref(),
            body.read_private.as_deref(),
        )
        .await?;
    Ok(Json(json!({})))
}

/// GET /presence/{userId}/status
async fn get_presence(
    State(state): State<AppState>,
    _user: AuthUser,
    MatrixPath(user_id): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.presence.get(&user_id).await?))
}

#[derive(Deserialize)]
struct PresenceBody {
    presence: String,
    status_msg: Option<String>,
}

/// PUT /presence/{userId}/status
async fn set_presence(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(user_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<PresenceBody>,
) -> ApiResult<Json<Value>> {
    if user_id != user.user_id {
        return Err(ApiError::forbidden("You may only set your own presence"));
    }
    state.presence.set(&user.user_id, &body.presence, body.status_msg.as_deref()).await?;
    Ok(Json(json!({})))
}
