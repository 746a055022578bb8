//! Unread notification and highlight counts per user and room, in memory: every /sync
//! response carries them, and they change with every message. Entries are filled from storage
//! while holding the stream (nothing commits meanwhile); after that the writer adds each new
//! event's notifications to the entries it concerns before publishing the event, and a read
//! receipt drops the user's entry so the next sync counts afresh.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::Rooms;
use crate::{error::ApiResult, storage::push::PushActionRow};

/// Per room: (notifications, highlights).
pub type Counts = HashMap<String, (i64, i64)>;

/// Users remembered at once; past it the cache starts over.
const CAPACITY: usize = 200_000;

#[derive(Default)]
pub struct UnreadCounts {
    users: Mutex<HashMap<String, Arc<Counts>>>,
}

impl UnreadCounts {
    fn get(&self, user_id: &str) -> Option<Arc<Counts>> {
        self.users.lock().expect("unread lock").get(user_id).cloned()
    }

    /// A committed event's notifications (call while holding the stream).
    pub(super) fn add(&self, room_id: &str, rows: &[PushActionRow]) {
        let mut users = self.users.lock().expect("unread lock");
        for row in rows.iter().filter(|row| row.notify) {
            if let Some(counts) = users.get_mut(&row.user_id) {
                let entry = Arc::make_mut(counts).entry(room_id.to_owned()).or_insert((0, 0));
                entry.0 += 1;
                entry.1 += i64::from(row.highlight);
            }
        }
    }

    /// The user's read receipt moved (call while holding the stream).
    pub fn forget(&self, user_id: &str) {
        self.users.lock().expect("unread lock").remove(user_id);
    }
}

impl Rooms {
    /// The user's unread counts in every room with any.
    pub async fn unread_counts(&self, user_id: &str) -> ApiResult<Arc<Counts>> {
        if let Some(counts) = self.unread.get(user_id) {
            return Ok(counts);
        }
        let _quiet = self.streams.hold().await;
        if let Some(counts) = self.unread.get(user_id) {
            return Ok(counts);
        }
        let counts: Counts =
            self.db.unread_counts(user_id).await?.into_iter().map(|(room, n, h)| (room, (n, h))).collect();
        let counts = Arc::new(counts);
        let mut users = self.unread.users.lock().expect("unread lock");
        if users.len() >= CAPACITY {
            users.clear();
        }
        users.insert(user_id.to_owned(), counts.clone());
        Ok(counts)
    }

    /// The in-memory unread counts, for the receipts service to reset.
    pub fn unread(&self) -> &UnreadCounts {
        &self.unread
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_add_up_only_for_loaded_users() {
        let unread = UnreadCounts::default();
        unread.users.lock().unwrap().insert("@a:hs".into(), Arc::new(Counts::new()));
        let row = |user: &str, notify, highlight| PushActionRow {
            user_id: user.into(),
            actions: "[]".into(),
            notify,
            highlight,
        };
        unread.add("!r", &[row("@a:hs", true, false), row("@b:hs", true, true)]);
        unread.add("!r", &[row("@a:hs", true, true), row("@a:hs", false, false)]);
        assert_eq!(unread.get("@a:hs").unwrap()["!r"], (2, 1));
        assert!(unread.get("@b:hs").is_none(), "not loaded: storage will count it");
        unread.forget("@a:hs");
        assert!(unread.get("@a:hs").is_none());
    }
}
