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
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self { client: SocketAddr::from(([127, 0, 0, 1], 8008)), tls: None, x_forwarded: false, extra: Vec::new() }
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
