//! `AppState`: everything a handler may reach, built once by `App::build` and passed explicitly
//! through axum `State` (no globals, so two servers can run in one process).

use std::{ops::Deref, sync::Arc};

use hearth_federation::SigningKey;

use crate::{
    config::Config,
    services::{
        accounts::Accounts, devices::Devices, profiles::Profiles, rate_limit::RateLimiters, rooms::Rooms,
        sync::SyncService,
    },
    storage::Db,
};

#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    /// The base URL clients use, as advertised in `.well-known`.
    pub base_url: String,
    pub db: Db,
    pub signing_key: Arc<SigningKey>,
    pub rooms: Arc<Rooms>,
    pub sync: SyncService,
    pub accounts: Accounts,
    pub devices: Devices,
    pub profiles: Profiles,
    pub rate_limits: RateLimiters,
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
