//! The sync notifier: carries positions, never data. Writers publish a stream position after
//! their transaction commits, saying which rooms or users it concerns; typing changes bump an
//! in-memory serial for a room. A waiting /sync registers for its user's rooms and user id and
//! is woken only by what concerns it — a message in one room wakes that room's members, not
//! every connected client — then re-reads storage.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::sync::Notify;

use super::token::SyncToken;

/// Whom a committed change concerns.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Members of this room (events).
    Room(&'a str),
    /// Members of this room (a read receipt).
    Receipt(&'a str),
    /// This user alone (account data, a membership change of theirs, to-device messages).
    User(&'a str),
    /// Members of this room: someone in it changed their devices or keys.
    Keys(&'a str),
    /// Users who share a room with someone whose presence changed.
    Presence,
}

/// The registry key for presence changes (no room or user id starts with a NUL).
const PRESENCE_KEY: &str = "\u{0}presence";

#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    positions: Mutex<SyncToken>,
    /// The latest position that concerned each room, user and presence since start-up. A sync
    /// whose rooms and user have not moved past its token has nothing to read.
    latest: Mutex<Latest>,
    /// Waiting syncs by the keys they wait on.
    waiters: Mutex<HashMap<String, Vec<Weak<Notify>>>>,
}

#[derive(Default)]
struct Latest {
    /// Positions at or below this predate start-up and are not in the maps.
    startup: i64,
    rooms: HashMap<String, i64>,
    receipts: HashMap<String, i64>,
    keys: HashMap<String, i64>,
    users: HashMap<String, i64>,
    presence: i64,
}

/// What moved for one user after a position, by kind.
#[derive(Debug, Default)]
pub struct Moved {
    /// Rooms (of those asked about) with new events.
    pub rooms: Vec<String>,
    /// Rooms (of those asked about) with new receipts.
    pub receipts: Vec<String>,
    /// Rooms (of those asked about) where someone's keys changed.
    pub keys: Vec<String>,
    /// The user's own scope (account data, their membership).
    pub user: bool,
    pub presence: bool,
}

/// A registration: woken when something published concerns one of its keys.
pub struct Waiter {
    notify: Arc<Notify>,
}

impl Waiter {
    /// Waits for a wake-up or the timeout. A wake-up that came between registration and this
    /// call is not lost (Notify keeps the permit).
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }
}

impl Notifier {
    /// `typing_start` seeds the typing serial; using the clock keeps it increasing across
    /// restarts, so tokens handed out before a restart are never ahead of it for long.
    pub fn new(typing_start: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                positions: Mutex::new(SyncToken { stream: 0, typing: typing_start }),
                latest: Mutex::new(Latest::default()),
                waiters: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sets the position storage had at start-up (before any change is published).
    pub fn start_at(&self, position: i64) {
        self.inner.latest.lock().expect("notifier lock").startup = position;
        let mut positions = self.inner.positions.lock().expect("notifier lock");
        positions.stream = positions.stream.max(position);
    }

    /// The newest positions: everything at or below `stream` is committed.
    pub fn current(&self) -> SyncToken {
        *self.inner.positions.lock().expect("notifier lock")
    }

    /// Whether anything concerning `user` (in `rooms`, or presence when `with_presence`) may
    /// have changed after stream position `since`. False means certainly nothing.
    pub fn may_concern(&self, user: &str, rooms: &[String], since: i64, with_presence: bool) -> bool {
        let latest = self.inner.latest.lock().expect("notifier lock");
        since < latest.startup
            || (with_presence && latest.presence > since)
            || latest.users.get(user).is_some_and(|p| *p > since)
            || rooms.iter().any(|room| {
                latest.rooms.get(room).is_some_and(|p| *p > since)
                    || latest.receipts.get(room).is_some_and(|p| *p > since)
                    || latest.keys.get(room).is_some_and(|p| *p > since)
            })
    }

    /// What changed after `since` for this user, from memory. None when `since` predates
    /// start-up, and storage must be asked instead.
    pub fn changed_since(&self, user: &str, rooms: &[String], since: i64) -> Option<Moved> {
        let latest = self.inner.latest.lock().expect("notifier lock");
        if since < latest.startup {
            return None;
        }
        let after = |map: &HashMap<String, i64>| -> Vec<String> {
            rooms.iter().filter(|room| map.get(*room).is_some_and(|p| *p > since)).cloned().collect()
        };
        Some(Moved {
            rooms: after(&latest.rooms),
            receipts: after(&latest.receipts),
            keys: after(&latest.keys),
            user: latest.users.get(user).is_some_and(|p| *p > since),
            presence: latest.presence > since,
        })
    }

    /// Publishes a committed position and wakes the syncs it concerns.
    pub fn publish_stream(&self, position: i64, scope: &[Scope<'_>]) {
        {
            let mut latest = self.inner.latest.lock().expect("notifier lock");
            for scope in scope {
                match scope {
                    Scope::Room(room) => {
                        latest.rooms.insert((*room).to_owned(), position);
                    }
                    Scope::Receipt(room) => {
                        latest.receipts.insert((*room).to_owned(), position);
                    }
                    Scope::Keys(room) => {
                        latest.keys.insert((*room).to_owned(), position);
                    }
                    Scope::User(user) => {
                        latest.users.insert((*user).to_owned(), position);
                    }
                    Scope::Presence => latest.presence = position,
                }
            }
        }
        {
            let mut positions = self.inner.positions.lock().expect("notifier lock");
            positions.stream = positions.stream.max(position);
        }
        for scope in scope {
            match scope {
                Scope::Room(key) | Scope::Receipt(key) | Scope::Keys(key) | Scope::User(key) => self.wake(key),
                Scope::Presence => self.wake(PRESENCE_KEY),
            }
        }
    }

    /// Bumps the typing serial for `room` and returns the new value.
    pub fn bump_typing(&self, room: &str) -> u64 {
        let serial = {
            let mut positions = self.inner.positions.lock().expect("notifier lock");
            positions.typing += 1;
            positions.typing
        };
        self.wake(room);
        serial
    }

    fn wake(&self, key: &str) {
        let mut waiters = self.inner.waiters.lock().expect("notifier lock");
        if let Some(list) = waiters.remove(key) {
            for waiter in list {
                if let Some(notify) = waiter.upgrade() {
                    notify.notify_one();
                }
            }
        }
    }

    /// Registers a waiter for the user's rooms, the user and (optionally) presence.
    pub fn waiter(&self, user: &str, rooms: &[String], with_presence: bool) -> Waiter {
        let notify = Arc::new(Notify::new());
        let mut waiters = self.inner.waiters.lock().expect("notifier lock");
        let keys = rooms.iter().map(String::as_str).chain([user]).chain(with_presence.then_some(PRESENCE_KEY));
        for key in keys {
            if !waiters.contains_key(key) {
                waiters.insert(key.to_owned(), Vec::new());
            }
            let list = waiters.get_mut(key).expect("inserted above");
            let registration = Arc::downgrade(&notify);
            match list.last_mut() {
                // Usually the same client's previous long-poll, returned: its slot is reused,
                // which frees its `Notify` now rather than when the list next fills.
                Some(last) if last.strong_count() == 0 => *last = registration,
                _ => {
                    // Drop registrations of syncs that already returned before the list would
                    // grow: each keeps its `Notify` allocated, and a user's own list would
                    // otherwise hold dozens of them per client. Amortised, like the growth.
                    if list.len() == list.capacity() {
                        list.retain(|w| w.strong_count() > 0);
                    }
                    list.push(registration);
                }
            }
        }
        Waiter { notify }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_concerned_waiters_wake() {
        let notifier = Notifier::new(0);
        notifier.start_at(5);
        let rooms = vec!["!mine".to_owned()];
        let waiter = notifier.waiter("@a:hs", &rooms, false);
        notifier.publish_stream(6, &[Scope::Room("!other")]);
        let started = std::time::Instant::now();
        waiter.wait(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(45), "another room's event does not wake us");

        let waiter = notifier.waiter("@a:hs", &rooms, false);
        let waiting = tokio::spawn(async move { waiter.wait(Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        notifier.publish_stream(7, &[Scope::Room("!mine")]);
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(notifier.current().stream, 7);
        notifier.publish_stream(3, &[]);
        assert_eq!(notifier.current().stream, 7, "positions never go back");

        // A wake-up between registering and waiting is kept.
        let waiter = notifier.waiter("@a:hs", &rooms, false);
        let typing = notifier.bump_typing("!mine");
        assert_eq!(notifier.current().typing, typing);
        tokio::time::timeout(Duration::from_secs(5), waiter.wait(Duration::from_secs(30))).await.unwrap();
    }

    #[test]
    fn returned_syncs_do_not_pile_up() {
        let notifier = Notifier::new(0);
        let rooms = vec!["!r".to_owned()];
        let live = notifier.waiter("@a:hs", &rooms, false);
        for _ in 0..1_000 {
            drop(notifier.waiter("@a:hs", &rooms, false));
        }
        {
            let waiters = notifier.inner.waiters.lock().unwrap();
            assert!(waiters["@a:hs"].len() <= 4, "{}", waiters["@a:hs"].len());
            assert!(waiters["@a:hs"].iter().any(|w| w.strong_count() > 0));
        }
        drop(live);
        // One client long-polling again and again: its returned registration's slot is reused,
        // so no dead registration (and its allocation) stays behind.
        for _ in 0..10 {
            drop(notifier.waiter("@b:hs", &[], false));
        }
        let waiting = notifier.waiter("@b:hs", &[], false);
        let waiters = notifier.inner.waiters.lock().unwrap();
        assert_eq!(waiters["@b:hs"].len(), 1);
        assert_eq!(waiters["@b:hs"][0].strong_count(), 1);
        drop(waiters);
        drop(waiting);
    }

    #[test]
    fn only_changes_that_concern_a_user_say_so() {
        let notifier = Notifier::new(0);
        notifier.start_at(10);
        let rooms = vec!["!mine".to_owned()];
        assert!(notifier.may_concern("@a:hs", &rooms, 5, true), "tokens from before start-up must look");
        assert!(!notifier.may_concern("@a:hs", &rooms, 10, true));
        notifier.publish_stream(11, &[Scope::Room("!other")]);
        assert!(!notifier.may_concern("@a:hs", &rooms, 10, true));
        notifier.publish_stream(12, &[Scope::Room("!mine")]);
        assert!(notifier.may_concern("@a:hs", &rooms, 11, true));
        assert!(!notifier.may_concern("@a:hs", &rooms, 12, true));
        notifier.publish_stream(13, &[Scope::User("@a:hs")]);
        assert!(notifier.may_concern("@a:hs", &rooms, 12, true));
        assert!(!notifier.may_concern("@b:hs", &[], 12, true));
        notifier.publish_stream(14, &[Scope::Presence]);
        assert!(notifier.may_concern("@b:hs", &[], 13, true));
        assert!(!notifier.may_concern("@b:hs", &[], 13, false));
        notifier.publish_stream(15, &[Scope::Receipt("!mine")]);
        assert!(notifier.may_concern("@a:hs", &rooms, 14, false));
        let moved = notifier.changed_since("@a:hs", &rooms, 14).unwrap();
        assert!(moved.rooms.is_empty() && moved.receipts == rooms, "a receipt is not an event: {moved:?}");
    }
}
