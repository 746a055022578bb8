//! Rooms: creation, events, membership and the reads that check who may see what. Every event
//! reaches storage through `writer.rs`, the single event writer.

pub mod context;
pub mod create;
pub mod directory;
pub mod format;
mod guests;
pub mod history;
pub mod membership;
pub mod read;
mod redact;
pub mod relations;
pub mod search;
mod writer;

use std::sync::Arc;

use hearth_federation::{Pdu, SigningKey, room_versions::rules_for};
use ruma::{EventId, room_version_rules::RoomVersionRules};

use crate::{
    error::{ApiError, ApiResult},
    services::sync::{Notifier, stream_writer::StreamWriter},
    storage::{Db, rooms::StoredEvent},
};

pub use writer::NewEvent;

pub struct Rooms {
    db: Db,
    signing_key: Arc<SigningKey>,
    server_name: String,
    default_version: String,
    /// Building an event (prev_events, auth_events), checking it and committing it all happen
    /// while holding a stream slot, so events are appended one at a time in position order.
    streams: Arc<StreamWriter>,
    /// Room versions by room id (immutable once the room exists).
    versions: std::sync::Mutex<std::collections::HashMap<String, RoomVersionRules>>,
    /// Each room's history visibility changes, read on every timeline; the writer sets a
    /// room's entry when a new m.room.history_visibility event commits.
    history_settings: std::sync::Mutex<std::collections::HashMap<String, history::SettingChanges>>,
}

impl Rooms {
    pub fn new(
        db: Db,
        signing_key: Arc<SigningKey>,
        server_name: String,
        default_version: String,
        streams: Arc<StreamWriter>,
    ) -> Self {
        Self {
            db,
            signing_key,
            server_name,
            default_version,
            streams,
            versions: Default::default(),
            history_settings: Default::default(),
        }
    }

    pub fn notifier(&self) -> &Notifier {
        self.streams.notifier()
    }

    /// The room's version rules, or M_NOT_FOUND for a room this server does not know.
    pub async fn rules(&self, room_id: &str) -> ApiResult<RoomVersionRules> {
        // A room's version never changes, so it is read from storage once per room.
        if let Some(rules) = self.versions.lock().expect("versions lock").get(room_id) {
            return Ok(rules.clone());
        }
        let version = self.db.room_version(room_id).await?.ok_or_else(|| ApiError::not_found("Unknown room"))?;
        let rules = rules_for(&version)
            .ok_or_else(|| ApiError::internal(format_args!("room {room_id} has unsupported version {version}")))?;
        self.versions.lock().expect("versions lock").insert(room_id.to_owned(), rules.clone());
        Ok(rules)
    }
}

/// Parses a stored event back into a PDU (for authorization checks).
pub(crate) fn parse_stored(event: &StoredEvent, rules: &RoomVersionRules) -> ApiResult<Pdu> {
    let value: serde_json::Value = serde_json::from_str(&event.json).map_err(ApiError::internal)?;
    let object = hearth_federation::to_canonical_object(value).map_err(ApiError::internal)?;
    let event_id = EventId::parse(event.event_id.as_str()).map_err(ApiError::internal)?;
    Pdu::from_signed(event_id, object, rules).map_err(ApiError::internal)
}
