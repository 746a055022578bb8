//! Presence (spec: Client-Server API § Presence): online, unavailable, offline, a status message
//! and how long ago the user was last active. Stored, so status messages survive restarts; a
//! user whose last activity is older than `IDLE_AFTER` is reported unavailable, and offline
//! after `OFFLINE_AFTER`, as Synapse does. Across servers (spec: Server-Server API § Presence),
//! each write of a local user's presence goes as an m.presence EDU to the servers sharing a room
//! with them (activity refreshes are written at most once a minute), and other servers' EDUs
//! are kept for their users who share a room with ours.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{
    error::{ApiError, ApiResult},
    services::{
        rooms::Rooms,
        sync::{notifier::Scope, stream_writer::StreamWriter},
        usernames::server_of,
    },
    storage::{Db, account_data::PresenceRecord, now_ms},
};

const IDLE_AFTER_MS: i64 = 5 * 60 * 1000;
const OFFLINE_AFTER_MS: i64 = 30 * 60 * 1000;
/// Activity refreshes are written at most this often per user (syncs happen constantly).
const ACTIVITY_WRITE_INTERVAL_MS: i64 = 60 * 1000;

pub struct Presence {
    db: Db,
    streams: Arc<StreamWriter>,
    rooms: Arc<Rooms>,
    enabled: bool,
}

impl Presence {
    pub fn new(db: Db, streams: Arc<StreamWriter>, rooms: Arc<Rooms>, enabled: bool) -> Self {
        Self { db, streams, rooms, enabled }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn check_enabled(&self) -> ApiResult<()> {
        if self.enabled { Ok(()) } else { Err(ApiError::forbidden("Presence is disabled on this server")) }
    }

    /// PUT /presence/{userId}/status
    pub async fn set(&self, user_id: &str, state: &str, status_msg: Option<&str>) -> ApiResult<()> {
        self.check_enabled()?;
        if !matches!(state, "online" | "unavailable" | "offline") {
            return Err(ApiError::invalid_param("presence must be online, unavailable or offline"));
        }
        if status_msg.is_some_and(|m| m.len() > 1024) {
            return Err(ApiError::invalid_param("status_msg is too long"));
        }
        self.write(PresenceRecord {
            user_id: user_id.to_owned(),
            state: state.to_owned(),
            status_msg: status_msg.map(str::to_owned),
            last_active_ts: now_ms(),
        })
        .await
    }

    async fn write(&self, record: PresenceRecord) -> ApiResult<()> {
        let slot = self.streams.begin().await;
        self.db.set_presence(&record, slot.position()).await?;
        slot.committed(&[Scope::Presence]);
        if server_of(&record.user_id) == self.rooms.server_name() {
            let mut update = content(&record);
            update["user_id"] = record.user_id.clone().into();
            let edu = json!({"edu_type": "m.presence", "content": {"push": [update]}});
            self.rooms.send_edu_to_servers_of(&record.user_id, edu, false).await?;
        }
        Ok(())
    }

    /// An m.presence EDU from `origin`: each update of one of its own users who is in a room
    /// this server is in is kept (and shown in /sync like local presence).
    pub async fn receive_remote(&self, origin: &str, content: &Value) -> ApiResult<()> {
        if !self.enabled {
            return Ok(());
        }
        for update in content["push"].as_array().into_iter().flatten() {
            let (Some(user_id), Some(state)) = (update["user_id"].as_str(), update["presence"].as_str()) else {
                continue;
            };
            if server_of(user_id) != origin
                || !matches!(state, "online" | "unavailable" | "offline")
                || !self.db.is_joined_anywhere(user_id).await?
            {
                continue;
            }
            let ago = update["last_active_ago"].as_i64().unwrap_or(0).clamp(0, OFFLINE_AFTER_MS * 1000);
            let status_msg = update["status_msg"].as_str().filter(|m| m.len() <= 1024);
            self.write(PresenceRecord {
                user_id: user_id.to_owned(),
                state: state.to_owned(),
                status_msg: status_msg.map(str::to_owned),
                last_active_ts: now_ms() - ago,
            })
            .await?;
        }
        Ok(())
    }

    /// A /sync with `set_presence` (default online): record activity, without a write on every
    /// request.
    pub async fn touch_from_sync(&self, user_id: &str, set_presence: &str) -> ApiResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let current = self.db.presence(user_id).await?;
        let now = now_ms();
        let unchanged = current
            .as_ref()
            .is_some_and(|c| c.state == set_presence && now - c.last_active_ts < ACTIVITY_WRITE_INTERVAL_MS);
        if unchanged {
            return Ok(());
        }
        let status_msg = current.and_then(|c| c.status_msg);
        self.write(PresenceRecord {
            user_id: user_id.to_owned(),
            state: set_presence.to_owned(),
            status_msg,
            last_active_ts: now,
        })
        .await
    }

    /// GET /presence/{userId}/status
    pub async fn get(&self, user_id: &str) -> ApiResult<Value> {
        self.check_enabled()?;
        if !self.db.user_exists(user_id).await? {
            return Err(ApiError::not_found("Unknown user"));
        }
        Ok(match self.db.presence(user_id).await? {
            Some(record) => content(&record),
            None => json!({"presence": "offline"}),
        })
    }
}

/// The m.presence content as others see it, with idle and offline derived from last activity.
pub fn content(record: &PresenceRecord) -> Value {
    let ago = (now_ms() - record.last_active_ts).max(0);
    let state = match record.state.as_str() {
        "online" if ago > OFFLINE_AFTER_MS => "offline",
        "online" if ago > IDLE_AFTER_MS => "unavailable",
        other => other,
    };
    let mut content = json!({"presence": state, "last_active_ago": ago, "currently_active": state == "online"});
    if let Some(message) = &record.status_msg {
        content["status_msg"] = message.clone().into();
    }
    content
}
