//! Send-to-device messaging (spec: Client-Server API § Send-to-Device messaging): messages for
//! specific devices (or `*`, all of a user's devices), stored in each device's inbox at one
//! stream position, delivered in /sync `to_device` and deleted when the device acknowledges them
//! by syncing with a later token.
//!
//! Most devices have an empty inbox most of the time, and every /sync response would otherwise
//! query (and, on SQLite, write to) the table: the devices whose inbox may hold something are
//! kept in memory, and a sync of any other device touches no storage for to-device at all.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{
    error::{ApiError, ApiResult},
    services::{
        federation::FederationSender,
        sync::{notifier::Scope, stream_writer::StreamWriter},
        usernames::server_of,
    },
    storage::Db,
};

pub struct ToDevice {
    db: Db,
    streams: Arc<StreamWriter>,
    server_name: String,
    /// Messages for other servers' devices leave as m.direct_to_device EDUs.
    federation: Arc<FederationSender>,
    /// (user, device) of every inbox that may hold messages; None until read from storage.
    occupied: Mutex<Option<HashSet<(String, String)>>>,
}

/// The most devices one request may address.
const MAX_DELIVERIES: usize = 10_000;

impl ToDevice {
    pub fn new(db: Db, streams: Arc<StreamWriter>, server_name: String, federation: Arc<FederationSender>) -> Self {
        Self { db, streams, server_name, federation, occupied: Mutex::new(None) }
    }

    /// Whether the device's inbox may hold messages (reads the occupied inboxes once).
    async fn may_hold(&self, user_id: &str, device_id: &str) -> ApiResult<bool> {
        let key = (user_id.to_owned(), device_id.to_owned());
        if let Some(occupied) = self.occupied.lock().expect("inbox lock").as_ref() {
            return Ok(occupied.contains(&key));
        }
        // Read under the writer, so no message is stored between the read and the fill.
        let _quiet = self.streams.hold().await;
        let loaded = self.occupied.lock().expect("inbox lock").is_some();
        if !loaded {
            let occupied: HashSet<(String, String)> = self.db.occupied_inboxes().await?.into_iter().collect();
            self.occupied.lock().expect("inbox lock").get_or_insert(occupied);
        }
        Ok(self.occupied.lock().expect("inbox lock").as_ref().is_some_and(|occupied| occupied.contains(&key)))
    }

    /// PUT /sendToDevice/{eventType}/{txnId}
    pub async fn send(
        &self,
        sender: &str,
        sender_device: &str,
        event_type: &str,
        txn_id: &str,
        body: &Value,
    ) -> ApiResult<()> {
        let Some(Value::Object(messages)) = body.get("messages") else {
            return Err(ApiError::bad_json("messages must be an object"));
        };
        let mut remote: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for (user_id, devices) in messages {
            if ruma::UserId::parse(user_id).is_err() {
                return Err(ApiError::invalid_param(format!("Invalid user id {user_id}")));
            }
            let server = server_of(user_id);
            if server != self.server_name {
                if !devices.is_object() {
                    return Err(ApiError::bad_json("messages must map user ids to device ids to content"));
                }
                remote.entry(server).or_default().insert(user_id.clone(), devices.clone());
            }
        }
        let local: Map<String, Value> = messages
            .iter()
            .filter(|(user, _)| server_of(user) == self.server_name)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.deliver((sender, sender_device), txn_id, event_type, &local).await?;
        // The same message id for a retried request, so the receiving server de-duplicates.
        let message_id = format!("{sender_device}:{txn_id}");
        for (server, messages) in remote {
            let edu = json!({"edu_type": "m.direct_to_device", "content": {
                "sender": sender, "type": event_type, "message_id": message_id, "messages": messages,
            }});
            self.federation.queue_durable_edu(&[server.to_owned()], &edu).await?;
        }
        Ok(())
    }

    /// An m.direct_to_device EDU from `origin`: its messages for this server's users.
    pub async fn receive_remote(&self, origin: &str, content: &Value) -> ApiResult<()> {
        let (Some(sender), Some(event_type), Some(message_id), Some(messages)) = (
            content["sender"].as_str(),
            content["type"].as_str(),
            content["message_id"].as_str(),
            content["messages"].as_object(),
        ) else {
            return Err(ApiError::bad_json("Malformed m.direct_to_device"));
        };
        if server_of(sender) != origin {
            return Err(ApiError::forbidden("The sender is not a user of the sending server"));
        }
        let local: Map<String, Value> = messages
            .iter()
            .filter(|(user, _)| server_of(user) == self.server_name && ruma::UserId::parse(user.as_str()).is_ok())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Remote senders have no device here: the message id alone makes the delivery unique.
        self.deliver((sender, ""), &format!("fed:{message_id}"), event_type, &local).await
    }

    /// Stores messages for this server's devices (`*`: all of a user's devices), once per
    /// (sender, device, txn id).
    async fn deliver(
        &self,
        (sender, sender_device): (&str, &str),
        txn_id: &str,
        event_type: &str,
        messages: &Map<String, Value>,
    ) -> ApiResult<()> {
        let mut deliveries = Vec::new();
        let mut recipients = Vec::new();
        for (user_id, devices) in messages {
            let Value::Object(devices) = devices else {
                return Err(ApiError::bad_json("messages must map user ids to device ids to content"));
            };
            let known: Vec<String> = self.db.devices(user_id).await?.into_iter().map(|d| d.device_id).collect();
            for (device_id, content) in devices {
                if !content.is_object() {
                    return Err(ApiError::bad_json("Message content must be an object"));
                }
                let content = serde_json::to_string(content).map_err(ApiError::internal)?;
                let targets: Vec<&String> = if device_id == "*" {
                    known.iter().collect()
                } else {
                    known.iter().filter(|d| *d == device_id).collect()
                };
                for target in targets {
                    deliveries.push((user_id.clone(), target.clone(), content.clone()));
                }
            }
            recipients.push(user_id.clone());
        }
        if deliveries.len() > MAX_DELIVERIES {
            return Err(ApiError::invalid_param(format!("At most {MAX_DELIVERIES} devices per request")));
        }
        // Known inboxes first, so the set exists before any message is stored.
        self.may_hold(sender, sender_device).await?;
        let slot = self.streams.begin().await;
        let stored =
            self.db.store_to_device((sender, sender_device), txn_id, event_type, &deliveries, slot.position()).await?;
        if stored && !deliveries.is_empty() {
            if let Some(occupied) = self.occupied.lock().expect("inbox lock").as_mut() {
                occupied.extend(deliveries.iter().map(|(user, device, _)| (user.clone(), device.clone())));
            }
            let scope: Vec<Scope<'_>> = recipients.iter().map(|user| Scope::User(user.as_str())).collect();
            slot.committed(&scope);
        }
        Ok(())
    }

    /// The device's messages for a sync from `since` to `now`: what it received up to `since`
    /// is deleted first (syncing from a token acknowledges everything before it).
    pub async fn for_sync(
        &self,
        user_id: &str,
        device_id: &str,
        since: Option<i64>,
        now: i64,
    ) -> ApiResult<Vec<Value>> {
        if !self.may_hold(user_id, device_id).await? {
            return Ok(Vec::new());
        }
        if let Some(since) = since {
            self.db.acknowledge_to_device(user_id, device_id, since).await?;
        }
        let messages = self.db.to_device_messages(user_id, device_id, since.unwrap_or(0), now).await?;
        if messages.is_empty() {
            // Empty now? Decided under the writer, so a message stored meanwhile keeps its mark.
            let _quiet = self.streams.hold().await;
            if self.db.to_device_messages(user_id, device_id, 0, i64::MAX).await?.is_empty()
                && let Some(occupied) = self.occupied.lock().expect("inbox lock").as_mut()
            {
                occupied.remove(&(user_id.to_owned(), device_id.to_owned()));
            }
        }
        Ok(messages
            .into_iter()
            .map(|m| {
                let content: Value = serde_json::from_str(&m.content).unwrap_or_default();
                json!({"sender": m.sender, "type": m.event_type, "content": content})
            })
            .collect())
    }

    /// Whether the device has messages in (`since`, `now`].
    pub async fn pending(&self, user_id: &str, device_id: &str, since: i64, now: i64) -> ApiResult<bool> {
        Ok(self.may_hold(user_id, device_id).await?
            && !self.db.to_device_messages(user_id, device_id, since, now).await?.is_empty())
    }
}
