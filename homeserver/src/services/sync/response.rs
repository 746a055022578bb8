//! Assembling a /sync response (spec: Client-Server API § Syncing) from storage at one stream
//! position. Long-polling waits on the notifier, never on a timer loop: the request sleeps until
//! a position past its token is published, re-reads, and answers as soon as something for this
//! user is there.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};

use super::token::StreamToken;
use crate::{
    error::ApiResult,
    services::rooms::{Rooms, format::stripped_state},
    storage::{Db, rooms::MembershipRecord},
};

/// What a client asked of /sync.
pub struct SyncRequest {
    pub since: Option<StreamToken>,
    pub timeout: Duration,
    pub full_state: bool,
    pub timeline_limit: i64,
}

pub struct SyncService {
    db: Db,
    rooms: Arc<Rooms>,
}

/// State event types an invitee sees (spec: § Stripped state, the recommended set).
const INVITE_STATE_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

impl SyncService {
    pub fn new(db: Db, rooms: Arc<Rooms>) -> Self {
        Self { db, rooms }
    }

    pub async fn sync(&self, user_id: &str, device_id: &str, request: SyncRequest) -> ApiResult<Value> {
        let deadline = Instant::now() + request.timeout;
        let notifier = self.rooms.notifier();
        let mut now = notifier.current();
        if let Some(since) = request.since
            && !request.full_state
        {
            // Nothing new for this user yet: sleep until the stream moves, then look again.
            while !self.has_updates(user_id, since.0, now).await? {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                now = notifier.wait_past(now, remaining).await;
            }
        }
        self.build(user_id, device_id, &request, now).await
    }

    async fn has_updates(&self, user_id: &str, since: i64, now: i64) -> ApiResult<bool> {
        Ok(now > since && !self.db.rooms_with_new_events(user_id, since, now).await?.is_empty())
    }

    async fn build(&self, user_id: &str, device_id: &str, request: &SyncRequest, now: i64) -> ApiResult<Value> {
        let since = request.since.map(|t| t.0);
        let changed: HashSet<String> = match since {
            Some(since) if now > since => {
                self.db.rooms_with_new_events(user_id, since, now).await?.into_iter().collect()
            }
            _ => HashSet::new(),
        };
        let mut join = Map::new();
        let mut invite = Map::new();
        let mut leave = Map::new();
        for record in self.db.rooms_for_user(user_id).await? {
            let Some(membership) = self.membership_at(&record, user_id, now).await? else { continue };
            let is_new = since.is_none_or(|since| record.stream > since) && record.stream <= now;
            let room_changed = since.is_none() || changed.contains(&record.room_id) || request.full_state;
            match membership.as_str() {
                "join" if room_changed => {
                    let joined_in_window = since.is_some_and(|s| record.stream > s && record.stream <= now);
                    let entry = self
                        .room_entry(
                            user_id,
                            device_id,
                            &record.room_id,
                            since,
                            now,
                            request,
                            request.full_state || joined_in_window,
                        )
                        .await?;
                    join.insert(record.room_id.clone(), entry);
                }
                "invite" if is_new || (since.is_none()) => {
                    invite.insert(
                        record.room_id.clone(),
                        json!({"invite_state": {"events": self.invite_state(&record).await?}}),
                    );
                }
                "leave" | "ban" if since.is_some() && is_new => {
                    let until = record.stream.min(now);
                    let entry =
                        self.room_entry(user_id, device_id, &record.room_id, since, until, request, false).await?;
                    leave.insert(record.room_id.clone(), entry);
                }
                _ => {}
            }
        }
        Ok(json!({
            "next_batch": StreamToken(now).to_string(),
            "rooms": {"join": join, "invite": invite, "leave": leave},
        }))
    }

    /// The membership as of `now`: the current row, unless it changed after `now` (a writer
    /// committed while this response was being built), then the state at `now`.
    async fn membership_at(&self, record: &MembershipRecord, user_id: &str, now: i64) -> ApiResult<Option<String>> {
        if record.stream <= now {
            return Ok(Some(record.membership.clone()));
        }
        Ok(self.db.membership_at(&record.room_id, user_id, now).await?)
    }

    /// A joined (or left) room: the newest `limit` events in (since, up_to], and the state at
    /// the start of that timeline when the client needs it.
    #[allow(clippy::too_many_arguments)]
    async fn room_entry(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        since: Option<i64>,
        up_to: i64,
        request: &SyncRequest,
        force_state: bool,
    ) -> ApiResult<Value> {
        let after = since.unwrap_or(0);
        let limit = request.timeline_limit;
        let mut events = self.db.room_events(room_id, after, up_to, limit + 1, true).await?;
        let limited = events.len() as i64 > limit;
        events.truncate(limit as usize);
        events.reverse();
        let timeline_start = events.first().map(|e| e.stream - 1).unwrap_or(up_to);
        let send_state = since.is_none() || limited || force_state;
        let state_events = if send_state {
            let timeline_ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
            let ids: Vec<String> = self
                .db
                .state_at(room_id, timeline_start)
                .await?
                .into_iter()
                .map(|entry| entry.event_id)
                .filter(|id| !timeline_ids.contains(id.as_str()))
                .collect();
            self.db.events(&ids).await?
        } else {
            Vec::new()
        };
        let mut timeline = self.rooms.format_events(&events, true).await?;
        self.add_transaction_ids(user_id, device_id, &events, &mut timeline).await?;
        let state = self.rooms.format_events(&state_events, true).await?;
        Ok(json!({
            "timeline": {"events": timeline, "limited": limited, "prev_batch": StreamToken(timeline_start).to_string()},
            "state": {"events": state},
        }))
    }

    /// `unsigned.transaction_id` on the requesting device's own events, so clients can match
    /// their local echo.
    async fn add_transaction_ids(
        &self,
        user_id: &str,
        device_id: &str,
        events: &[crate::storage::rooms::StoredEvent],
        formatted: &mut [Value],
    ) -> ApiResult<()> {
        let own: Vec<String> = events.iter().filter(|e| e.sender == user_id).map(|e| e.event_id.clone()).collect();
        if own.is_empty() {
            return Ok(());
        }
        let txns: HashMap<String, String> =
            self.db.transaction_ids(user_id, device_id, &own).await?.into_iter().collect();
        for event in formatted.iter_mut() {
            if let Some(txn) = event["event_id"].as_str().and_then(|id| txns.get(id)) {
                event["unsigned"]["transaction_id"] = txn.clone().into();
            }
        }
        Ok(())
    }

    async fn invite_state(&self, record: &MembershipRecord) -> ApiResult<Vec<Value>> {
        let entries = self.db.state_at(&record.room_id, record.stream).await?;
        let ids: Vec<String> = entries
            .into_iter()
            .filter(|e| INVITE_STATE_TYPES.contains(&e.event_type.as_str()) || e.event_id == record.event_id)
            .map(|e| e.event_id)
            .collect();
        Ok(self.db.events(&ids).await?.iter().map(stripped_state).collect())
    }
}
