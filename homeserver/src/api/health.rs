//! GET /health: liveness for load balancers and `hearthctl health`; checks the database answers.

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use crate::{error::ApiResult, state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.db.ping().await?;
    Ok(Json(json!({
        "status": "ok",
        "server_name": state.config.server_name,
        "version": env!("CARGO_PKG_VERSION"),
        "database": match state.db.backend() {
            crate::storage::Backend::Sqlite => "sqlite",
            crate::storage::Backend::Postgres => "postgres",
        },
    })))
}
