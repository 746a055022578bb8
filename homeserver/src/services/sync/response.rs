//! Assembling a /sync response (spec: Client-Server API § Syncing) at one set of positions.
//! Long-polling waits on the notifier, never on a timer loop: the request sleeps until a position
//! past its token is published, checks whether anything concerns this user, and answers as soon
//! as something does.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};

use super::token::{StreamToken, SyncToken};
use crate::{
    error::{ApiError, ApiResult},
    services::{
        account_data::AccountData,
        e2ee::{
            device_lists::{DeviceListDelta, DeviceLists},
            key_counts::KeyCounts,
            to_device::ToDevice,
        },
        edus::{presence::Presence, receipts::Receipts, typing::Typing},
        push::rules::PushRules,
        rooms::{Rooms, format::stripped_state, read::Visibility},
    },
    storage::{
        Db,
        rooms::{MembershipRecord, StoredEvent},
    },
};

/// What a client asked of /sync.
pub struct SyncRequest {
    pub since: Option<SyncToken>,
    pub timeout: Duration,
    pub full_state: bool,
    pub timeline_limit: i64,
    /// Only the member events of the timeline's senders (and the user's own) in `state`.
    pub lazy_load_members: bool,
    /// Which rooms, event types and senders the client wants in each section (shared by the
    /// requests that send the same filter, see `SyncService::filter`).
    pub filter: Arc<super::filter::SyncFilter>,
}

pub struct SyncService {
    db: Db,
    rooms: Arc<Rooms>,
    account_data: Arc<AccountData>,
    receipts: Arc<Receipts>,
    typing: Typing,
    presence: Arc<Presence>,
    push_rules: Arc<PushRules>,
    e2ee: E2eeSync,
    lazy_members: super::lazy_members::LazyMembers,
    /// Initial and full-state responses being built at once (twice the cores). Each is a whole
    /// response under construction; a herd of them (every client reconnecting after a restart)
    /// would otherwise hold a thousand half-built responses in memory at the same time, for no
    /// gain in throughput since building them is CPU and database work.
    whole_responses: tokio::sync::Semaphore,
    filters: super::filter_cache::FilterCache,
}

/// What /sync needs of end-to-end encryption: device list changes, to-device messages and
/// key counts.
pub struct E2eeSync {
    pub device_lists: Arc<DeviceLists>,
    pub to_device: Arc<ToDevice>,
    pub key_counts: Arc<KeyCounts>,
}

/// State event types an invitee sees (spec: § Stripped state, the recommended set).
pub(crate) const INVITE_STATE_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

/// Everything that changed for one user between two positions, read once per response.
#[derive(Default)]
struct Changes {
    rooms_with_events: HashSet<String>,
    rooms_with_receipts: HashSet<String>,
    account_data: Vec<crate::storage::account_data::AccountDataRecord>,
    presence: Vec<crate::storage::account_data::PresenceRecord>,
    /// The device has to-device messages in the window.
    to_device: bool,
    /// The user's own membership of some room changed in the window (a room created, joined,
    /// left, an invite): the rooms the wait started with are out of date.
    own_membership: bool,
    device_lists: DeviceListDelta,
}

impl SyncService {
    // One argument per service a response reads from; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        rooms: Arc<Rooms>,
        account_data: Arc<AccountData>,
        receipts: Arc<Receipts>,
        typing: Typing,
        presence: Arc<Presence>,
        push_rules: Arc<PushRules>,
        e2ee: E2eeSync,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            db,
            rooms,
            account_data,
            receipts,
            typing,
            presence,
            push_rules,
            e2ee,
            lazy_members: Default::default(),
            whole_responses: tokio::sync::Semaphore::new(2 * cores),
            filters: Default::default(),
        }
    }

    /// The parsed sync filter for a filter's JSON text, shared with the /syncs that hold the
    /// same text. `parse` reads the text; it runs only when no /sync holds this filter now.
    pub fn filter(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> ApiResult<Value>,
    ) -> ApiResult<Arc<super::filter::SyncFilter>> {
        self.filters.get_or_parse(text, parse)
    }

    /// The request is boxed: this future keeps room for its arguments while it waits.
    pub async fn sync(&self, user_id: &str, device_id: &str, request: Box<SyncRequest>) -> ApiResult<Value> {
        // Initial and full-state syncs never wait for news; they take a turn to be built.
        let _turn = if request.since.is_none() || request.full_state {
            Some(self.whole_responses.acquire().await.map_err(ApiError::internal)?)
        } else {
            None
        };
        let deadline = Instant::now() + request.timeout;
        let notifier = self.rooms.notifier();
        let mut now = notifier.current();
        // Boxed, like every read below: this future is kept for the whole wait, so only the
        // wait's own state should be in it.
        let joined = Box::pin(self.rooms.memberships(user_id)).await?;
        let mut changes = None;
        if let Some(since) = request.since
            && !request.full_state
        {
            let rooms: Vec<String> = joined.iter().map(|m| m.room_id.clone()).collect();
            let presence = self.presence.enabled();
            // Everything up to `checked` has been looked at and found not to concern this user.
            let mut checked = since.stream;
            loop {
                if self.typing_changed(&joined, since.typing) {
                    break;
                }
                // Only read storage when something may concern this user.
                if notifier.may_concern(user_id, &rooms, checked, presence) {
                    let found = Box::pin(self.changes(user_id, device_id, &rooms, since.stream, now.stream)).await?;
                    if !found.is_empty() {
                        // Boxed, so that the wait does not keep room for them.
                        changes = Some(Box::new(found));
                        break;
                    }
                    checked = now.stream;
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                // Register, then look once more (a change may have landed meanwhile), then sleep
                // until something concerning this user is published.
                let waiter = notifier.waiter(user_id, &rooms, presence);
                if !notifier.may_concern(user_id, &rooms, checked, presence)
                    && !self.typing_changed(&joined, since.typing)
                {
                    waiter.wait(remaining).await;
                }
                now = notifier.current();
            }
        }
        // The wait loop may have read the changes up to `now` already; typing or a timeout may
        // also have ended it, and then they are read here.
        let changes = match changes {
            Some(changes) => *changes,
            None => {
                let rooms: Vec<String> = joined.iter().map(|m| m.room_id.clone()).collect();
                let since = request.since.map_or(0, |s| s.stream);
                Box::pin(self.changes(user_id, device_id, &rooms, since, now.stream)).await?
            }
        };
        // Memberships read before the wait are stale only if the user's own scope moved (a
        // membership change of theirs); then read them again.
        let own_moved = request
            .since
            .is_some_and(|since| notifier.changed_since(user_id, &[], since.stream).is_none_or(|moved| moved.user));
        let joined = if own_moved { Box::pin(self.rooms.memberships(user_id)).await? } else { joined };
        // Boxed: a thousand waiting long-polls each hold this future, and building a response
        // is by far its largest state; it is only allocated when there is something to send.
        Box::pin(self.build(user_id, device_id, &request, now, changes, joined)).await
    }

    fn typing_changed(&self, memberships: &[MembershipRecord], since: u64) -> bool {
        memberships.iter().any(|m| m.membership == "join" && self.typing.changed_since(&m.room_id, since).is_some())
    }

    /// What changed for the user in (since, now]. The notifier knows which rooms moved and
    /// whether the user's account data or presence did, so storage is asked only about those;
    /// for tokens from before start-up, storage is asked about everything.
    async fn changes(
        &self,
        user_id: &str,
        device_id: &str,
        rooms: &[String],
        since: i64,
        now: i64,
    ) -> ApiResult<Changes> {
        if now <= since {
            return Ok(Changes::default());
        }
        if let Some(moved) = self.rooms.notifier().changed_since(user_id, rooms, since) {
            let to_device = moved.user && self.e2ee.to_device.pending(user_id, device_id, since, now).await?;
            let own_membership = moved.user && self.own_membership_moved(user_id, since, now).await?;
            let device_lists = if moved.user || !moved.keys.is_empty() {
                self.e2ee.device_lists.delta(user_id, since, now).await?
            } else {
                DeviceListDelta::default()
            };
            return Ok(Changes {
                to_device,
                own_membership,
                device_lists,
                rooms_with_events: moved.rooms.into_iter().collect(),
                rooms_with_receipts: moved.receipts.into_iter().collect(),
                account_data: if moved.user {
                    self.db.account_data_since(user_id, since, now).await?
                } else {
                    Vec::new()
                },
                presence: if moved.presence && self.presence.enabled() {
                    self.db.presence_since(user_id, since, now).await?
                } else {
                    Vec::new()
                },
            });
        }
        Ok(Changes {
            to_device: self.e2ee.to_device.pending(user_id, device_id, since, now).await?,
            own_membership: self.own_membership_moved(user_id, since, now).await?,
            device_lists: self.e2ee.device_lists.delta(user_id, since, now).await?,
            rooms_with_events: self.db.rooms_with_new_events(user_id, since, now).await?.into_iter().collect(),
            rooms_with_receipts: self.db.rooms_with_new_receipts(user_id, since, now).await?.into_iter().collect(),
            account_data: self.db.account_data_since(user_id, since, now).await?,
            presence: if self.presence.enabled() {
                self.db.presence_since(user_id, since, now).await?
            } else {
                Vec::new()
            },
        })
    }

    /// Whether one of the user's memberships changed in (`since`, `now`].
    async fn own_membership_moved(&self, user_id: &str, since: i64, now: i64) -> ApiResult<bool> {
        let memberships = self.rooms.memberships(user_id).await?;
        Ok(memberships.iter().any(|m| m.stream > since && m.stream <= now))
    }

    async fn build(
        &self,
        user_id: &str,
        device_id: &str,
        request: &SyncRequest,
        now: SyncToken,
        changes: Changes,
        memberships: Arc<Vec<MembershipRecord>>,
    ) -> ApiResult<Value> {
        let since = request.since;
        let since_stream = since.map(|s| s.stream);
        let ignored: HashSet<String> = self.account_data.ignored_users(user_id).await?.iter().cloned().collect();
        let mut room_account_data: HashMap<String, Vec<Value>> = HashMap::new();
        let mut global_account_data = Vec::new();
        for record in &changes.account_data {
            let section = if record.room_id.is_empty() {
                &request.filter.account_data
            } else {
                &request.filter.room_account_data
            };
            if !section.allows_type(&record.data_type) {
                continue;
            }
            let event = json!({"type": record.data_type, "content": serde_json::from_str::<Value>(&record.content).unwrap_or_default()});
            if record.room_id.is_empty() {
                global_account_data.push(event);
            } else {
                room_account_data.entry(record.room_id.clone()).or_default().push(event);
            }
        }

        // Clients read their push rules from the first sync; until a user changes them, they are
        // the spec's defaults, which are not stored.
        if since.is_none()
            && request.filter.account_data.allows_type("m.push_rules")
            && !global_account_data.iter().any(|e| e["type"] == "m.push_rules")
        {
            global_account_data
                .push(json!({"type": "m.push_rules", "content": self.push_rules.content(user_id).await?}));
        }
        let unread = self.rooms.unread_counts(user_id).await?;
        let mut join = Map::new();
        let mut invite = Map::new();
        let mut leave = Map::new();
        let mut knock = Map::new();
        for record in memberships.iter() {
            if !request.filter.rooms.allows_room(&record.room_id) {
                continue;
            }
            let Some(membership) = self.membership_at(record, user_id, now.stream).await? else { continue };
            let is_new = since_stream.is_none_or(|since| record.stream > since) && record.stream <= now.stream;
            match membership.as_str() {
                "join" => {
                    let room = &record.room_id;
                    let typing = self.typing.changed_since(room, since.map_or(0, |s| s.typing));
                    let account_data = room_account_data.remove(room).unwrap_or_default();
                    let joined_in_window =
                        since_stream.is_some_and(|s| record.stream > s && record.stream <= now.stream);
                    let has_events = since.is_none()
                        || request.full_state
                        || joined_in_window
                        || changes.rooms_with_events.contains(room);
                    let has_other =
                        typing.is_some() || !account_data.is_empty() || changes.rooms_with_receipts.contains(room);
                    if !has_events && !has_other {
                        continue;
                    }
                    let mut entry = if has_events {
                        let window = Window {
                            since: since_stream,
                            up_to: now.stream,
                            force_state: request.full_state || joined_in_window,
                        };
                        self.room_timeline(user_id, device_id, room, Visibility::Member, window, request, &ignored)
                            .await?
                    } else {
                        json!({"timeline": {"events": [], "limited": false, "prev_batch": StreamToken(now.stream).to_string()}, "state": {"events": []}})
                    };
                    let mut ephemeral = Vec::new();
                    let typing = typing.filter(|_| request.filter.ephemeral.allows_type("m.typing"));
                    if let Some(user_ids) = typing {
                        ephemeral.push(json!({"type": "m.typing", "content": {"user_ids": user_ids}}));
                    }
                    let receipts_after = if joined_in_window { 0 } else { since_stream.unwrap_or(0) };
                    if request.filter.ephemeral.allows_type("m.receipt")
                        && (since.is_none() || joined_in_window || changes.rooms_with_receipts.contains(room))
                        && let Some(receipts) =
                            self.receipts.receipt_event(user_id, room, receipts_after, now.stream).await?
                    {
                        ephemeral.push(receipts);
                    }
                    entry["ephemeral"] = json!({"events": ephemeral});
                    let (notifications, highlights) = unread.get(room).copied().unwrap_or((0, 0));
                    entry["unread_notifications"] =
                        json!({"notification_count": notifications, "highlight_count": highlights});
                    entry["account_data"] = json!({"events": account_data});
                    join.insert(room.clone(), entry);
                }
                "invite" if is_new => {
                    let inviter = self.db.event(&record.event_id).await?.map(|e| e.sender);
                    if inviter.is_some_and(|sender| ignored.contains(&sender)) {
                        continue; // an ignored user's invites never reach the ignoring user
                    }
                    invite.insert(
                        record.room_id.clone(),
                        json!({"invite_state": {"events": self.invite_state(record).await?}}),
                    );
                }
                "knock" if is_new => {
                    knock.insert(
                        record.room_id.clone(),
                        json!({"knock_state": {"events": self.invite_state(record).await?}}),
                    );
                }
                "leave" | "ban" if since.is_some() && is_new => {
                    if self.db.room_version(&record.room_id).await?.is_none() {
                        // A rejected invite or withdrawn knock into a room on another server:
                        // the leave is all there is to show.
                        let mut timeline = Vec::new();
                        for event in self.db.events(std::slice::from_ref(&record.event_id)).await? {
                            timeline.push(self.rooms.format_out_of_band(user_id, &event).await?);
                        }
                        let prev_batch = StreamToken(record.stream).to_string();
                        leave.insert(
                            record.room_id.clone(),
                            json!({"timeline": {"events": timeline, "limited": false, "prev_batch": prev_batch}, "state": {"events": []}}),
                        );
                        continue;
                    }
                    let window =
                        Window { since: since_stream, up_to: record.stream.min(now.stream), force_state: false };
                    let visibility = Visibility::Until(record.stream);
                    let entry = self
                        .room_timeline(user_id, device_id, &record.room_id, visibility, window, request, &ignored)
                        .await?;
                    leave.insert(record.room_id.clone(), entry);
                }
                _ => {}
            }
        }
        let presence: Vec<Value> = changes
            .presence
            .iter()
            .filter(|_| request.filter.presence.allows_type("m.presence"))
            .map(|p| json!({"type": "m.presence", "sender": p.user_id, "content": super::super::edus::presence::content(p)}))
            .collect();
        let to_device = self.e2ee.to_device.for_sync(user_id, device_id, since_stream, now.stream).await?;
        let key_counts = self.e2ee.key_counts.get(user_id, device_id).await?;
        let (one_time_keys, fallback_types) = &*key_counts;
        let mut response = json!({
            "next_batch": now.to_string(),
            "rooms": {"join": join, "invite": invite, "leave": leave, "knock": knock},
            "account_data": {"events": global_account_data},
            "presence": {"events": presence},
            "to_device": {"events": to_device},
            "device_one_time_keys_count": one_time_keys,
            "device_unused_fallback_key_types": fallback_types,
        });
        if since.is_some() {
            let lists = &changes.device_lists;
            response["device_lists"] = json!({"changed": lists.changed, "left": lists.left});
        }
        Ok(response)
    }

    /// The membership as of `now`: the current row, unless it changed after `now` (a writer
    /// committed while this response was being built), then the state at `now`.
    async fn membership_at(&self, record: &MembershipRecord, user_id: &str, now: i64) -> ApiResult<Option<String>> {
        if record.stream <= now {
            return Ok(Some(record.membership.clone()));
        }
        Ok(self.db.membership_at(&record.room_id, user_id, now).await?)
    }

    /// A room's timeline: the newest `limit` events in (since, up_to] that the user may see
    /// and the filter wants, and the state at the start of that timeline when the client needs
    /// it (lazy loading: the members of the timeline's senders this device lacks).
    #[allow(clippy::too_many_arguments)]
    async fn room_timeline(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        visibility: Visibility,
        window: Window,
        request: &SyncRequest,
        ignored: &HashSet<String>,
    ) -> ApiResult<Value> {
        let view = self.rooms.history_view(user_id, room_id, visibility).await?;
        let after = window.since.unwrap_or(0).max(view.floor()).min(window.up_to);
        let timeline_filter = &request.filter.timeline;
        // Ignored users' messages are left out; their state changes (joins, names) stay.
        let wanted = |e: &StoredEvent| {
            (e.state_key.is_some() || !ignored.contains(&e.sender)) && timeline_filter.allows(e) && view.can_see(e)
        };
        let (mut events, more) =
            self.rooms.scan(room_id, after, window.up_to, true, request.timeline_limit, wanted).await?;
        let limited = more.is_some();
        events.reverse();
        let timeline_start = events.first().map(|e| e.stream - 1).unwrap_or(window.up_to);
        let full_state = window.since.is_none() || limited || window.force_state;
        let lazy = request.lazy_load_members;
        if full_state && lazy {
            self.lazy_members.forget_room(user_id, device_id, room_id);
        }
        let timeline_ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let state_events = if full_state {
            // Lazy loading: of all member events, only those of the timeline's senders and the
            // user's own (spec: § Lazy-loading room members).
            let entries = if lazy {
                // Everything but members, and the members of the timeline's senders and the user:
                // two small reads however many members the room has.
                let mut senders: Vec<&str> = events.iter().map(|e| e.sender.as_str()).chain([user_id]).collect();
                senders.sort_unstable();
                senders.dedup();
                let keys: Vec<(String, String)> =
                    senders.iter().map(|m| ("m.room.member".to_owned(), (*m).to_owned())).collect();
                let mut entries = self.db.state_at_except_members(room_id, timeline_start).await?;
                entries.extend(self.db.state_entries_at(room_id, &keys, timeline_start).await?);
                entries
            } else {
                self.db.state_at(room_id, timeline_start).await?
            };
            let ids: Vec<String> = entries
                .into_iter()
                .map(|entry| entry.event_id)
                .filter(|id| !timeline_ids.contains(id.as_str()))
                .collect();
            self.db.events(&ids).await?
        } else if lazy {
            // An incremental sync: the member events of senders this device has not seen yet.
            let mut senders: Vec<&str> = events.iter().map(|e| e.sender.as_str()).collect();
            senders.sort_unstable();
            senders.dedup();
            let missing = if request.filter.state.include_redundant_members {
                senders
            } else {
                self.lazy_members.missing(user_id, device_id, room_id, &senders)
            };
            if missing.is_empty() {
                Vec::new()
            } else {
                let keys: Vec<(String, String)> =
                    missing.iter().map(|m| ("m.room.member".to_owned(), (*m).to_owned())).collect();
                let ids: Vec<String> = self
                    .db
                    .state_entries_at(room_id, &keys, timeline_start)
                    .await?
                    .into_iter()
                    .map(|entry| entry.event_id)
                    .filter(|id| !timeline_ids.contains(id.as_str()))
                    .collect();
                self.db.events(&ids).await?
            }
        } else {
            Vec::new()
        };
        if lazy {
            let members = state_events
                .iter()
                .chain(events.iter())
                .filter(|e| e.event_type == "m.room.member")
                .filter_map(|e| e.state_key.as_deref());
            self.lazy_members.record(user_id, device_id, room_id, members);
        }
        let timeline = self.format(user_id, Some(device_id), &events, request).await?;
        let state_events: Vec<_> = state_events.into_iter().filter(|e| request.filter.state.allows(e)).collect();
        let state = self.format(user_id, None, &state_events, request).await?;
        Ok(json!({
            "timeline": {"events": timeline, "limited": limited, "prev_batch": StreamToken(timeline_start).to_string()},
            "state": {"events": state},
        }))
    }

    /// Events as the filter asks for them: client format with bundled aggregations (or the
    /// signed PDUs for `event_format: federation`), the device's transaction ids on its own
    /// timeline events, trimmed to `event_fields`.
    async fn format(
        &self,
        user_id: &str,
        device_id: Option<&str>,
        events: &[StoredEvent],
        request: &SyncRequest,
    ) -> ApiResult<Vec<Value>> {
        let mut formatted = if request.filter.federation_format {
            events
                .iter()
                .map(|e| {
                    let mut pdu: Value = serde_json::from_str(&e.json).unwrap_or_default();
                    pdu["event_id"] = e.event_id.clone().into();
                    pdu
                })
                .collect()
        } else {
            self.rooms.format_for(user_id, events, true).await?
        };
        if let Some(device_id) = device_id {
            self.add_transaction_ids(user_id, device_id, events, &mut formatted).await?;
        }
        if let Some(fields) = &request.filter.event_fields {
            for event in formatted.iter_mut() {
                *event = super::filter::retain_fields(event, fields);
            }
        }
        Ok(formatted)
    }

    /// `unsigned.transaction_id` on the requesting device's own events, so clients can match
    /// their local echo.
    async fn add_transaction_ids(
        &self,
        user_id: &str,
        device_id: &str,
        events: &[StoredEvent],
        formatted: &mut [Value],
    ) -> ApiResult<()> {
        // Recent events know their transaction ids; only older ones are looked up.
        let mut txns: HashMap<String, String> = HashMap::new();
        let mut unknown = Vec::new();
        for event in events.iter().filter(|e| e.sender == user_id) {
            match self.rooms.recent_transaction_id(&event.room_id, &event.event_id, device_id) {
                Some(Some(txn)) => {
                    txns.insert(event.event_id.clone(), txn);
                }
                Some(None) => {}
                None => unknown.push(event.event_id.clone()),
            }
        }
        if !unknown.is_empty() {
            txns.extend(self.db.transaction_ids(user_id, device_id, &unknown).await?);
        }
        if txns.is_empty() {
            return Ok(());
        }
        for event in formatted.iter_mut() {
            if let Some(txn) = event["event_id"].as_str().and_then(|id| txns.get(id)) {
                event["unsigned"]["transaction_id"] = txn.clone().into();
            }
        }
        Ok(())
    }

    async fn invite_state(&self, record: &MembershipRecord) -> ApiResult<Vec<Value>> {
        // An invite into (or knock on) a room this server is not in: the stripped state the
        // room's server sent, then the membership event itself.
        let membership_event = self.db.event(&record.event_id).await?;
        let user_id = membership_event.as_ref().and_then(|e| e.state_key.clone()).unwrap_or_default();
        if let Some((state, event_id)) = self.db.remote_invite(&record.room_id, &user_id).await?
            && event_id == record.event_id
        {
            let mut events: Vec<Value> = serde_json::from_str(&state).unwrap_or_default();
            events.extend(membership_event.as_ref().map(stripped_state));
            return Ok(events);
        }
        let entries = self.db.state_at(&record.room_id, record.stream).await?;
        let ids: Vec<String> = entries
            .into_iter()
            .filter(|e| INVITE_STATE_TYPES.contains(&e.event_type.as_str()) || e.event_id == record.event_id)
            .map(|e| e.event_id)
            .collect();
        Ok(self.db.events(&ids).await?.iter().map(stripped_state).collect())
    }
}

struct Window {
    since: Option<i64>,
    up_to: i64,
    force_state: bool,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.rooms_with_events.is_empty()
            && self.rooms_with_receipts.is_empty()
            && self.account_data.is_empty()
            && self.presence.is_empty()
            && !self.to_device
            && !self.own_membership
            && self.device_lists.is_empty()
    }
}
