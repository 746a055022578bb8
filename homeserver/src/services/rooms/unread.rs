//! Unread notification and highlight counts per user and room, in memory: every /sync
//! response carries them, and they change with every message. Entries are filled from storage
//! while holding the stream (nothing commits meanwhile); after that the writer adds each new
//! event's notifications to the entries it concerns before publishing the event, and a read
//! receipt drops the user's entry so the next sync counts afresh.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{Rooms, heads::Members};
use crate::{error::ApiResult, services::push::evaluate::PushOutcome};

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

    /// A committed event's notifications (call while holding the stream): the shared result
    /// for every member but the sender and those whose own result differs.
    pub(super) fn add(&self, room_id: &str, sender: &str, members: &Members, push: &PushOutcome) {
        let mut users = self.users.lock().expect("unread lock");
        let bump = |counts: &mut Arc<Counts>, highlight: bool| {
            let entry = Arc::make_mut(counts).entry(room_id.to_owned()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += i64::from(highlight);
        };
        for row in push.differing.iter().filter(|row| row.notify) {
            if let Some(counts) = users.get_mut(&row.user_id) {
                bump(counts, row.highlight);
            }
        }
        let Some(shared) = &push.shared else { return };
        let gets_shared = |user: &str| user != sender && !push.differing.iter().any(|row| row.user_id == user);
        // Walk whichever is smaller: the loaded users or the room's members.
        if users.len() < members.len() {
            for (user, counts) in users.iter_mut() {
                if members.contains_key(user) && gets_shared(user) {
                    bump(counts, shared.highlight);
                }
            }
        } else {
            for user in members.keys() {
                if gets_shared(user)
                    && let Some(counts) = users.get_mut(user)
                {
                    bump(counts, shared.highlight);
                }
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
        use crate::storage::push::{PushActionRow, SharedPush};
        let unread = UnreadCounts::default();
        for user in ["@a:hs", "@c:hs", "@s:hs"] {
            unread.users.lock().unwrap().insert(user.into(), Arc::new(Counts::new()));
        }
        let members: Members =
            Arc::new(["@a:hs", "@b:hs", "@c:hs", "@s:hs"].into_iter().map(|u| (u.to_owned(), None)).collect());
        let shared = Some(SharedPush { actions: "[\"notify\"]".into(), highlight: false });
        let mention = PushActionRow { user_id: "@a:hs".into(), actions: "[]".into(), notify: true, highlight: true };
        let muted = PushActionRow { user_id: "@c:hs".into(), actions: "[]".into(), notify: false, highlight: false };
        unread.add("!r", "@s:hs", &members, &PushOutcome { shared: shared.clone(), differing: vec![mention, muted] });
        unread.add("!r", "@s:hs", &members, &PushOutcome { shared, differing: vec![] });
        assert_eq!(unread.get("@a:hs").unwrap()["!r"], (2, 1), "own result once, shared once");
        assert!(unread.get("@c:hs").unwrap().get("!r") == Some(&(1, 0)), "muted for the first only");
        assert!(unread.get("@s:hs").unwrap().get("!r").is_none(), "the sender's own messages never count");
        assert!(unread.get("@b:hs").is_none(), "not loaded: storage will count it");
        unread.forget("@a:hs");
        assert!(unread.get("@a:hs").is_none());
    }
}
