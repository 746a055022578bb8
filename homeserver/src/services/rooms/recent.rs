//! The newest events of each room, in memory. A woken /sync asks for the few events that
//! arrived since its token; answering that from here instead of storage keeps the hot path of
//! message delivery free of queries. The writer adds each event after its transaction commits
//! and before its position is published, so a reader that may see position P finds every
//! event up to P here (or learns that this room's window starts later and reads storage).
//!
//! The cache is bounded in bytes over all rooms, not per room: the oldest event anywhere goes
//! first, so quiet rooms give way to busy ones and memory stays flat however many rooms exist.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use crate::storage::rooms::StoredEvent;

/// Events kept per room at most (a woken /sync needs the last few).
const PER_ROOM: usize = 64;
/// Bytes of events kept over all rooms (about 850 messages of 1.2 KiB: at 100 messages a
/// second, the last 8 seconds).
const BUDGET_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct RecentEvents {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<Arc<str>, RoomRecent>,
    /// Every cached event's room and position, oldest first, to evict in that order. An entry
    /// whose event already left its room (past `PER_ROOM`) is skipped.
    order: VecDeque<(Arc<str>, i64)>,
    bytes: usize,
    /// Events cached (`order` holds these and the skipped entries).
    events: usize,
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

impl RoomRecent {
    /// Drops the room's oldest event; returns its size.
    fn drop_oldest(&mut self) -> usize {
        let Some(dropped) = self.events.pop_front() else { return 0 };
        self.complete_after = dropped.stream;
        self.related.remove(&dropped.event_id);
        self.transactions.remove(&dropped.event_id);
        size_of(&dropped)
    }
}

/// What a cached event costs, roughly: its strings and its struct.
fn size_of(event: &StoredEvent) -> usize {
    std::mem::size_of::<StoredEvent>()
        + event.event_id.len()
        + event.room_id.len()
        + event.sender.len()
        + event.event_type.len()
        + event.state_key.as_ref().map_or(0, String::len)
        + event.json.len()
        + event.redacted_because.as_ref().map_or(0, String::len)
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
        let mut inner = self.inner.lock().expect("recent events lock");
        let Inner { rooms, order, bytes, events } = &mut *inner;
        let key = match rooms.get_key_value(event.room_id.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(event.room_id.as_str()),
        };
        // A room seen for the first time (or again after all of it was evicted): this event is
        // its newest, nothing after it is missing.
        let room = rooms.entry(key.clone()).or_insert_with(|| RoomRecent {
            complete_after: event.stream - 1,
            events: VecDeque::new(),
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
            *bytes += event.event_id.len();
            *slot = Arc::new(updated);
        }
        *bytes += size_of(&event);
        *events += 1;
        order.push_back((key, event.stream));
        room.events.push_back(Arc::new(event));
        if room.events.len() > PER_ROOM {
            *bytes -= room.drop_oldest();
            *events -= 1;
        }
        while *bytes > BUDGET_BYTES
            && let Some((room_id, stream)) = order.pop_front()
        {
            let Some(room) = rooms.get_mut(&room_id) else { continue };
            if room.events.front().is_some_and(|oldest| oldest.stream == stream) {
                *bytes = bytes.saturating_sub(room.drop_oldest());
                *events -= 1;
                if room.events.is_empty() {
                    rooms.remove(&room_id);
                }
            }
        }
        // Entries of events that left their room behind an older live entry: clear them out
        // once they outnumber the live ones (amortised over as many commits).
        if order.len() > 2 * *events + PER_ROOM {
            order.retain(|(room_id, stream)| {
                rooms.get(room_id).and_then(|room| room.events.front()).is_some_and(|oldest| oldest.stream <= *stream)
            });
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
        let inner = self.inner.lock().expect("recent events lock");
        let room = inner.rooms.get(room_id)?;
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
        let inner = self.inner.lock().expect("recent events lock");
        let room = inner.rooms.get(room_id)?;
        if let Some((sent_from, txn)) = room.transactions.get(event_id) {
            return Some((sent_from == device).then(|| txn.clone()));
        }
        room.events.iter().any(|e| e.event_id == event_id).then_some(None)
    }

    /// Whether anything may relate to the event: false only for a cached event that nothing
    /// has related to since it was sent.
    pub fn may_have_relations(&self, room_id: &str, event_id: &str) -> bool {
        let inner = self.inner.lock().expect("recent events lock");
        match inner.rooms.get(room_id) {
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

    fn event_in(room: &str, stream: i64, bytes: usize) -> StoredEvent {
        StoredEvent { room_id: room.into(), json: "x".repeat(bytes), ..event(stream, &format!("${stream}")) }
    }

    #[test]
    fn the_oldest_events_anywhere_leave_first_when_over_budget() {
        let recent = RecentEvents::default();
        let big = BUDGET_BYTES / 10;
        recent.committed(event_in("!quiet", 1, big), None, None, None);
        for stream in 2..=9 {
            recent.committed(event_in("!busy", stream, big), None, None, None);
        }
        assert!(recent.window("!quiet", 0, 9, 10, false).is_some(), "within budget");
        for stream in 10..=12 {
            recent.committed(event_in("!busy", stream, big), None, None, None);
        }
        assert!(recent.window("!quiet", 0, 12, 10, false).is_none(), "the oldest event went first");
        assert!(recent.window("!busy", 0, 12, 10, false).is_none(), "and then the busy room's oldest");
        let busy = recent.window("!busy", 3, 12, 20, false).expect("the newest are kept");
        assert_eq!(busy.len(), 9);
        let inner = recent.inner.lock().unwrap();
        assert!(inner.bytes <= BUDGET_BYTES);
        assert_eq!(inner.events, 9);
        assert!(!inner.rooms.contains_key("!quiet"), "an emptied room is forgotten");
    }

    #[test]
    fn skipped_entries_do_not_pile_up() {
        let recent = RecentEvents::default();
        recent.committed(event_in("!quiet", 1, 10), None, None, None);
        for stream in 2..10_000 {
            recent.committed(event_in("!busy", stream, 10), None, None, None);
        }
        let inner = recent.inner.lock().unwrap();
        assert_eq!(inner.events, 1 + PER_ROOM);
        assert!(inner.order.len() <= 2 * inner.events + PER_ROOM + 1, "{}", inner.order.len());
        drop(inner);
        assert!(recent.window("!quiet", 0, 1, 10, false).is_some(), "the quiet room's live event stays");
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
