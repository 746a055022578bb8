//! Reading rooms: who may use a room's read endpoints (members, former members up to their
//! leave, anyone in a world-readable room) and which events they see (`history.rs`), state,
//! single events, /messages pagination and member lists.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    Rooms,
    format::{FormatContext, client_event},
    history::{HistorySetting, HistoryView, SettingChanges},
};
use crate::{
    error::{ApiError, ApiResult},
    services::{sync::token::StreamToken, usernames::server_of},
    storage::rooms::StoredEvent,
};

/// How far into a room's stream a user may read.
#[derive(Clone, Copy, Debug)]
pub enum Visibility {
    /// A current member: everything, up to now.
    Member,
    /// A former member (left, kicked, banned): up to and including their leaving.
    Until(i64),
    /// Not a member of a room whose history is world-readable now (spec: § Room previews).
    Peeking,
}

impl Visibility {
    pub fn limit(self, now: i64) -> i64 {
        match self {
            Visibility::Member | Visibility::Peeking => now,
            Visibility::Until(stream) => stream.min(now),
        }
    }
}

pub struct MessagesPage {
    pub chunk: Vec<Value>,
    pub start: String,
    pub end: Option<String>,
    pub state: Vec<Value>,
}

/// How many events one /messages request may look at to fill its page when history
/// visibility or a filter hides most of them.
const MAX_SCANNED: i64 = 5000;

impl Rooms {
    /// The caller's view of a room, or M_FORBIDDEN when they may not read it.
    pub async fn visibility(&self, user_id: &str, room_id: &str) -> ApiResult<Visibility> {
        match self.db.membership(room_id, user_id).await? {
            Some(m) if m.membership == "join" => Ok(Visibility::Member),
            Some(m) if m.membership == "leave" || m.membership == "ban" => Ok(Visibility::Until(m.stream)),
            _ if self.history_settings(room_id).await?.last().map(|(_, s)| *s)
                == Some(HistorySetting::WorldReadable) =>
            {
                Ok(Visibility::Peeking)
            }
            _ => Err(ApiError::forbidden("You are not a member of this room")),
        }
    }

    /// The room's history visibility changes, cached per room; the writer refreshes a room's
    /// entry when a new setting commits.
    pub async fn history_settings(&self, room_id: &str) -> ApiResult<SettingChanges> {
        if let Some(settings) = self.history_settings.lock().expect("history lock").get(room_id) {
            return Ok(settings.clone());
        }
        let settings = self.load_history_settings(room_id).await?;
        // Only fill an empty entry: the writer's fresher value wins over a read that raced it.
        Ok(self.history_settings.lock().expect("history lock").entry(room_id.to_owned()).or_insert(settings).clone())
    }

    pub(super) async fn load_history_settings(&self, room_id: &str) -> ApiResult<SettingChanges> {
        let changes = self.db.state_changes(room_id, "m.room.history_visibility", "").await?;
        let mut settings: Vec<(i64, HistorySetting)> =
            changes.into_iter().map(|(stream, content)| (stream, HistorySetting::from_content(&content))).collect();
        // A room joined through another server knows its setting as of the join (an outlier
        // below position 0): history backfilled from before it is judged by that setting, not
        // by the spec's default for rooms that never set one.
        if let Some(first) = settings.first_mut().filter(|(stream, _)| *stream < 0) {
            first.0 = super::history::ROOM_START;
        }
        Ok(std::sync::Arc::new(settings))
    }

    /// Which events of the room `user_id` may see (spec: § History visibility), for a caller
    /// whose `visibility` was already established.
    pub async fn history_view(&self, user_id: &str, room_id: &str, visibility: Visibility) -> ApiResult<HistoryView> {
        let settings = self.history_settings(room_id).await?;
        if matches!(visibility, Visibility::Member)
            && let Some(view) = HistoryView::for_current_member(user_id, &settings)
        {
            return Ok(view);
        }
        let memberships = self
            .db
            .state_changes(room_id, "m.room.member", user_id)
            .await?
            .into_iter()
            .map(|(stream, content)| (stream, content["membership"].as_str().unwrap_or_default().to_owned()))
            .collect();
        Ok(HistoryView::new(user_id, settings, memberships))
    }

    /// Which events of the room another server may read as they are (spec: Server-Server API
    /// § Retrieving events): those one of its users may see. A room that never hid history from
    /// members shows everything to a server in it; otherwise each of the server's users who
    /// ever had a membership in the room lends its view.
    pub async fn server_history(&self, room_id: &str, server: &str) -> ApiResult<ServerHistory> {
        let settings = self.history_settings(room_id).await?;
        if let Some(view) = HistoryView::for_current_member(server, &settings) {
            return Ok(ServerHistory { views: vec![view] });
        }
        let mut users = Vec::new();
        for membership in ["join", "invite", "leave", "ban", "knock"] {
            users.extend(
                self.db.room_members(room_id, membership).await?.into_iter().filter(|user| server_of(user) == server),
            );
        }
        let mut views = Vec::with_capacity(users.len());
        for user in users {
            views.push(self.history_view(&user, room_id, Visibility::Peeking).await?);
        }
        Ok(ServerHistory { views })
    }

    /// Formats events, loading what they need (redactions, the viewer's txn ids) in batches.
    pub async fn format_events(&self, events: &[StoredEvent], omit_room_id: bool) -> ApiResult<Vec<Value>> {
        let mut context = FormatContext { omit_room_id, ..FormatContext::default() };
        let redaction_ids: Vec<String> = events.iter().filter_map(|e| e.redacted_because.clone()).collect();
        let mut rules_by_room = HashMap::new();
        if !redaction_ids.is_empty() {
            for redaction in self.db.events(&redaction_ids).await? {
                let rules = self.rules(&redaction.room_id).await?;
                let formatted =
                    client_event(&redaction, &rules, &FormatContext { omit_room_id, ..FormatContext::default() });
                context.redactions.insert(redaction.event_id.clone(), formatted);
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            if !rules_by_room.contains_key(&event.room_id) {
                rules_by_room.insert(event.room_id.clone(), self.rules(&event.room_id).await?);
            }
            out.push(client_event(event, &rules_by_room[&event.room_id], &context));
        }
        Ok(out)
    }

    /// Current state for members; the state when they left for former members.
    pub async fn state_events(&self, user_id: &str, room_id: &str) -> ApiResult<Vec<StoredEvent>> {
        self.rules(room_id).await?;
        let entries = match self.visibility(user_id, room_id).await? {
            Visibility::Member | Visibility::Peeking => self.db.current_state(room_id).await?,
            Visibility::Until(stream) => self.db.state_at(room_id, stream).await?,
        };
        let ids: Vec<String> = entries.into_iter().map(|e| e.event_id).collect();
        Ok(self.db.events(&ids).await?)
    }

    /// One state event's content.
    pub async fn state_event(
        &self,
        user_id: &str,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> ApiResult<StoredEvent> {
        let events = self.state_events(user_id, room_id).await?;
        events
            .into_iter()
            .find(|e| e.event_type == event_type && e.state_key.as_deref() == Some(state_key))
            .ok_or_else(|| ApiError::not_found("Event not found"))
    }

    /// GET /rooms/{roomId}/event/{eventId}.
    pub async fn event_for_user(&self, user_id: &str, room_id: &str, event_id: &str) -> ApiResult<Value> {
        self.rules(room_id).await?;
        let visibility = self.visibility(user_id, room_id).await?;
        let event = self
            .db
            .event(event_id)
            .await?
            .filter(|e| e.room_id == room_id && e.stream <= visibility.limit(i64::MAX))
            .ok_or_else(|| ApiError::not_found("Event not found"))?;
        if !self.history_view(user_id, room_id, visibility).await?.can_see(&event) {
            return Err(ApiError::not_found("Event not found"));
        }
        Ok(self.format_for(user_id, std::slice::from_ref(&event), false).await?.remove(0))
    }

    /// GET /rooms/{roomId}/messages: pages through the room in stream order. Messages of
    /// `ignored` senders are left out (their state events stay); so is what history visibility
    /// hides and what the filter does not want, and the page is filled from further back.
    #[allow(clippy::too_many_arguments)]
    pub async fn messages(
        &self,
        user_id: &str,
        room_id: &str,
        from: Option<&str>,
        to: Option<&str>,
        backwards: bool,
        limit: i64,
        ignored: &std::collections::HashSet<String>,
        filter: &crate::services::sync::filter::EventFilter,
    ) -> ApiResult<MessagesPage> {
        self.rules(room_id).await?;
        let visibility = self.visibility(user_id, room_id).await?;
        let view = self.history_view(user_id, room_id, visibility).await?;
        let now = self.notifier().current().stream;
        let ceiling = visibility.limit(now);
        let from = match from {
            Some(token) => StreamToken::parse(token)?.0,
            None if backwards => ceiling,
            None => super::history::ROOM_START,
        };
        let to = to.map(StreamToken::parse).transpose()?.map(|t| t.0);
        let limit = limit.clamp(1, 1000);
        // The page covers (bottom, top]; nothing at or below the view's floor is visible.
        let (bottom, top) = if backwards {
            (to.unwrap_or(super::history::ROOM_START).max(view.floor()), from.min(ceiling))
        } else {
            (from.max(view.floor()), to.unwrap_or(ceiling).min(ceiling))
        };
        let wanted = |e: &StoredEvent| {
            (e.state_key.is_some() || !ignored.contains(&e.sender)) && filter.allows(e) && view.can_see(e)
        };
        let (mut visible, mut reached) = self.scan(room_id, bottom, top, backwards, limit, &wanted).await?;
        // Paging back past the oldest event held, in a room joined through another server: the
        // history before it is asked of the room's other servers, then read on into.
        if backwards && reached.is_none() && (visible.len() as i64) < limit && to.is_none() {
            let wanted_more = (limit - visible.len() as i64).clamp(10, 100) as usize;
            match self.backfill(room_id, wanted_more).await {
                Ok(true) => {
                    let below = visible.last().map_or(top, |oldest| oldest.stream - 1);
                    let (older, next) =
                        self.scan(room_id, bottom, below, true, limit - visible.len() as i64, &wanted).await?;
                    visible.extend(older);
                    reached = next;
                }
                Ok(false) => {}
                Err(error) => tracing::info!(?error, room_id, "backfill failed"),
            }
        }
        // `reached` is where the scan stopped; the next page continues from there.
        let end = reached.map(|position| StreamToken(position).to_string());
        let chunk = self.format_for(user_id, &visible, false).await?;
        // Lazy loading: the member events of this page's senders (spec: § Lazy-loading room members).
        let state = if filter.lazy_load_members && !visible.is_empty() {
            let senders: std::collections::HashSet<&str> = visible.iter().map(|e| e.sender.as_str()).collect();
            let at = visible.iter().map(|e| e.stream).max().unwrap_or(ceiling);
            let ids: Vec<String> = self
                .db
                .state_at(room_id, at)
                .await?
                .into_iter()
                .filter(|entry| entry.event_type == "m.room.member" && senders.contains(entry.state_key.as_str()))
                .map(|entry| entry.event_id)
                .collect();
            let members = self.db.events(&ids).await?;
            self.format_events(&members, false).await?
        } else {
            Vec::new()
        };
        Ok(MessagesPage { chunk, start: StreamToken(from).to_string(), end, state })
    }

    /// Up to `limit` events of the room in (bottom, top] that `wanted` accepts, newest first
    /// when `backwards`, reading on past rejected events (at most `MAX_SCANNED`). Also returns
    /// the position to continue from when more may follow: the last position looked at
    /// (backwards: one below it), None when the range is exhausted.
    pub(crate) async fn scan(
        &self,
        room_id: &str,
        bottom: i64,
        top: i64,
        backwards: bool,
        limit: i64,
        wanted: impl Fn(&StoredEvent) -> bool,
    ) -> ApiResult<(Vec<StoredEvent>, Option<i64>)> {
        let mut found = Vec::new();
        if limit <= 0 {
            return Ok((found, None));
        }
        let (mut low, mut high) = (bottom, top);
        let mut scanned = 0;
        loop {
            if low >= high {
                return Ok((found, None));
            }
            let batch_size = (limit - found.len() as i64).max(1) + 1;
            let batch = match self.recent.window(room_id, low, high, batch_size, backwards) {
                Some(events) => events,
                None => self.db.room_events(room_id, low, high, batch_size, backwards).await?,
            };
            let exhausted = (batch.len() as i64) < batch_size;
            scanned += batch.len() as i64;
            for event in batch {
                if found.len() as i64 == limit {
                    // One more exists beyond the page: continue from the last one taken.
                    let last = found.last().map_or(event.stream, |e: &StoredEvent| e.stream);
                    return Ok((found, Some(if backwards { last - 1 } else { last })));
                }
                if backwards {
                    high = event.stream - 1;
                } else {
                    low = event.stream;
                }
                if wanted(&event) {
                    found.push(event);
                }
            }
            if exhausted {
                return Ok((found, None));
            }
            if scanned >= MAX_SCANNED {
                return Ok((found, Some(if backwards { high } else { low })));
            }
        }
    }

    /// GET /joined_members: joined users with their display names and avatars.
    pub async fn joined_members(&self, user_id: &str, room_id: &str) -> ApiResult<HashMap<String, Value>> {
        self.rules(room_id).await?;
        if !matches!(self.visibility(user_id, room_id).await?, Visibility::Member) {
            return Err(ApiError::forbidden("You are not a member of this room"));
        }
        let mut members = HashMap::new();
        for event in self.state_events(user_id, room_id).await? {
            if event.event_type != "m.room.member" {
                continue;
            }
            let parsed: Value = serde_json::from_str(&event.json).unwrap_or_default();
            let content = &parsed["content"];
            if content["membership"] == "join"
                && let Some(member) = event.state_key.clone()
            {
                let mut profile = serde_json::Map::new();
                for key in ["displayname", "avatar_url"] {
                    if let Some(value) = content.get(key).filter(|v| v.is_string()) {
                        profile.insert(key.into(), value.clone());
                    }
                }
                members.insert(member, Value::Object(profile));
            }
        }
        Ok(members)
    }

    /// GET /members: member events, optionally at a point in time and filtered by membership.
    pub async fn members(
        &self,
        user_id: &str,
        room_id: &str,
        at: Option<&str>,
        membership: Option<&str>,
        not_membership: Option<&str>,
    ) -> ApiResult<Vec<Value>> {
        self.rules(room_id).await?;
        let visibility = self.visibility(user_id, room_id).await?;
        let mut point = visibility.limit(self.notifier().current().stream);
        if let Some(at) = at {
            point = point.min(StreamToken::parse(at)?.0);
        }
        let entries = self.db.state_at(room_id, point).await?;
        let ids: Vec<String> =
            entries.into_iter().filter(|e| e.event_type == "m.room.member").map(|e| e.event_id).collect();
        let events: Vec<StoredEvent> = self
            .db
            .events(&ids)
            .await?
            .into_iter()
            .filter(|event| {
                let parsed: Value = serde_json::from_str(&event.json).unwrap_or_default();
                let current = parsed["content"]["membership"].as_str().unwrap_or_default().to_owned();
                membership.is_none_or(|m| m == current) && not_membership.is_none_or(|m| m != current)
            })
            .collect();
        self.format_events(&events, false).await
    }
}

/// What another server may read of a room as it is (see `Rooms::server_history`); other events
/// are served redacted, so the room's graph stays whole without their content.
pub struct ServerHistory {
    views: Vec<HistoryView>,
}

impl ServerHistory {
    pub fn can_see(&self, event: &StoredEvent) -> bool {
        self.views.iter().any(|view| view.can_see(event))
    }
}
