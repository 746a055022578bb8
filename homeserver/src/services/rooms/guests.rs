//! Guests in rooms (spec: Client-Server API § Guest access, "Server behaviour"): a guest may
//! join only a room whose `m.room.guest_access` is `can_join`, and when a room stops allowing
//! guests, the guests in it leave.

use serde_json::Value;

use super::{NewEvent, Rooms};
use crate::error::{ApiError, ApiResult};

impl Rooms {
    /// Whether the room currently lets guests join.
    pub(super) async fn allows_guests(&self, room_id: &str) -> ApiResult<bool> {
        let Some(event) = self.db.current_state_event(room_id, "m.room.guest_access", "").await? else {
            return Ok(false);
        };
        let parsed: Value = serde_json::from_str(&event.json).unwrap_or_default();
        Ok(parsed["content"]["guest_access"] == "can_join")
    }

    /// M_FORBIDDEN unless a guest may join the room.
    pub(super) async fn check_guest_may_join(&self, room_id: &str) -> ApiResult<()> {
        if self.allows_guests(room_id).await? {
            Ok(())
        } else {
            Err(ApiError::forbidden("Guest access is not allowed in this room"))
        }
    }

    /// PUT /rooms/{roomId}/state/...: appends a state event; a guest access change that
    /// closes the room to guests makes the guests in it leave.
    pub async fn set_state(
        &self,
        sender: &str,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> ApiResult<String> {
        if event_type == super::encryption::ENCRYPTION && state_key.is_empty() {
            self.check_encryption_kept(room_id, &content).await?;
        }
        let closes_to_guests = event_type == "m.room.guest_access" && content["guest_access"] != "can_join";
        let event_id = self
            .append(NewEvent { room_id, sender, event_type, state_key: Some(state_key), content, transaction: None })
            .await?;
        if closes_to_guests {
            let joined = self.db.room_members(room_id, "join").await?;
            for guest in self.db.guests_among(&joined).await? {
                // As Synapse does: the guest leaves by itself, which the auth rules always allow.
                let content = serde_json::json!({"membership": "leave"});
                if let Err(error) = self.append_member(&guest, room_id, &guest, content).await {
                    tracing::warn!(%room_id, ?error, "could not remove a guest from a room closed to guests");
                }
            }
        }
        Ok(event_id)
    }
}
