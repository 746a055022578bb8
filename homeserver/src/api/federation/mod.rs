//! The Server-Server API's inbound routes (spec: Server-Server API). First slice: the server's
//! own signing keys (`/_matrix/key/v2/server`) and `/_matrix/federation/v1/version`, which peers
//! and federation testers ask for before anything else.

mod server_keys;

use axum::Router;

use crate::state::AppState;

/// `/_matrix/federation/*` (the `federation` resource).
pub fn routes() -> Router<AppState> {
    server_keys::federation_routes()
}

/// `/_matrix/key/*` (the `keys` resource).
pub fn key_routes() -> Router<AppState> {
    server_keys::key_routes()
}
