//! Dehydrated devices (MSC3814, `/_matrix/client/unstable/org.matrix.msc3814.v1`): a client
//! leaves an encrypted device in the account that keeps receiving room keys while the user has
//! no device logged in; a new login takes it over and reads its to-device messages. The server
//! holds the device's public keys like any device's and `device_data` as an opaque blob.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{device_lists::DeviceLists, keys::Keys};
use crate::{
    error::{ApiError, ApiResult},
    storage::Db,
};

pub struct DehydratedDevices {
    db: Db,
    device_lists: Arc<DeviceLists>,
}

/// Messages per page of POST /dehydrated_device/{deviceId}/events.
const PAGE: i64 = 100;

impl DehydratedDevices {
    pub fn new(db: Db, device_lists: Arc<DeviceLists>) -> Self {
        Self { db, device_lists }
    }

    /// PUT /dehydrated_device: replaces the user's dehydrated device, with its keys.
    pub async fn put(&self, keys: &Keys, user_id: &str, body: &Value) -> ApiResult<Value> {
        let device_id = body
            .get("device_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control))
            .ok_or_else(|| ApiError::bad_json("device_id is required"))?;
        let device_data = body
            .get("device_data")
            .filter(|d| d.is_object())
            .ok_or_else(|| ApiError::bad_json("device_data must be an object"))?;
        let display_name = body.get("initial_device_display_name").and_then(Value::as_str);
        if self.db.device(user_id, device_id).await?.is_some()
            && self.db.dehydrated_device(user_id).await?.is_none_or(|(current, _)| current != device_id)
        {
            return Err(ApiError::invalid_param("A device with this id already exists"));
        }
        let data = serde_json::to_string(device_data).map_err(ApiError::internal)?;
        if let Some(previous) = self.db.set_dehydrated_device(user_id, device_id, display_name, &data).await? {
            self.db.delete_devices(user_id, &[previous]).await?;
        }
        keys.upload(user_id, device_id, body).await?;
        self.device_lists.changed(user_id).await?;
        Ok(json!({"device_id": device_id}))
    }

    /// GET /dehydrated_device
    pub async fn get(&self, user_id: &str) -> ApiResult<Value> {
        let (device_id, data) = self.current(user_id).await?;
        Ok(json!({"device_id": device_id, "device_data": serde_json::from_str::<Value>(&data).unwrap_or_default()}))
    }

    /// DELETE /dehydrated_device
    pub async fn delete(&self, user_id: &str) -> ApiResult<Value> {
        let (device_id, _) = self.current(user_id).await?;
        self.db.forget_dehydrated_device(user_id).await?;
        self.db.delete_devices(user_id, std::slice::from_ref(&device_id)).await?;
        self.device_lists.changed(user_id).await?;
        Ok(json!({"device_id": device_id}))
    }

    /// The dehydrated device's to-device messages, a page at a time. Unlike /sync nothing is
    /// deleted (the MSC asks so: a rehydration that fails halfway can start again). Two forms
    /// are in use: POST with `next_batch` in the body (the MSC's text, Synapse), where the last
    /// page is followed by an empty one that still carries a token, and GET with `?from=`
    /// (matrix-js-sdk), where the last page has no `next_batch`.
    pub async fn events(
        &self,
        user_id: &str,
        device_id: &str,
        next_batch: Option<&str>,
        end_without_token: bool,
    ) -> ApiResult<Value> {
        let (current, _) = self.current(user_id).await?;
        if current != device_id {
            return Err(ApiError::forbidden("This is not your dehydrated device"));
        }
        let after = match next_batch {
            None => (0, -1),
            Some(token) => parse_token(token).ok_or_else(|| ApiError::invalid_param("Invalid next_batch"))?,
        };
        let page = self.db.to_device_page(user_id, device_id, after, PAGE).await?;
        let finished = (page.len() as i64) < PAGE;
        let last = page.last().map_or(after, |(stream, seq, ..)| (*stream, *seq));
        let events: Vec<Value> = page
            .into_iter()
            .map(|(_, _, sender, event_type, content)| {
                json!({"sender": sender, "type": event_type, "content": serde_json::from_str::<Value>(&content).unwrap_or_default()})
            })
            .collect();
        if end_without_token && finished {
            return Ok(json!({"events": events}));
        }
        Ok(json!({"events": events, "next_batch": format!("d{}_{}", last.0, last.1)}))
    }

    async fn current(&self, user_id: &str) -> ApiResult<(String, String)> {
        self.db.dehydrated_device(user_id).await?.ok_or_else(|| ApiError::not_found("No dehydrated device"))
    }
}

fn parse_token(token: &str) -> Option<(i64, i64)> {
    let (stream, seq) = token.strip_prefix('d')?.split_once('_')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}
