//! Account management: whoami, password change, deactivation, 3PIDs (spec: Client-Server API
//! § Account registration and management, § Adding Account Administrative Contact Information).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson},
    error::ApiResult,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/whoami", get(whoami))
        .route("/account/password", post(change_password))
        .route("/account/deactivate", post(deactivate))
        .route("/account/3pid", get(threepids))
}

/// GET /account/whoami
async fn whoami(user: AuthUser) -> Json<Value> {
    Json(json!({"user_id": user.user_id, "device_id": user.device_id, "is_guest": false}))
}

#[derive(Deserialize)]
struct PasswordBody {
    new_password: String,
    #[serde(default = "default_true")]
    logout_devices: bool,
    auth: Option<Value>,
}

fn default_true() -> bool {
    true
}

/// POST /account/password — UIA m.login.password.
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<PasswordBody>,
) -> ApiResult<Json<Value>> {
    state
        .accounts
        .change_password(&user.user_id, &user.device_id, body.new_password, body.logout_devices, body.auth.as_ref())
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeactivateBody {
    #[serde(default)]
    erase: bool,
    auth: Option<Value>,
}

/// POST /account/deactivate — UIA m.login.password. No identity server is ever bound, so there
/// is nothing to unbind, which the spec says to report as `success`.
async fn deactivate(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<DeactivateBody>,
) -> ApiResult<Json<Value>> {
    state.accounts.deactivate(&user.user_id, body.erase, body.auth.as_ref()).await?;
    Ok(Json(json!({"id_server_unbind_result": "success"})))
}

/// GET /account/3pid — the user's email addresses. One stored at registration and not yet
/// verified has `validated_at: 0`.
async fn threepids(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let threepids: Vec<Value> = state
        .db
        .threepids(&user.user_id)
        .await?
        .into_iter()
        .map(|t| json!({"medium": t.medium, "address": t.address, "validated_at": t.validated_ts.unwrap_or(0), "added_at": t.added_ts}))
        .collect();
    Ok(Json(json!({"threepids": threepids})))
}
