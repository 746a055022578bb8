//! The part of an event the authorization rules read, without the signed JSON it came in.
//!
//! A `Pdu` keeps the whole signed event as a canonical JSON tree (a few KiB per event); the
//! homeserver keeps each room's current auth-relevant state in memory, one event per member who
//! ever sent, so it keeps this smaller view instead: one member event costs a few hundred bytes
//! rather than about 4.5 KiB.

use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId,
    events::TimelineEventType, state_res::Event,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::Pdu;

/// What `ruma::state_res::Event` exposes of an event, owned.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    pub(crate) event_id: OwnedEventId,
    pub(crate) room_id: Option<OwnedRoomId>,
    pub(crate) sender: OwnedUserId,
    pub(crate) origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub(crate) event_type: TimelineEventType,
    pub(crate) content: Box<RawJsonValue>,
    pub(crate) state_key: Option<String>,
    pub(crate) prev_events: Vec<OwnedEventId>,
    pub(crate) auth_events: Vec<OwnedEventId>,
    pub(crate) redacts: Option<OwnedEventId>,
}

impl AuthEvent {
    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }

    pub fn sender(&self) -> &UserId {
        &self.sender
    }

    pub fn content_json(&self) -> &RawJsonValue {
        &self.content
    }

    pub fn event_type_str(&self) -> String {
        self.event_type.to_string()
    }

    pub fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
}

impl From<Pdu> for AuthEvent {
    /// Keeps the fields and drops the signed JSON.
    fn from(pdu: Pdu) -> Self {
        pdu.into_auth_event()
    }
}

impl From<&Pdu> for AuthEvent {
    fn from(pdu: &Pdu) -> Self {
        pdu.auth_event().clone()
    }
}

impl Event for AuthEvent {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.event_type
    }
    fn content(&self) -> &RawJsonValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        false
    }
}
