//! Who needs to re-fetch whose keys (spec: § Tracking the device list for a user): a change to a
//! user's devices or keys is recorded at a stream position and published to the rooms they are
//! in, so every member's /sync wakes and lists the user in `device_lists.changed`. Membership
//! moves count too: someone who joins a room I am in (or a room I join) may have devices I have
//! not seen; someone with whom I no longer share a room goes in `left`.

use std::{collections::BTreeSet, sync::Arc};

use serde_json::json;

use super::key_counts::KeyCounts;
use crate::{
    error::ApiResult,
    services::{
        rooms::Rooms,
        sync::{notifier::Scope, stream_writer::StreamWriter},
        usernames::server_of,
    },
    storage::Db,
};

pub struct DeviceLists {
    db: Db,
    streams: Arc<StreamWriter>,
    rooms: Arc<Rooms>,
    /// Forgotten on every change: a removed or re-created device must not keep old counts.
    key_counts: Arc<KeyCounts>,
    server_name: String,
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
    pub fn new(
        db: Db,
        streams: Arc<StreamWriter>,
        rooms: Arc<Rooms>,
        key_counts: Arc<KeyCounts>,
        server_name: String,
    ) -> Self {
        Self { db, streams, rooms, key_counts, server_name }
    }

    /// Records that `user_id`'s devices or keys changed and wakes everyone who shares a room
    /// with them (and their own other devices); other servers sharing a room with a local user
    /// are told (see `announce`).
    pub async fn changed(&self, user_id: &str) -> ApiResult<()> {
        self.changed_device(user_id, None).await
    }

    /// `changed`, naming the device that changed when the caller knows it.
    pub async fn changed_device(&self, user_id: &str, device_id: Option<&str>) -> ApiResult<()> {
        self.key_counts.forget(user_id, None);
        let memberships = self.rooms.memberships(user_id).await?;
        let slot = self.streams.begin().await;
        let position = slot.position();
        self.db.record_device_list_change(user_id, position).await?;
        let mut scope: Vec<Scope<'_>> =
            memberships.iter().filter(|m| m.membership == "join").map(|m| Scope::Keys(m.room_id.as_str())).collect();
        scope.push(Scope::User(user_id));
        slot.committed(&scope);
        if server_of(user_id) == self.server_name {
            self.announce(user_id, device_id, position).await?;
        }
        Ok(())
    }

    /// Tells the servers sharing a room with a local user that their device list changed
    /// (spec: Server-Server API § Device Management, m.device_list_update). Hearth keeps no
    /// per-device change history to chain updates with, so `prev_id` is always empty: the
    /// receiving server refetches the whole list (GET /user/devices, which also carries the
    /// cross-signing keys) — what the spec has it do whenever it cannot apply an update as a
    /// delta. The device named is the one that changed, or (a cross-signing or bulk change) one
    /// of the user's devices.
    async fn announce(&self, user_id: &str, device_id: Option<&str>, stream_id: i64) -> ApiResult<()> {
        let device_id = match device_id {
            Some(device_id) => device_id.to_owned(),
            None => match self.db.devices(user_id).await?.into_iter().next() {
                Some(device) => device.device_id,
                None => return Ok(()),
            },
        };
        let device = self.db.device(user_id, &device_id).await?;
        let mut content = json!({
            "user_id": user_id,
            "device_id": device_id,
            "stream_id": stream_id,
            "prev_id": [],
            "deleted": device.is_none(),
        });
        if let Some(name) = device.and_then(|device| device.display_name) {
            content["device_display_name"] = name.into();
        }
        let edu = json!({"edu_type": "m.device_list_update", "content": content});
        self.rooms.send_edu_to_servers_of(user_id, edu, true).await
    }

    /// Sends an m.signing_key_update (`content`: the user id and their new master and/or
    /// self-signing keys) to the servers sharing a room with the local user.
    pub async fn announce_signing_keys(&self, user_id: &str, content: serde_json::Value) -> ApiResult<()> {
        let edu = json!({"edu_type": "m.signing_key_update", "content": content});
        self.rooms.send_edu_to_servers_of(user_id, edu, true).await
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
