//! Each device's one-time key counts and unused fallback key types, which every /sync response
//! carries: kept in memory and forgotten whenever they may change (an upload, a claim, a device
//! list change), instead of two queries per response.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Map, Value};

use crate::{error::ApiResult, storage::Db};

/// `device_one_time_keys_count` and `device_unused_fallback_key_types` of one device.
pub type DeviceKeyCounts = Arc<(Map<String, Value>, Vec<String>)>;

pub struct KeyCounts {
    db: Db,
    cache: Mutex<Cache>,
    /// What most devices have (no one-time or fallback keys: every client that does not do
    /// encryption), cached as this one shared value instead of a map per device.
    none: DeviceKeyCounts,
}

#[derive(Default)]
struct Cache {
    /// Bumped by every `forget`: a value read from storage before a forget is not cached.
    generation: u64,
    devices: HashMap<(String, String), DeviceKeyCounts>,
}

/// The most devices remembered; past it the cache starts over.
const MAX_ENTRIES: usize = 100_000;

impl KeyCounts {
    pub fn new(db: Db) -> Self {
        let none = Arc::new((super::keys::no_one_time_keys(), Vec::new()));
        Self { db, cache: Mutex::new(Cache::default()), none }
    }

    pub async fn get(&self, user_id: &str, device_id: &str) -> ApiResult<DeviceKeyCounts> {
        let key = (user_id.to_owned(), device_id.to_owned());
        let generation = {
            let cache = self.cache.lock().expect("key counts lock");
            if let Some(hit) = cache.devices.get(&key) {
                return Ok(hit.clone());
            }
            cache.generation
        };
        let counts = super::keys::one_time_key_counts(&self.db, user_id, device_id).await?;
        let fallback = self.db.unused_fallback_key_types(user_id, device_id).await?;
        let value = if self.none.0 == counts && self.none.1 == fallback {
            self.none.clone()
        } else {
            Arc::new((counts, fallback))
        };
        let mut cache = self.cache.lock().expect("key counts lock");
        if cache.generation == generation {
            if cache.devices.len() >= MAX_ENTRIES {
                cache.devices.clear();
            }
            cache.devices.insert(key, value.clone());
        }
        Ok(value)
    }

    /// Forgets the user's devices (all, or one); call after the change is stored.
    pub fn forget(&self, user_id: &str, device_id: Option<&str>) {
        let mut cache = self.cache.lock().expect("key counts lock");
        cache.generation += 1;
        match device_id {
            Some(device_id) => {
                cache.devices.remove(&(user_id.to_owned(), device_id.to_owned()));
            }
            None => cache.devices.retain(|(user, _), _| user != user_id),
        }
    }
}
