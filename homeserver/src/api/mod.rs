//! HTTP only: routes, extractors and the mapping of service results to responses. Handlers are
//! thin: extract, call one service function, map the result. `client/` mirrors the spec's
//! Client-Server API modules.

mod admin;
pub mod client;
pub mod extract;
mod fallback;
mod federation;
mod guest_access;
mod health;
mod media;
mod well_known;

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, Method, Request, header},
    response::IntoResponse,
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{Any, CorsLayer},
    trace::TraceLayer,
};

use crate::{config::Resource, error::ApiError, state::AppState};

/// The router of a listener serving every resource.
pub fn router(state: AppState) -> Router {
    router_for(state, &Resource::ALL)
}

/// The router of a listener serving `resources` (and `/health`).
pub fn router_for(state: AppState, resources: &[Resource]) -> Router {
    let mut router = Router::new().merge(health::routes());
    for resource in resources {
        router = match resource {
            Resource::Client => {
                let client = client::routes();
                router
                    .nest("/_matrix/client/v3", client.clone())
                    // Clients that predate v3 still use r0 paths; Synapse serves both, so do we.
                    .nest("/_matrix/client/r0", client)
                    .merge(client::versionless_routes())
                    .merge(well_known::routes())
            }
            Resource::Media => router.merge(media::routes()),
            Resource::Federation => router.merge(federation::routes()),
            Resource::Keys => router.merge(federation::key_routes()),
            Resource::Admin => router.merge(admin::routes()),
        };
    }
    router
        .fallback(fallback::unrecognized)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        // One layer made of all four (outermost first): each `Router::layer` wraps every route
        // in a boxed service of its own, so four calls cost four boxed futures per request, about
        // 1.7 KiB more for each /sync long-poll waiting.
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    // The path only: query strings can carry access tokens and must never be logged.
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                }))
                .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
                .layer(cors())
                .layer(DefaultBodyLimit::max(state.config.limits.max_request_body_bytes)),
        )
        .with_state(state)
}

/// CORS as the spec requires for browser clients (Client-Server API § Web Browser Clients).
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([HeaderName::from_static("x-requested-with"), header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(Duration::from_secs(24 * 60 * 60))
}
