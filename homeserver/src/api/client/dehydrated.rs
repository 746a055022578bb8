//! Dehydrated devices (MSC3814), under `/_matrix/client/unstable/org.matrix.msc3814.v1`.

use axum::{
    Json, Router,
    extract::State,
    routing::{post, put},
};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath, MatrixQuery},
    error::ApiResult,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dehydrated_device", put(put_device).get(get_device).delete(delete_device))
        .route("/dehydrated_device/{device_id}/events", post(events).get(events_from))
}

async fn put_device(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.dehydrated.put(&state.keys, &user.user_id, &body).await?))
}

async fn get_device(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    Ok(Json(state.dehydrated.get(&user.user_id).await?))
}

async fn delete_device(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    Ok(Json(state.dehydrated.delete(&user.user_id).await?))
}

async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(device_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<Value>,
) -> ApiResult<Json<Value>> {
    let next_batch = body.get("next_batch").and_then(Value::as_str);
    Ok(Json(state.dehydrated.events(&user.user_id, &device_id, next_batch, false).await?))
}

#[derive(Deserialize)]
struct FromQuery {
    from: Option<String>,
}

/// GET /dehydrated_device/{deviceId}/events?from= (the form matrix-js-sdk uses)
async fn events_from(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(device_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<FromQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.dehydrated.events(&user.user_id, &device_id, query.from.as_deref(), true).await?))
}
