//! GET /_matrix/client/versions (spec: Client-Server API § Supported versions).

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

use crate::state::AppState;

/// Spec versions whose features Hearth serves. v1.11 makes clients fetch media through the
/// authenticated endpoints, so it is added with the media issue, not before.
pub const SUPPORTED_VERSIONS: &[&str] =
    &["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10"];

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/client/versions", get(versions))
}

/// GET /_matrix/client/versions — no authentication.
async fn versions() -> Json<Value> {
    Json(json!({"versions": SUPPORTED_VERSIONS, "unstable_features": {"org.matrix.msc3814": true}}))
}
