//! Rooms: creation, events, membership and the reads that check who may see what. Every event
//! reaches storage through `writer.rs`, the single event writer.

pub mod context;
pub mod create;
pub mod directory;
mod encryption;
pub mod federated;
pub mod format;
mod gaps;
mod guests;
mod heads;
mod hierarchy;
pub mod history;
pub mod membership;
mod memberships;
mod notify;
mod out_of_band;
pub mod read;
mod recent;
mod redact;
mod references;
pub mod relations;
pub mod search;
pub mod server_acl;
mod state_resolution;
pub mod unread;
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
    /// Each user's memberships (see `memberships.rs`).
    memberships: memberships::MembershipCache,
    /// Each room's newest events (see `recent.rs`).
    recent: recent::RecentEvents,
    /// Unread counts per user and room (see `unread.rs`).
    unread: unread::UnreadCounts,
    /// Each room's extremities and auth state for the writer (see `heads.rs`).
    heads: heads::RoomHeads,
    /// Users' push rules, shared with account data (which clears an entry when they change).
    push_rules: Arc<crate::services::push::evaluate::PushRuleCache>,
    /// Requests to other servers (remote aliases, joins).
    federation: Arc<crate::services::federation::FederationClient>,
    /// Delivers committed events to the other servers in the room.
    federation_sender: Arc<crate::services::federation::FederationSender>,
    /// Other servers' keys, for checking the events they send.
    remote_keys: Arc<crate::services::federation::RemoteKeys>,
}

/// What rooms need to span servers.
pub struct RoomFederation {
    pub client: Arc<crate::services::federation::FederationClient>,
    pub sender: Arc<crate::services::federation::FederationSender>,
    pub keys: Arc<crate::services::federation::RemoteKeys>,
}

impl Rooms {
    pub fn new(
        db: Db,
        signing_key: Arc<SigningKey>,
        server_name: String,
        default_version: String,
        streams: Arc<StreamWriter>,
        push_rules: Arc<crate::services::push::evaluate::PushRuleCache>,
        federation: RoomFederation,
    ) -> Self {
        Self {
            db,
            signing_key,
            server_name,
            default_version,
            streams,
            versions: Default::default(),
            history_settings: Default::default(),
            memberships: Default::default(),
            recent: Default::default(),
            unread: Default::default(),
            heads: Default::default(),
            push_rules,
            federation: federation.client,
            federation_sender: federation.sender,
            remote_keys: federation.keys,
        }
    }

    /// The transaction id of a recent event sent from `device` (see `recent.rs`).
    pub fn recent_transaction_id(&self, room_id: &str, event_id: &str, device: &str) -> Option<Option<String>> {
        self.recent.transaction_id(room_id, event_id, device)
    }

    pub fn notifier(&self) -> &Notifier {
        self.streams.notifier()
    }

    /// This server's name.
    pub fn server_name(&self) -> &str {
        &self.server_name
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
