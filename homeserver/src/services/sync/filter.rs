//! Event filters (spec: Client-Server API § Filtering): which rooms, event types and senders a
//! client wants, applied to /sync sections and /messages.

use serde_json::Value;

use crate::storage::rooms::StoredEvent;

/// A RoomEventFilter / EventFilter, parsed leniently (unknown or malformed fields are ignored,
/// as Synapse does).
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    types: Option<Vec<String>>,
    not_types: Vec<String>,
    senders: Option<Vec<String>>,
    not_senders: Vec<String>,
    rooms: Option<Vec<String>>,
    not_rooms: Vec<String>,
    pub limit: Option<i64>,
    pub lazy_load_members: bool,
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
}

/// `*` matches any run of characters (spec: the filter type wildcard).
fn matches_pattern(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            value.starts_with(prefix) && {
                let tail = &value[prefix.len()..];
                (0..=tail.len()).any(|i| tail.is_char_boundary(i) && matches_pattern(rest, &tail[i..]))
            }
        }
    }
}

impl EventFilter {
    pub fn from_json(value: &Value) -> Self {
        Self {
            types: strings(&value["types"]),
            not_types: strings(&value["not_types"]).unwrap_or_default(),
            senders: strings(&value["senders"]),
            not_senders: strings(&value["not_senders"]).unwrap_or_default(),
            rooms: strings(&value["rooms"]),
            not_rooms: strings(&value["not_rooms"]).unwrap_or_default(),
            limit: value["limit"].as_i64(),
            lazy_load_members: value["lazy_load_members"].as_bool().unwrap_or(false),
        }
    }

    pub fn allows_room(&self, room_id: &str) -> bool {
        !self.not_rooms.iter().any(|r| r == room_id)
            && self.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
    }

    pub fn allows_type(&self, event_type: &str) -> bool {
        !self.not_types.iter().any(|p| matches_pattern(p, event_type))
            && self.types.as_ref().is_none_or(|types| types.iter().any(|p| matches_pattern(p, event_type)))
    }

    pub fn allows(&self, event: &StoredEvent) -> bool {
        self.allows_type(&event.event_type)
            && self.allows_room(&event.room_id)
            && !self.not_senders.contains(&event.sender)
            && self.senders.as_ref().is_none_or(|senders| senders.contains(&event.sender))
    }

    /// Whether the filter lets nothing of a section through (`"not_types": ["*"]`).
    pub fn excludes_everything(&self) -> bool {
        self.not_types.iter().any(|p| p == "*") || self.types.as_ref().is_some_and(Vec::is_empty)
    }
}

/// The parts of a sync filter that Hearth applies.
#[derive(Debug, Default, Clone)]
pub struct SyncFilter {
    /// `room.rooms` / `room.not_rooms`.
    pub rooms: EventFilter,
    pub timeline: EventFilter,
    pub state: EventFilter,
    pub ephemeral: EventFilter,
    pub room_account_data: EventFilter,
    pub account_data: EventFilter,
    pub presence: EventFilter,
}

impl SyncFilter {
    pub fn from_json(value: &Value) -> Self {
        let room = &value["room"];
        Self {
            rooms: EventFilter::from_json(room),
            timeline: EventFilter::from_json(&room["timeline"]),
            state: EventFilter::from_json(&room["state"]),
            ephemeral: EventFilter::from_json(&room["ephemeral"]),
            room_account_data: EventFilter::from_json(&room["account_data"]),
            account_data: EventFilter::from_json(&value["account_data"]),
            presence: EventFilter::from_json(&value["presence"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, sender: &str, room: &str) -> StoredEvent {
        StoredEvent {
            stream: 1,
            event_id: "$e".into(),
            room_id: room.into(),
            sender: sender.into(),
            event_type: event_type.into(),
            state_key: None,
            json: "{}".into(),
            redacted_because: None,
        }
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(matches_pattern("m.room.*", "m.room.message"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("m.*.message", "m.room.message"));
        assert!(!matches_pattern("m.room.*", "m.reaction"));
        assert!(matches_pattern("m.reaction", "m.reaction"));
    }

    #[test]
    fn filters_apply_types_senders_and_rooms() {
        let filter = EventFilter::from_json(&json!({
            "types": ["m.room.*"], "not_types": ["m.room.member"], "not_senders": ["@spam:hs"], "rooms": ["!a:hs"]
        }));
        assert!(filter.allows(&event("m.room.message", "@a:hs", "!a:hs")));
        assert!(!filter.allows(&event("m.room.member", "@a:hs", "!a:hs")));
        assert!(!filter.allows(&event("m.reaction", "@a:hs", "!a:hs")));
        assert!(!filter.allows(&event("m.room.message", "@spam:hs", "!a:hs")));
        assert!(!filter.allows(&event("m.room.message", "@a:hs", "!b:hs")));
        assert!(EventFilter::from_json(&json!({"not_types": ["*"]})).excludes_everything());
        assert!(EventFilter::default().allows(&event("x", "@a:hs", "!a:hs")));
    }
}
