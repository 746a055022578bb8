//! GET /_matrix/key/v2/server (spec: Server-Server API § Publishing Keys): the server's verify
//! keys, signed with them, valid for `federation.key_validity_ms`; and
//! GET /_matrix/federation/v1/version.

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
    storage::now_ms,
};

pub fn key_routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/key/v2/server", get(server_keys))
        // Deprecated form with a key id; the whole document is answered, as Synapse does.
        .route("/_matrix/key/v2/server/{key_id}", get(server_keys))
}

pub fn federation_routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/version", get(version))
        .route("/.well-known/matrix/server", get(well_known_server))
}

/// GET /.well-known/matrix/server (spec: Server-Server API § Resolving server names): where
/// other servers reach this one, when `federation.well_known_server` says so (e.g.
/// `matrix.example.org:443` when federation goes through the client port's proxy).
async fn well_known_server(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    match &state.config.federation.well_known_server {
        Some(server) => Ok(Json(json!({"m.server": server}))),
        None => Err(ApiError::not_found("No federation.well_known_server is configured")),
    }
}

/// The signed key document.
async fn server_keys(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let key = &state.signing_key;
    let validity = i64::try_from(state.config.federation.key_validity_ms).unwrap_or(i64::MAX / 4);
    let document = json!({
        "server_name": state.config.server_name,
        "verify_keys": {key.key_id(): {"key": key.public_key_base64()}},
        "old_verify_keys": {},
        "valid_until_ts": now_ms().saturating_add(validity),
    });
    let mut object = hearth_federation::to_canonical_object(document).map_err(ApiError::internal)?;
    key.sign_json(&state.config.server_name, &mut object).map_err(ApiError::internal)?;
    Ok(Json(serde_json::to_value(object).map_err(ApiError::internal)?))
}

async fn version() -> Json<Value> {
    Json(json!({"server": {"name": "Hearth", "version": env!("CARGO_PKG_VERSION")}}))
}
