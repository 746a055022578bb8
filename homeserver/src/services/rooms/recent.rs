//! The newest events of each room, in memory. A woken /sync asks for the few events that
//! arrived since its token; answering that from here instead of storage keeps the hot path of
//! message delivery free of queries. The writer adds each event after its transaction commits
//! and before its position is published, so a reader that may see position P finds every
//! event up to P here (or learns that this room's window starts later and reads storage).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use crate::storage::rooms::StoredEvent;

/// Events kept per room, and rooms kept at once (past that the cache starts over).
const PER_ROOM: usize = 64;
const MAX_ROOMS: usize = 20_000;

#[derive(Default)]
pub struct RecentEvents {
    rooms: Mutex<HashMap<String, RoomRecent>>,
}

struct RoomRecent {
    /// Every event of the room after this position is in `events`.
    complete_after: i64,
    /// Oldest first.
    events: VecDeque<Arc<StoredEvent>>,
    /// Cached events that something relates to (edits, thread replies, references): only
    /// these need their bundled aggregations read from storage.
    related: HashSet<String>,
    /// The (device, transaction id) each cached client send came with.
    transactions: HashMap<String, (String, String)>,
}

impl RecentEvents {
    /// A committed event (call while holding the stream, before publishing its position).
    /// `relates_to` is the event it relates to, `redacts` the event it redacts.
    pub fn committed(
        &self,
        event: StoredEvent,
        relates_to: Option<&str>,
        redacts: Option<&str>,
        transaction: Option<(&str, &str)>,
    ) {
        let mut rooms = self.rooms.lock().expect("recent events lock");
        if rooms.len() >= MAX_ROOMS && !rooms.contains_key(&event.room_id) {
            rooms.clear();
        }
        // A room seen for the first time: this event is its newest, nothing after it is missing.
        let room = rooms.entry(event.room_id.clone()).or_insert_with(|| RoomRecent {
            complete_after: event.stream - 1,
            events: VecDeque::with_capacity(PER_ROOM),
            related: HashSet::new(),
            transactions: HashMap::new(),
        });
        if let Some((device, txn)) = transaction {
            room.transactions.insert(event.event_id.clone(), (device.to_owned(), txn.to_owned()));
        }
        if let Some(parent) = relates_to
            && room.events.iter().any(|e| e.event_id == parent)
        {
            room.related.insert(parent.to_owned());
        }
        if let Some(redacted) = redacts
            && let Some(slot) = room.events.iter_mut().find(|e| e.event_id == redacted && e.redacted_because.is_none())
        {
            let mut updated = StoredEvent::clone(slot);
            updated.redacted_because = Some(event.event_id.clone());
            *slot = Arc::new(updated);
        }
        room.events.push_back(Arc::new(event));
        if room.events.len() > PER_ROOM
            && let Some(dropped) = room.events.pop_front()
        {
            room.complete_after = dropped.stream;
            room.related.remove(&dropped.event_id);
            room.transactions.remove(&dropped.event_id);
        }
    }

    /// The room's events in (`after`, `up_to`], at most `limit`, oldest or newest first; None
    /// when some of them may not be here (the caller reads storage).
    pub fn window(
        &self,
        room_id: &str,
        after: i64,
        up_to: i64,
        limit: i64,
        newest_first: bool,
    ) -> Option<Vec<StoredEvent>> {
        let rooms = self.rooms.lock().expect("recent events lock");
        let room = rooms.get(room_id)?;
        if after < room.complete_after {
            return None;
        }
        let in_range = |e: &&Arc<StoredEvent>| e.stream > after && e.stream <= up_to;
        let limit = usize::try_from(limit).unwrap_or(0);
        let events: Vec<StoredEvent> = if newest_first {
            room.events.iter().rev().filter(in_range).take(limit).map(|e| StoredEvent::clone(e)).collect()
        } else {
            room.events.iter().filter(in_range).take(limit).map(|e| StoredEvent::clone(e)).collect()
        };
        Some(events)
    }

    /// The transaction id `device` sent a cached event with: Some(None) when the event is cached
    /// and was not sent from that device, None when it is not cached.
    pub fn transaction_id(&self, room_id: &str, event_id: &str, device: &str) -> Option<Option<String>> {
        let rooms = self.rooms.lock().expect("recent events lock");
        let room = rooms.get(room_id)?;
        if let Some((sent_from, txn)) = room.transactions.get(event_id) {
            return Some((sent_from == device).then(|| txn.clone()));
        }
        room.events.iter().any(|e| e.event_id == event_id).then_some(None)
    }

    /// Whether anything may relate to the event: false only for a cached event that nothing
    /// has related to since it was sent.
    pub fn may_have_relations(&self, room_id: &str, event_id: &str) -> bool {
        let rooms = self.rooms.lock().expect("recent events lock");
        match rooms.get(room_id) {
            Some(room) => room.related.contains(event_id) || !room.events.iter().any(|e| e.event_id == event_id),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: i64, id: &str) -> StoredEvent {
        StoredEvent {
            stream,
            event_id: id.into(),
            room_id: "!r".into(),
            sender: "@a:hs".into(),
            event_type: "m.room.message".into(),
            state_key: None,
            json: "{}".into(),
            redacted_because: None,
        }
    }

    #[test]
    fn windows_are_served_only_when_complete() {
        let recent = RecentEvents::default();
        recent.committed(event(10, "$a"), None, None, None);
        recent.committed(event(12, "$b"), None, None, Some(("D1", "t1")));
        assert_eq!(recent.transaction_id("!r", "$b", "D1"), Some(Some("t1".to_owned())));
        assert_eq!(recent.transaction_id("!r", "$b", "D2"), Some(None));
        assert_eq!(recent.transaction_id("!r", "$a", "D1"), Some(None));
        assert_eq!(recent.transaction_id("!r", "$old", "D1"), None);
        assert!(recent.window("!r", 8, 12, 10, true).is_none(), "event 9 might exist");
        let ids = |w: Vec<StoredEvent>| w.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
        assert_eq!(ids(recent.window("!r", 9, 12, 10, true).unwrap()), vec!["$b", "$a"]);
        assert_eq!(ids(recent.window("!r", 10, 11, 10, false).unwrap()), Vec::<String>::new());
        assert_eq!(ids(recent.window("!r", 9, 12, 1, false).unwrap()), vec!["$a"]);
        assert!(recent.window("!other", 0, 12, 10, true).is_none());
        for n in 0..PER_ROOM as i64 {
            recent.committed(event(20 + n, &format!("$n{n}")), None, None, None);
        }
        assert!(recent.window("!r", 9, 100, 10, true).is_none(), "the oldest fell out");
        assert!(recent.window("!r", 20, 100, 10, true).is_some());
    }

    #[test]
    fn relations_and_redactions_are_tracked() {
        let recent = RecentEvents::default();
        recent.committed(event(1, "$root"), None, None, None);
        assert!(!recent.may_have_relations("!r", "$root"));
        assert!(recent.may_have_relations("!r", "$older"), "not cached: unknown");
        recent.committed(event(2, "$edit"), Some("$root"), None, None);
        assert!(recent.may_have_relations("!r", "$root"));
        recent.committed(event(3, "$redaction"), None, Some("$edit"), None);
        let window = recent.window("!r", 0, 3, 10, false).unwrap();
        assert_eq!(window[1].redacted_because.as_deref(), Some("$redaction"));
    }
}
