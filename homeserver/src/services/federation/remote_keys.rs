//! Server keys: this server's own key document, and other servers' keys — fetched from the
//! server itself or, when it cannot be reached, through the configured notaries; checked
//! (see `hearth_federation::server_keys`), kept in memory and in the database with their
//! validity, and served again to others as a notary (/_matrix/key/v2/query).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hearth_federation::{
    OldVerifyKey, SigningKey,
    server_keys::{KeyDocument, check_key_document, verify_signature},
    to_canonical_object,
};
use reqwest::Method;
use ruma::{CanonicalJsonObject, OwnedServerName, ServerName};
use serde_json::{Value, json};

use super::client::FederationClient;
use crate::storage::{Db, now_ms, server_keys::RemoteKey};

/// After a fetch, how long a server is not asked again for a key it did not have (a forged
/// request naming made-up keys cannot make this server hammer the victim).
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// Why a server's key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no valid key {key_id} of {server} is known or could be fetched")]
    Unknown { server: String, key_id: String },
}

pub struct RemoteKeys {
    db: Db,
    client: Arc<FederationClient>,
    own_key: Arc<SigningKey>,
    /// Keys this server signed with before a rotation.
    old_keys: Vec<OldVerifyKey>,
    server_name: String,
    validity_ms: u64,
    notaries: Vec<OwnedServerName>,
    /// Keys by server, loaded from the database on first use and updated on each fetch.
    cache: Mutex<HashMap<String, Vec<RemoteKey>>>,
    /// When each server was last fetched from.
    fetched: Mutex<HashMap<String, Instant>>,
    /// One fetch per server at a time.
    fetching: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Whether `key` verifies signatures made at `at_ts`.
fn usable(key: &RemoteKey, at_ts: i64) -> bool {
    match key.expired_ts {
        Some(expired) => expired >= at_ts,
        None => key.valid_until_ts >= at_ts,
    }
}

impl RemoteKeys {
    pub fn new(
        db: Db,
        client: Arc<FederationClient>,
        own_key: Arc<SigningKey>,
        server_name: String,
        validity_ms: u64,
        notaries: Vec<OwnedServerName>,
        old_keys: Vec<OldVerifyKey>,
    ) -> Self {
        Self {
            db,
            client,
            own_key,
            old_keys,
            server_name,
            validity_ms,
            notaries,
            cache: Default::default(),
            fetched: Default::default(),
            fetching: Default::default(),
        }
    }

    /// This server's key document, signed, valid for `federation.key_validity_ms`.
    pub fn own_document(&self) -> anyhow::Result<CanonicalJsonObject> {
        let validity = i64::try_from(self.validity_ms).unwrap_or(i64::MAX / 4);
        let old_verify_keys: serde_json::Map<String, Value> = self
            .old_keys
            .iter()
            .map(|key| (key.key_id.clone(), json!({"key": key.public_key, "expired_ts": key.expired_ts})))
            .collect();
        let document = json!({
            "server_name": self.server_name,
            "verify_keys": {self.own_key.key_id(): {"key": self.own_key.public_key_base64()}},
            "old_verify_keys": old_verify_keys,
            "valid_until_ts": now_ms().saturating_add(validity),
        });
        let mut object = to_canonical_object(document)?;
        self.own_key.sign_json(&self.server_name, &mut object)?;
        Ok(object)
    }

    /// The public key (unpadded base64) `server` signs with as `key_id`, valid at `at_ts`.
    pub async fn public_key(&self, server: &ServerName, key_id: &str, at_ts: i64) -> Result<String, KeyError> {
        if server.as_str() == self.server_name {
            if key_id == self.own_key.key_id() {
                return Ok(self.own_key.public_key_base64());
            }
            if let Some(old) = self.old_keys.iter().find(|key| key.key_id == key_id && key.expired_ts >= at_ts) {
                return Ok(old.public_key.clone());
            }
        }
        if let Some(key) = self.known(server.as_str(), key_id, at_ts).await {
            return Ok(key);
        }
        let lock = {
            let mut fetching = self.fetching.lock().await;
            fetching.entry(server.to_string()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        // Another request may have fetched it meanwhile.
        if let Some(key) = self.known(server.as_str(), key_id, at_ts).await {
            return Ok(key);
        }
        let recently =
            self.fetched.lock().expect("fetched").get(server.as_str()).is_some_and(|at| at.elapsed() < REFETCH_AFTER);
        if !recently {
            self.fetched.lock().expect("fetched").insert(server.to_string(), Instant::now());
            if let Err(reason) = self.fetch_direct(server).await {
                tracing::info!(server = %server, %reason, "cannot fetch keys from the server itself");
            }
            if self.known(server.as_str(), key_id, at_ts).await.is_none() {
                self.fetch_through_notaries(server, key_id, at_ts).await;
            }
        }
        self.known(server.as_str(), key_id, at_ts)
            .await
            .ok_or_else(|| KeyError::Unknown { server: server.to_string(), key_id: key_id.to_owned() })
    }

    async fn known(&self, server: &str, key_id: &str, at_ts: i64) -> Option<String> {
        let cached = self.cache.lock().expect("key cache").get(server).cloned();
        let keys = match cached {
            Some(keys) => keys,
            None => {
                let keys = self.db.remote_keys(server).await.ok()?;
                self.cache.lock().expect("key cache").insert(server.to_owned(), keys.clone());
                keys
            }
        };
        keys.iter().find(|key| key.key_id == key_id && usable(key, at_ts)).map(|key| key.public_key.clone())
    }

    /// GET /_matrix/key/v2/server from the server itself.
    async fn fetch_direct(&self, server: &ServerName) -> Result<(), String> {
        let answer = self.client.get_unsigned(server, "/_matrix/key/v2/server").await.map_err(|e| e.to_string())?;
        let object = to_canonical_object(answer).map_err(|e| e.to_string())?;
        let checked = check_key_document(&object, server.as_str()).map_err(|e| e.to_string())?;
        self.store(&checked, &object).await
    }

    /// POST /_matrix/key/v2/query to each notary in turn, until one gives the key.
    async fn fetch_through_notaries(&self, server: &ServerName, key_id: &str, at_ts: i64) {
        for notary in &self.notaries {
            if notary.as_str() == server.as_str() {
                continue;
            }
            let body = json!({"server_keys": {server.as_str(): {key_id: {"minimum_valid_until_ts": at_ts}}}});
            let answer = match self.client.send_json(notary, Method::POST, "/_matrix/key/v2/query", &body).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::info!(%notary, %error, "a notary did not answer");
                    continue;
                }
            };
            for document in answer["server_keys"].as_array().into_iter().flatten() {
                if let Err(reason) = self.accept_relayed(notary, server, document.clone()).await {
                    tracing::info!(%notary, server = %server, %reason, "a notary's key document was refused");
                }
            }
            if self.known(server.as_str(), key_id, at_ts).await.is_some() {
                return;
            }
        }
    }

    /// A document relayed by `notary`: it must be `server`'s own, and signed by the notary.
    async fn accept_relayed(&self, notary: &ServerName, server: &ServerName, document: Value) -> Result<(), String> {
        let object = to_canonical_object(document).map_err(|e| e.to_string())?;
        let checked = check_key_document(&object, server.as_str()).map_err(|e| e.to_string())?;
        let notary_signed = self.notary_signature_verifies(notary, &object).await;
        if !notary_signed {
            return Err("not signed by the notary".into());
        }
        self.store(&checked, &object).await
    }

    async fn notary_signature_verifies(&self, notary: &ServerName, object: &CanonicalJsonObject) -> bool {
        let Some(ruma::CanonicalJsonValue::Object(signatures)) = object.get("signatures") else {
            return false;
        };
        let Some(ruma::CanonicalJsonValue::Object(by_key)) = signatures.get(notary.as_str()) else {
            return false;
        };
        for key_id in by_key.keys() {
            // The notary's own keys come from the notary directly (never through another notary).
            if self.known(notary.as_str(), key_id, now_ms()).await.is_none() {
                let _ = self.fetch_direct(notary).await;
            }
            if let Some(key) = self.known(notary.as_str(), key_id, now_ms()).await
                && verify_signature(object, notary.as_str(), key_id, &key)
            {
                return true;
            }
        }
        false
    }

    async fn store(&self, checked: &KeyDocument, object: &CanonicalJsonObject) -> Result<(), String> {
        let document = serde_json::to_string(object).map_err(|e| e.to_string())?;
        let mut keys: Vec<(String, String, Option<i64>)> =
            checked.verify_keys.iter().map(|(id, key)| (id.clone(), key.clone(), None)).collect();
        keys.extend(checked.old_verify_keys.iter().map(|(id, key, expired)| (id.clone(), key.clone(), Some(*expired))));
        self.db
            .store_remote_keys(&checked.server_name, &keys, checked.valid_until_ts, &document, now_ms())
            .await
            .map_err(|e| e.to_string())?;
        // Reloaded from the database, which merged the new keys with what was known.
        let stored = self.db.remote_keys(&checked.server_name).await.map_err(|e| e.to_string())?;
        self.cache.lock().expect("key cache").insert(checked.server_name.clone(), stored);
        Ok(())
    }

    /// The key documents this server vouches for as a notary: `server`'s documents valid until
    /// at least `minimum_valid_until_ts` (fetched anew when none is), each with this server's
    /// signature added.
    pub async fn notarised(&self, server: &ServerName, minimum_valid_until_ts: i64) -> Vec<Value> {
        let mut documents: Vec<CanonicalJsonObject> = Vec::new();
        if server.as_str() == self.server_name {
            documents.extend(self.own_document().ok());
        } else {
            let fresh_enough = |keys: &[RemoteKey]| {
                keys.iter().any(|key| key.expired_ts.is_none() && key.valid_until_ts >= minimum_valid_until_ts)
            };
            let mut keys = self.db.remote_keys(server.as_str()).await.unwrap_or_default();
            if !fresh_enough(&keys) && self.fetch_direct(server).await.is_ok() {
                keys = self.db.remote_keys(server.as_str()).await.unwrap_or_default();
            }
            let mut seen = std::collections::HashSet::new();
            for key in keys {
                if seen.insert(key.document.clone())
                    && let Ok(value) = serde_json::from_str::<Value>(&key.document)
                    && let Ok(object) = to_canonical_object(value)
                {
                    documents.push(object);
                }
            }
        }
        documents
            .into_iter()
            .filter_map(|mut object| {
                self.own_key.sign_json(&self.server_name, &mut object).ok()?;
                serde_json::to_value(object).ok()
            })
            .collect()
    }
}
