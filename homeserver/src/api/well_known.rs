//! GET /.well-known/matrix/client (spec: Client-Server API § Server Discovery).

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/.well-known/matrix/client", get(client))
}

async fn client(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"m.homeserver": {"base_url": state.base_url}}))
}
