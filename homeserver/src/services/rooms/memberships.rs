//! Each user's room memberships, kept in memory: every /sync starts from them. The writer
//! updates a user's entry when one of their membership events commits (while it still holds
//! the stream, before the position is published), and a missing entry is loaded while holding
//! the stream too, so no commit can slip between reading storage and filling the entry.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::Rooms;
use crate::{error::ApiResult, storage::rooms::MembershipRecord};

/// Users remembered at once; past it the cache starts over.
const CAPACITY: usize = 200_000;

#[derive(Default)]
pub struct MembershipCache {
    users: Mutex<HashMap<String, Arc<Vec<MembershipRecord>>>>,
}

impl MembershipCache {
    fn get(&self, user_id: &str) -> Option<Arc<Vec<MembershipRecord>>> {
        self.users.lock().expect("membership cache lock").get(user_id).cloned()
    }

    fn insert(&self, user_id: &str, records: Vec<MembershipRecord>) -> Arc<Vec<MembershipRecord>> {
        let mut users = self.users.lock().expect("membership cache lock");
        if users.len() >= CAPACITY {
            users.clear();
        }
        users.entry(user_id.to_owned()).or_insert_with(|| Arc::new(records)).clone()
    }

    /// A committed membership event (call while holding the stream).
    pub(super) fn apply(&self, user_id: &str, record: MembershipRecord) {
        let mut users = self.users.lock().expect("membership cache lock");
        if let Some(records) = users.get_mut(user_id) {
            let records = Arc::make_mut(records);
            records.retain(|r| r.room_id != record.room_id);
            records.push(record);
        }
    }

    /// The user forgot a room (call while holding the stream).
    pub(super) fn forget(&self, user_id: &str, room_id: &str) {
        if let Some(records) = self.users.lock().expect("membership cache lock").get_mut(user_id) {
            Arc::make_mut(records).retain(|r| r.room_id != room_id);
        }
    }
}

impl Rooms {
    /// Every room the user has a membership in (not forgotten), as of the latest commit.
    /// The rooms the user is joined to.
    pub async fn joined_room_ids(&self, user_id: &str) -> ApiResult<Vec<String>> {
        Ok(self
            .memberships(user_id)
            .await?
            .iter()
            .filter(|m| m.membership == "join")
            .map(|m| m.room_id.clone())
            .collect())
    }

    pub async fn memberships(&self, user_id: &str) -> ApiResult<Arc<Vec<MembershipRecord>>> {
        if let Some(records) = self.memberships.get(user_id) {
            return Ok(records);
        }
        let _quiet = self.streams.hold().await;
        if let Some(records) = self.memberships.get(user_id) {
            return Ok(records);
        }
        let records = self.db.rooms_for_user(user_id).await?;
        Ok(self.memberships.insert(user_id, records))
    }
}
