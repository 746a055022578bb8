//! Account data and room tags (spec: Client-Server API § Client Config, § Room Tagging).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, put},
};
use serde_json::{Map, Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/user/{user_id}/account_data/{data_type}", get(get_global).put(put_global))
        .route("/user/{user_id}/rooms/{room_id}/account_data/{data_type}", get(get_room).put(put_room))
        .route("/user/{user_id}/rooms/{room_id}/tags", get(get_tags))
        .route("/user/{user_id}/rooms/{room_id}/tags/{tag}", put(put_tag).delete(delete_tag))
}

fn own(user: &AuthUser, user_id: &str) -> ApiResult<()> {
    if user.user_id == user_id { Ok(()) } else { Err(ApiError::forbidden("You may only access your own account data")) }
}

/// GET /user/{userId}/account_data/{type}
async fn get_global(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, data_type)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    Ok(Json(state.account_data.get(&user_id, None, &data_type).await?))
}

/// PUT /user/{userId}/account_data/{type}
async fn put_global(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, data_type)): MatrixPath<(String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    state.account_data.set(&user_id, None, &data_type, content).await?;
    Ok(Json(json!({})))
}

/// GET /user/{userId}/rooms/{roomId}/account_data/{type}
async fn get_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, room_id, data_type)): MatrixPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    Ok(Json(state.account_data.get(&user_id, Some(&room_id), &data_type).await?))
}

/// PUT /user/{userId}/rooms/{roomId}/account_data/{type}
async fn put_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, room_id, data_type)): MatrixPath<(String, String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    state.account_data.set(&user_id, Some(&room_id), &data_type, content).await?;
    Ok(Json(json!({})))
}

/// GET /user/{userId}/rooms/{roomId}/tags
async fn get_tags(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, room_id)): MatrixPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    Ok(Json(state.account_data.tags(&user_id, &room_id).await?))
}

/// PUT /user/{userId}/rooms/{roomId}/tags/{tag}
async fn put_tag(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, room_id, tag)): MatrixPath<(String, String, String)>,
    MatrixJson(info): MatrixJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    state.account_data.set_tag(&user_id, &room_id, &tag, info).await?;
    Ok(Json(json!({})))
}

/// DELETE /user/{userId}/rooms/{roomId}/tags/{tag}
async fn delete_tag(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((user_id, room_id, tag)): MatrixPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    own(&user, &user_id)?;
    state.account_data.delete_tag(&user_id, &room_id, &tag).await?;
    Ok(Json(json!({})))
}
