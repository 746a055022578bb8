//! `[listen]`: where the server accepts connections. The client listener always exists; more
//! listeners (`[[listen.extra]]`) each have an address, optional TLS and the resources they
//! serve, as Synapse's listeners do — a federation port of its own on 8448, or one TLS port for
//! everything, is configuration.

use std::{net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The client listener: every resource.
    pub client: SocketAddr,
    /// TLS for the client listener; plain HTTP when unset (behind a reverse proxy).
    pub tls: Option<TlsFiles>,
    /// Behind a reverse proxy: take the client address from X-Forwarded-For (for rate limits
    /// and device last-seen). Only enable it when the proxy sets that header itself.
    pub x_forwarded: bool,
    /// More listeners.
    pub extra: Vec<ListenerConfig>,
    /// How long a connection may take to send a whole request head, counted from when it opens
    /// or its previous response was sent, on every listener; then it is closed. This bounds
    /// clients that trickle a request head to hold connections open, and closes keep-alive
    /// connections idle that long. 0 turns it off.
    pub request_head_timeout_ms: u64,
}

impl ListenConfig {
    /// `request_head_timeout_ms` as a duration; None when turned off.
    pub fn request_head_timeout(&self) -> Option<std::time::Duration> {
        (self.request_head_timeout_ms > 0).then(|| std::time::Duration::from_millis(self.request_head_timeout_ms))
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            client: SocketAddr::from(([127, 0, 0, 1], 8008)),
            tls: None,
            x_forwarded: false,
            extra: Vec::new(),
            request_head_timeout_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// PEM files: the certificate chain (leaf first) and its private key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// What a listener serves. `/health` and unknown paths (M_UNRECOGNIZED) are on every listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// The Client-Server API and `.well-known/matrix/client`.
    Client,
    /// The content repository (`/_matrix/media`, `/_matrix/client/v1/media`).
    Media,
    /// The Server-Server API (`/_matrix/federation`) and `.well-known/matrix/server`.
    Federation,
    /// The server's signing keys (`/_matrix/key`).
    Keys,
    /// The admin API (`/_hearth/admin`).
    Admin,
}

impl Resource {
    pub const ALL: [Resource; 5] =
        [Resource::Client, Resource::Media, Resource::Federation, Resource::Keys, Resource::Admin];
}
