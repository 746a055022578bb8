//! Room aliases, the public room directory and the user directory (spec: Client-Server API
//! § Room aliases, § Room directory, § User directory).

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
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/directory/room/{alias}", get(resolve_alias).put(create_alias).delete(delete_alias))
        .route("/rooms/{room_id}/aliases", get(room_aliases))
        .route("/directory/list/room/{room_id}", get(get_visibility).put(set_visibility))
        .route("/publicRooms", get(public_rooms_get).post(public_rooms_post))
        .route("/user_directory/search", post(search_users))
}

#[derive(Deserialize)]
struct AliasBody {
    room_id: String,
}

/// PUT /directory/room/{roomAlias}
async fn create_alias(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(alias): MatrixPath<String>,
    MatrixJson(body): MatrixJson<AliasBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.create_alias(&user.user_id, &alias, &body.room_id).await?;
    Ok(Json(json!({})))
}

/// GET /directory/room/{roomAlias} — no authentication.
async fn resolve_alias(State(state): State<AppState>, MatrixPath(alias): MatrixPath<String>) -> ApiResult<Json<Value>> {
    let (room_id, servers) = state.rooms.resolve_alias(&alias).await?;
    Ok(Json(json!({"room_id": room_id, "servers": servers})))
}

/// DELETE /directory/room/{roomAlias}
async fn delete_alias(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(alias): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    state.rooms.delete_alias(&user.user_id, &alias).await?;
    Ok(Json(json!({})))
}

/// GET /rooms/{roomId}/aliases
async fn room_aliases(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"aliases": state.rooms.room_aliases(&user.user_id, &room_id).await?})))
}

/// GET /directory/list/room/{roomId} — no authentication.
async fn get_visibility(
    State(state): State<AppState>,
    MatrixPath(room_id): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"visibility": state.rooms.directory_visibility(&room_id).await?})))
}

#[derive(Deserialize)]
struct VisibilityBody {
    visibility: String,
}

/// PUT /directory/list/room/{roomId}
async fn set_visibility(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixJson(body): MatrixJson<VisibilityBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.set_directory_visibility(&user.user_id, &room_id, &body.visibility).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct PublicRoomsQuery {
    limit: Option<String>,
    since: Option<String>,
    server: Option<String>,
}

/// The server whose directory is asked for: another one's goes over federation.
fn remote_server<'a>(state: &AppState, server: Option<&'a str>) -> Option<&'a str> {
    server.filter(|server| *server != state.config.server_name)
}

/// GET /publicRooms — no authentication.
async fn public_rooms_get(
    State(state): State<AppState>,
    MatrixQuery(query): MatrixQuery<PublicRoomsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = crate::api::extract::numeric_param(query.limit.as_deref(), "limit")?;
    if let Some(server) = remote_server(&state, query.server.as_deref()) {
        return Ok(Json(state.rooms.remote_public_rooms(server, None, query.since.as_deref(), limit).await?));
    }
    Ok(Json(state.rooms.public_rooms(None, query.since.as_deref(), limit).await?.to_json()))
}

#[derive(Deserialize)]
struct PublicRoomsBody {
    limit: Option<usize>,
    since: Option<String>,
    filter: Option<PublicRoomsFilter>,
}

#[derive(Deserialize)]
struct PublicRoomsFilter {
    generic_search_term: Option<String>,
}

/// POST /publicRooms
async fn public_rooms_post(
    State(state): State<AppState>,
    _user: AuthUser,
    MatrixQuery(query): MatrixQuery<PublicRoomsQuery>,
    MatrixJson(body): MatrixJson<PublicRoomsBody>,
) -> ApiResult<Json<Value>> {
    let search = body.filter.and_then(|f| f.generic_search_term);
    if let Some(server) = remote_server(&state, query.server.as_deref()) {
        let page = state.rooms.remote_public_rooms(server, search.as_deref(), body.since.as_deref(), body.limit);
        return Ok(Json(page.await?));
    }
    let page = state.rooms.public_rooms(search.as_deref(), body.since.as_deref(), body.limit).await?;
    Ok(Json(page.to_json()))
}

#[derive(Deserialize)]
struct UserSearchBody {
    search_term: String,
    limit: Option<i64>,
}

/// POST /user_directory/search
async fn search_users(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<UserSearchBody>,
) -> ApiResult<Json<Value>> {
    let (results, limited) =
        state.rooms.search_users(&user.user_id, &body.search_term, body.limit.unwrap_or(10)).await?;
    Ok(Json(json!({"results": results, "limited": limited})))
}
