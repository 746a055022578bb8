//! Login, logout and token refresh (spec: Client-Server API § Login, § Refreshing access tokens).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    api::extract::{AuthUserAllowExpired, ClientIp, MatrixJson},
    error::{ApiError, ApiResult},
    services::{
        accounts::{LoginIdentity, LoginRequest, LoginSession},
        rate_limit::RateClass,
    },
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_flows).post(login))
        .route("/logout", post(logout))
        .route("/logout/all", post(logout_all))
        .route("/refresh", post(refresh))
}

/// GET /login — the login types this server accepts.
async fn login_flows() -> Json<Value> {
    Json(json!({"flows": [{"type": "m.login.password"}]}))
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    login_type: String,
    identifier: Option<Value>,
    /// Deprecated top-level fields that older clients still send.
    user: Option<String>,
    medium: Option<String>,
    address: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

/// POST /login with m.login.password, identifying the user by `m.id.user`, `m.id.thirdparty`
/// (email) or the legacy `user` field.
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MatrixJson(body): MatrixJson<LoginBody>,
) -> ApiResult<Json<Value>> {
    state.rate_limits.check(RateClass::Login, &ip)?;
    if body.login_type != "m.login.password" {
        return Err(ApiError::unknown(format!("Unknown login type {}", body.login_type)));
    }
    let identity = identity(&body)?;
    let Some(password) = body.password else {
        return Err(ApiError::missing_param("'password' is required"));
    };
    let session = state
        .accounts
        .login(LoginRequest {
            identity,
            password,
            device_id: body.device_id,
            initial_device_display_name: body.initial_device_display_name,
            refresh_token: body.refresh_token,
        })
        .await?;
    Ok(Json(session_json(&state, session)))
}

fn identity(body: &LoginBody) -> ApiResult<LoginIdentity> {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    if let Some(identifier) = &body.identifier {
        return match identifier.get("type").and_then(Value::as_str) {
            Some("m.id.user") => text(identifier, "user")
                .map(LoginIdentity::User)
                .ok_or_else(|| ApiError::bad_json("'identifier.user' is required")),
            Some("m.id.thirdparty") => match (text(identifier, "medium").as_deref(), text(identifier, "address")) {
                (Some("email"), Some(address)) => Ok(LoginIdentity::Email(address)),
                (Some(_), Some(_)) => Err(ApiError::unknown("Only email addresses can be used to log in")),
                _ => Err(ApiError::bad_json("'identifier.medium' and 'identifier.address' are required")),
            },
            Some("m.id.phone") => Err(ApiError::unknown("Phone numbers cannot be used to log in")),
            _ => Err(ApiError::unknown("Unknown identifier type")),
        };
    }
    match (&body.user, body.medium.as_deref(), &body.address) {
        (Some(user), _, _) => Ok(LoginIdentity::User(user.clone())),
        (None, Some("email"), Some(address)) => Ok(LoginIdentity::Email(address.clone())),
        _ => Err(ApiError::missing_param("An 'identifier' is required")),
    }
}

/// The body /login and /register answer with.
pub(super) fn session_json(state: &AppState, session: LoginSession) -> Value {
    let mut body = Map::new();
    body.insert("user_id".into(), session.user_id.into());
    body.insert("access_token".into(), session.access_token.into());
    body.insert("device_id".into(), session.device_id.into());
    body.insert("home_server".into(), state.config.server_name.clone().into());
    if let Some(base_url) = &state.base_url {
        body.insert("well_known".into(), json!({"m.homeserver": {"base_url": base_url}}));
    }
    if let Some(refresh_token) = session.refresh_token {
        body.insert("refresh_token".into(), refresh_token.into());
    }
    if let Some(expires_in_ms) = session.expires_in_ms {
        body.insert("expires_in_ms".into(), expires_in_ms.into());
    }
    Value::Object(body)
}

/// POST /logout — this device and its token go.
async fn logout(
    State(state): State<AppState>,
    AuthUserAllowExpired(user): AuthUserAllowExpired,
) -> ApiResult<Json<Value>> {
    state.accounts.logout(&user.user_id, &user.device_id).await?;
    Ok(Json(json!({})))
}

/// POST /logout/all — every device of the user goes.
async fn logout_all(
    State(state): State<AppState>,
    AuthUserAllowExpired(user): AuthUserAllowExpired,
) -> ApiResult<Json<Value>> {
    state.accounts.logout_all(&user.user_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// POST /refresh — rotates the refresh token; the old one stops working at once.
async fn refresh(State(state): State<AppState>, MatrixJson(body): MatrixJson<RefreshBody>) -> ApiResult<Json<Value>> {
    let session = state.accounts.refresh(&body.refresh_token).await?;
    Ok(Json(json!({
        "access_token": session.access_token,
        "refresh_token": session.refresh_token,
        "expires_in_ms": session.expires_in_ms,
    })))
}
