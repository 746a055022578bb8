//! Gaps in a room's history that other servers fill (spec: Server-Server API § Backfilling
//! and retrieving missing events): an event whose prev_events this server lacks — Synapse,
//! catching a peer up after an outage, sends only each room's newest event — is preceded by
//! the events in between, asked of the server that sent it (POST /get_missing_events) and
//! taken in oldest first through the same checks as any other event.

use hearth_federation::Pdu;
use reqwest::Method;
use ruma::ServerName;
use serde_json::json;

use super::Rooms;
use crate::{
    error::ApiResult,
    services::federation::{incoming, query_value},
};

/// Events one gap fill asks for at most (the spec's default is 10; Synapse asks for 10 too,
/// repeatedly; one larger ask covers a typical outage).
const MISSING_EVENTS_LIMIT: usize = 100;

impl Rooms {
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
}
