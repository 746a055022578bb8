//! `AppState`: everything a handler may reach, built once by `App::build` and passed explicitly
//! through axum `State` (no globals, so two servers can run in one process).

use std::{ops::Deref, sync::Arc};

use hearth_federation::SigningKey;

use crate::{
    config::Config,
    services::{
        account_data::AccountData,
        accounts::Accounts,
        devices::Devices,
        e2ee::{
            backup::KeyBackup, dehydrated::DehydratedDevices, device_lists::DeviceLists, keys::Keys,
            to_device::ToDevice,
        },
        edus::{presence::Presence, receipts::Receipts, typing::Typing},
        federation::{FederationClient, FederationSender, OriginLocks, RemoteKeys},
        media::{Media, preview::UrlPreviews},
        profiles::Profiles,
        push::rules::PushRules,
        rate_limit::RateLimiters,
        rooms::Rooms,
        sync::SyncService,
    },
    storage::Db,
};

#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    /// The configured public base URL (ending in `/`), advertised in `.well-known` and login
    /// responses; None when the admin has not set one.
    pub base_url: Option<String>,
    pub db: Db,
    pub signing_key: Arc<SigningKey>,
    pub rooms: Arc<Rooms>,
    pub sync: SyncService,
    pub account_data: Arc<AccountData>,
    pub receipts: Arc<Receipts>,
    pub typing: Typing,
    pub presence: Arc<Presence>,
    pub push_rules: Arc<PushRules>,
    pub accounts: Accounts,
    pub devices: Devices,
    pub profiles: Profiles,
    pub media: Arc<Media>,
    pub keys: Keys,
    pub device_lists: Arc<DeviceLists>,
    pub to_device: Arc<ToDevice>,
    pub key_backup: KeyBackup,
    pub dehydrated: DehydratedDevices,
    pub url_previews: UrlPreviews,
    pub rate_limits: Arc<RateLimiters>,
    /// Signed requests to other servers.
    pub federation: Arc<FederationClient>,
    /// Other servers' signing keys (and ours, as a document).
    pub remote_keys: Arc<RemoteKeys>,
    /// Delivers events to other servers (and hears when a peer is back).
    pub federation_sender: Arc<FederationSender>,
    /// Inbound transactions, one per origin at a time.
    pub inbound_transactions: OriginLocks,
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}
