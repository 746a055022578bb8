//! Reading rooms: who may see what (spec: Client-Server API § History visibility, simplified to
//! "members see the room while they are in it, and up to the moment they left"), state, single
//! events, /messages pagination and member lists.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    Rooms,
    format::{FormatContext, client_event},
};
use crate::{
    error::{ApiError, ApiResult},
    services::sync::token::StreamToken,
    storage::rooms::StoredEvent,
};

/// How far into a room's stream a user may see.
#[derive(Clone, Copy, Debug)]
pub enum Visibility {
    /// A current member: everything, up to now.
    Member,
    /// A former member (left, kicked, banned): up to and including their leaving.
    Until(i64),
}

impl Visibility {
    pub fn limit(self, now: i64) -> i64 {
        match self {
            Visibility::Member => now,
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

impl Rooms {
    /// The caller's view of a room, or M_FORBIDDEN when they were never in it.
    pub async fn visibility(&self, user_id: &str, room_id: &str) -> ApiResult<Visibility> {
        match self.db.membership(room_id, user_id).await? {
            Some(m) if m.membership == "join" => Ok(Visibility::Member),
            Some(m) if m.membership == "leave" || m.membership == "ban" => Ok(Visibility::Until(m.stream)),
            _ => Err(ApiError::forbidden("You are not a member of this room")),
        }
    }

    /// The first stream position the user may see in the room under its history visibility:
    /// `shared` and `world_readable` rooms show members their whole history (0); `joined`
    /// shows it from the user's join, `invited` from the invite that led to it. Decided by the
    /// room's current setting.
    pub async fn history_floor(&self, user_id: &str, room_id: &str) -> ApiResult<i64> {
        let setting = match self.db.current_state_event(room_id, "m.room.history_visibility", "").await? {
            Some(event) => {
                serde_json::from_str::<Value>(&event.json).unwrap_or_default()["content"]["history_visibility"]
                    .as_str()
                    .unwrap_or("shared")
                    .to_owned()
            }
            None => "shared".to_owned(),
        };
        if !matches!(setting.as_str(), "joined" | "invited") {
            return Ok(0);
        }
        let history = self.db.membership_history(room_id, user_id).await?;
        // Newest first: the latest join, and (for `invited`) an invite directly before it.
        let mut floor = i64::MAX;
        let mut seen_join = false;
        for (stream, membership) in history {
            match membership.as_str() {
                "join" if !seen_join => {
                    floor = stream;
                    seen_join = true;
                }
                "invite" if seen_join && setting == "invited" => floor = stream,
                _ if seen_join => break,
                _ => {}
            }
        }
        Ok(if seen_join { floor } else { i64::MAX })
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
            Visibility::Member => self.db.current_state(room_id).await?,
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
            .filter(|e| e.room_id == room_id)
            .ok_or_else(|| ApiError::not_found("Event not found"))?;
        if event.stream > visibility.limit(i64::MAX) || event.stream < self.history_floor(user_id, room_id).await? {
            return Err(ApiError::not_found("Event not found"));
        }
        Ok(self.format_for(user_id, std::slice::from_ref(&event), false).await?.remove(0))
    }

    /// GET /rooms/{roomId}/messages: pages through the room in stream order. Messages of
    /// `ignored` senders are left out (their state events stay).
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
        let now = self.notifier().current().stream;
        let ceiling = visibility.limit(now);
        let from = match from {
            Some(token) => StreamToken::parse(token)?.0,
            None if backwards => ceiling,
            None => 0,
        };
        // History visibility: nothing before `floor` (exclusive bound) is shown.
        let floor = self.history_floor(user_id, room_id).await?.saturating_sub(1);
        let to = to.map(StreamToken::parse).transpose()?.map(|t| t.0);
        let limit = limit.clamp(1, 1000);
        let events = if backwards {
            // Events at positions <= from, newest first, down to (but excluding) `to`.
            let bottom = to.unwrap_or(0).max(floor);
            self.db.room_events(room_id, bottom, from.min(ceiling), limit, true).await?
        } else {
            let top = to.unwrap_or(ceiling).min(ceiling);
            self.db.room_events(room_id, from.max(floor), top, limit, false).await?
        };
        let end = if events.len() as i64 == limit {
            events.last().map(|e| StreamToken(if backwards { e.stream - 1 } else { e.stream }).to_string())
        } else {
            None
        };
        let visible: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| (e.state_key.is_some() || !ignored.contains(&e.sender)) && filter.allows(e))
            .collect();
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
