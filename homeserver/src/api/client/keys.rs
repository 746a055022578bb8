//! End-to-end encryption keys (spec: Client-Server API § End-to-End Encryption, § Cross-signing)
//! and send-to-device messages. Thin: the services do the work.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath, MatrixQuery},
    error::ApiResult,
    services::sync::token::SyncToken,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys/upload", post(upload))
        .route("/keys/query", post(query))
        .route("/keys/claim", post(claim))
        .route("/keys/changes", get(changes))
        .route("/keys/device_signing/upload", post(upload_cross_signing))
        .route("/keys/signatures/upload", post(upload_signatures))
        .route("/sendToDevice/{event_type}/{txn_id}", put(send_to_device))
}

/// POST /keys/upload
async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.keys.upload(&user.user_id, &user.device_id, &body).await?))
}

/// POST /keys/query
async fn query(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.keys.query(&user.user_id, &body, remote_timeout(&body)).await?))
}

/// POST /keys/claim
async fn claim(
    State(state): State<AppState>,
    _user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.keys.claim(&body, remote_timeout(&body)).await?))
}

/// How long other servers are waited for: the body's `timeout` (ms), 10 s by default, at most a
/// minute.
fn remote_timeout(body: &Value) -> std::time::Duration {
    let ms = body.get("timeout").and_then(Value::as_u64).unwrap_or(10_000).min(60_000);
    std::time::Duration::from_millis(ms)
}

#[derive(Deserialize)]
struct ChangesQuery {
    from: String,
    to: String,
}

/// GET /keys/changes?from=&to=
async fn changes(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(query): MatrixQuery<ChangesQuery>,
) -> ApiResult<Json<Value>> {
    let (from, to) = (SyncToken::parse(&query.from)?, SyncToken::parse(&query.to)?);
    let delta = state.device_lists.delta(&user.user_id, from.stream, to.stream).await?;
    Ok(Json(json!({"changed": delta.changed, "left": delta.left})))
}

/// POST /keys/device_signing/upload (user-interactive auth once a master key exists)
async fn upload_cross_signing(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    state.keys.upload_cross_signing(&user.user_id, &body, body.get("auth")).await?;
    Ok(Json(json!({})))
}

/// POST /keys/signatures/upload
async fn upload_signatures(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.keys.upload_signatures(&user.user_id, &body).await?))
}

/// PUT /sendToDevice/{eventType}/{txnId}
async fn send_to_device(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((event_type, txn_id)): MatrixPath<(String, String)>,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    state.to_device.send(&user.user_id, &user.device_id, &event_type, &txn_id, &body).await?;
    Ok(Json(json!({})))
}
