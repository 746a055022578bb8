//! Server-side key backup (spec: Client-Server API § Server-side key backups).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath, MatrixQuery},
    error::ApiResult,
    services::e2ee::backup::Selector,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/room_keys/version", post(create).get(current))
        .route("/room_keys/version/{version}", get(describe).put(update).delete(delete))
        .route("/room_keys/keys", get(get_all).put(put_all).delete(delete_all))
        .route("/room_keys/keys/{room_id}", get(get_room).put(put_room).delete(delete_room))
        .route("/room_keys/keys/{room_id}/{session_id}", get(get_session).put(put_session).delete(delete_session))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: String,
}

const ALL: Selector<'static> = Selector { room_id: None, session_id: None };

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.key_backup.create(&user.user_id, &body).await?))
}

async fn current(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    Ok(Json(state.key_backup.describe(&user.user_id, None).await?))
}

async fn describe(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(version): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.key_backup.describe(&user.user_id, Some(&version)).await?))
}

async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(version): MatrixPath<String>,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    state.key_backup.update(&user.user_id, &version, &body).await?;
    Ok(Json(json!({})))
}

async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(version): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    state.key_backup.delete(&user.user_id, &version).await?;
    Ok(Json(json!({})))
}

async fn get_all(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.key_backup.get(&user.user_id, &q.version, ALL).await?))
}

async fn put_all(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.key_backup.put(&user.user_id, &q.version, ALL, &body).await?))
}

async fn delete_all(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.key_backup.remove(&user.user_id, &q.version, ALL).await?))
}

async fn get_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let at = Selector { room_id: Some(&room_id), session_id: None };
    Ok(Json(state.key_backup.get(&user.user_id, &q.version, at).await?))
}

async fn put_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    let at = Selector { room_id: Some(&room_id), session_id: None };
    Ok(Json(state.key_backup.put(&user.user_id, &q.version, at, &body).await?))
}

async fn delete_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let at = Selector { room_id: Some(&room_id), session_id: None };
    Ok(Json(state.key_backup.remove(&user.user_id, &q.version, at).await?))
}

async fn get_session(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, session_id)): MatrixPath<(String, String)>,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let at = Selector { room_id: Some(&room_id), session_id: Some(&session_id) };
    Ok(Json(state.key_backup.get(&user.user_id, &q.version, at).await?))
}

async fn put_session(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, session_id)): MatrixPath<(String, String)>,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    let at = Selector { room_id: Some(&room_id), session_id: Some(&session_id) };
    Ok(Json(state.key_backup.put(&user.user_id, &q.version, at, &body).await?))
}

async fn delete_session(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((room_id, session_id)): MatrixPath<(String, String)>,
    MatrixQuery(q): MatrixQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let at = Selector { room_id: Some(&room_id), session_id: Some(&session_id) };
    Ok(Json(state.key_backup.remove(&user.user_id, &q.version, at).await?))
}
