//! The Client-Server API, one module per spec section. `routes()` is nested under both
//! `/_matrix/client/v3` and `/_matrix/client/r0`; `versionless_routes()` holds the paths that
//! carry their own version prefix.

mod account;
mod account_data;
mod capabilities;
mod dehydrated;
mod devices;
mod directory;
mod key_backup;
mod keys;
mod login;
mod profile;
mod push;
mod receipts_typing_presence;
mod register;
mod relations;
mod rooms;
mod search;
mod spaces;
mod sync;
mod versions;

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(login::routes())
        .merge(register::routes())
        .merge(account::routes())
        .merge(devices::routes())
        .merge(profile::routes())
        .merge(capabilities::routes())
        .merge(rooms::routes())
        .merge(sync::routes())
        .merge(account_data::routes())
        .merge(receipts_typing_presence::routes())
        .merge(push::routes())
        .merge(directory::routes())
        .merge(search::routes())
        .merge(keys::routes())
        .merge(key_backup::routes())
}

pub fn versionless_routes() -> Router<AppState> {
    Router::new()
        .merge(versions::routes())
        .nest("/_matrix/client/v1", register::v1_routes().merge(relations::v1_routes()).merge(spaces::v1_routes()))
        .nest("/_matrix/client/unstable/org.matrix.msc3814.v1", dehydrated::routes())
}
