//! Rooms (spec: Client-Server API § Rooms, § Room membership, § Events): creation, membership,
//! sending and reading events.

mod create;
mod events;
mod membership;

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().merge(create::routes()).merge(membership::routes()).merge(events::routes())
}
