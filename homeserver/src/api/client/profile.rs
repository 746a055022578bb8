//! Profiles (spec: Client-Server API § Profiles). GET needs no authentication; changing a field
//! needs the owner's access token.

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Map, Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath},
    error::{ApiError, ApiResult},
    services::profiles::ProfileField,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/profile/{user_id}", get(get_profile))
        .route("/profile/{user_id}/{key}", get(get_field).put(set_field).delete(delete_field))
}

/// GET /profile/{userId}
async fn get_profile(State(state): State<AppState>, MatrixPath(user_id): MatrixPath<String>) -> ApiResult<Json<Value>> {
    let profile = state.profiles.get(&user_id).await?;
    let mut body = Map::new();
    if let Some(name) = profile.displayname {
        body.insert("displayname".into(), name.into());
    }
    if let Some(url) = profile.avatar_url {
        body.insert("avatar_url".into(), url.into());
    }
    Ok(Json(Value::Object(body)))
}

/// The field named in a GET path; other keys are simply not set on any Hearth profile.
fn readable_field(key: &str) -> ApiResult<ProfileField> {
    ProfileField::parse(key).ok_or_else(|| ApiError::not_found(format!("{key} is not set")))
}

/// The field named in a PUT/DELETE path (spec v1.16: a malformed key is M_INVALID_PARAM, a
/// well-formed key the server does not store is M_FORBIDDEN).
fn writable_field(key: &str) -> ApiResult<ProfileField> {
    if let Some(field) = ProfileField::parse(key) {
        return Ok(field);
    }
    let well_formed = !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic());
    if well_formed {
        Err(ApiError::forbidden(format!("Profile field {key} cannot be set on this server")))
    } else {
        Err(ApiError::invalid_param("Invalid profile field name"))
    }
}

/// GET /profile/{userId}/{keyName} — M_NOT_FOUND when the field is unset.
async fn get_field(
    State(state): State<AppState>,
    MatrixPath((user_id, key)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let field = readable_field(&key)?;
    let profile = state.profiles.get(&user_id).await?;
    let value = match field {
        ProfileField::Displayname => profile.displayname,
        ProfileField::AvatarUrl => profile.avatar_url,
    };
    match value {
        Some(value) => Ok(Json(json!({ field.key(): value }))),
        None => Err(ApiError::not_found(format!("{key} is not set"))),
    }
}

/// PUT /profile/{userId}/{keyName} with `{keyName: value}`; a null value clears the field.
async fn set_field(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, key)): MatrixPath<(String, String)>,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let field = writable_field(&key)?;
    let value = match body.get(field.key()) {
        Some(Value::String(value)) => Some(value.as_str()),
        Some(Value::Null) => None,
        Some(_) => return Err(ApiError::bad_json(format!("'{key}' must be a string"))),
        None => return Err(ApiError::missing_param(format!("'{key}' is required"))),
    };
    state.profiles.set(&user.user_id, &user_id, field, value).await?;
    Ok(Json(json!({})))
}

/// DELETE /profile/{userId}/{keyName} (spec v1.16).
async fn delete_field(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, key)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    state.profiles.set(&user.user_id, &user_id, writable_field(&key)?, None).await?;
    Ok(Json(json!({})))
}
