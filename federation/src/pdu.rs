//! PDUs: building, hashing and signing a new event of a room version, computing its event id
//! (reference hash, or for room versions 1 and 2 an id carried in the event), and a parsed view
//! that ruma's authorization rules read through the `ruma::state_res::Event` trait.

use std::collections::HashMap;

use rand::Rng;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, RoomId,
    UInt, UserId,
    events::TimelineEventType,
    room_version_rules::{EventIdFormatVersion, EventsReferenceFormatVersion, RoomVersionRules},
    state_res::Event,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::{AuthEvent, SigningKey};

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
    /// The fields the authorization rules read (also kept on their own, see `AuthEvent`).
    auth: AuthEvent,
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
    /// The sha256 content hash of each cited prev and auth event, by id. Only room versions 1
    /// and 2 cite events as `[id, {"sha256": hash}]` pairs; later versions ignore this.
    pub cited_hashes: &'a HashMap<OwnedEventId, String>,
}

/// `prev_events` or `auth_events` in the room version's format: ids (v3 and later), or
/// `[id, {"sha256": hash}]` pairs (v1, v2).
pub fn event_references(
    values: &[OwnedEventId],
    hashes: &HashMap<OwnedEventId, String>,
    rules: &RoomVersionRules,
) -> Result<CanonicalJsonValue, PduError> {
    let pairs = rules.events_reference_format == EventsReferenceFormatVersion::V1;
    let mut out = Vec::with_capacity(values.len());
    for id in values {
        let id_value = CanonicalJsonValue::String(id.to_string());
        if !pairs {
            out.push(id_value);
            continue;
        }
        let hash = hashes.get(id).ok_or_else(|| PduError::Malformed(format!("no content hash of {id}")))?;
        let mut hash_object = CanonicalJsonObject::new();
        hash_object.insert("sha256".into(), CanonicalJsonValue::String(hash.clone()));
        out.push(CanonicalJsonValue::Array(vec![id_value, CanonicalJsonValue::Object(hash_object)]));
    }
    Ok(CanonicalJsonValue::Array(out))
}

/// A new event id for room versions 1 and 2, where the sending server names its events
/// (`$opaque:server`); later versions derive the id from the event's reference hash.
pub fn new_server_event_id(server_name: &str) -> String {
    let opaque: String =
        rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(18).map(char::from).collect();
    format!("${opaque}:{server_name}")
}

/// The id of a signed event: its reference hash, or in room versions 1 and 2 the `event_id` it
/// carries.
pub fn event_id_of(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<OwnedEventId, PduError> {
    if rules.event_id_format == EventIdFormatVersion::V1 {
        return match object.get("event_id") {
            Some(CanonicalJsonValue::String(id)) => {
                EventId::parse(id.as_str()).map_err(|e| PduError::Malformed(format!("`event_id`: {e}")))
            }
            _ => Err(PduError::Malformed("events of this room version carry their `event_id`".into())),
        };
    }
    let hash = ruma::signatures::reference_hash(object, rules).map_err(|e| PduError::Signing(e.to_string()))?;
    EventId::parse(format!("${hash}")).map_err(|e| PduError::Malformed(e.to_string()))
}

fn integer(value: u64) -> Result<CanonicalJsonValue, PduError> {
    let value = ruma::Int::try_from(value).map_err(|_| PduError::Malformed("integer out of range".into()))?;
    Ok(CanonicalJsonValue::Integer(value))
}

impl Pdu {
    /// Builds the PDU, adds its content hash, signs it as `server_name`, and computes its event
    /// id (and, for v12 create events, its room id) from the reference hash; in room versions
    /// 1 and 2 the event is given a new id of `server_name` before it is signed.
    pub fn build_and_sign(
        new: NewPdu<'_>,
        rules: &RoomVersionRules,
        server_name: &str,
        key: &SigningKey,
    ) -> Result<Self, PduError> {
        let mut object = CanonicalJsonObject::new();
        object.insert("auth_events".into(), event_references(&new.auth_events, new.cited_hashes, rules)?);
        object.insert("content".into(), CanonicalJsonValue::Object(new.content));
        object.insert("depth".into(), integer(new.depth)?);
        object.insert("origin_server_ts".into(), integer(new.origin_server_ts)?);
        object.insert("prev_events".into(), event_references(&new.prev_events, new.cited_hashes, rules)?);
        if rules.event_id_format == EventIdFormatVersion::V1 {
            object.insert("event_id".into(), CanonicalJsonValue::String(new_server_event_id(server_name)));
        }
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
        let event_id = event_id_of(&object, rules)?;
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
        let pairs = rules.events_reference_format == EventsReferenceFormatVersion::V1;
        let id_list = |key: &str| -> Result<Vec<OwnedEventId>, PduError> {
            match json.get(key) {
                Some(CanonicalJsonValue::Array(items)) => items
                    .iter()
                    .map(|item| match (item, pairs) {
                        (CanonicalJsonValue::String(id), false) => {
                            EventId::parse(id.as_str()).map_err(|e| PduError::Malformed(format!("`{key}`: {e}")))
                        }
                        (CanonicalJsonValue::Array(pair), true) => match pair.as_slice() {
                            [CanonicalJsonValue::String(id), CanonicalJsonValue::Object(_)] => {
                                EventId::parse(id.as_str()).map_err(|e| PduError::Malformed(format!("`{key}`: {e}")))
                            }
                            _ => Err(PduError::Malformed(format!("`{key}` must hold [event id, hashes] pairs"))),
                        },
                        (_, true) => Err(PduError::Malformed(format!("`{key}` must hold [event id, hashes] pairs"))),
                        (_, false) => Err(PduError::Malformed(format!("`{key}` must hold event ids"))),
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
            auth: AuthEvent {
                sender: UserId::parse(text("sender")?).map_err(|e| PduError::Malformed(format!("`sender`: {e}")))?,
                event_type: TimelineEventType::from(text("type")?),
                prev_events: id_list("prev_events")?,
                auth_events: id_list("auth_events")?,
                event_id,
                room_id,
                origin_server_ts,
                content,
                state_key,
                redacts,
            },
            depth: unsigned_int("depth")?,
            json,
        })
    }

    pub fn event_id(&self) -> &EventId {
        self.auth.event_id()
    }

    /// The room id: the `room_id` field, or for a v12 create event the id derived from its hash.
    pub fn room_id_or_derived(&self) -> Option<OwnedRoomId> {
        self.auth.room_id.clone().or_else(|| RoomId::new_v2(self.auth.event_id.as_str().trim_start_matches('$')).ok())
    }

    pub fn sender(&self) -> &UserId {
        self.auth.sender()
    }

    pub fn kind(&self) -> &TimelineEventType {
        &self.auth.event_type
    }

    pub fn event_type_str(&self) -> String {
        self.auth.event_type_str()
    }

    pub fn state_key(&self) -> Option<&str> {
        self.auth.state_key()
    }

    pub fn depth(&self) -> u64 {
        self.depth
    }

    pub fn origin_server_ts(&self) -> u64 {
        self.auth.origin_server_ts.get().into()
    }

    pub fn redacts(&self) -> Option<&EventId> {
        self.auth.redacts.as_deref()
    }

    pub fn content_json(&self) -> &RawJsonValue {
        self.auth.content_json()
    }

    /// The fields the authorization rules read.
    pub fn auth_event(&self) -> &AuthEvent {
        &self.auth
    }

    /// The fields the authorization rules read, dropping the signed JSON.
    pub fn into_auth_event(self) -> AuthEvent {
        self.auth
    }

    /// The signed event as canonical JSON.
    pub fn json(&self) -> &CanonicalJsonObject {
        &self.json
    }

    /// The event's sha256 content hash (`hashes.sha256`), which events of room versions 1 and 2
    /// cite it with.
    pub fn content_hash(&self) -> Option<&str> {
        match self.json.get("hashes") {
            Some(CanonicalJsonValue::Object(hashes)) => match hashes.get("sha256") {
                Some(CanonicalJsonValue::String(hash)) => Some(hash),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        Event::event_id(&self.auth)
    }
    fn room_id(&self) -> Option<&RoomId> {
        Event::room_id(&self.auth)
    }
    fn sender(&self) -> &UserId {
        Event::sender(&self.auth)
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        Event::origin_server_ts(&self.auth)
    }
    fn event_type(&self) -> &TimelineEventType {
        Event::event_type(&self.auth)
    }
    fn content(&self) -> &RawJsonValue {
        Event::content(&self.auth)
    }
    fn state_key(&self) -> Option<&str> {
        Event::state_key(&self.auth)
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Event::prev_events(&self.auth)
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Event::auth_events(&self.auth)
    }
    fn redacts(&self) -> Option<&Self::Id> {
        Event::redacts(&self.auth)
    }
    fn rejected(&self) -> bool {
        Event::rejected(&self.auth)
    }
}
