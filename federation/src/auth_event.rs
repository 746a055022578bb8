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
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    event_type: TimelineEventType,
    content: Box<RawJsonValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
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
        Self {
            event_id: pdu.event_id,
            room_id: pdu.room_id,
            sender: pdu.sender,
            origin_server_ts: pdu.origin_server_ts,
            event_type: pdu.event_type,
            content: pdu.content,
            state_key: pdu.state_key,
            prev_events: pdu.prev_events,
            auth_events: pdu.auth_events,
            redacts: pdu.redacts,
        }
    }
}

impl From<&Pdu> for AuthEvent {
    fn from(pdu: &Pdu) -> Self {
        Self {
            event_id: pdu.event_id.clone(),
            room_id: pdu.room_id.clone(),
            sender: pdu.sender.clone(),
            origin_server_ts: pdu.origin_server_ts,
            event_type: pdu.event_type.clone(),
            content: pdu.content.clone(),
            state_key: pdu.state_key.clone(),
            prev_events: pdu.prev_events.clone(),
            auth_events: pdu.auth_events.clone(),
            redacts: pdu.redacts.clone(),
        }
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
