//! The spec's authorization rules for an event, run by ruma-state-res against the auth events
//! the event cites and against the room state before it.

use std::collections::HashMap;

use ruma::{
    EventId, OwnedEventId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::AuthorizationRules,
    state_res,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::Pdu;

/// The (type, state_key) pairs whose current events a new event must cite as `auth_events`.
pub fn auth_types_for_event(
    event_type: &str,
    sender: &UserId,
    state_key: Option<&str>,
    content: &RawJsonValue,
    rules: &AuthorizationRules,
) -> Result<Vec<(String, String)>, String> {
    let types =
        state_res::auth_types_for_event(&TimelineEventType::from(event_type), sender, state_key, content, rules)?;
    Ok(types.into_iter().map(|(kind, key)| (kind.to_string(), key)).collect())
}

/// Checks `event` against the rules: first against the events it cites (`auth_events`), then
/// against `state` — the room state before the event, keyed by (type, state_key), which must
/// hold at least the create event and every pair `auth_types_for_event` names.
pub fn check_event(
    rules: &AuthorizationRules,
    event: &Pdu,
    auth_events: &HashMap<OwnedEventId, Pdu>,
    state: &HashMap<(String, String), Pdu>,
) -> Result<(), String> {
    state_res::check_state_independent_auth_rules(rules, event, |id: &EventId| auth_events.get(id))?;
    state_res::check_state_dependent_auth_rules(rules, event, |kind: &StateEventType, key: &str| {
        state.get(&(kind.to_string(), key.to_owned()))
    })
}
