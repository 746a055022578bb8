//! The Server-Server API's inbound routes (spec: Server-Server API): the server's signing keys
//! and the notary endpoints (`server_keys`), the signed queries other servers make
//! (`queries`), the room protocol (`rooms`, `room_reads`), the public directory and time lookups
//! (`directory`) and media (`media`), each request authenticated by `auth`.

mod auth;
mod directory;
mod media;
mod queries;
mod room_reads;
mod rooms;
mod server_keys;

use axum::Router;

use crate::state::AppState;

/// The largest federation request body: a transaction of 50 PDUs of at most 64 KiB each plus
/// 100 EDUs fits well inside it.
const MAX_FEDERATION_BODY: usize = 8 * 1024 * 1024;

/// `/_matrix/federation/*` (the `federation` resource).
pub fn routes() -> Router<AppState> {
    let routes = server_keys::federation_routes()
        .merge(queries::routes())
        .merge(rooms::routes())
        .merge(media::routes())
        .merge(room_reads::routes())
        .merge(directory::routes());
    routes.layer(axum::extract::DefaultBodyLimit::max(MAX_FEDERATION_BODY))
}

/// `/_matrix/key/*` (the `keys` resource).
pub fn key_routes() -> Router<AppState> {
    server_keys::key_routes()
}
