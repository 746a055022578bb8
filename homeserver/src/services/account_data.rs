//! Account data (spec: Client-Server API § Client Config, § Room Tagging): arbitrary JSON a
//! client stores per user, globally or per room — m.direct, tags, m.ignored_user_list ("block").

use std::sync::Arc;

use serde_json::{Map, Value};

use super::sync::{notifier::Scope, stream_writer::StreamWriter};
use crate::{
    error::{ApiError, ApiResult},
    storage::Db,
};

pub struct AccountData {
    db: Db,
    streams: Arc<StreamWriter>,
    /// Each user's ignore list, read by every /sync and /messages: kept in memory once read,
    /// replaced whenever the user writes m.ignored_user_list.
    ignored: std::sync::Mutex<std::collections::HashMap<String, Arc<Vec<String>>>>,
    /// The event writer's copy of users' push rules, forgotten when they change.
    push_rules: Arc<crate::services::push::evaluate::PushRuleCache>,
}

/// Types the server manages itself; clients use the dedicated endpoints instead.
const SERVER_MANAGED: &[&str] = &["m.fully_read", "m.push_rules"];

impl AccountData {
    pub fn new(
        db: Db,
        streams: Arc<StreamWriter>,
        push_rules: Arc<crate::services::push::evaluate::PushRuleCache>,
    ) -> Self {
        Self { db, streams, ignored: Default::default(), push_rules }
    }

    async fn check_room(&self, user_id: &str, room_id: Option<&str>) -> ApiResult<()> {
        if let Some(room_id) = room_id {
            ruma::RoomId::parse(room_id).map_err(|_| ApiError::invalid_param("Invalid room id"))?;
            if self.db.membership(room_id, user_id).await?.is_none() {
                return Err(ApiError::forbidden("You are not in this room"));
            }
        }
        Ok(())
    }

    /// PUT account data. `room_id` None means global.
    pub async fn set(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: Map<String, Value>,
    ) -> ApiResult<()> {
        if SERVER_MANAGED.contains(&data_type) {
            return Err(ApiError::bad_json(format!("{data_type} cannot be set through the account data API")));
        }
        self.check_room(user_id, room_id).await?;
        self.write(user_id, room_id, data_type, &Value::Object(content)).await
    }

    /// Writes any type (also the server-managed ones) at the next stream position.
    pub(crate) async fn write(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: &Value,
    ) -> ApiResult<()> {
        let json = serde_json::to_string(content).map_err(ApiError::internal)?;
        let slot = self.streams.begin().await;
        self.db.set_account_data(user_id, room_id.unwrap_or(""), data_type, &json, slot.position()).await?;
        if room_id.is_none() && data_type == "m.ignored_user_list" {
            self.ignored.lock().expect("ignored lock").remove(user_id);
        }
        if room_id.is_none() && data_type == "m.push_rules" {
            // Still holding the stream, as the writer does when it fills the cache.
            self.push_rules.forget(user_id);
        }
        slot.committed(&[Scope::User(user_id)]);
        Ok(())
    }

    pub async fn get(&self, user_id: &str, room_id: Option<&str>, data_type: &str) -> ApiResult<Value> {
        self.check_room(user_id, room_id).await?;
        match self.db.account_data(user_id, room_id.unwrap_or(""), data_type).await? {
            Some(json) => serde_json::from_str(&json).map_err(ApiError::internal),
            None => Err(ApiError::not_found("Account data not found")),
        }
    }

    /// The room's `m.tag` content (`{"tags": {...}}`), empty when unset.
    pub async fn tags(&self, user_id: &str, room_id: &str) -> ApiResult<Value> {
        match self.get(user_id, Some(room_id), "m.tag").await {
            Ok(value) => Ok(value),
            Err(error) if matches!(error.kind, crate::error::ErrorKind::NotFound) => {
                Ok(serde_json::json!({"tags": {}}))
            }
            Err(error) => Err(error),
        }
    }

    pub async fn set_tag(&self, user_id: &str, room_id: &str, tag: &str, info: Map<String, Value>) -> ApiResult<()> {
        if tag.is_empty() || tag.len() > 255 {
            return Err(ApiError::invalid_param("Invalid tag"));
        }
        if let Some(order) = info.get("order")
            && !order.is_number()
        {
            return Err(ApiError::bad_json("order must be a number"));
        }
        let mut tags = self.tags(user_id, room_id).await?;
        tags["tags"][tag] = Value::Object(info);
        self.write(user_id, Some(room_id), "m.tag", &tags).await
    }

    pub async fn delete_tag(&self, user_id: &str, room_id: &str, tag: &str) -> ApiResult<()> {
        let mut tags = self.tags(user_id, room_id).await?;
        if let Some(map) = tags["tags"].as_object_mut() {
            map.remove(tag);
        }
        self.write(user_id, Some(room_id), "m.tag", &tags).await
    }

    /// The users this user ignores (m.ignored_user_list): their events and invites are hidden.
    pub async fn ignored_users(&self, user_id: &str) -> ApiResult<Arc<Vec<String>>> {
        if let Some(list) = self.ignored.lock().expect("ignored lock").get(user_id) {
            return Ok(list.clone());
        }
        let list: Vec<String> = match self.db.account_data(user_id, "", "m.ignored_user_list").await? {
            Some(json) => {
                let value: Value = serde_json::from_str(&json).unwrap_or_default();
                value["ignored_users"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let list = Arc::new(list);
        let mut cache = self.ignored.lock().expect("ignored lock");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), list.clone());
        Ok(list)
    }
}
