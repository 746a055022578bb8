//! Who needs to re-fetch whose keys (spec: § Tracking the device list for a user): a change to a
//! user's devices or keys is recorded at a stream position and published to the rooms they are
//! in, so every member's /sync wakes and lists the user in `device_lists.changed`. Membership
//! moves count too: someone who joins a room I am in (or a room I join) may have devices I have
//! not seen; someone with whom I no longer share a room goes in `left`.

use std::{collections::BTreeSet, sync::Arc};

use super::key_counts::KeyCounts;
use crate::{
    error::ApiResult,
    services::{
        rooms::Rooms,
        sync::{notifier::Scope, stream_writer::StreamWriter},
    },
    storage::Db,
};

pub struct DeviceLists {
    db: Db,
    streams: Arc<StreamWriter>,
    rooms: Arc<Rooms>,
    /// Forgotten on every change: a removed or re-created device must not keep old counts.
    key_counts: Arc<KeyCounts>,
}

/// `device_lists` of a sync response or /keys/changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DeviceListDelta {
    pub changed: BTreeSet<String>,
    pub left: BTreeSet<String>,
}

impl DeviceListDelta {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

impl DeviceLists {
    pub fn new(db: Db, streams: Arc<StreamWriter>, rooms: Arc<Rooms>, key_counts: Arc<KeyCounts>) -> Self {
        Self { db, streams, rooms, key_counts }
    }

    /// Records that `user_id`'s devices or keys changed and wakes everyone who shares a room
    /// with them (and their own other devices).
    pub async fn changed(&self, user_id: &str) -> ApiResult<()> {
        self.key_counts.forget(user_id, None);
        let memberships = self.rooms.memberships(user_id).await?;
        let slot = self.streams.begin().await;
        self.db.record_device_list_change(user_id, slot.position()).await?;
        let mut scope: Vec<Scope<'_>> =
            memberships.iter().filter(|m| m.membership == "join").map(|m| Scope::Keys(m.room_id.as_str())).collect();
        scope.push(Scope::User(user_id));
        slot.committed(&scope);
        Ok(())
    }

    /// What changed for `user_id` in (`since`, `now`].
    pub async fn delta(&self, user_id: &str, since: i64, now: i64) -> ApiResult<DeviceListDelta> {
        let mut delta = DeviceListDelta::default();
        if now <= since {
            return Ok(delta);
        }
        let recorded = self.db.device_list_changes_seen_by(user_id, since, now).await?;
        let own_devices_changed = recorded.iter().any(|user| user == user_id);
        delta.changed.extend(recorded);
        let moves = self.db.membership_changes_around(user_id, since, now).await?;
        let mut gone = BTreeSet::new();
        for (room_id, member, membership) in &moves {
            let joined = membership == "join";
            match (member == user_id, joined) {
                // I joined: everyone in the room may have devices I have not seen.
                (true, true) => delta.changed.extend(self.db.joined_member_ids(room_id).await?),
                // I left: the room's members may now share nothing with me.
                (true, false) => gone.extend(self.db.joined_member_ids(room_id).await?),
                (false, true) => {
                    delta.changed.insert(member.clone());
                }
                (false, false) => {
                    gone.insert(member.clone());
                }
            }
        }
        if !gone.is_empty() {
            let sharing: BTreeSet<String> = self.db.users_sharing_rooms(user_id).await?.into_iter().collect();
            delta.left.extend(gone.into_iter().filter(|user| !sharing.contains(user) && user != user_id));
        }
        delta.changed.retain(|user| !delta.left.contains(user));
        // My own devices are listed only when they changed, not because I joined a room.
        if !own_devices_changed {
            delta.changed.remove(user_id);
        }
        Ok(delta)
    }
}
