//! State resolution for room version 1 (spec: Room Version 1 § State resolution). ruma's
//! state resolution implements only the second algorithm (room versions 2 and later), so the
//! first is written here; it is short, and old rooms on the network still use it.
//!
//! The resolved state R starts as every entry the states agree on. Conflicts between
//! `m.room.power_levels`, then `m.room.join_rules`, then each `m.room.member` key are resolved
//! by walking that key's events by ascending depth (ties: descending sha1 of the event id),
//! taking each one the authorization rules allow in R until one is refused. Every other
//! conflict takes the event of highest depth (ties: lowest sha1 of the event id) allowed in R;
//! if none is, the last one tried, as Synapse does.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, HashMap},
};

use ruma::{EventId, OwnedEventId, events::StateEventType, room_version_rules::AuthorizationRules, state_res};
use sha1::{Digest, Sha1};

use crate::Pdu;

/// A state entry's (event type, state key).
pub type StateKey = (String, String);

/// Resolves `states` into one. `events` must hold every event the states name; an event it
/// lacks is left out of its conflict.
pub fn resolve(
    rules: &AuthorizationRules,
    states: &[HashMap<StateKey, OwnedEventId>],
    events: &HashMap<OwnedEventId, Pdu>,
) -> HashMap<StateKey, OwnedEventId> {
    let mut candidates: HashMap<&StateKey, BTreeSet<&OwnedEventId>> = HashMap::new();
    for state in states {
        for (key, id) in state {
            candidates.entry(key).or_default().insert(id);
        }
    }
    let mut resolved: HashMap<StateKey, Pdu> = HashMap::new();
    let mut conflicts: Vec<(&StateKey, Vec<&Pdu>)> = Vec::new();
    let mut unresolvable: HashMap<StateKey, OwnedEventId> = HashMap::new();
    for (key, ids) in candidates {
        let found: Vec<&Pdu> = ids.iter().filter_map(|id| events.get(*id)).collect();
        match (ids.len(), found.as_slice()) {
            (1, [only]) => {
                resolved.insert(key.clone(), (*only).clone());
            }
            // The one event is unknown: it is kept by id, but cannot take part in auth checks.
            (1, []) => {
                unresolvable.insert(key.clone(), (*ids.first().expect("one id")).clone());
            }
            _ if !found.is_empty() => conflicts.push((key, found)),
            _ => {}
        }
    }
    // Deterministic order within each pass: by state key.
    conflicts.sort_by(|a, b| a.0.cmp(b.0));
    for auth_type in ["m.room.power_levels", "m.room.join_rules", "m.room.member"] {
        for (key, candidates) in conflicts.iter().filter(|(key, _)| key.0 == auth_type) {
            let mut ordered = candidates.clone();
            ordered.sort_by_key(|pdu| (pdu.depth(), Reverse(sha1_of(pdu.event_id()))));
            let mut chosen = ordered[0];
            for next in &ordered[1..] {
                resolved.insert((*key).clone(), chosen.clone());
                if !allowed(rules, next, &resolved) {
                    break;
                }
                chosen = next;
            }
            resolved.insert((*key).clone(), chosen.clone());
        }
    }
    for (key, candidates) in conflicts.iter().filter(|(key, _)| !is_auth_type(&key.0)) {
        let mut ordered = candidates.clone();
        ordered.sort_by_key(|pdu| (Reverse(pdu.depth()), sha1_of(pdu.event_id())));
        let chosen = ordered.iter().find(|pdu| allowed(rules, pdu, &resolved)).or(ordered.last()).expect("non-empty");
        resolved.insert((*key).clone(), (*chosen).clone());
    }
    let mut out: HashMap<StateKey, OwnedEventId> =
        resolved.into_iter().map(|(key, pdu)| (key, pdu.event_id().to_owned())).collect();
    out.extend(unresolvable);
    out
}

fn is_auth_type(kind: &str) -> bool {
    matches!(kind, "m.room.power_levels" | "m.room.join_rules" | "m.room.member")
}

fn sha1_of(id: &EventId) -> [u8; 20] {
    Sha1::digest(id.as_str().as_bytes()).into()
}

/// Whether the rules allow `event` in a room whose state is `state`.
fn allowed(rules: &AuthorizationRules, event: &Pdu, state: &HashMap<StateKey, Pdu>) -> bool {
    state_res::check_state_dependent_auth_rules(rules, event, |kind: &StateEventType, key: &str| {
        state.get(&(kind.to_string(), key.to_owned()))
    })
    .is_ok()
}
