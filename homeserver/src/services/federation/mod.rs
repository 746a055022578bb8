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

/// One inbound transaction per origin at a time (as Synapse does): a server's events are taken
/// in the order it sent them, and one busy peer cannot occupy every worker.
#[derive(Default)]
pub struct OriginLocks {
    locks: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl OriginLocks {
    pub async fn lock(&self, origin: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().expect("origin locks");
            if locks.len() > 10_000 {
                // Only idle locks are dropped (a held one has another reference).
                locks.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
            }
            locks.entry(origin.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}
