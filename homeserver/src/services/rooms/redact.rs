//! Redaction ("delete for everyone"): the authorization rules let anyone on the sender's server
//! redact, so the server also checks, as the spec requires of it, that the redactor sent the
//! original event or holds the room's `redact` power level.

use serde_json::{Value, json};

use super::{NewEvent, Rooms};
use crate::error::{ApiError, ApiResult};

impl Rooms {
    pub async fn redact(
        &self,
        sender: &str,
        device: &str,
        room_id: &str,
        event_id: &str,
        txn_id: &str,
        reason: Option<&str>,
    ) -> ApiResult<String> {
        self.rules(room_id).await?;
        self.visibility(sender, room_id).await?;
        let target = self
            .db
            .event(event_id)
            .await?
            .filter(|e| e.room_id == room_id)
            .ok_or_else(|| ApiError::not_found("Event not found"))?;
        if target.sender != sender
            && self.power_level(room_id, sender).await? < self.required_level(room_id, "redact", 50).await?
        {
            return Err(ApiError::forbidden("You may only redact your own events"));
        }
        if target.event_type == super::encryption::ENCRYPTION && target.state_key.as_deref() == Some("") {
            return Err(ApiError::forbidden("A room's encryption cannot be redacted"));
        }
        // The writer moves `redacts` to the top level for versions before v11.
        let mut content = json!({"redacts": event_id});
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        self.append(NewEvent {
            room_id,
            sender,
            event_type: "m.room.redaction",
            state_key: None,
            content,
            transaction: Some((device, txn_id)),
        })
        .await
    }

    /// A user's power level: creators of v12 rooms are unlimited, otherwise m.room.power_levels.
    pub async fn power_level(&self, room_id: &str, user_id: &str) -> ApiResult<i64> {
        let rules = self.rules(room_id).await?;
        if rules.authorization.explicitly_privilege_room_creators
            && let Some(create) = self.db.current_state_event(room_id, "m.room.create", "").await?
        {
            let parsed: Value = serde_json::from_str(&create.json).unwrap_or_default();
            let additional = parsed["content"]["additional_creators"].as_array().cloned().unwrap_or_default();
            if create.sender == user_id || additional.iter().any(|c| c == user_id) {
                return Ok(i64::MAX);
            }
        }
        let levels = self.power_levels_content(room_id).await?;
        Ok(levels["users"][user_id].as_i64().or_else(|| levels["users_default"].as_i64()).unwrap_or(0))
    }

    /// A named level from m.room.power_levels (`kick`, `ban`, `redact`...), with the spec default.
    pub async fn required_level(&self, room_id: &str, name: &str, default: i64) -> ApiResult<i64> {
        Ok(self.power_levels_content(room_id).await?[name].as_i64().unwrap_or(default))
    }

    pub(super) async fn power_levels_content(&self, room_id: &str) -> ApiResult<Value> {
        Ok(match self.db.current_state_event(room_id, "m.room.power_levels", "").await? {
            Some(event) => serde_json::from_str::<Value>(&event.json).unwrap_or_default()["content"].clone(),
            None => json!({}),
        })
    }
}
