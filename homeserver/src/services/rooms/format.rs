//! Events as clients see them (spec: Client-Server API § Room Events, "ClientEvent"): the PDU's
//! client-facing fields, `unsigned` with age, transaction id for the sending device, and for a
//! redacted event its content stripped by the room version's redaction algorithm plus
//! `redacted_because`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::storage::{now_ms, rooms::StoredEvent};

/// The extra knowledge needed to format a batch of events without a query per event.
#[derive(Default)]
pub struct FormatContext {
    /// Redaction events (already formatted) by their event id.
    pub redactions: HashMap<String, Value>,
    /// The viewer device's transaction ids, by event id.
    pub transaction_ids: HashMap<String, String>,
    /// Sync omits `room_id` (the room is the key it sits under).
    pub omit_room_id: bool,
}

const CLIENT_FIELDS: &[&str] = &["content", "origin_server_ts", "sender", "type", "state_key", "redacts"];

/// Formats one stored event. `room_version_rules` decides how a redacted event is stripped.
pub fn client_event(
    event: &StoredEvent,
    rules: &ruma::room_version_rules::RoomVersionRules,
    context: &FormatContext,
) -> Value {
    let parsed: Map<String, Value> = serde_json::from_str(&event.json).unwrap_or_default();
    let mut out = Map::new();
    out.insert("event_id".into(), event.event_id.clone().into());
    if !context.omit_room_id {
        out.insert("room_id".into(), event.room_id.clone().into());
    }
    for field in CLIENT_FIELDS {
        if let Some(value) = parsed.get(*field) {
            out.insert((*field).into(), value.clone());
        }
    }
    // From v11 `redacts` lives in the content; it is copied to the top level as Synapse does,
    // for clients (matrix-nio among them) that read only the old place.
    if event.event_type == "m.room.redaction"
        && !out.contains_key("redacts")
        && let Some(redacts) = parsed.get("content").and_then(|content| content.get("redacts"))
    {
        out.insert("redacts".into(), redacts.clone());
    }
    let mut unsigned = Map::new();
    if let Some(ts) = parsed.get("origin_server_ts").and_then(Value::as_i64) {
        unsigned.insert("age".into(), (now_ms() - ts).max(0).into());
    }
    if let Some(txn) = context.transaction_ids.get(&event.event_id) {
        unsigned.insert("transaction_id".into(), txn.clone().into());
    }
    if let Some(redaction_id) = &event.redacted_because {
        let redacted = redacted_content(&parsed, rules);
        out.insert("content".into(), redacted);
        if let Some(because) = context.redactions.get(redaction_id) {
            unsigned.insert("redacted_because".into(), because.clone());
        }
    }
    out.insert("unsigned".into(), Value::Object(unsigned));
    Value::Object(out)
}

/// The content that survives redaction in this room version.
fn redacted_content(event: &Map<String, Value>, rules: &ruma::room_version_rules::RoomVersionRules) -> Value {
    let Ok(object) = hearth_federation::to_canonical_object(Value::Object(event.clone())) else {
        return Value::Object(Map::new());
    };
    match ruma::canonical_json::redact(object, &rules.redaction, None) {
        Ok(redacted) => redacted
            .get("content")
            .map(|content| serde_json::to_value(content).unwrap_or_default())
            .unwrap_or_else(|| Value::Object(Map::new())),
        Err(_) => Value::Object(Map::new()),
    }
}

/// Stripped state (spec: Client-Server API § Stripped state): what an invitee sees of a room.
pub fn stripped_state(event: &StoredEvent) -> Value {
    let parsed: Map<String, Value> = serde_json::from_str(&event.json).unwrap_or_default();
    let mut out = Map::new();
    for field in ["content", "sender", "state_key", "type"] {
        if let Some(value) = parsed.get(field) {
            out.insert(field.into(), value.clone());
        }
    }
    Value::Object(out)
}
