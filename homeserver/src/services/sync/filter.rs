//! Event filters (spec: Client-Server API § Filtering): which rooms, event types and senders a
//! client wants, applied to /sync sections and /messages.

use serde_json::Value;

use crate::storage::rooms::StoredEvent;

/// A RoomEventFilter / EventFilter, parsed leniently (unknown or malformed fields are ignored,
/// as Synapse does).
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    /// The type, sender and room lists; None when the filter names none (the usual case). A
    /// waiting /sync keeps seven of these, and a few bytes each beat seven sets of empty lists.
    lists: Option<Box<Lists>>,
    pub limit: Option<i64>,
    pub lazy_load_members: bool,
    /// With lazy loading: send a sender's member event even when this device already has it.
    pub include_redundant_members: bool,
    /// Only events whose content has (`true`) or lacks (`false`) a `url`.
    contains_url: Option<bool>,
}

#[derive(Debug, Default, Clone)]
struct Lists {
    types: Option<Vec<String>>,
    not_types: Vec<String>,
    senders: Option<Vec<String>>,
    not_senders: Vec<String>,
    rooms: Option<Vec<String>>,
    not_rooms: Vec<String>,
}

/// What a filter without lists reads.
static NO_LISTS: Lists = Lists {
    types: None,
    not_types: Vec::new(),
    senders: None,
    not_senders: Vec::new(),
    rooms: None,
    not_rooms: Vec::new(),
};

impl Lists {
    fn is_empty(&self) -> bool {
        self.types.is_none()
            && self.not_types.is_empty()
            && self.senders.is_none()
            && self.not_senders.is_empty()
            && self.rooms.is_none()
            && self.not_rooms.is_empty()
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
}

/// `*` matches any run of characters (spec: the filter type wildcard).
pub(crate) fn matches_pattern(pattern: &str, value: &str) -> bool {
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
        let lists = Lists {
            types: strings(&value["types"]),
            not_types: strings(&value["not_types"]).unwrap_or_default(),
            senders: strings(&value["senders"]),
            not_senders: strings(&value["not_senders"]).unwrap_or_default(),
            rooms: strings(&value["rooms"]),
            not_rooms: strings(&value["not_rooms"]).unwrap_or_default(),
        };
        Self {
            lists: (!lists.is_empty()).then(|| Box::new(lists)),
            limit: value["limit"].as_i64(),
            lazy_load_members: value["lazy_load_members"].as_bool().unwrap_or(false),
            include_redundant_members: value["include_redundant_members"].as_bool().unwrap_or(false),
            contains_url: value["contains_url"].as_bool(),
        }
    }

    fn lists(&self) -> &Lists {
        self.lists.as_deref().unwrap_or(&NO_LISTS)
    }

    pub fn allows_room(&self, room_id: &str) -> bool {
        let lists = self.lists();
        !lists.not_rooms.iter().any(|r| r == room_id)
            && lists.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
    }

    pub fn allows_type(&self, event_type: &str) -> bool {
        let lists = self.lists();
        !lists.not_types.iter().any(|p| matches_pattern(p, event_type))
            && lists.types.as_ref().is_none_or(|types| types.iter().any(|p| matches_pattern(p, event_type)))
    }

    pub fn allows(&self, event: &StoredEvent) -> bool {
        let lists = self.lists();
        self.allows_type(&event.event_type)
            && self.allows_room(&event.room_id)
            && !lists.not_senders.contains(&event.sender)
            && lists.senders.as_ref().is_none_or(|senders| senders.contains(&event.sender))
            && self.contains_url.is_none_or(|wanted| has_url(event) == wanted)
    }

    /// Whether the filter lets nothing of a section through (`"not_types": ["*"]`).
    pub fn excludes_everything(&self) -> bool {
        let lists = self.lists();
        lists.not_types.iter().any(|p| p == "*") || lists.types.as_ref().is_some_and(Vec::is_empty)
    }
}

/// Whether the event's content has a `url` (spec: RoomEventFilter `contains_url`).
fn has_url(event: &StoredEvent) -> bool {
    // Cheap refusal first: most events never mention a url.
    event.json.contains("\"url\"")
        && serde_json::from_str::<Value>(&event.json).is_ok_and(|value| value["content"].get("url").is_some())
}

/// The parts of a sync filter that Hearth applies.
#[derive(Debug, Default, Clone)]
pub struct SyncFilter {
    /// `event_fields`: the dotted paths to keep in each event; None keeps everything.
    pub event_fields: Option<Vec<Vec<String>>>,
    /// `event_format: federation`: events as their signed PDUs.
    pub federation_format: bool,
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
            event_fields: strings(&value["event_fields"])
                .map(|fields| fields.iter().map(|field| split_field_path(field)).collect()),
            federation_format: value["event_format"] == "federation",
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

/// Splits `content.body` into its keys; `\.` is a literal dot (spec: Filter `event_fields`).
fn split_field_path(path: &str) -> Vec<String> {
    let mut keys = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    keys.last_mut().expect("never empty").push(next);
                }
            }
            '.' => keys.push(String::new()),
            c => keys.last_mut().expect("never empty").push(c),
        }
    }
    keys
}

/// Keeps only the requested fields of a formatted event.
pub fn retain_fields(event: &Value, fields: &[Vec<String>]) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for path in fields {
        let Some((last, parents)) = path.split_last() else { continue };
        let mut source = event;
        let mut found = true;
        for key in parents {
            match source.get(key) {
                Some(inner) if inner.is_object() => source = inner,
                _ => {
                    found = false;
                    break;
                }
            }
        }
        let Some(value) = source.get(last).filter(|_| found) else { continue };
        let mut target = &mut out;
        for key in parents {
            target = target
                .as_object_mut()
                .expect("built from objects")
                .entry(key.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
        target.as_object_mut().expect("built from objects").insert(last.clone(), value.clone());
    }
    out
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

    #[test]
    fn contains_url_keeps_only_events_with_or_without_a_url() {
        let mut image = event("m.room.message", "@a:hs", "!a:hs");
        image.json = r#"{"content":{"msgtype":"m.image","url":"mxc://hs/abc"}}"#.into();
        let mut text = event("m.room.message", "@a:hs", "!a:hs");
        text.json = r#"{"content":{"msgtype":"m.text","body":"the \"url\" is gone"}}"#.into();
        let with = EventFilter::from_json(&json!({"contains_url": true}));
        let without = EventFilter::from_json(&json!({"contains_url": false}));
        assert!(with.allows(&image) && !with.allows(&text));
        assert!(!without.allows(&image) && without.allows(&text));
    }

    #[test]
    fn event_fields_keep_the_requested_paths() {
        let event = json!({"type": "m.room.message", "sender": "@a:hs", "content": {"body": "hi", "msgtype": "m.text", "a.b": 1}});
        let filter =
            SyncFilter::from_json(&json!({"event_fields": ["type", "content.body", "content.a\\.b", "missing.x"]}));
        let kept = retain_fields(&event, filter.event_fields.as_ref().unwrap());
        assert_eq!(kept, json!({"type": "m.room.message", "content": {"body": "hi", "a.b": 1}}));
    }
}
