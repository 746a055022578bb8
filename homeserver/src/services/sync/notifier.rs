//! The sync notifier: carries positions, never data. Writers publish a stream position after
//! their transaction commits; typing changes bump an in-memory serial. Waiting /sync requests
//! wake and re-read.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;

use super::token::SyncToken;

/// Whom a committed change concerns.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Members of this room (events, receipts).
    Room(&'a str),
    /// This user alone (account data, a membership change of theirs).
    User(&'a str),
    /// Users who share a room with someone whose presence changed.
    Presence,
}

#[derive(Clone)]
pub struct Notifier {
    sender: Arc<watch::Sender<SyncToken>>,
    /// The latest position that concerned each room, user and presence since start-up. A sync
    /// whose rooms and user have not moved past its token has nothing to read, so it can go
    /// back to sleep without a query. Positions are data about positions, not data.
    latest: Arc<Mutex<Latest>>,
}

#[derive(Default)]
struct Latest {
    /// Positions at or below this predate start-up and are not in the maps.
    startup: i64,
    rooms: HashMap<String, i64>,
    users: HashMap<String, i64>,
    presence: i64,
}

impl Notifier {
    /// `typing_start` seeds the typing serial; using the clock keeps it increasing across
    /// restarts, so tokens handed out before a restart are never ahead of it for long.
    pub fn new(typing_start: u64) -> Self {
        Self {
            sender: Arc::new(watch::channel(SyncToken { stream: 0, typing: typing_start }).0),
            latest: Arc::new(Mutex::new(Latest::default())),
        }
    }

    /// Sets the position storage had at start-up (before any change is published).
    pub fn start_at(&self, position: i64) {
        self.latest.lock().expect("notifier lock").startup = position;
        self.sender.send_if_modified(|current| {
            let moved = position > current.stream;
            if moved {
                current.stream = position;
            }
            moved
        });
    }

    /// Whether anything concerning `user` (in `rooms`, or presence) may have changed after
    /// stream position `since`. False means certainly nothing; true means look.
    pub fn may_concern(&self, user: &str, rooms: &[String], since: i64) -> bool {
        let latest = self.latest.lock().expect("notifier lock");
        since < latest.startup
            || latest.presence > since
            || latest.users.get(user).is_some_and(|p| *p > since)
            || rooms.iter().any(|room| latest.rooms.get(room).is_some_and(|p| *p > since))
    }

    /// The newest positions: everything at or below `stream` is committed.
    pub fn current(&self) -> SyncToken {
        *self.sender.borrow()
    }

    pub fn publish_stream(&self, position: i64, scope: &[Scope<'_>]) {
        {
            let mut latest = self.latest.lock().expect("notifier lock");
            for scope in scope {
                match scope {
                    Scope::Room(room) => {
                        latest.rooms.insert((*room).to_owned(), position);
                    }
                    Scope::User(user) => {
                        latest.users.insert((*user).to_owned(), position);
                    }
                    Scope::Presence => latest.presence = position,
                }
            }
        }
        self.sender.send_if_modified(|current| {
            let moved = position > current.stream;
            if moved {
                current.stream = position;
            }
            moved
        });
    }

    /// Bumps the typing serial and returns the new value.
    pub fn bump_typing(&self) -> u64 {
        let mut serial = 0;
        self.sender.send_modify(|current| {
            current.typing += 1;
            serial = current.typing;
        });
        serial
    }

    /// Waits until either position passes `since` or `timeout` elapses; returns the positions.
    pub async fn wait_past(&self, since: SyncToken, timeout: Duration) -> SyncToken {
        let mut receiver = self.sender.subscribe();
        let _ = tokio::time::timeout(
            timeout,
            receiver.wait_for(|now| now.stream > since.stream || now.typing > since.typing),
        )
        .await;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_publish_and_time_out_otherwise() {
        let notifier = Notifier::new(0);
        notifier.start_at(5);
        let start = notifier.current();
        assert_eq!(notifier.wait_past(start, Duration::from_millis(10)).await, start);
        let waiter = {
            let notifier = notifier.clone();
            tokio::spawn(async move { notifier.wait_past(start, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        notifier.publish_stream(6, &[Scope::Room("!r")]);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().stream, 6);
        notifier.publish_stream(3, &[]);
        assert_eq!(notifier.current().stream, 6, "positions never go back");
        let typing = notifier.bump_typing();
        assert_eq!(notifier.current().typing, typing);
    }

    #[test]
    fn only_changes_that_concern_a_user_say_so() {
        let notifier = Notifier::new(0);
        notifier.start_at(10);
        let rooms = vec!["!mine".to_owned()];
        assert!(notifier.may_concern("@a:hs", &rooms, 5), "tokens from before start-up must look");
        assert!(!notifier.may_concern("@a:hs", &rooms, 10));
        notifier.publish_stream(11, &[Scope::Room("!other")]);
        assert!(!notifier.may_concern("@a:hs", &rooms, 10));
        notifier.publish_stream(12, &[Scope::Room("!mine")]);
        assert!(notifier.may_concern("@a:hs", &rooms, 11));
        assert!(!notifier.may_concern("@a:hs", &rooms, 12));
        notifier.publish_stream(13, &[Scope::User("@a:hs")]);
        assert!(notifier.may_concern("@a:hs", &rooms, 12));
        assert!(!notifier.may_concern("@b:hs", &[], 12));
        notifier.publish_stream(14, &[Scope::Presence]);
        assert!(notifier.may_concern("@b:hs", &[], 13));
    }
}
