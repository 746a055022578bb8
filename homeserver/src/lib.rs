//! `hearth`: the homeserver. Configuration, storage (SQLite and PostgreSQL), the services that
//! hold the behaviour, and the HTTP APIs that expose them. `main.rs` is glue around `App`, which
//! tests build on port 0 exactly as the binary does.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
mod http_server;
pub mod services;
pub mod state;
pub mod storage;
pub mod tasks;
mod tls_listener;

pub use app::App;
pub use config::Config;
