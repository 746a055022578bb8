//! Federation: talking to other Matrix servers. `discovery` finds where a server is reached,
//! `client` sends signed requests there, `remote_keys` fetches, checks and caches other
//! servers' signing keys and vouches for them as a notary, `incoming` runs the first checks on
//! a received event, `sender` drains the durable outbox to each server.

pub mod client;
pub mod discovery;
pub mod incoming;
pub mod remote_keys;
pub mod sender;

pub use client::{FederationClient, FederationError};
pub use remote_keys::RemoteKeys;
pub use sender::{Backoff, FederationSender};

/// `value` percent-encoded for a query string or path segment of a federation request.
pub fn query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}
