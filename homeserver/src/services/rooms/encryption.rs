//! Once a room is encrypted it stays encrypted (spec: § Enabling end-to-end encryption — clients
//! must not be tricked into sending plaintext): `m.room.encryption` may be sent again only with
//! the same algorithm, and cannot be redacted (redaction would strip its algorithm).

use serde_json::Value;

use super::Rooms;
use crate::error::{ApiError, ApiResult};

pub const ENCRYPTION: &str = "m.room.encryption";

impl Rooms {
    /// M_FORBIDDEN when `content` would turn off or change the room's encryption.
    pub(super) async fn check_encryption_kept(&self, room_id: &str, content: &Value) -> ApiResult<()> {
        let Some(current) = self.db.current_state_event(room_id, ENCRYPTION, "").await? else {
            return Ok(());
        };
        let current: Value = serde_json::from_str(&current.json).unwrap_or_default();
        match current["content"]["algorithm"].as_str() {
            Some(algorithm) if content["algorithm"].as_str() != Some(algorithm) => {
                Err(ApiError::forbidden("Encryption cannot be turned off or changed once a room is encrypted"))
            }
            _ => Ok(()),
        }
    }
}
