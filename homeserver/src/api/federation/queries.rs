//! Queries other servers make about this server's users and aliases (spec: Server-Server API
//! § Querying for information, § End-to-End Encryption): profiles, aliases, a user's devices,
//! device and cross-signing keys, one-time key claims. Each request is signed (`Signed`).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::Signed;
use crate::{
    api::extract::{MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::{profiles::ProfileField, usernames::server_of},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/query/profile", get(profile))
        .route("/_matrix/federation/v1/query/directory", get(directory))
        .route("/_matrix/federation/v1/user/devices/{user_id}", get(user_devices))
        .route("/_matrix/federation/v1/user/keys/query", post(keys_query))
        .route("/_matrix/federation/v1/user/keys/claim", post(keys_claim))
}

/// Only this server's users may be asked about.
fn local_user(state: &AppState, user_id: &str) -> ApiResult<()> {
    if ruma::UserId::parse(user_id).is_err() {
        return Err(ApiError::invalid_param("Invalid user id"));
    }
    if server_of(user_id) != state.config.server_name {
        return Err(ApiError::invalid_param("That user is not on this server"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ProfileQuery {
    user_id: String,
    field: Option<String>,
}

/// GET /_matrix/federation/v1/query/profile?user_id=…[&field=…]
async fn profile(
    State(state): State<AppState>,
    MatrixQuery(query): MatrixQuery<ProfileQuery>,
    _signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    local_user(&state, &query.user_id)?;
    let field = match query.field.as_deref() {
        None => None,
        Some(name) => Some(ProfileField::parse(name).ok_or_else(|| ApiError::invalid_param("Unknown profile field"))?),
    };
    let profile = state.profiles.get(&query.user_id).await?;
    let mut answer = Map::new();
    let wanted = |which: ProfileField| field.is_none_or(|f| f == which);
    if wanted(ProfileField::Displayname)
        && let Some(name) = profile.displayname
    {
        answer.insert("displayname".into(), name.into());
    }
    if wanted(ProfileField::AvatarUrl)
        && let Some(url) = profile.avatar_url
    {
        answer.insert("avatar_url".into(), url.into());
    }
    Ok(Json(Value::Object(answer)))
}

#[derive(Deserialize)]
struct DirectoryQuery {
    room_alias: String,
}

/// GET /_matrix/federation/v1/query/directory?room_alias=…
async fn directory(
    State(state): State<AppState>,
    MatrixQuery(query): MatrixQuery<DirectoryQuery>,
    _signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let alias =
        ruma::RoomAliasId::parse(&query.room_alias).map_err(|_| ApiError::invalid_param("Invalid room alias"))?;
    if alias.server_name().as_str() != state.config.server_name {
        return Err(ApiError::not_found("That alias is not on this server"));
    }
    let (room_id, servers) = state.rooms.resolve_alias(&query.room_alias).await?;
    Ok(Json(json!({"room_id": room_id, "servers": servers})))
}

/// GET /_matrix/federation/v1/user/devices/{userId}
async fn user_devices(
    State(state): State<AppState>,
    MatrixPath(user_id): MatrixPath<String>,
    _signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    local_user(&state, &user_id)?;
    let keys = state.keys.query_for_server(&json!({"device_keys": {&user_id: []}})).await?;
    let devices: Vec<Value> = keys["device_keys"][&user_id]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(device_id, device_keys)| {
            let mut device = json!({"device_id": device_id, "keys": device_keys});
            if let Some(name) = device_keys["unsigned"]["device_display_name"].as_str() {
                device["device_display_name"] = name.into();
            }
            device
        })
        .collect();
    let mut answer = json!({
        "user_id": user_id,
        "stream_id": state.db.device_list_stream(&user_id).await?,
        "devices": devices,
    });
    for (field, from) in [("master_key", "master_keys"), ("self_signing_key", "self_signing_keys")] {
        if let Some(key) = keys[from].get(&user_id) {
            answer[field] = key.clone();
        }
    }
    Ok(Json(answer))
}

/// POST /_matrix/federation/v1/user/keys/query
async fn keys_query(State(state): State<AppState>, signed: Signed<Value>) -> ApiResult<Json<Value>> {
    Ok(Json(state.keys.query_for_server(&signed.body).await?))
}

/// POST /_matrix/federation/v1/user/keys/claim
async fn keys_claim(State(state): State<AppState>, signed: Signed<Value>) -> ApiResult<Json<Value>> {
    tracing::debug!(origin = %signed.origin, "one-time keys claimed over federation");
    Ok(Json(state.keys.claim_for_server(&signed.body).await?))
}
