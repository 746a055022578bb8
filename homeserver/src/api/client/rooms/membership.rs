//! Membership endpoints: join, invite, leave, kick, ban, unban, forget and member lists.

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
        .route("/join/{room_id_or_alias}", post(join_by_id_or_alias))
        .route("/knock/{room_id_or_alias}", post(knock))
        .route("/rooms/{room_id}/join", post(join_room))
        .route("/rooms/{room_id}/invite", post(invite))
        .route("/rooms/{room_id}/leave", post(leave))
        .route("/rooms/{room_id}/kick", post(kick))
        .route("/rooms/{room_id}/ban", post(ban))
        .route("/rooms/{room_id}/unban", post(unban))
        .route("/rooms/{room_id}/forget", post(forget))
        .route("/joined_rooms", get(joined_rooms))
        .route("/rooms/{room_id}/joined_members", get(joined_members))
        .route("/rooms/{room_id}/members", get(members))
}

#[derive(Deserialize, Default)]
struct ReasonBody {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

/// The servers to join through: every `via` and (deprecated) `server_name` of the query string.
fn via_servers(uri: &axum::http::Uri) -> Vec<String> {
    let mut servers = crate::api::extract::query_values(uri, "via");
    servers.extend(crate::api::extract::query_values(uri, "server_name"));
    servers.retain(|server| ruma::ServerName::parse(server.as_str()).is_ok());
    servers
}

/// POST /join/{roomIdOrAlias}?via=…
async fn join_by_id_or_alias(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    uri: axum::http::Uri,
    MatrixJson(_body): MatrixJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    let room_id = state.rooms.join(&user.user_id, &room, user.is_guest, &via_servers(&uri)).await?;
    Ok(Json(json!({"room_id": room_id})))
}

/// POST /knock/{roomIdOrAlias}?via=…
async fn knock(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    uri: axum::http::Uri,
    MatrixJson(body): MatrixJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    let room_id = state.rooms.knock(&user.user_id, &room, &via_servers(&uri), body.reason.as_deref()).await?;
    Ok(Json(json!({"room_id": room_id})))
}

/// POST /rooms/{roomId}/join
async fn join_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixJson(_body): MatrixJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    let room_id = state.rooms.join(&user.user_id, &room, user.is_guest, &[]).await?;
    Ok(Json(json!({"room_id": room_id})))
}

/// POST /rooms/{roomId}/invite
async fn invite(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixJson(body): MatrixJson<TargetBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.rules(&room).await?;
    state.rooms.invite(&user.user_id, &room, &body.user_id, body.reason.as_deref(), false).await?;
    Ok(Json(json!({})))
}

/// POST /rooms/{roomId}/leave
async fn leave(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixJson(body): MatrixJson<ReasonBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.set_membership(&user.user_id, &room, &user.user_id, "leave", body.reason.as_deref()).await?;
    Ok(Json(json!({})))
}

/// POST /rooms/{roomId}/kick
async fn kick(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixJson(body): MatrixJson<TargetBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.set_membership(&user.user_id, &room, &body.user_id, "leave", body.reason.as_deref()).await?;
    Ok(Json(json!({})))
}

/// POST /rooms/{roomId}/ban
async fn ban(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixJson(body): MatrixJson<TargetBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.set_membership(&user.user_id, &room, &body.user_id, "ban", body.reason.as_deref()).await?;
    Ok(Json(json!({})))
}

/// POST /rooms/{roomId}/unban
async fn unban(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixJson(body): MatrixJson<TargetBody>,
) -> ApiResult<Json<Value>> {
    state.rooms.unban(&user.user_id, &room, &body.user_id, body.reason.as_deref()).await?;
    Ok(Json(json!({})))
}

/// POST /rooms/{roomId}/forget
async fn forget(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    state.rooms.forget(&user.user_id, &room).await?;
    Ok(Json(json!({})))
}

/// GET /joined_rooms
async fn joined_rooms(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let rooms: Vec<String> = state
        .rooms
        .memberships(&user.user_id)
        .await?
        .iter()
        .filter(|m| m.membership == "join")
        .map(|m| m.room_id.clone())
        .collect();
    Ok(Json(json!({"joined_rooms": rooms})))
}

/// GET /rooms/{roomId}/joined_members
async fn joined_members(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    let joined = state.rooms.joined_members(&user.user_id, &room).await?;
    Ok(Json(json!({"joined": joined})))
}

#[derive(Deserialize)]
struct MembersQuery {
    at: Option<String>,
    membership: Option<String>,
    not_membership: Option<String>,
}

/// GET /rooms/{roomId}/members
async fn members(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<MembersQuery>,
) -> ApiResult<Json<Value>> {
    let chunk = state
        .rooms
        .members(
            &user.user_id,
            &room,
            query.at.as_deref(),
            query.membership.as_deref(),
            query.not_membership.as_deref(),
        )
        .await?;
    Ok(Json(json!({"chunk": chunk})))
}
