//! GET /.well-known/matrix/client (spec: Client-Server API § Server Discovery).

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/.well-known/matrix/client", get(client))
}

/// Answered only when `public_baseurl` is configured: advertising the bind address (say
/// 0.0.0.0:8008 in a container) would send clients somewhere they cannot reach.
async fn client(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    match &state.base_url {
        Some(base_url) => Ok(Json(json!({"m.homeserver": {"base_url": base_url}}))),
        None => Err(ApiError::not_found("No public_baseurl is configured")),
    }
}
