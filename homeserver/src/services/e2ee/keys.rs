//! The key directory (spec: Client-Server API § End-to-End Encryption, § Cross-signing):
//! devices publish identity, one-time and fallback keys; other users query and claim them; users
//! publish cross-signing keys and signatures. Keys are kept verbatim — clients check the
//! signatures over them, so the server must not reshape them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Map, Value, json};

use super::{
    device_lists::DeviceLists,
    federated::{self, KeySet},
    key_counts::KeyCounts,
    signatures,
};
use crate::{
    error::{ApiError, ApiResult, ErrorKind},
    services::{
        federation::FederationClient,
        uia::{self, Uia, UiaRequest},
        usernames::server_of,
    },
    storage::Db,
};

pub struct Keys {
    db: Db,
    device_lists: Arc<DeviceLists>,
    key_counts: Arc<KeyCounts>,
    uia: Arc<Uia>,
    server_name: String,
    federation: Arc<FederationClient>,
}

/// The most one-time keys one upload may carry (clients upload a few dozen at a time).
const MAX_KEYS_PER_UPLOAD: usize = 1000;
/// The most users and devices one query or claim may name.
const MAX_QUERY_ENTRIES: usize = 10_000;

const CROSS_SIGNING_TYPES: [(&str, &str); 3] =
    [("master_key", "master"), ("self_signing_key", "self_signing"), ("user_signing_key", "user_signing")];

fn parse_json(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// `algorithm:key_id` split in two.
fn split_key_id(id: &str) -> ApiResult<(String, String)> {
    match id.split_once(':') {
        Some((algorithm, key_id)) if !algorithm.is_empty() && !key_id.is_empty() => {
            Ok((algorithm.to_owned(), key_id.to_owned()))
        }
        _ => Err(ApiError::bad_json(format!("Key id {id:?} is not algorithm:id"))),
    }
}

fn object<'a>(body: &'a Value, field: &str) -> ApiResult<Option<&'a Map<String, Value>>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(ApiError::bad_json(format!("{field} must be an object"))),
    }
}

impl Keys {
    pub fn new(
        db: Db,
        device_lists: Arc<DeviceLists>,
        key_counts: Arc<KeyCounts>,
        uia: Arc<Uia>,
        server_name: String,
        federation: Arc<FederationClient>,
    ) -> Self {
        Self { db, device_lists, key_counts, uia, server_name, federation }
    }

    fn is_local(&self, user_id: &str) -> bool {
        server_of(user_id) == self.server_name
    }

    /// POST /keys/upload: the caller's device keys, one-time keys and fallback keys.
    pub async fn upload(&self, user_id: &str, device_id: &str, body: &Value) -> ApiResult<Value> {
        if let Some(device_keys) = object(body, "device_keys")? {
            if device_keys.get("user_id").and_then(Value::as_str) != Some(user_id)
                || device_keys.get("device_id").and_then(Value::as_str) != Some(device_id)
            {
                return Err(ApiError::invalid_param("device_keys must be for your user id and this device"));
            }
            for field in ["algorithms", "keys", "signatures"] {
                if device_keys.get(field).is_none() {
                    return Err(ApiError::bad_json(format!("device_keys needs {field}")));
                }
            }
            let json = serde_json::to_string(device_keys).map_err(ApiError::internal)?;
            if self.db.set_device_keys(user_id, device_id, &json).await? {
                self.device_lists.changed_device(user_id, Some(device_id)).await?;
            }
        }
        if let Some(one_time_keys) = object(body, "one_time_keys")? {
            if one_time_keys.len() > MAX_KEYS_PER_UPLOAD {
                return Err(ApiError::invalid_param(format!("At most {MAX_KEYS_PER_UPLOAD} keys per upload")));
            }
            let mut keys = Vec::with_capacity(one_time_keys.len());
            for (id, key) in one_time_keys {
                let (algorithm, key_id) = split_key_id(id)?;
                keys.push((algorithm, key_id, serde_json::to_string(key).map_err(ApiError::internal)?));
            }
            if let Err(conflict) = self.db.add_one_time_keys(user_id, device_id, &keys).await? {
                return Err(ApiError::invalid_param(format!(
                    "One-time key {} already exists with different content",
                    conflict.0
                )));
            }
        }
        for field in ["fallback_keys", "org.matrix.msc2732.fallback_keys"] {
            if let Some(fallback_keys) = object(body, field)? {
                for (id, key) in fallback_keys {
                    let (algorithm, key_id) = split_key_id(id)?;
                    let json = serde_json::to_string(key).map_err(ApiError::internal)?;
                    self.db.set_fallback_key(user_id, device_id, &algorithm, &key_id, &json).await?;
                }
            }
        }
        self.key_counts.forget(user_id, Some(device_id));
        Ok(json!({"one_time_key_counts": one_time_key_counts(&self.db, user_id, device_id).await?}))
    }

    /// POST /keys/query: local users from storage, other servers' users over federation (all
    /// servers asked at once, each bounded by `timeout`).
    pub async fn query(&self, requester: &str, body: &Value, timeout: Duration) -> ApiResult<Value> {
        let wanted = object(body, "device_keys")?.ok_or_else(|| ApiError::missing_param("device_keys is required"))?;
        let mut found = KeySet::default();
        let mut remote: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        let mut entries = 0;
        for (user_id, devices) in wanted {
            let only: Vec<String> = match devices {
                Value::Array(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                _ => return Err(ApiError::bad_json("device_keys values must be lists of device ids")),
            };
            entries += 1 + only.len();
            if entries > MAX_QUERY_ENTRIES {
                return Err(ApiError::invalid_param("Too many users and devices in one query"));
            }
            if self.is_local(user_id) {
                self.add_local_keys(user_id, &only, Some(requester), &mut found).await?;
            } else {
                remote.entry(server_of(user_id)).or_default().insert(user_id.clone(), devices.clone());
            }
        }
        let failures = federated::query(&self.federation, remote, timeout, &mut found).await;
        let mut answer = found.into_json();
        answer["failures"] = Value::Object(failures);
        Ok(answer)
    }

    /// POST /_matrix/federation/v1/user/keys/query: this server's users only, without
    /// user-signing keys (those are for their owner alone).
    pub async fn query_for_server(&self, body: &Value) -> ApiResult<Value> {
        let wanted = object(body, "device_keys")?.ok_or_else(|| ApiError::missing_param("device_keys is required"))?;
        if wanted.values().map(|devices| 1 + devices.as_array().map_or(0, Vec::len)).sum::<usize>() > MAX_QUERY_ENTRIES
        {
            return Err(ApiError::invalid_param("Too many users and devices in one query"));
        }
        let mut found = KeySet::default();
        for (user_id, devices) in wanted {
            if !self.is_local(user_id) {
                continue;
            }
            let only: Vec<String> =
                devices.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
            self.add_local_keys(user_id, &only, None, &mut found).await?;
        }
        let mut answer = found.into_json();
        if let Value::Object(map) = &mut answer {
            map.remove("user_signing_keys");
        }
        Ok(answer)
    }

    /// One local user's device keys (all, or `only` these) and cross-signing keys, with the
    /// signatures the user (and `requester`) uploaded merged in.
    async fn add_local_keys(
        &self,
        user_id: &str,
        only: &[String],
        requester: Option<&str>,
        found: &mut KeySet,
    ) -> ApiResult<()> {
        let signers: Vec<&str> = std::iter::once(user_id).chain(requester).collect();
        let signatures = self.db.key_signatures(user_id, &signers).await?;
        let mut devices = Map::new();
        for record in self.db.device_keys(user_id, only).await? {
            let mut keys = parse_json(&record.key_json);
            add_signatures(&mut keys, &record.device_id, &signatures);
            // The spec types the name as a string: absent rather than null when unset.
            keys["unsigned"] = match &record.display_name {
                Some(name) => json!({"device_display_name": name}),
                None => json!({}),
            };
            devices.insert(record.device_id, keys);
        }
        found.device_keys.insert(user_id.to_owned(), Value::Object(devices));
        for (key_type, json) in self.db.cross_signing_keys(user_id).await? {
            let mut key = parse_json(&json);
            if let Some((_, public)) = signatures::cross_signing_public_key(&key) {
                add_signatures(&mut key, &public, &signatures);
            }
            match key_type.as_str() {
                "master" => found.master_keys.insert(user_id.to_owned(), key),
                "self_signing" => found.self_signing_keys.insert(user_id.to_owned(), key),
                "user_signing" if Some(user_id) == requester => found.user_signing_keys.insert(user_id.to_owned(), key),
                _ => None,
            };
        }
        Ok(())
    }

    /// POST /keys/claim: one key per device asked for, each one-time key to one claimer only;
    /// other servers' devices over federation.
    pub async fn claim(&self, body: &Value, timeout: Duration) -> ApiResult<Value> {
        let wanted =
            object(body, "one_time_keys")?.ok_or_else(|| ApiError::missing_param("one_time_keys is required"))?;
        let mut claimed = Map::new();
        let mut remote: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        let mut entries = 0;
        for (user_id, devices) in wanted {
            let Value::Object(devices) = devices else {
                return Err(ApiError::bad_json("one_time_keys values must map device ids to algorithms"));
            };
            entries += devices.len();
            if entries > MAX_QUERY_ENTRIES {
                return Err(ApiError::invalid_param("Too many devices in one claim"));
            }
            if !self.is_local(user_id) {
                remote.entry(server_of(user_id)).or_default().insert(user_id.clone(), Value::Object(devices.clone()));
                continue;
            }
            self.claim_local(user_id, devices, &mut claimed).await?;
        }
        let failures = federated::claim(&self.federation, remote, timeout, &mut claimed).await;
        Ok(json!({"one_time_keys": claimed, "failures": failures}))
    }

    /// POST /_matrix/federation/v1/user/keys/claim: this server's users only.
    pub async fn claim_for_server(&self, body: &Value) -> ApiResult<Value> {
        let wanted =
            object(body, "one_time_keys")?.ok_or_else(|| ApiError::missing_param("one_time_keys is required"))?;
        if wanted.values().map(|devices| devices.as_object().map_or(0, Map::len)).sum::<usize>() > MAX_QUERY_ENTRIES {
            return Err(ApiError::invalid_param("Too many devices in one claim"));
        }
        let mut claimed = Map::new();
        for (user_id, devices) in wanted {
            if let (true, Value::Object(devices)) = (self.is_local(user_id), devices) {
                self.claim_local(user_id, devices, &mut claimed).await?;
            }
        }
        Ok(json!({"one_time_keys": claimed}))
    }

    async fn claim_local(
        &self,
        user_id: &str,
        devices: &Map<String, Value>,
        claimed: &mut Map<String, Value>,
    ) -> ApiResult<()> {
        let mut keys_for_user = Map::new();
        for (device_id, algorithm) in devices {
            let algorithm = algorithm.as_str().ok_or_else(|| ApiError::bad_json("The algorithm must be a string"))?;
            let claimed = self.db.claim_key(user_id, device_id, algorithm).await?;
            self.key_counts.forget(user_id, Some(device_id));
            if let Some((key_id, json)) = claimed {
                keys_for_user.insert(device_id.clone(), json!({format!("{algorithm}:{key_id}"): parse_json(&json)}));
            }
        }
        if !keys_for_user.is_empty() {
            claimed.insert(user_id.to_owned(), Value::Object(keys_for_user));
        }
        Ok(())
    }

    /// POST /keys/device_signing/upload. Needs the password unless the user has no master key
    /// yet or uploads the keys they already have (as Synapse does, MSC3967).
    pub async fn upload_cross_signing(&self, user_id: &str, body: &Value, auth: Option<&Value>) -> ApiResult<()> {
        let existing: BTreeMap<String, Value> =
            self.db.cross_signing_keys(user_id).await?.into_iter().map(|(t, json)| (t, parse_json(&json))).collect();
        let mut uploads = Vec::new();
        for (field, key_type) in CROSS_SIGNING_TYPES {
            if let Some(key) = object(body, field)? {
                uploads.push((key_type, Value::Object(key.clone())));
            }
        }
        let unchanged = uploads.iter().all(|(key_type, key)| existing.get(*key_type) == Some(key));
        if existing.contains_key("master") && !unchanged {
            let flows: &[&[&str]] = &[&[uia::PASSWORD]];
            let scope = format!("device_signing_upload:{user_id}");
            self.uia.authenticate(auth, UiaRequest { flows, scope, user_id: Some(user_id) }).await?;
        }
        let master = uploads.iter().find(|(t, _)| *t == "master").map(|(_, k)| k).or(existing.get("master"));
        let master_key = master.and_then(signatures::cross_signing_public_key);
        let devices: Vec<String> = self.db.devices(user_id).await?.into_iter().map(|d| d.device_id).collect();
        for (key_type, key) in &uploads {
            if key.get("user_id").and_then(Value::as_str) != Some(user_id) {
                return Err(ApiError::invalid_param("Cross-signing keys must be for your user id"));
            }
            let usage_ok = key.get("usage").and_then(Value::as_array).is_some_and(|u| u.iter().any(|u| u == key_type));
            let Some((_, public)) = signatures::cross_signing_public_key(key).filter(|_| usage_ok) else {
                return Err(ApiError::bad_json(format!(
                    "The {key_type} key needs one ed25519 key and usage {key_type}"
                )));
            };
            if devices.contains(&public) {
                return Err(ApiError::forbidden("Key ID in use: a device has this id"));
            }
            if *key_type != "master" {
                let Some((master_id, master_public)) = &master_key else {
                    return Err(ApiError::missing_param("No master key is available"));
                };
                if !signatures::verify(key, user_id, master_id, master_public) {
                    return Err(ApiError::new(
                        ErrorKind::InvalidSignature,
                        format!("The {key_type} key is not signed by the master key"),
                    ));
                }
            }
        }
        if unchanged {
            return Ok(());
        }
        for (key_type, key) in &uploads {
            let json = serde_json::to_string(key).map_err(ApiError::internal)?;
            self.db.set_cross_signing_key(user_id, key_type, &json).await?;
        }
        self.device_lists.changed(user_id).await?;
        // Other servers sharing a room hear of the new master and self-signing keys themselves
        // (spec: Server-Server API § m.signing_key_update); the user-signing key stays private.
        let public: Vec<(&str, &Value)> =
            uploads.iter().filter(|(key_type, _)| *key_type != "user_signing").map(|(t, k)| (*t, k)).collect();
        if !public.is_empty() {
            let mut content = json!({"user_id": user_id});
            for (key_type, key) in public {
                content[format!("{key_type}_key")] = key.clone();
            }
            self.device_lists.announce_signing_keys(user_id, content).await?;
        }
        Ok(())
    }

    /// POST /keys/signatures/upload: signatures by the user's own keys on their devices and
    /// master key (self-signing key, or a device on the master key), and by their
    /// user-signing key on other users' master keys. Each is verified; failures are reported
    /// per key and the rest stored.
    pub async fn upload_signatures(&self, user_id: &str, body: &Value) -> ApiResult<Value> {
        let Value::Object(targets) = body else { return Err(ApiError::bad_json("The body must be an object")) };
        let own: BTreeMap<String, Value> =
            self.db.cross_signing_keys(user_id).await?.into_iter().map(|(t, json)| (t, parse_json(&json))).collect();
        let mut failures = Map::new();
        let mut touched = std::collections::BTreeSet::new();
        for (target_user, keys) in targets {
            let Value::Object(keys) = keys else { return Err(ApiError::bad_json("Signed keys must be objects")) };
            for (target_key_id, signed) in keys {
                match self.check_signature(user_id, &own, target_user, target_key_id, signed).await {
                    Ok(Some((signer_key_id, signature))) => {
                        self.db
                            .add_key_signature(user_id, &signer_key_id, target_user, target_key_id, &signature)
                            .await?;
                        touched.insert(target_user.clone());
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let entry = failures.entry(target_user.clone()).or_insert_with(|| json!({}));
                        entry[target_key_id] = json!({"errcode": error.0, "error": error.1});
                    }
                }
            }
        }
        for user in touched {
            if self.is_local(&user) {
                self.device_lists.changed(&user).await?;
            }
        }
        Ok(json!({"failures": failures}))
    }

    /// The new signature by `signer` in `signed`, if it verifies: (signer key id, signature).
    async fn check_signature(
        &self,
        signer: &str,
        own: &BTreeMap<String, Value>,
        target_user: &str,
        target_key_id: &str,
        signed: &Value,
    ) -> Result<Option<(String, String)>, (&'static str, String)> {
        let unknown = || ("M_NOT_FOUND", format!("No key {target_key_id} of {target_user}"));
        let invalid = || ("M_INVALID_SIGNATURE", "Invalid signature".to_owned());
        let internal = |error: sqlx::Error| ("M_UNKNOWN", error.to_string());
        let stored = if target_user == signer {
            let device = self.db.device_keys(target_user, &[target_key_id.to_owned()]).await.map_err(internal)?;
            match device.into_iter().next() {
                Some(record) => parse_json(&record.key_json),
                None => own
                    .get("master")
                    .filter(|m| signatures::cross_signing_public_key(m).is_some_and(|(_, p)| p == target_key_id))
                    .cloned()
                    .ok_or_else(unknown)?,
            }
        } else {
            let theirs = self.db.cross_signing_keys(target_user).await.map_err(internal)?;
            theirs
                .into_iter()
                .find(|(t, _)| t == "master")
                .map(|(_, json)| parse_json(&json))
                .filter(|m| signatures::cross_signing_public_key(m).is_some_and(|(_, p)| p == target_key_id))
                .ok_or_else(unknown)?
        };
        // The object must be the stored key, signatures aside.
        let strip = |value: &Value| {
            let mut value = value.clone();
            if let Some(map) = value.as_object_mut() {
                map.remove("signatures");
                map.remove("unsigned");
            }
            value
        };
        if strip(&stored) != strip(signed) {
            return Err(("M_INVALID_PARAM", "The signed object differs from the stored key".to_owned()));
        }
        let Some(new_signatures) = signed
            .pointer(&format!("/signatures/{}", signer.replace('~', "~0").replace('/', "~1")))
            .and_then(Value::as_object)
        else {
            return Ok(None);
        };
        // Which of the signer's keys may sign this: their self-signing key (own devices), a
        // device of theirs (own master key), their user-signing key (others' master keys).
        let mut signing_keys: Vec<(String, String)> = Vec::new();
        if target_user == signer {
            if stored.get("device_id").is_some() {
                signing_keys.extend(own.get("self_signing").and_then(signatures::cross_signing_public_key));
            } else {
                for record in self.db.device_keys(signer, &[]).await.map_err(internal)? {
                    let keys = parse_json(&record.key_json);
                    let id = format!("ed25519:{}", record.device_id);
                    if let Some(public) = keys.pointer(&format!("/keys/{id}")).and_then(Value::as_str) {
                        signing_keys.push((id, public.to_owned()));
                    }
                }
            }
        } else {
            signing_keys.extend(own.get("user_signing").and_then(signatures::cross_signing_public_key));
        }
        for (key_id, signature) in new_signatures {
            if stored.pointer(&format!("/signatures/{}/{}", signer.replace('/', "~1"), key_id.replace('/', "~1")))
                == Some(signature)
            {
                continue; // already there
            }
            let Some((_, public)) = signing_keys.iter().find(|(id, _)| id == key_id) else {
                return Err(invalid());
            };
            if !signatures::verify(signed, signer, key_id, public) {
                return Err(invalid());
            }
            let signature = signature.as_str().ok_or_else(invalid)?.to_owned();
            return Ok(Some((key_id.clone(), signature)));
        }
        Ok(None)
    }
}

/// `{algorithm: count}` of the device's unclaimed one-time keys, always with
/// `signed_curve25519` (clients read it to decide whether to upload more).
/// The one-time key counts of a device without keys (`signed_curve25519` is always reported).
pub fn no_one_time_keys() -> Map<String, Value> {
    let mut counts = Map::new();
    counts.insert("signed_curve25519".into(), 0.into());
    counts
}

pub async fn one_time_key_counts(db: &Db, user_id: &str, device_id: &str) -> ApiResult<Map<String, Value>> {
    let mut counts = no_one_time_keys();
    for (algorithm, count) in db.one_time_key_counts(user_id, device_id).await? {
        counts.insert(algorithm, count.into());
    }
    Ok(counts)
}

/// Adds uploaded signatures on the key `target_key_id` to its `signatures`.
fn add_signatures(key: &mut Value, target_key_id: &str, signatures: &[crate::storage::keys::SignatureRecord]) {
    for record in signatures.iter().filter(|s| s.target_key_id == target_key_id) {
        if !key.get("signatures").is_some_and(Value::is_object) {
            key["signatures"] = json!({});
        }
        let by_signer = &mut key["signatures"][&record.signer_user_id];
        if !by_signer.is_object() {
            *by_signer = json!({});
        }
        by_signer[&record.signer_key_id] = Value::String(record.signature.clone());
    }
}
