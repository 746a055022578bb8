//! Gaps in a room's history that other servers fill (spec: Server-Server API § Backfilling
//! and retrieving missing events):
//! - an event whose prev_events this server lacks — Synapse, catching a peer up after an
//!   outage, sends only each room's newest event — is preceded by the events in between, asked
//!   of the server that sent it (POST /get_missing_events) and taken in oldest first through the
//!   same checks as any other event;
//! - history from before this server joined a room: when /messages pages back past the oldest
//!   event held, the events before it are asked of a server in the room (GET /backfill),
//!   checked (signatures, content hash, and their authorization when their auth events are
//!   held) and stored below everything held, so pagination goes on into them. Sync positions
//!   never include them: they are history, not news;
//! - the same history when a client asks for the event nearest a time before the oldest event
//!   held (GET /timestamp_to_event, "jump to date"): it is paged in until it reaches that time.

use hearth_federation::{AuthEvent, Pdu, event_auth};
use reqwest::Method;
use ruma::{ServerName, room_version_rules::RoomVersionRules};
use serde_json::json;

use std::collections::{BTreeSet, HashSet};

use super::{Rooms, federated::Prepared};
use crate::{
    error::ApiResult,
    services::{
        federation::{incoming, query_value},
        usernames::server_of,
    },
    storage::rooms::PersistKind,
};

/// Servers one backfill asks at most, in turn.
const BACKFILL_SERVERS: usize = 5;

/// Events one gap fill asks for at most (the spec's default is 10; Synapse asks for 10 too,
/// repeatedly; one larger ask covers a typical outage).
const MISSING_EVENTS_LIMIT: usize = 100;

/// Backfill rounds one jump to a date makes at most (of `TIME_BACKFILL_BATCH` events each).
const TIME_BACKFILL_ROUNDS: usize = 20;
const TIME_BACKFILL_BATCH: usize = 100;

impl Rooms {
    /// Pages in the room's history from other servers until it reaches `ts` (an event held sent
    /// at or before it) or the room's creation, so that the events around `ts` are held. Bounded:
    /// a jump further back than `TIME_BACKFILL_ROUNDS` batches answers from what is held.
    pub(super) async fn backfill_back_to(&self, room_id: &str, ts: i64) -> ApiResult<()> {
        for _ in 0..TIME_BACKFILL_ROUNDS {
            let Some(oldest) = self.db.oldest_timeline_event(room_id).await? else { return Ok(()) };
            let sent_at = serde_json::from_str::<serde_json::Value>(&oldest.json)
                .ok()
                .and_then(|json| json["origin_server_ts"].as_i64())
                .unwrap_or(i64::MIN);
            if oldest.event_type == "m.room.create" || sent_at <= ts {
                return Ok(());
            }
            if !self.backfill(room_id, TIME_BACKFILL_BATCH).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Takes in an event `origin` sent, first filling in the events between this server's
    /// latest ones and it when it cites events this server lacks. A failed fill is logged: the
    /// event itself is still taken in.
    pub async fn append_remote_from(&self, origin: &str, pdu: &Pdu) -> ApiResult<()> {
        let prev_ids: Vec<String> = ruma::state_res::Event::prev_events(pdu).map(|id| id.to_string()).collect();
        let held = self.db.events(&prev_ids).await?;
        if held.len() < prev_ids.len()
            && self.db.event(pdu.event_id().as_str()).await?.is_none()
            && let Err(error) = self.fill_gap(origin, pdu).await
        {
            tracing::info!(?error, event_id = %pdu.event_id(), "missing events could not be fetched");
        }
        self.append_remote(pdu).await
    }

    /// POST /get_missing_events to `origin`: the events after this server's forward
    /// extremities up to `pdu`, each checked and taken in, oldest first.
    async fn fill_gap(&self, origin: &str, pdu: &Pdu) -> ApiResult<()> {
        let room_id = pdu.room_id_or_derived().map(|id| id.to_string()).unwrap_or_default();
        let rules = self.rules(&room_id).await?;
        let (earliest, _) = self.db.forward_extremities(&room_id).await?;
        let body = json!({
            "limit": MISSING_EVENTS_LIMIT,
            "min_depth": 0,
            "earliest_events": earliest,
            "latest_events": [pdu.event_id().as_str()],
        });
        let server = ServerName::parse(origin).map_err(crate::error::ApiError::internal)?;
        let path = format!("/_matrix/federation/v1/get_missing_events/{}", query_value(&room_id));
        let answer = self
            .federation
            .send_json(&server, Method::POST, &path, &body)
            .await
            .map_err(crate::services::federation::FederationError::into_api_error)?;
        let mut missing: Vec<Pdu> = Vec::new();
        for event in answer["events"].as_array().into_iter().flatten().take(MISSING_EVENTS_LIMIT) {
            match incoming::check_pdu(&self.remote_keys, event.clone(), &rules).await {
                Ok(checked) if checked.room_id_or_derived().is_some_and(|id| id.as_str() == room_id) => {
                    missing.push(checked)
                }
                Ok(_) => tracing::info!("a missing event from {origin} is for another room"),
                Err(reason) => tracing::info!(%reason, "a missing event from {origin} was refused"),
            }
        }
        missing.sort_by_key(|event| (event.depth(), event.origin_server_ts()));
        for event in &missing {
            if let Err(error) = self.append_remote(event).await {
                tracing::info!(?error, event_id = %event.event_id(), "a missing event was not taken in");
            }
        }
        Ok(())
    }

    /// History before the room's oldest timeline event held, from a server in the room (GET
    /// /backfill), at most `limit` events; whether any arrived.
    pub(super) async fn backfill(&self, room_id: &str, limit: usize) -> ApiResult<bool> {
        let Some(oldest) = self.db.oldest_timeline_event(room_id).await? else {
            return Ok(false);
        };
        // Its prev_events held only as outliers (state taken in with the join) are history too.
        let prevs = super::federated::cited(&oldest, "prev_events");
        let held: HashSet<String> = self.db.events(&prevs).await?.into_iter().map(|e| e.event_id).collect();
        let outliers: HashSet<String> = self.db.outlier_ids(&prevs).await?.into_iter().collect();
        let from: Vec<String> = prevs.into_iter().filter(|id| !held.contains(id) || outliers.contains(id)).collect();
        if from.is_empty() {
            return Ok(false);
        }
        let rules = self.rules(room_id).await?;
        let servers: BTreeSet<String> = self
            .db
            .room_members(room_id, "join")
            .await?
            .iter()
            .map(|user| server_of(user).to_owned())
            .filter(|server| *server != self.server_name)
            .collect();
        let query: String = from.iter().map(|id| format!("v={}&", query_value(id))).collect();
        let path = format!("/_matrix/federation/v1/backfill/{}?{query}limit={limit}", query_value(room_id));
        for server in servers.iter().take(BACKFILL_SERVERS) {
            let Ok(name) = ServerName::parse(server.as_str()) else { continue };
            let answer = match self.federation.get(&name, &path).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::info!(%error, room_id, %server, "backfill failed");
                    continue;
                }
            };
            let mut checked = Vec::new();
            for pdu in answer["pdus"].as_array().into_iter().flatten().take(limit.max(from.len())) {
                match incoming::check_pdu(&self.remote_keys, pdu.clone(), &rules).await {
                    Ok(pdu) if pdu.room_id_or_derived().is_some_and(|id| id.as_str() == room_id) => checked.push(pdu),
                    Ok(_) => {}
                    Err(reason) => tracing::info!(%reason, %server, "a backfilled event was refused"),
                }
            }
            if self.store_backfilled(room_id, checked, &rules).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Keeps the events not in the timeline yet (new, or held only as outliers); returns which
    /// of them are outliers.
    async fn keep_new_to_timeline(&self, events: &mut Vec<Pdu>) -> ApiResult<HashSet<String>> {
        let ids: Vec<String> = events.iter().map(|pdu| pdu.event_id().to_string()).collect();
        let held: HashSet<String> = self.db.events(&ids).await?.into_iter().map(|e| e.event_id).collect();
        let outliers: HashSet<String> = self.db.outlier_ids(&ids).await?.into_iter().collect();
        events.retain(|pdu| {
            let id = pdu.event_id().as_str();
            !held.contains(id) || outliers.contains(id)
        });
        Ok(outliers)
    }

    /// Stores backfilled events that are new to the timeline below every position held, oldest
    /// lowest; whether there were any.
    async fn store_backfilled(&self, room_id: &str, events: Vec<Pdu>, rules: &RoomVersionRules) -> ApiResult<bool> {
        let mut events = events;
        self.keep_new_to_timeline(&mut events).await?;
        let mut seen = HashSet::new();
        events.retain(|pdu| seen.insert(pdu.event_id().to_owned()));
        let mut authorized = Vec::with_capacity(events.len());
        for pdu in events {
            if self.authorized_by_its_auth_events(&pdu, room_id, rules).await {
                authorized.push(pdu);
            }
        }
        let mut events = authorized;
        if events.is_empty() {
            return Ok(false);
        }
        events.sort_by_key(|pdu| (pdu.depth(), pdu.origin_server_ts()));
        // One writer at a time allocates positions, backfill included.
        let _slot = self.streams.begin().await;
        // Another backfill of the same history (a jump to a date while /messages pages back)
        // may have stored some of them meanwhile.
        let outliers = self.keep_new_to_timeline(&mut events).await?;
        if events.is_empty() {
            return Ok(false);
        }
        let prepared: Vec<Prepared> = events.iter().map(Prepared::of).collect::<ApiResult<_>>()?;
        let base = self.db.min_stream().await? - events.len() as i64 - 1;
        let mut rows = Vec::new();
        let mut promoted = Vec::new();
        for (index, (pdu, prepared)) in events.iter().zip(&prepared).enumerate() {
            let position = base + index as i64;
            if outliers.contains(pdu.event_id().as_str()) {
                promoted.push((pdu.event_id().to_string(), position));
            } else {
                rows.push((position, prepared.row(pdu, room_id, &[], None, PersistKind::Historical)));
            }
        }
        self.db.store_history(rows, &promoted).await?;
        Ok(true)
    }

    /// Whether a backfilled event passes the authorization rules against the auth events it
    /// cites (and, in v12 rooms, the create event). One whose auth events are not all held is
    /// kept on its signatures and hash alone: its auth chain is not fetched.
    async fn authorized_by_its_auth_events(&self, pdu: &Pdu, room_id: &str, rules: &RoomVersionRules) -> bool {
        let Ok(Some((mut auth_events, mut cited_state))) = self.cited_auth_events(pdu, room_id, rules).await else {
            return true;
        };
        if let Ok(Some(create)) = self.db.current_state_event(room_id, "m.room.create", "").await
            && let Ok(create) = super::parse_stored(&create, rules).map(AuthEvent::from)
        {
            auth_events.entry(create.event_id().to_owned()).or_insert_with(|| create.clone());
            cited_state.entry(("m.room.create".to_owned(), String::new())).or_insert(create);
        }
        match event_auth::check_event(&rules.authorization, pdu, &auth_events, &cited_state) {
            Ok(()) => true,
            Err(reason) => {
                tracing::info!(%reason, event_id = %pdu.event_id(), "a backfilled event fails its auth events");
                false
            }
        }
    }
}
