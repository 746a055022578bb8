//! `hearth-federation`: the Matrix room and server protocol, pure where it can be.
//!
//! Canonical JSON, JSON signing with the server's ed25519 key and (as later issues land) PDU
//! formats, authorization rules, state resolution and request signing. No storage and no HTTP
//! server live here: the homeserver crate calls these functions with data and gets data back,
//! so everything is unit-tested without a server.

pub mod auth_event;
pub mod canonical_json;
pub mod event_auth;
pub mod pdu;
pub mod request_auth;
pub mod room_versions;
pub mod server_keys;
pub mod signing_key;
pub mod state_res_v1;

pub use auth_event::AuthEvent;
pub use canonical_json::{CanonicalJsonError, to_canonical_bytes, to_canonical_object};
pub use pdu::{NewPdu, Pdu, PduError, event_id_of, event_references, new_server_event_id};
pub use signing_key::{OldVerifyKey, SigningKey, SigningKeyError};
