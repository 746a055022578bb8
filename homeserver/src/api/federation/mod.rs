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

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::Request, middleware::Next, response::IntoResponse};
use tokio::sync::Semaphore;

use crate::{
    error::{ApiError, ErrorKind},
    state::AppState,
};

/// The largest federation request body: a transaction of 50 PDUs of at most 64 KiB each plus
/// 100 EDUs fits well inside it.
const MAX_FEDERATION_BODY: usize = 8 * 1024 * 1024;

/// Federation requests served at once, from all servers together (each origin's transactions
/// are also taken in one at a time, and each origin is rate limited). A request waits a while
/// for its turn, then is told to come back later.
const MAX_CONCURRENT_REQUESTS: usize = 64;
const MAX_WAIT: Duration = Duration::from_secs(10);

/// `/_matrix/federation/*` (the `federation` resource).
pub fn routes() -> Router<AppState> {
    let routes = server_keys::federation_routes()
        .merge(queries::routes())
        .merge(rooms::routes())
        .merge(media::routes())
        .merge(room_reads::routes())
        .merge(directory::routes());
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    routes.layer(axum::extract::DefaultBodyLimit::max(MAX_FEDERATION_BODY)).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let permits = permits.clone();
            async move {
                match tokio::time::timeout(MAX_WAIT, permits.acquire_owned()).await {
                    Ok(Ok(_permit)) => next.run(request).await,
                    _ => ApiError::new(
                        ErrorKind::LimitExceeded { retry_after_ms: MAX_WAIT.as_millis() as u64 },
                        "This server is answering as many federation requests as it can",
                    )
                    .into_response(),
                }
            }
        },
    ))
}

/// `/_matrix/key/*` (the `keys` resource).
pub fn key_routes() -> Router<AppState> {
    server_keys::key_routes()
}
