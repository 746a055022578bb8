//! GET /context (events around one event), GET /timestamp_to_event and reporting.

use serde_json::Value;

use super::Rooms;
use crate::{
    error::{ApiError, ApiResult},
    services::sync::token::StreamToken,
};

pub struct Context {
    pub event: Value,
    pub before: Vec<Value>,
    pub after: Vec<Value>,
    pub start: String,
    pub end: String,
    pub state: Vec<Value>,
}

impl Rooms {
    /// GET /rooms/{roomId}/context/{eventId}: `limit` events split before and after it, and the
    /// room state at the event.
    pub async fn context(&self, user_id: &str, room_id: &str, event_id: &str, limit: i64) -> ApiResult<Context> {
        self.rules(room_id).await?;
        let visibility = self.visibility(user_id, room_id).await?;
        let view = self.history_view(user_id, room_id, visibility).await?;
        let ceiling = visibility.limit(self.notifier().current().stream);
        let event =
            self.db.event(event_id).await?.filter(|e| e.room_id == room_id && e.stream <= ceiling && view.can_see(e));
        let Some(event) = event else { return Err(ApiError::not_found("Event not found")) };
        let limit = limit.clamp(0, 100);
        let before_count = limit / 2;
        let after_count = limit - before_count;
        let wanted = |e: &crate::storage::rooms::StoredEvent| view.can_see(e);
        let (before, _) = if before_count > 0 {
            self.scan(room_id, view.floor(), event.stream - 1, true, before_count, wanted).await?
        } else {
            (Vec::new(), None)
        };
        let (after, _) = if after_count > 0 {
            self.scan(room_id, event.stream, ceiling, false, after_count, wanted).await?
        } else {
            (Vec::new(), None)
        };
        let start = StreamToken(before.last().map_or(event.stream - 1, |e| e.stream - 1)).to_string();
        let end = StreamToken(after.last().map_or(event.stream, |e| e.stream)).to_string();
        let state_ids: Vec<String> =
            self.db.state_at(room_id, event.stream).await?.into_iter().map(|e| e.event_id).collect();
        let state = self.db.events(&state_ids).await?;
        Ok(Context {
            event: self.format_for(user_id, std::slice::from_ref(&event), false).await?.remove(0),
            before: self.format_for(user_id, &before, false).await?,
            after: self.format_for(user_id, &after, false).await?,
            start,
            end,
            state: self.format_events(&state, false).await?,
        })
    }

    /// GET /v1/rooms/{roomId}/timestamp_to_event
    pub async fn timestamp_to_event(
        &self,
        user_id: &str,
        room_id: &str,
        ts: i64,
        forwards: bool,
    ) -> ApiResult<(String, i64)> {
        self.rules(room_id).await?;
        let visibility = self.visibility(user_id, room_id).await?;
        let ceiling = visibility.limit(self.notifier().current().stream);
        // A time before everything held (a room joined over federation): the history there is
        // asked of the servers in the room first.
        if let Err(error) = self.backfill_back_to(room_id, ts).await {
            tracing::info!(?error, room_id, "history for a jump to a date could not be fetched");
        }
        self.db
            .event_near_time(room_id, ts, forwards, ceiling)
            .await?
            .ok_or_else(|| ApiError::not_found("No event found near that time"))
    }

    /// The event nearest `ts` in a room, for another server in it (GET
    /// /_matrix/federation/v1/timestamp_to_event): everything the room holds is theirs to see.
    pub async fn event_near_time(&self, room_id: &str, ts: i64, forwards: bool) -> ApiResult<(String, i64)> {
        let ceiling = self.notifier().current().stream;
        self.db
            .event_near_time(room_id, ts, forwards, ceiling)
            .await?
            .ok_or_else(|| ApiError::not_found("No event found near that time"))
    }

    /// POST /rooms/{roomId}/report[/{eventId}]: only what the reporter can see may be reported.
    pub async fn report(
        &self,
        user_id: &str,
        room_id: &str,
        event_id: Option<&str>,
        reason: Option<&str>,
        score: Option<i64>,
    ) -> ApiResult<()> {
        if reason.is_some_and(|r| r.len() > 1000) {
            return Err(ApiError::invalid_param("reason is too long"));
        }
        if score.is_some_and(|s| !(-100..=0).contains(&s)) {
            return Err(ApiError::invalid_param("score must be between -100 and 0"));
        }
        self.rules(room_id).await.map_err(|_| ApiError::not_found("Room not found"))?;
        let visibility = self.visibility(user_id, room_id).await.map_err(|_| ApiError::not_found("Room not found"))?;
        if let Some(event_id) = event_id {
            let ceiling = visibility.limit(i64::MAX);
            let view = self.history_view(user_id, room_id, visibility).await?;
            if self
                .db
                .event(event_id)
                .await?
                .is_none_or(|e| e.room_id != room_id || e.stream > ceiling || !view.can_see(&e))
            {
                return Err(ApiError::not_found("Event not found"));
            }
        }
        self.db.add_report(user_id, room_id, event_id, reason, score).await?;
        tracing::info!(reporter = %user_id, %room_id, "content reported");
        Ok(())
    }
}
