//! Typing notifications (spec: Client-Server API § Typing Notifications). Kept in memory: they
//! matter for seconds. Each change bumps the notifier's typing serial, so a waiting /sync wakes;
//! a timeout removes the user and bumps it again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::services::sync::Notifier;

#[derive(Default)]
struct RoomTyping {
    users: HashMap<String, Instant>,
    serial: u64,
}

#[derive(Clone)]
pub struct Typing {
    rooms: Arc<Mutex<HashMap<String, RoomTyping>>>,
    notifier: Notifier,
}

/// Longest typing timeout a client may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

impl Typing {
    pub fn new(notifier: Notifier) -> Self {
        Self { rooms: Arc::new(Mutex::new(HashMap::new())), notifier }
    }

    /// Marks `user` typing in `room` for `timeout`, or stops it.
    pub fn set(&self, room_id: &str, user_id: &str, typing: bool, timeout: Duration) {
        let timeout = timeout.min(MAX_TIMEOUT);
        let changed = {
            let mut rooms = self.rooms.lock().expect("typing lock");
            let room = rooms.entry(room_id.to_owned()).or_default();
            let changed = if typing {
                room.users.insert(user_id.to_owned(), Instant::now() + timeout).is_none()
            } else {
                room.users.remove(user_id).is_some()
            };
            if changed {
                room.serial = self.notifier.bump_typing(room_id);
            }
            changed
        };
        if typing {
            let this = self.clone();
            let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                this.expire(&room_id, &user_id);
            });
        }
        let _ = changed;
    }

    fn expire(&self, room_id: &str, user_id: &str) {
        let mut rooms = self.rooms.lock().expect("typing lock");
        if let Some(room) = rooms.get_mut(room_id)
            && room.users.get(user_id).is_some_and(|until| *until <= Instant::now())
        {
            room.users.remove(user_id);
            room.serial = self.notifier.bump_typing(room_id);
        }
    }

    /// Who is typing in the room, if that changed after typing serial `since`.
    pub fn changed_since(&self, room_id: &str, since: u64) -> Option<Vec<String>> {
        let rooms = self.rooms.lock().expect("typing lock");
        let room = rooms.get(room_id)?;
        if room.serial <= since {
            return None;
        }
        let now = Instant::now();
        let mut users: Vec<String> =
            room.users.iter().filter(|(_, until)| **until > now).map(|(u, _)| u.clone()).collect();
        users.sort();
        Some(users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn typing_starts_stops_and_times_out() {
        let notifier = Notifier::new(0);
        let typing = Typing::new(notifier.clone());
        let start = notifier.current().typing;
        typing.set("!r", "@a:hs", true, Duration::from_millis(50));
        assert_eq!(typing.changed_since("!r", start), Some(vec!["@a:hs".to_owned()]));
        let after_start = notifier.current().typing;
        assert_eq!(typing.changed_since("!r", after_start), None);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(typing.changed_since("!r", after_start), Some(vec![]), "the timeout ends typing");
        typing.set("!r", "@b:hs", true, Duration::from_secs(30));
        typing.set("!r", "@b:hs", false, Duration::ZERO);
        assert_eq!(typing.changed_since("!r", after_start), Some(vec![]));
    }
}
