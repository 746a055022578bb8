//! Spaces (spec: Client-Server API § Spaces): GET /v1/rooms/{roomId}/hierarchy.

use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    api::extract::{AuthUser, MatrixPath, MatrixQuery, numeric_param},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn v1_routes() -> Router<AppState> {
    Router::new().route("/rooms/{room_id}/hierarchy", get(hierarchy))
}

#[derive(Deserialize)]
struct HierarchyQuery {
    from: Option<String>,
    limit: Option<String>,
    max_depth: Option<String>,
    suggested_only: Option<String>,
}

/// `true`/`false` query flags (absent: false).
fn flag(value: Option<&str>, name: &str) -> ApiResult<bool> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid_param(format!("{name} must be true or false"))),
    }
}

/// GET /_matrix/client/v1/rooms/{roomId}/hierarchy
async fn hierarchy(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(room_id): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<HierarchyQuery>,
) -> ApiResult<Json<Value>> {
    let limit = numeric_param(query.limit.as_deref(), "limit")?;
    let max_depth = numeric_param(query.max_depth.as_deref(), "max_depth")?;
    let suggested_only = flag(query.suggested_only.as_deref(), "suggested_only")?;
    let answer =
        state.rooms.hierarchy(&user.user_id, &room_id, suggested_only, max_depth, limit, query.from.as_deref()).await?;
    Ok(Json(answer))
}
