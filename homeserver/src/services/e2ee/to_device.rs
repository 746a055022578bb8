//! Send-to-device messaging (spec: Client-Server API § Send-to-Device messaging): messages for
//! specific devices (or `*`, all of a user's devices), stored in each device's inbox at one
//! stream position, delivered in /sync `to_device` and deleted when the device acknowledges them
//! by syncing with a later token.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{
    error::{ApiError, ApiResult},
    services::sync::{notifier::Scope, stream_writer::StreamWriter},
    storage::Db,
};

pub struct ToDevice {
    db: Db,
    streams: Arc<StreamWriter>,
    server_name: String,
}

/// The most devices one request may address.
const MAX_DELIVERIES: usize = 10_000;

impl ToDevice {
    pub fn new(db: Db, streams: Arc<StreamWriter>, server_name: String) -> Self {
        Self { db, streams, server_name }
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
        let mut deliveries = Vec::new();
        let mut recipients = Vec::new();
        for (user_id, devices) in messages {
            let Value::Object(devices) = devices else {
                return Err(ApiError::bad_json("messages must map user ids to device ids to content"));
            };
            if ruma::UserId::parse(user_id).is_err() {
                return Err(ApiError::invalid_param(format!("Invalid user id {user_id}")));
            }
            if user_id.rsplit_once(':').is_none_or(|(_, server)| server != self.server_name) {
                // Other servers' devices are reached through federation, which arrives later.
                tracing::debug!("to-device message for a remote user dropped");
                continue;
            }
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
        let slot = self.streams.begin().await;
        let stored =
            self.db.store_to_device((sender, sender_device), txn_id, event_type, &deliveries, slot.position()).await?;
        if stored && !deliveries.is_empty() {
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
        if let Some(since) = since {
            self.db.acknowledge_to_device(user_id, device_id, since).await?;
        }
        let messages = self.db.to_device_messages(user_id, device_id, since.unwrap_or(0), now).await?;
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
        Ok(!self.db.to_device_messages(user_id, device_id, since, now).await?.is_empty())
    }
}
