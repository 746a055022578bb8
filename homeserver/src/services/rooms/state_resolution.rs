//! State resolution where branches of a room's history meet (spec: Room versions v2 § State
//! resolution; v12's conflicted state subgraph). ruma-state-res runs the algorithm; this module
//! gathers its inputs from storage: the competing state maps, every event they cite with its
//! full auth chain, and the conflicted state subgraph.
//!
//! The state "after" an event is what this server recorded at that event's position (its
//! state history is linear, each position holding the state in force then), which is exact for
//! events on a branch this server followed. Where an event from another branch made branches
//! meet, its position holds the resolved state; the state it was sent in is kept beside it
//! (`storage::branch_state`) and read back for the events that follow it on its branch.

use std::collections::{HashMap, HashSet};

use hearth_federation::{AuthEvent, Pdu};
use ruma::{
    EventId, OwnedEventId,
    events::StateEventType,
    room_version_rules::{RoomVersionRules, StateResolutionVersion},
    state_res::{self, StateMap, utils::event_id_set::EventIdSet},
};

use super::{Rooms, federated::StateKey};
use crate::{
    error::{ApiError, ApiResult},
    storage::{branch_state::BranchEntry, rooms::StoredEvent},
};

/// A room state as event ids by (type, state key).
pub(super) type StateIds = HashMap<StateKey, String>;

/// Events loaded for one resolution at most (a room whose auth chains are larger is resolved
/// from what fits; beyond it the caller keeps its linear state).
const MAX_EVENTS: usize = 50_000;

impl Rooms {
    /// The state recorded after the event at `stream`.
    pub(super) async fn state_ids_at(&self, room_id: &str, stream: i64) -> ApiResult<StateIds> {
        Ok(self
            .db
            .state_at(room_id, stream)
            .await?
            .into_iter()
            .map(|entry| ((entry.event_type, entry.state_key), entry.event_id))
            .collect())
    }

    /// The state before `event`: what was recorded just before its position, or for an event
    /// whose arrival made branches meet, the state it was sent in.
    pub async fn state_event_ids_before(&self, event: &StoredEvent) -> ApiResult<Vec<String>> {
        let branch = self.db.branch_states(std::slice::from_ref(&event.event_id)).await?;
        Ok(self.state_before_with(event, branch.get(&event.event_id)).await?.into_values().collect())
    }

    async fn state_before_with(&self, event: &StoredEvent, branch: Option<&Vec<BranchEntry>>) -> ApiResult<StateIds> {
        let mut state = self.state_ids_at(&event.room_id, event.stream - 1).await?;
        for (kind, key, id) in branch.into_iter().flatten() {
            match id {
                Some(id) => state.insert((kind.clone(), key.clone()), id.clone()),
                None => state.remove(&(kind.clone(), key.clone())),
            };
        }
        Ok(state)
    }

    /// The state after each of `events` on its own branch of the room's history.
    async fn states_after(&self, events: &[StoredEvent]) -> ApiResult<Vec<StateIds>> {
        let ids: Vec<String> = events.iter().map(|event| event.event_id.clone()).collect();
        let branches = self.db.branch_states(&ids).await?;
        let mut states = Vec::with_capacity(events.len());
        for event in events {
            let state = match branches.get(&event.event_id) {
                Some(branch) => {
                    let mut state = self.state_before_with(event, Some(branch)).await?;
                    if let Some(key) = &event.state_key {
                        state.insert((event.event_type.clone(), key.clone()), event.event_id.clone());
                    }
                    state
                }
                None => self.state_ids_at(&event.room_id, event.stream).await?,
            };
            states.push(state);
        }
        Ok(states)
    }

    /// The room's current state.
    pub(super) async fn current_state_ids(&self, room_id: &str) -> ApiResult<StateIds> {
        Ok(self
            .db
            .current_state(room_id)
            .await?
            .into_iter()
            .map(|entry| ((entry.event_type, entry.state_key), entry.event_id))
            .collect())
    }

    /// Resolves competing room states into one. `extra` are events not stored yet (the event
    /// whose arrival makes branches meet) that the states may name.
    pub(super) async fn resolve_states(
        &self,
        rules: &RoomVersionRules,
        states: &[StateIds],
        extra: &[&Pdu],
    ) -> ApiResult<StateIds> {
        let Some(first) = states.first() else { return Ok(StateIds::new()) };
        if states.iter().all(|state| state == first) {
            return Ok(first.clone());
        }
        if matches!(rules.state_res, StateResolutionVersion::V1) {
            return self.resolve_states_v1(rules, states, extra).await;
        }
        let state_res_rules =
            rules.state_res.v2_rules().ok_or_else(|| ApiError::internal("room version without state resolution v2"))?;
        let events = self.load_with_auth_chains(rules, states, extra).await?;
        let ancestors = Ancestors::of(&events);

        let maps: Vec<StateMap<OwnedEventId>> = states
            .iter()
            .map(|state| {
                state
                    .iter()
                    .filter_map(|((kind, key), id)| {
                        Some(((StateEventType::from(kind.as_str()), key.clone()), EventId::parse(id).ok()?))
                    })
                    .collect()
            })
            .collect();
        let auth_chains: Vec<EventIdSet<OwnedEventId>> =
            maps.iter().map(|map| map.values().flat_map(|id| ancestors.strict(id)).cloned().collect()).collect();
        let fetch_event = |id: &EventId| events.get(id).cloned();
        let subgraph = |conflicted: &StateMap<Vec<OwnedEventId>>| {
            let conflicted: HashSet<&OwnedEventId> = conflicted.values().flatten().collect();
            Some(ancestors.conflicted_subgraph(&conflicted))
        };
        let resolved =
            state_res::resolve(&rules.authorization, state_res_rules, maps.iter(), auth_chains, fetch_event, subgraph)
                .map_err(|error| ApiError::internal(format_args!("state resolution failed: {error}")))?;
        Ok(resolved.into_iter().map(|((kind, key), id)| ((kind.to_string(), key), id.to_string())).collect())
    }

    /// Room version 1's resolution, which reads only the events the states name.
    async fn resolve_states_v1(
        &self,
        rules: &RoomVersionRules,
        states: &[StateIds],
        extra: &[&Pdu],
    ) -> ApiResult<StateIds> {
        let mut events: HashMap<OwnedEventId, Pdu> =
            extra.iter().map(|pdu| (pdu.event_id().to_owned(), Pdu::clone(pdu))).collect();
        let named: HashSet<&String> = states.iter().flat_map(|state| state.values()).collect();
        let wanted: Vec<String> =
            named.into_iter().filter(|id| !events.keys().any(|known| known.as_str() == id.as_str())).cloned().collect();
        for stored in self.db.events(&wanted).await? {
            let pdu = super::parse_stored(&stored, rules)?;
            events.insert(pdu.event_id().to_owned(), pdu);
        }
        let maps: Vec<HashMap<StateKey, OwnedEventId>> = states
            .iter()
            .map(|state| state.iter().filter_map(|(key, id)| Some((key.clone(), EventId::parse(id).ok()?))).collect())
            .collect();
        let resolved = hearth_federation::state_res_v1::resolve(&rules.authorization, &maps, &events);
        Ok(resolved.into_iter().map(|(key, id)| (key, id.to_string())).collect())
    }

    /// Every event the states name, and their auth chains, parsed; `extra` first.
    async fn load_with_auth_chains(
        &self,
        rules: &RoomVersionRules,
        states: &[StateIds],
        extra: &[&Pdu],
    ) -> ApiResult<HashMap<OwnedEventId, Pdu>> {
        let mut events: HashMap<OwnedEventId, Pdu> =
            extra.iter().map(|pdu| (pdu.event_id().to_owned(), Pdu::clone(pdu))).collect();
        let mut wanted: Vec<String> = states.iter().flat_map(|state| state.values().cloned()).collect();
        wanted.extend(extra.iter().flat_map(|pdu| ruma::state_res::Event::auth_events(*pdu).map(|id| id.to_string())));
        let mut seen: HashSet<String> = events.keys().map(|id| id.to_string()).collect();
        while !wanted.is_empty() && events.len() < MAX_EVENTS {
            wanted.retain(|id| seen.insert(id.clone()));
            if wanted.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for stored in self.db.events(&wanted).await? {
                let pdu = super::parse_stored(&stored, rules)?;
                next.extend(ruma::state_res::Event::auth_events(&pdu).map(|id| id.to_string()));
                events.insert(pdu.event_id().to_owned(), pdu);
            }
            wanted = next;
        }
        Ok(events)
    }
}

/// The states around an event that arrived on another branch of the room's history.
pub(super) struct Resolution {
    /// The state it was sent in: the resolution of the states after its prev_events.
    pub before: StateIds,
    /// The room's current state here, before it.
    pub current: StateIds,
    /// The room's state once it is taken in: current and (before + it), resolved.
    pub resolved: StateIds,
    /// `before` where it differs from `current`, kept with the event.
    pub branch_state: Vec<BranchEntry>,
}

impl Rooms {
    /// For an event from another server whose prev_events are not this server's forward
    /// extremities (it was made on a branch that had not seen some events here): the states
    /// around it, resolved. None when it simply follows on (or cites events held only as
    /// outliers, whose state is not recorded).
    pub(super) async fn resolve_fork(
        &self,
        room_id: &str,
        rules: &RoomVersionRules,
        pdu: &Pdu,
        prev_ids: &[String],
    ) -> ApiResult<Option<Resolution>> {
        // Called holding the stream (from `append_checked`): the cached extremities are current.
        let (extremities, _) = self.head_extremities(room_id).await?;
        if extremities.iter().all(|id| prev_ids.contains(id)) {
            return Ok(None);
        }
        let prevs = self.db.events(prev_ids).await?;
        if prevs.is_empty() || prevs.len() < prev_ids.len() || !self.db.outlier_ids(prev_ids).await?.is_empty() {
            return Ok(None);
        }
        // No state changed here since the branch point (concurrent messages, mostly) and it
        // follows no event that was itself sent in other state: the state it was sent in is
        // the current state, and it simply follows on.
        let branch_point = prevs.iter().map(|prev| prev.stream).min().unwrap_or(i64::MAX);
        if !self.db.state_changed_after(room_id, branch_point).await?
            && self.db.branch_states(prev_ids).await?.is_empty()
        {
            return Ok(None);
        }
        let befores = self.states_after(&prevs).await?;
        let before = self.resolve_states(rules, &befores, &[]).await?;
        let mut after = before.clone();
        if let Some(key) = pdu.state_key() {
            after.insert((pdu.event_type_str(), key.to_owned()), pdu.event_id().to_string());
        }
        let current = self.current_state_ids(room_id).await?;
        let resolved = if before == current {
            after
        } else {
            self.resolve_states(rules, &[current.clone(), after], &[pdu]).await?
        };
        let mut branch_state: Vec<BranchEntry> = before
            .iter()
            .filter(|(key, id)| current.get(*key) != Some(*id))
            .map(|((kind, key), id)| (kind.clone(), key.clone(), Some(id.clone())))
            .collect();
        branch_state.extend(
            current
                .keys()
                .filter(|key| !before.contains_key(*key))
                .map(|(kind, key)| (kind.clone(), key.clone(), None)),
        );
        Ok(Some(Resolution { before, current, resolved, branch_state }))
    }

    /// The events of `state` for `keys` (those it has), as the authorization rules read them.
    pub(super) async fn state_events_for(
        &self,
        state: &StateIds,
        keys: &[StateKey],
        rules: &RoomVersionRules,
    ) -> ApiResult<HashMap<StateKey, AuthEvent>> {
        let ids: Vec<String> = keys.iter().filter_map(|key| state.get(key).cloned()).collect();
        let mut found = HashMap::new();
        for stored in self.db.events(&ids).await? {
            let event = AuthEvent::from(super::parse_stored(&stored, rules)?);
            if let Some(key) = event.state_key() {
                found.insert((event.event_type_str(), key.to_owned()), event);
            }
        }
        Ok(found)
    }
}

/// Each loaded event's ancestors through auth_events (its auth chain).
struct Ancestors {
    of: HashMap<OwnedEventId, HashSet<OwnedEventId>>,
}

impl Ancestors {
    fn of(events: &HashMap<OwnedEventId, Pdu>) -> Self {
        let mut of: HashMap<OwnedEventId, HashSet<OwnedEventId>> = HashMap::new();
        for id in events.keys() {
            // Iterative walk: auth chains can be deep.
            let mut chain = HashSet::new();
            let mut stack: Vec<&OwnedEventId> = Vec::new();
            if let Some(pdu) = events.get(id) {
                stack.extend(ruma::state_res::Event::auth_events(pdu));
            }
            while let Some(next) = stack.pop() {
                if chain.insert(next.clone())
                    && let Some(pdu) = events.get(next)
                {
                    stack.extend(ruma::state_res::Event::auth_events(pdu));
                }
            }
            of.insert(id.clone(), chain);
        }
        Self { of }
    }

    /// The event's auth chain (not the event itself).
    fn strict(&self, id: &EventId) -> impl Iterator<Item = &OwnedEventId> {
        self.of.get(id).into_iter().flatten()
    }

    /// The conflicted state subgraph: the conflicted events, and every event on an auth_events
    /// path from one of them to another (an ancestor of a conflicted event that has a
    /// conflicted event among its own ancestors).
    fn conflicted_subgraph(&self, conflicted: &HashSet<&OwnedEventId>) -> EventIdSet<OwnedEventId> {
        let mut subgraph: EventIdSet<OwnedEventId> = conflicted.iter().map(|id| (*id).clone()).collect();
        for id in conflicted {
            for ancestor in self.strict(id) {
                let leads_to_conflict =
                    self.of.get(ancestor).is_some_and(|chain| chain.iter().any(|a| conflicted.contains(a)));
                if leads_to_conflict {
                    subgraph.insert(ancestor.clone());
                }
            }
        }
        subgraph
    }
}
