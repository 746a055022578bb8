//! Account registration (spec: Client-Server API § Account registration and management).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::login::session_json;
use crate::{
    api::extract::{ClientIp, MatrixJson, MatrixQuery},
    error::{ApiError, ApiResult},
    services::{accounts::RegisterRequest, rate_limit::RateClass},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/register", post(register)).route("/register/available", get(available))
}

pub fn v1_routes() -> Router<AppState> {
    Router::new().route("/register/m.login.registration_token/validity", get(token_validity))
}

#[derive(Deserialize)]
struct RegisterQuery {
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RegisterBody {
    username: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    #[serde(default)]
    refresh_token: bool,
    auth: Option<Value>,
    /// Upgrading a guest account to a full one (spec: § Guest access).
    guest_access_token: Option<String>,
    /// Hearth extension: an email address to store with the account (unverified for now) and
    /// log in with. Other servers ignore unknown fields, so clients may always send it.
    email: Option<String>,
}

/// POST /register — user-interactive: m.login.dummy when registration is open,
/// m.login.registration_token when it needs a token.
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MatrixQuery(query): MatrixQuery<RegisterQuery>,
    MatrixJson(body): MatrixJson<RegisterBody>,
) -> ApiResult<Json<Value>> {
    match query.kind.as_deref() {
        None | Some("user") => {}
        Some("guest") => {
            let session = state.accounts.register_guest(body.initial_device_display_name.as_deref(), &ip).await?;
            return Ok(Json(session_json(&state, session)));
        }
        Some(_) => return Err(ApiError::invalid_param("kind must be 'user' or 'guest'")),
    }
    let (user_id, session) = state
        .accounts
        .register(RegisterRequest {
            username: body.username,
            password: body.password,
            email: body.email,
            device_id: body.device_id,
            initial_device_display_name: body.initial_device_display_name,
            inhibit_login: body.inhibit_login,
            refresh_token: body.refresh_token,
            auth: body.auth,
            guest_access_token: body.guest_access_token,
            rate_limit_key: ip,
        })
        .await?;
    Ok(Json(match session {
        Some(session) => session_json(&state, session),
        None => json!({"user_id": user_id, "home_server": state.config.server_name}),
    }))
}

#[derive(Deserialize)]
struct AvailableQuery {
    username: Option<String>,
}

/// GET /register/available?username=…
async fn available(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MatrixQuery(query): MatrixQuery<AvailableQuery>,
) -> ApiResult<Json<Value>> {
    state.rate_limits.check(RateClass::Client, &format!("ip:{ip}"))?;
    let Some(username) = query.username else {
        return Err(ApiError::missing_param("'username' is required"));
    };
    state.accounts.check_username_available(&username).await?;
    Ok(Json(json!({"available": true})))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// GET /_matrix/client/v1/register/m.login.registration_token/validity?token=…
async fn token_validity(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MatrixQuery(query): MatrixQuery<TokenQuery>,
) -> ApiResult<Json<Value>> {
    state.rate_limits.check(RateClass::Register, &ip)?;
    let Some(token) = query.token else {
        return Err(ApiError::missing_param("'token' is required"));
    };
    Ok(Json(json!({"valid": state.accounts.registration_token_is_valid(&token)?})))
}
