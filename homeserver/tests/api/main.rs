//! The one integration-test binary. Every test starts the real server through `App::build` on
//! port 0 with a temporary database, once on SQLite and once on PostgreSQL (`both_backends!`),
//! and speaks HTTP to it like any client.

#[macro_use]
mod helpers;

mod account;
mod config;
mod devices;
mod directory;
mod discovery;
mod e2ee;
mod ephemeral;
mod federation;
mod federation_queries;
mod federation_rooms;
mod guests;
mod history;
mod hostile_input;
mod listeners;
mod login;
mod media;
mod media_lifecycle;
mod operations;
mod profile;
mod push;
mod register;
mod relations;
mod rooms;
mod search;
mod spaces;
mod sync;
mod thumbnails;
mod url_previews;
