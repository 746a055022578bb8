//! Device management (spec: Client-Server API § Device management).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath},
    error::ApiResult,
    state::AppState,
    storage::devices::DeviceRecord,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/devices", get(list))
        .route("/devices/{device_id}", get(get_one).put(rename).delete(delete_one))
        .route("/delete_devices", post(delete_many))
}

/// All four keys always present, null when unknown, as Synapse answers (matrix-nio's schema
/// requires them).
fn device_json(device: DeviceRecord) -> Value {
    json!({
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
    })
}

/// GET /devices
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let devices: Vec<Value> = state.devices.list(&user.user_id).await?.into_iter().map(device_json).collect();
    Ok(Json(json!({"devices": devices})))
}

/// GET /devices/{deviceId}
async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(device_id): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(device_json(state.devices.get(&user.user_id, &device_id).await?)))
}

#[derive(Deserialize)]
struct RenameBody {
    display_name: Option<String>,
}

/// PUT /devices/{deviceId} — the spec's response is an empty object.
async fn rename(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(device_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<RenameBody>,
) -> ApiResult<Json<Value>> {
    // Spec: without a display_name the name stays as it is.
    match body.display_name.as_deref() {
        Some(name) => state.devices.rename(&user.user_id, &device_id, Some(name)).await?,
        None => {
            state.devices.get(&user.user_id, &device_id).await?;
        }
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeleteBody {
    auth: Option<Value>,
}

/// DELETE /devices/{deviceId} — UIA m.login.password.
async fn delete_one(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(device_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<DeleteBody>,
) -> ApiResult<Json<Value>> {
    state.devices.delete(&user.user_id, vec![device_id], body.auth.as_ref()).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeleteManyBody {
    devices: Vec<String>,
    auth: Option<Value>,
}

/// POST /delete_devices — UIA m.login.password.
async fn delete_many(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<DeleteManyBody>,
) -> ApiResult<Json<Value>> {
    state.devices.delete(&user.user_id, body.devices, body.auth.as_ref()).await?;
    Ok(Json(json!({})))
}
