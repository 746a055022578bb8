//! The Server-Server API's inbound routes (spec: Server-Server API). First slice: the server's
//! own signing keys (`/_matrix/key/v2/server`) and `/_matrix/federation/v1/version`, which peers
//! and federation testers ask for before anything else.

mod server_keys;

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    server_keys::routes()
}
