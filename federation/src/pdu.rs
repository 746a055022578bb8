//! PDUs: building, hashing and signing a new event of a room version, computing its event id
//! (reference hash), and a parsed view that ruma's authorization rules read through the
//! `ruma::state_res::Event` trait.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId,
    OwnedUserId, RoomId, UInt, UserId, events::TimelineEventType, room_version_rules::RoomVersionRules,
    state_res::Event,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("cannot hash or sign the event: {0}")]
    Signing(String),
}

/// A parsed, signed PDU. `json` is the event exactly as signed (what federation sends).
#[derive(Debug, Clone)]
pub struct Pdu {
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
    depth: u64,
    json: CanonicalJsonObject,
}

/// What a new event is made of, before hashing and signing.
pub struct NewPdu<'a> {
    /// None only for the create event of a room version whose room id is its hash (v12).
    pub room_id: Option<&'a RoomId>,
    pub sender: &'a UserId,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub content: CanonicalJsonObject,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub depth: u64,
    pub origin_server_ts: u64,
    /// For m.room.redaction in room versions that keep `redacts` at the top level (< v11).
    pub redacts: Option<&'a EventId>,
}

fn ids(values: &[OwnedEventId]) -> CanonicalJsonValue {
    CanonicalJsonValue::Array(values.iter().map(|id| CanonicalJsonValue::String(id.to_string())).collect())
}

fn integer(value: u64) -> Result<CanonicalJsonValue, PduError> {
    let value = ruma::Int::try_from(value).map_err(|_| PduError::Malformed("integer out of range".into()))?;
    Ok(CanonicalJsonValue::Integer(value))
}

impl Pdu {
    /// Builds the PDU, adds its content hash, signs it as `server_name`, and computes its event
    /// id (and, for v12 create events, its room id) from the reference hash.
    pub fn build_and_sign(
        new: NewPdu<'_>,
        rules: &RoomVersionRules,
        server_name: &str,
        key: &SigningKey,
    ) -> Result<Self, PduError> {
        let mut object = CanonicalJsonObject::new();
        object.insert("auth_events".into(), ids(&new.auth_events));
        object.insert("content".into(), CanonicalJsonValue::Object(new.content));
        object.insert("depth".into(), integer(new.depth)?);
        object.insert("origin_server_ts".into(), integer(new.origin_server_ts)?);
        object.insert("prev_events".into(), ids(&new.prev_events));
        object.insert("sender".into(), CanonicalJsonValue::String(new.sender.to_string()));
        object.insert("type".into(), CanonicalJsonValue::String(new.event_type.to_owned()));
        if let Some(room_id) = new.room_id {
            object.insert("room_id".into(), CanonicalJsonValue::String(room_id.to_string()));
        }
        if let Some(state_key) = new.state_key {
            object.insert("state_key".into(), CanonicalJsonValue::String(state_key.to_owned()));
        }
        if let Some(redacts) = new.redacts
            && !rules.redaction.content_field_redacts
        {
            object.insert("redacts".into(), CanonicalJsonValue::String(redacts.to_string()));
        }
        key.hash_and_sign_event(server_name, &mut object, rules).map_err(PduError::Signing)?;
        let hash = ruma::signatures::reference_hash(&object, rules).map_err(|e| PduError::Signing(e.to_string()))?;
        let event_id = EventId::parse(format!("${hash}")).map_err(|e| PduError::Malformed(e.to_string()))?;
        Self::from_signed(event_id, object, rules)
    }

    /// Parses a signed PDU whose event id is already known.
    pub fn from_signed(
        event_id: OwnedEventId,
        json: CanonicalJsonObject,
        rules: &RoomVersionRules,
    ) -> Result<Self, PduError> {
        let text = |key: &str| match json.get(key) {
            Some(CanonicalJsonValue::String(s)) => Ok(s.clone()),
            _ => Err(PduError::Malformed(format!("`{key}` must be a string"))),
        };
        let id_list = |key: &str| -> Result<Vec<OwnedEventId>, PduError> {
            match json.get(key) {
                Some(CanonicalJsonValue::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        CanonicalJsonValue::String(id) => {
                            EventId::parse(id.as_str()).map_err(|e| PduError::Malformed(format!("`{key}`: {e}")))
                        }
                        _ => Err(PduError::Malformed(format!("`{key}` must hold event ids"))),
                    })
                    .collect(),
                _ => Err(PduError::Malformed(format!("`{key}` must be an array"))),
            }
        };
        let unsigned_int = |key: &str| match json.get(key) {
            Some(CanonicalJsonValue::Integer(value)) => {
                u64::try_from(i64::from(*value)).map_err(|_| PduError::Malformed(format!("`{key}` is negative")))
            }
            _ => Err(PduError::Malformed(format!("`{key}` must be an integer"))),
        };
        let content = match json.get("content") {
            Some(content @ CanonicalJsonValue::Object(_)) => content.clone(),
            _ => return Err(PduError::Malformed("`content` must be an object".into())),
        };
        let content = serde_json::value::to_raw_value(&content).map_err(|e| PduError::Malformed(e.to_string()))?;
        let room_id = match json.get("room_id") {
            Some(CanonicalJsonValue::String(id)) => {
                Some(RoomId::parse(id.as_str()).map_err(|e| PduError::Malformed(format!("`room_id`: {e}")))?)
            }
            None => None,
            _ => return Err(PduError::Malformed("`room_id` must be a string".into())),
        };
        let state_key = match json.get("state_key") {
            Some(CanonicalJsonValue::String(key)) => Some(key.clone()),
            None => None,
            _ => return Err(PduError::Malformed("`state_key` must be a string".into())),
        };
        let redacts_value = if rules.redaction.content_field_redacts {
            match json.get("content") {
                Some(CanonicalJsonValue::Object(content)) => content.get("redacts").cloned(),
                _ => None,
            }
        } else {
            json.get("redacts").cloned()
        };
        let redacts = match redacts_value {
            Some(CanonicalJsonValue::String(id)) => EventId::parse(id.as_str()).ok(),
            _ => None,
        };
        let origin_server_ts = MilliSecondsSinceUnixEpoch(
            UInt::try_from(unsigned_int("origin_server_ts")?)
                .map_err(|_| PduError::Malformed("bad timestamp".into()))?,
        );
        Ok(Self {
            sender: UserId::parse(text("sender")?).map_err(|e| PduError::Malformed(format!("`sender`: {e}")))?,
            event_type: TimelineEventType::from(text("type")?),
            prev_events: id_list("prev_events")?,
            auth_events: id_list("auth_events")?,
            depth: unsigned_int("depth")?,
            event_id,
            room_id,
            origin_server_ts,
            content,
            state_key,
            redacts,
            json,
        })
    }

    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }

    /// The room id: the `room_id` field, or for a v12 create event the id derived from its hash.
    pub fn room_id_or_derived(&self) -> Option<OwnedRoomId> {
        self.room_id.clone().or_else(|| RoomId::new_v2(self.event_id.as_str().trim_start_matches('$')).ok())
    }

    pub fn sender(&self) -> &UserId {
        &self.sender
    }

    pub fn kind(&self) -> &TimelineEventType {
        &self.event_type
    }

    pub fn event_type_str(&self) -> String {
        self.event_type.to_string()
    }

    pub fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    pub fn depth(&self) -> u64 {
        self.depth
    }

    pub fn origin_server_ts(&self) -> u64 {
        self.origin_server_ts.get().into()
    }

    pub fn redacts(&self) -> Option<&EventId> {
        self.redacts.as_deref()
    }

    pub fn content_json(&self) -> &RawJsonValue {
        &self.content
    }

    /// The signed event as canonical JSON.
    pub fn json(&self) -> &CanonicalJsonObject {
        &self.json
    }
}

impl Event for Pdu {
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
