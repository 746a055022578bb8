//! POST /createRoom

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson},
    error::ApiResult,
    services::rooms::create::CreateRoomRequest,
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/createRoom", post(create_room))
}

/// POST /_matrix/client/v3/createRoom
async fn create_room(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<CreateRoomRequest>,
) -> ApiResult<Json<Value>> {
    let room_id = state.rooms.create_room(&user.user_id, body).await?;
    Ok(Json(json!({"room_id": room_id})))
}
