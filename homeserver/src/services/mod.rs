//! The behaviour of the server, behind the HTTP layer. Each service gets its dependencies in
//! `new(...)`; handlers reach them through `AppState`. Nothing here knows about axum.

pub mod account_data;
pub mod accounts;
pub mod devices;
pub mod e2ee;
pub mod edus;
pub mod federation;
pub mod login_backoff;
pub mod media;
pub mod outbound_guard;
pub mod outbound_tls;
pub mod passwords;
pub mod profiles;
pub mod push;
pub mod rate_limit;
pub mod rooms;
pub mod sync;
pub mod tokens;
pub mod uia;
pub mod usernames;
