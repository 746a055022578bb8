//! Server keys (spec: Server-Server API § Retrieving server keys): GET /_matrix/key/v2/server
//! (this server's keys, signed with them, valid for `federation.key_validity_ms`), the notary
//! endpoints /_matrix/key/v2/query (other servers' keys, countersigned by this server), and
//! GET /_matrix/federation/v1/version.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use ruma::ServerName;
use serde_json::{Map, Value, json};

use crate::{
    api::extract::{MatrixJson, MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Servers one notary query may ask about.
const MAX_NOTARY_SERVERS: usize = 100;

pub fn key_routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/key/v2/server", get(server_keys))
        // Deprecated form with a key id; the whole document is answered, as Synapse does.
        .route("/_matrix/key/v2/server/{key_id}", get(server_keys))
        .route("/_matrix/key/v2/query", post(query_keys))
        .route("/_matrix/key/v2/query/{server_name}", get(query_server_keys))
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
    let document = state.remote_keys.own_document().map_err(ApiError::internal)?;
    Ok(Json(serde_json::to_value(document).map_err(ApiError::internal)?))
}

/// POST /_matrix/key/v2/query: `{"server_keys": {server: {key_id: {"minimum_valid_until_ts"}}}}`.
async fn query_keys(State(state): State<AppState>, MatrixJson(body): MatrixJson<Value>) -> ApiResult<Json<Value>> {
    let Some(wanted) = body.get("server_keys").and_then(Value::as_object) else {
        return Err(ApiError::missing_param("server_keys is required"));
    };
    if wanted.len() > MAX_NOTARY_SERVERS {
        return Err(ApiError::invalid_param("Too many servers in one query"));
    }
    let mut documents = Vec::new();
    for (server, keys) in wanted {
        let Ok(server) = ServerName::parse(server.as_str()) else {
            continue;
        };
        let minimum = keys
            .as_object()
            .into_iter()
            .flat_map(Map::values)
            .filter_map(|criteria| criteria.get("minimum_valid_until_ts").and_then(Value::as_i64))
            .max()
            .unwrap_or(0);
        documents.extend(state.remote_keys.notarised(&server, minimum).await);
    }
    Ok(Json(json!({"server_keys": documents})))
}

#[derive(serde::Deserialize)]
struct MinimumValidity {
    minimum_valid_until_ts: Option<i64>,
}

/// GET /_matrix/key/v2/query/{serverName}
async fn query_server_keys(
    State(state): State<AppState>,
    MatrixPath(server): MatrixPath<String>,
    MatrixQuery(query): MatrixQuery<MinimumValidity>,
) -> ApiResult<Json<Value>> {
    let server = ServerName::parse(server.as_str()).map_err(|_| ApiError::invalid_param("Invalid server name"))?;
    let documents = state.remote_keys.notarised(&server, query.minimum_valid_until_ts.unwrap_or(0)).await;
    Ok(Json(json!({"server_keys": documents})))
}

async fn version() -> Json<Value> {
    Json(json!({"server": {"name": "Hearth", "version": env!("CARGO_PKG_VERSION")}}))
}
