//! How events cite other events in `prev_events` and `auth_events`: by id from room version 3
//! on, as `[id, {"sha256": hash}]` pairs in room versions 1 and 2 (spec: Room version 1 §
//! Event format). Only rooms of those versions pay for reading the cited events' hashes.

use std::collections::HashMap;

use ruma::{
    OwnedEventId,
    room_version_rules::{EventsReferenceFormatVersion, RoomVersionRules},
};
use serde_json::Value;

use super::Rooms;
use crate::{
    error::{ApiError, ApiResult},
    storage::rooms::StoredEvent,
};

/// Whether events of `rules` cite others with their hashes.
pub(super) fn cites_with_hashes(rules: &RoomVersionRules) -> bool {
    rules.events_reference_format == EventsReferenceFormatVersion::V1
}

/// The ids an event cites in `field` (`prev_events`, `auth_events`), in either format.
pub fn cited(event: &StoredEvent, field: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(&event.json).unwrap_or_default();
    value[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().or_else(|| item.get(0).and_then(Value::as_str)))
        .map(str::to_owned)
        .collect()
}

impl Rooms {
    /// The content hashes of the events `ids`, for citing them in a room of `rules`; empty when
    /// the room version cites by id alone.
    pub(super) async fn cited_hashes(
        &self,
        rules: &RoomVersionRules,
        ids: &[String],
    ) -> ApiResult<HashMap<OwnedEventId, String>> {
        if !cites_with_hashes(rules) || ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut hashes = HashMap::with_capacity(ids.len());
        for event in self.db.events(ids).await? {
            let value: Value = serde_json::from_str(&event.json).unwrap_or_default();
            if let (Some(hash), Ok(id)) = (value["hashes"]["sha256"].as_str(), OwnedEventId::try_from(event.event_id)) {
                hashes.insert(id, hash.to_owned());
            }
        }
        Ok(hashes)
    }

    /// `ids` as a template's `prev_events` or `auth_events` for a room of `rules`.
    pub(super) async fn references_json(&self, rules: &RoomVersionRules, ids: &[String]) -> ApiResult<Value> {
        let hashes = self.cited_hashes(rules, ids).await?;
        let ids: Vec<OwnedEventId> = ids.iter().filter_map(|id| OwnedEventId::try_from(id.as_str()).ok()).collect();
        let references = hearth_federation::event_references(&ids, &hashes, rules).map_err(ApiError::internal)?;
        serde_json::to_value(references).map_err(ApiError::internal)
    }
}
