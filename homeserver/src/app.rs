//! `App::build` opens storage, loads the signing key, binds every listener and reports the bound
//! addresses; `run_until_stopped` serves until the shutdown signal, letting in-flight requests
//! finish. Tests call exactly this with port 0.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::serve::ListenerExt;
use hearth_federation::SigningKey;
use tokio::net::TcpListener;

use crate::{
    api,
    config::{Config, MediaBackend, Resource, TlsFiles},
    services::{
        account_data::AccountData,
        accounts::Accounts,
        devices::Devices,
        e2ee::{
            backup::KeyBackup, dehydrated::DehydratedDevices, device_lists::DeviceLists, key_counts::KeyCounts,
            keys::Keys, to_device::ToDevice,
        },
        edus::{presence::Presence, receipts::Receipts, typing::Typing},
        federation::{Backoff, FederationClient, FederationSender, RemoteKeys},
        login_backoff::LoginBackoff,
        media::{
            Media, S3Store,
            preview::UrlPreviews,
            store::{LocalStore, MediaStore},
        },
        passwords::Passwords,
        profiles::Profiles,
        push::{evaluate::PushRuleCache, rules::PushRules},
        rate_limit::RateLimiters,
        rooms::{RoomFederation, Rooms},
        sync::{E2eeSync, Notifier, SyncService, stream_writer::StreamWriter},
        uia::Uia,
    },
    state::{AppInner, AppState},
    storage::{self, Db},
    tasks::{self, Shutdown},
};

pub struct App {
    client_listener: BoundListener,
    client_addr: SocketAddr,
    /// `[[listen.extra]]`, bound, in configuration order.
    extra_listeners: Vec<BoundListener>,
    state: AppState,
    shutdown: Shutdown,
}

/// A bound listener: its socket, TLS (if any) and what it serves.
struct BoundListener {
    tcp: TcpListener,
    tls: Option<rustls::ServerConfig>,
    resources: Vec<Resource>,
}

impl BoundListener {
    async fn bind(address: SocketAddr, tls: Option<&TlsFiles>, resources: Vec<Resource>) -> anyhow::Result<Self> {
        // TLS files are read before binding, so a wrong path fails start-up at once.
        let tls =
            tls.map(|files| crate::tls_listener::server_config(&files.certificate, &files.private_key)).transpose()?;
        let tcp = TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self { tcp, tls, resources })
    }

    /// Serves until `shutdown`, finishing requests in flight.
    async fn serve(self, state: AppState, shutdown: Shutdown) -> anyhow::Result<()> {
        let head_timeout = state.config.listen.request_head_timeout();
        let router = api::router_for(state, &self.resources);
        let stopping = async move { shutdown.wait().await };
        match self.tls {
            // Responses go out at once: with Nagle's algorithm a small response can wait for the
            // client's delayed acknowledgement.
            None => {
                let listener = self.tcp.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                crate::http_server::serve(listener, router, head_timeout, stopping).await
            }
            Some(config) => {
                let listener = crate::tls_listener::TlsListener::new(self.tcp, config)?;
                crate::http_server::serve(listener, router, head_timeout, stopping).await
            }
        }
        Ok(())
    }
}

/// The server's signing key, and the public halves of the keys it signed with before (see
/// `rotate_signing_key`), in the data directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const OLD_SIGNING_KEYS_FILE: &str = "old_signing_keys";

/// `hearth rotate-signing-key`: a new signing key for the next start; the current one is kept
/// as an old verify key, expired now. Returns (old key id, new key id).
pub fn rotate_signing_key(config: &Config) -> anyhow::Result<(String, String)> {
    let keys = hearth_federation::signing_key::rotate(
        &config.data_dir.join(SIGNING_KEY_FILE),
        &config.data_dir.join(OLD_SIGNING_KEYS_FILE),
        crate::storage::now_ms(),
    )?;
    Ok(keys)
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let signing_key = Arc::new(SigningKey::load_or_generate(&config.data_dir.join(SIGNING_KEY_FILE))?);
        let old_keys = hearth_federation::signing_key::load_old_keys(&config.data_dir.join(OLD_SIGNING_KEYS_FILE))?;
        let db = Db::open(&config.database_url(), config.database_connections())
            .await
            .context("cannot open the database")?;

        let client_listener =
            BoundListener::bind(config.listen.client, config.listen.tls.as_ref(), Resource::ALL.to_vec()).await?;
        let client_addr = client_listener.tcp.local_addr()?;
        let mut extra_listeners = Vec::new();
        for extra in &config.listen.extra {
            extra_listeners
                .push(BoundListener::bind(extra.address, extra.tls.as_ref(), extra.resources.clone()).await?);
        }

        let federation = Arc::new(FederationClient::new(&config.federation, &config.server_name, signing_key.clone())?);
        let notaries = config
            .federation
            .trusted_key_servers
            .iter()
            .filter_map(|server| ruma::ServerName::parse(server.as_str()).ok())
            .collect();
        let remote_keys = Arc::new(RemoteKeys::new(
            db.clone(),
            federation.clone(),
            signing_key.clone(),
            config.server_name.clone(),
            config.federation.key_validity_ms,
            notaries,
            old_keys,
        ));
        let shutdown = Shutdown::default();
        let federation_sender = FederationSender::new(
            db.clone(),
            federation.clone(),
            Backoff {
                min: Duration::from_millis(config.federation.retry_min_ms.max(1)),
                max: Duration::from_millis(config.federation.retry_max_ms.max(config.federation.retry_min_ms)),
            },
            shutdown.clone(),
        );
        let passwords = Passwords::new(&config.auth, config.password_policy.clone())?;
        let backoff = Arc::new(LoginBackoff::new(
            config.auth.login_free_failures,
            Duration::from_millis(config.auth.login_max_backoff_ms),
        ));
        let rate_limits = Arc::new(RateLimiters::new(&config.rate_limits));
        let uia = Arc::new(Uia::new(
            db.clone(),
            passwords.clone(),
            backoff.clone(),
            config.server_name.clone(),
            config.registration.tokens.clone(),
        ));
        let streams = Arc::new(StreamWriter::new(db.max_stream().await?, Notifier::new(storage::now_ms() as u64)));
        let push_rule_cache = Arc::new(PushRuleCache::default());
        let rooms = Arc::new(Rooms::new(
            db.clone(),
            signing_key.clone(),
            config.server_name.clone(),
            config.rooms.default_version.clone(),
            streams.clone(),
            push_rule_cache.clone(),
            RoomFederation { client: federation.clone(), sender: federation_sender.clone(), keys: remote_keys.clone() },
        ));
        let account_data = Arc::new(AccountData::new(db.clone(), streams.clone(), push_rule_cache));
        let receipts = Arc::new(Receipts::new(db.clone(), streams.clone(), rooms.clone(), account_data.clone()));
        let typing = Typing::new(streams.notifier().clone());
        let presence = Arc::new(Presence::new(db.clone(), streams.clone(), rooms.clone(), config.presence.enabled));
        let push_rules = Arc::new(PushRules::new(db.clone(), account_data.clone()));
        let media_root = config.media.path.clone().unwrap_or_else(|| config.data_dir.join("media"));
        let media_store = match config.media.backend {
            MediaBackend::Local => MediaStore::Local(LocalStore::new(media_root.clone())),
            MediaBackend::S3 => MediaStore::S3(S3Store::connect(&config.media.s3).await?),
        };
        let media = Arc::new(Media::new(
            db.clone(),
            media_store,
            config.media.clone(),
            config.server_name.clone(),
            media_root.join("incoming"),
            federation.clone(),
        ));
        let key_counts = Arc::new(KeyCounts::new(db.clone()));
        let device_lists = Arc::new(DeviceLists::new(
            db.clone(),
            streams.clone(),
            rooms.clone(),
            key_counts.clone(),
            config.server_name.clone(),
        ));
        let to_device =
            Arc::new(ToDevice::new(db.clone(), streams.clone(), config.server_name.clone(), federation_sender.clone()));
        let keys = Keys::new(
            db.clone(),
            device_lists.clone(),
            key_counts.clone(),
            uia.clone(),
            config.server_name.clone(),
            federation.clone(),
        );
        let state = AppState::new(AppInner {
            federation: federation.clone(),
            federation_sender,
            inbound_transactions: Default::default(),
            remote_keys,
            sync: SyncService::new(
                db.clone(),
                rooms.clone(),
                account_data.clone(),
                receipts.clone(),
                typing.clone(),
                presence.clone(),
                push_rules.clone(),
                E2eeSync { device_lists: device_lists.clone(), to_device: to_device.clone(), key_counts },
            ),
            push_rules,
            account_data,
            receipts,
            typing,
            presence,
            profiles: Profiles::new(db.clone(), rooms.clone(), federation.clone(), config.server_name.clone()),
            rooms,
            base_url: config.public_baseurl.as_ref().map(|base| normalise_base_url(base)),
            accounts: Accounts::new(
                &config,
                db.clone(),
                passwords,
                uia.clone(),
                backoff,
                rate_limits.clone(),
                device_lists.clone(),
            ),
            devices: Devices::new(db.clone(), uia, device_lists.clone()),
            dehydrated: DehydratedDevices::new(db.clone(), device_lists.clone()),
            keys,
            device_lists,
            to_device,
            key_backup: KeyBackup::new(db.clone()),
            url_previews: UrlPreviews::new(config.media.url_preview.clone(), media.clone())?,
            media,
            rate_limits,
            signing_key,
            db,
            config,
        });
        Ok(Self { client_listener, client_addr, extra_listeners, state, shutdown })
    }

    /// The address the client API listens on (the real port when configured with port 0).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The addresses of the `[[listen.extra]]` listeners, in configuration order.
    pub fn extra_addrs(&self) -> Vec<SocketAddr> {
        self.extra_listeners.iter().filter_map(|l| l.tcp.local_addr().ok()).collect()
    }

    /// The signal that stops this server; tests trigger it, `main` wires it to SIGTERM/ctrl-c.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { client_listener, extra_listeners, state, shutdown, .. } = self;
        tasks::spawn_background_tasks(state.clone(), shutdown.clone());
        // Events queued for other servers before a restart go out now.
        state.federation_sender.resume().await;
        let mut servers = vec![tokio::spawn(client_listener.serve(state.clone(), shutdown.clone()))];
        for listener in extra_listeners {
            servers.push(tokio::spawn(listener.serve(state.clone(), shutdown.clone())));
        }
        let mut failure = None;
        for server in servers {
            if let Err(error) = server.await.context("a listener task panicked").and_then(|served| served) {
                // One listener failing stops the others: a half-reachable server is worse.
                shutdown.trigger();
                failure.get_or_insert(error);
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        // Give SQLite a moment to checkpoint; PostgreSQL connections close cleanly.
        let _ = tokio::time::timeout(Duration::from_secs(5), state.db.close()).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A base URL ends with exactly one `/`.
fn normalise_base_url(base: &str) -> String {
    format!("{}/", base.trim_end_matches('/'))
}
