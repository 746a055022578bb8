//! Device management (spec: Client-Server API § Device management).

use std::sync::Arc;

use serde_json::Value;

use super::{
    e2ee::device_lists::DeviceLists,
    uia::{self, Uia, UiaRequest},
};
use crate::{
    error::{ApiError, ApiResult},
    storage::{Db, devices::DeviceRecord},
};

pub struct Devices {
    db: Db,
    uia: Arc<Uia>,
    /// Told when devices go, so other users stop encrypting for them.
    device_lists: Arc<DeviceLists>,
}

const MAX_DISPLAY_NAME_BYTES: usize = 256;

impl Devices {
    pub fn new(db: Db, uia: Arc<Uia>, device_lists: Arc<DeviceLists>) -> Self {
        Self { db, uia, device_lists }
    }

    pub async fn list(&self, user_id: &str) -> ApiResult<Vec<DeviceRecord>> {
        Ok(self.db.devices(user_id).await?)
    }

    pub async fn get(&self, user_id: &str, device_id: &str) -> ApiResult<DeviceRecord> {
        self.db.device(user_id, device_id).await?.ok_or_else(|| ApiError::not_found("Unknown device"))
    }

    pub async fn rename(&self, user_id: &str, device_id: &str, display_name: Option<&str>) -> ApiResult<()> {
        if let Some(name) = display_name
            && (name.len() > MAX_DISPLAY_NAME_BYTES || name.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_param("Device name must be at most 256 bytes, without control characters"));
        }
        if self.db.rename_device(user_id, device_id, display_name).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("Unknown device"))
        }
    }

    /// DELETE /devices/{id} and POST /delete_devices: UIA m.login.password, then the devices and
    /// their tokens go. Unknown device ids are ignored, as the spec's bulk endpoint allows.
    pub async fn delete(&self, user_id: &str, device_ids: Vec<String>, auth: Option<&Value>) -> ApiResult<()> {
        let flows: &[&[&str]] = &[&[uia::PASSWORD]];
        let mut sorted = device_ids.clone();
        sorted.sort();
        let scope = format!("delete_devices:{user_id}:{}", sorted.join(","));
        self.uia.authenticate(auth, UiaRequest { flows, scope, user_id: Some(user_id) }).await?;
        self.db.delete_devices(user_id, &device_ids).await?;
        self.device_lists.changed_device(user_id, device_ids.first().map(String::as_str)).await
    }
}
