//! What the event writer knows about each room between events: its forward extremities (the
//! next event's prev_events) and the current state events the authorization rules read
//! (create, power levels, join rules, the members involved). Only the writer changes a room,
//! and it uses these only while holding the stream, so after the first event of a room since
//! start-up, building the next one reads nothing from storage.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use hearth_federation::{AuthEvent, Pdu};
use ruma::room_version_rules::RoomVersionRules;

use super::Rooms;
use crate::error::ApiResult;

/// Rooms kept at once, and state entries per room; past either the entries start over.
const MAX_ROOMS: usize = 20_000;
const MAX_STATE_PER_ROOM: usize = 5_000;

type StateKey = (String, String);

#[derive(Default)]
pub struct RoomHeads {
    rooms: Mutex<HashMap<String, Head>>,
}

/// Joined members and their display names.
pub type Members = Arc<HashMap<String, Option<String>>>;

/// Other servers, each once.
pub type Servers = Arc<Vec<String>>;

/// The members with their own push rules.
pub type CustomRules = Arc<HashMap<String, Arc<ruma::push::Ruleset>>>;

/// Which members have their own push rules, as of a push rule cache generation; members who
/// joined since are checked at the next event.
struct CustomRuleView {
    generation: u64,
    rules: CustomRules,
    unchecked: Vec<String>,
}

#[derive(Default)]
struct Head {
    /// None until read from storage.
    extremities: Option<(Vec<String>, i64)>,
    /// None until read from storage.
    members: Option<Members>,
    /// None until first needed; only kept while `members` is.
    custom_rules: Option<CustomRuleView>,
    /// The other servers with joined members (where the room's events go), derived from
    /// `members`; None until needed and after any change to them.
    servers: Option<Servers>,
    /// Current state events by (type, state_key), as the authorization rules read them (not
    /// the whole signed event: a room keeps one per member who sent); None: known to be absent.
    state: HashMap<StateKey, Option<Arc<AuthEvent>>>,
}

impl RoomHeads {
    fn with<T>(&self, room_id: &str, f: impl FnOnce(&mut Head) -> T) -> T {
        let mut rooms = self.rooms.lock().expect("room heads lock");
        if rooms.len() >= MAX_ROOMS && !rooms.contains_key(room_id) {
            rooms.clear();
        }
        f(rooms.entry(room_id.to_owned()).or_default())
    }

    /// A committed event becomes the room's only forward extremity (local events cite every
    /// extremity as prev_events), and a state event the current value of its key.
    pub(super) fn advance(&self, room_id: &str, pdu: &Pdu) {
        self.with(room_id, |head| {
            head.extremities = Some((vec![pdu.event_id().to_string()], pdu.depth() as i64));
            if let Some(state_key) = pdu.state_key() {
                if let Some(members) = head.members.as_mut()
                    && pdu.kind().to_string() == "m.room.member"
                {
                    let content: serde_json::Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
                    let members = Arc::make_mut(members);
                    head.servers = None;
                    if content["membership"] == "join" {
                        let displayname = content["displayname"].as_str().map(str::to_owned);
                        if members.insert(state_key.to_owned(), displayname).is_none()
                            && let Some(view) = head.custom_rules.as_mut()
                        {
                            view.unchecked.push(state_key.to_owned());
                        }
                    } else {
                        members.remove(state_key);
                        if let Some(view) = head.custom_rules.as_mut() {
                            Arc::make_mut(&mut view.rules).remove(state_key);
                        }
                    }
                }
                if head.state.len() >= MAX_STATE_PER_ROOM {
                    head.state.clear();
                }
                head.state.insert((pdu.event_type_str(), state_key.to_owned()), Some(Arc::new(AuthEvent::from(pdu))));
            }
        });
    }

    /// Forgets everything known about a room (after its state was written directly).
    pub(super) fn forget_room(&self, room_id: &str) {
        self.rooms.lock().expect("room heads lock").remove(room_id);
    }

    /// Forgets the extremities, so the next event reads them from storage (after an event from
    /// another server, which need not cite all of them).
    pub(super) fn forget_extremities(&self, room_id: &str) {
        self.with(room_id, |head| head.extremities = None);
    }

    /// The joined members, when known (push evaluation loaded them before the commit).
    pub(super) fn members(&self, room_id: &str) -> Option<Members> {
        self.with(room_id, |head| head.members.clone())
    }

    /// A redacted event leaves the cached state, so the next read takes storage's view.
    pub(super) fn redacted(&self, room_id: &str, event_id: &str) {
        self.with(room_id, |head| {
            head.state.retain(|_, pdu| pdu.as_ref().is_none_or(|pdu| pdu.event_id().as_str() != event_id));
        });
    }
}

impl Rooms {
    /// The room's joined members and their display names (call holding the stream).
    pub(super) async fn head_members(&self, room_id: &str) -> ApiResult<Members> {
        if let Some(members) = self.heads.with(room_id, |head| head.members.clone()) {
            return Ok(members);
        }
        let members: Members = Arc::new(self.db.joined_member_names(room_id).await?.into_iter().collect());
        self.heads.with(room_id, |head| {
            head.members = Some(members.clone());
            head.custom_rules = None;
            head.servers = None;
        });
        Ok(members)
    }

    /// The other servers with members joined to the room (call holding the stream): worked out
    /// from the members once per membership change, not per event.
    pub(super) async fn head_servers(&self, room_id: &str) -> ApiResult<Servers> {
        if let Some(servers) = self.heads.with(room_id, |head| head.members.as_ref().and(head.servers.clone())) {
            return Ok(servers);
        }
        let members = self.head_members(room_id).await?;
        let servers: std::collections::BTreeSet<&str> = members
            .keys()
            .map(|user| crate::services::usernames::server_of(user))
            .filter(|server| *server != self.server_name)
            .collect();
        let servers: Servers = Arc::new(servers.into_iter().map(str::to_owned).collect());
        self.heads.with(room_id, |head| {
            if head.members.as_ref().is_some_and(|known| Arc::ptr_eq(known, &members)) {
                head.servers = Some(servers.clone());
            }
        });
        Ok(servers)
    }

    /// Which of the members (as `head_members` returned them) have their own push rules (call
    /// holding the stream). Only members not looked at before are looked up.
    pub(super) async fn head_custom_rules(&self, room_id: &str, members: &Members) -> ApiResult<CustomRules> {
        let generation = self.push_rules.generation();
        let (known, unchecked) = self.heads.with(room_id, |head| match head.custom_rules.as_mut() {
            Some(view) if view.generation == generation => {
                (Some(view.rules.clone()), std::mem::take(&mut view.unchecked))
            }
            _ => (None, Vec::new()),
        });
        if let Some(rules) = &known
            && unchecked.is_empty()
        {
            return Ok(rules.clone());
        }
        let to_check: Vec<String> = match &known {
            Some(_) => unchecked,
            None => members.keys().cloned().collect(),
        };
        let mut rules = known.unwrap_or_default();
        for (user, own) in self.push_rules_of(&to_check).await? {
            if let Some(own) = own {
                Arc::make_mut(&mut rules).insert(user, own);
            }
        }
        self.heads.with(room_id, |head| {
            head.custom_rules = Some(CustomRuleView { generation, rules: rules.clone(), unchecked: Vec::new() });
        });
        Ok(rules)
    }

    /// The room's forward extremities and their greatest depth (call holding the stream).
    pub(super) async fn head_extremities(&self, room_id: &str) -> ApiResult<(Vec<String>, i64)> {
        if let Some(known) = self.heads.with(room_id, |head| head.extremities.clone()) {
            return Ok(known);
        }
        let loaded = self.db.forward_extremities(room_id).await?;
        self.heads.with(room_id, |head| head.extremities = Some(loaded.clone()));
        Ok(loaded)
    }

    /// The current state events for `keys` that exist (call holding the stream).
    pub(super) async fn head_state(
        &self,
        room_id: &str,
        rules: &RoomVersionRules,
        keys: &[StateKey],
    ) -> ApiResult<HashMap<StateKey, Arc<AuthEvent>>> {
        let mut found = HashMap::new();
        let missing: Vec<StateKey> = self.heads.with(room_id, |head| {
            keys.iter()
                .filter(|key| match head.state.get(*key) {
                    Some(Some(pdu)) => {
                        found.insert((*key).clone(), pdu.clone());
                        false
                    }
                    Some(None) => false,
                    None => true,
                })
                .cloned()
                .collect()
        });
        if missing.is_empty() {
            return Ok(found);
        }
        let entries = self.db.current_state_entries(room_id, &missing).await?;
        let ids: Vec<String> = entries.iter().map(|e| e.event_id.clone()).collect();
        let mut loaded: HashMap<StateKey, Option<Arc<AuthEvent>>> =
            missing.into_iter().map(|key| (key, None)).collect();
        for stored in self.db.events(&ids).await? {
            if let Some(state_key) = &stored.state_key {
                let pdu = Arc::new(AuthEvent::from(super::parse_stored(&stored, rules)?));
                loaded.insert((stored.event_type.clone(), state_key.clone()), Some(pdu));
            }
        }
        self.heads.with(room_id, |head| {
            for (key, pdu) in loaded {
                if let Some(pdu) = &pdu {
                    found.insert(key.clone(), pdu.clone());
                }
                head.state.insert(key, pdu);
            }
        });
        Ok(found)
    }
}
