//! Rooms that span servers (spec: Server-Server API § Joining rooms, § Transactions): where a
//! local event must go, taking in another server's events, answering make_join/send_join as
//! the room's server, and joining a room that lives on another server.
//!
//! Remote events enter through the same writer as local ones (one stream, one order). An
//! event is authorized against the events it cites, then (if it was made on another branch)
//! against the state it was sent in, and then against the current state (failing only the
//! latter soft-fails it: kept as an outlier, never shown or applied). Where branches meet, the
//! room's state is resolved (`state_resolution.rs`); the next local event cites every forward
//! extremity.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use hearth_federation::{AuthEvent, Pdu, event_auth};
use reqwest::Method;
use ruma::{EventId, OwnedEventId, RoomId, ServerName, UserId};
use serde_json::{Value, json};

use super::{
    Rooms,
    out_of_band::{SignedMembership, make_path},
    writer::Commit,
};
use crate::{
    error::{ApiError, ApiResult, ErrorKind},
    services::{
        federation::{FederationError, incoming, query_value},
        sync::notifier::Scope,
        usernames::server_of,
    },
    storage::{
        now_ms,
        rooms::{EventToPersist, MembershipRecord, PersistKind, StateReset, StoredEvent},
    },
};

pub(super) type StateKey = (String, String);

/// Which other servers a committed event from elsewhere is passed on to.
#[derive(Clone, Copy)]
pub(super) enum Relay<'a> {
    /// None: the origin sends its events to every server itself.
    No,
    /// Every server in the room (an event built here).
    ToAll,
    /// Every server but its origin (a join that reached the room only through this server).
    AllBut(&'a str),
}

fn create_key() -> StateKey {
    ("m.room.create".to_owned(), String::new())
}

pub(super) fn bad_gateway(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, message)
}

impl Rooms {
    /// The other servers that must receive a local event: those of the room's joined members,
    /// and for a membership event the target's (an invited or departing user's server).
    pub(super) async fn destinations(&self, room_id: &str, pdu: &Pdu) -> ApiResult<Vec<String>> {
        let mut servers = self.head_servers(room_id).await?.to_vec();
        if pdu.kind().to_string() == "m.room.member"
            && let Some(target) = pdu.state_key()
            && server_of(target) != self.server_name
            && !servers.iter().any(|server| server == server_of(target))
        {
            servers.push(server_of(target).to_owned());
        }
        Ok(servers)
    }

    /// Sends an EDU about a room (typing, a receipt) to every other server with members in it.
    pub async fn send_edu_to_room(&self, room_id: &str, edu: Value) -> ApiResult<()> {
        let servers = self.other_servers_in(std::slice::from_ref(&room_id.to_owned())).await?;
        if !servers.is_empty() {
            self.federation_sender.queue_edu(&servers, &edu);
        }
        Ok(())
    }

    /// Sends an EDU about a user (presence; a device list change, `durable`) to every other
    /// server that shares a joined room with them.
    pub async fn send_edu_to_servers_of(&self, user_id: &str, edu: Value, durable: bool) -> ApiResult<()> {
        let servers = self.other_servers_in(&self.joined_room_ids(user_id).await?).await?;
        if durable {
            self.federation_sender.queue_durable_edu(&servers, &edu).await?;
        } else if !servers.is_empty() {
            self.federation_sender.queue_edu(&servers, &edu);
        }
        Ok(())
    }

    /// The servers other than this one with joined members in any of `rooms`.
    async fn other_servers_in(&self, rooms: &[String]) -> ApiResult<Vec<String>> {
        let mut servers: BTreeSet<String> = BTreeSet::new();
        let _quiet = self.streams.hold().await;
        for room_id in rooms {
            let members = self.head_members(room_id).await?;
            servers.extend(members.keys().map(|user| server_of(user).to_owned()));
        }
        servers.remove(&self.server_name);
        Ok(servers.into_iter().collect())
    }

    /// Takes in an event another server sent (already through `incoming::check_pdu`): checked
    /// against its auth events and against the current state, then committed like a local
    /// event. An event already held is accepted again without change.
    pub async fn append_remote(&self, pdu: &Pdu) -> ApiResult<()> {
        self.append_checked(pdu, Relay::No).await
    }

    /// Commits an event signed elsewhere, or built here and countersigned by another server (an
    /// invite); `relay` says which of the room's other servers it goes to.
    pub(super) async fn append_checked(&self, pdu: &Pdu, relay: Relay<'_>) -> ApiResult<()> {
        let room_id = pdu.room_id_or_derived().ok_or_else(|| ApiError::bad_json("The event has no room"))?.to_string();
        let slot = self.streams.begin().await;
        if self.db.event(pdu.event_id().as_str()).await?.is_some() {
            return Ok(());
        }
        let rules = self.rules(&room_id).await?;
        let (mut auth_events, mut cited_state) = self
            .cited_auth_events(pdu, &room_id, &rules)
            .await?
            .ok_or_else(|| ApiError::forbidden("The event cites auth events this server does not have"))?;
        let content = pdu.content_json();
        let auth_types = event_auth::auth_types_for_event(
            &pdu.event_type_str(),
            pdu.sender(),
            pdu.state_key(),
            content,
            &rules.authorization,
        )
        .map_err(|reason| ApiError::bad_json(format!("Invalid event: {reason}")))?;
        let mut keys = auth_types.clone();
        keys.push(create_key());
        let current = self.head_state(&room_id, &rules, &keys).await?;
        // v12 rooms find the create event by the room id: it is never cited.
        if let Some(create) = current.get(&create_key()) {
            auth_events.entry(create.event_id().to_owned()).or_insert_with(|| AuthEvent::clone(create));
            cited_state.entry(create_key()).or_insert_with(|| AuthEvent::clone(create));
        }
        event_auth::check_event(&rules.authorization, pdu, &auth_events, &cited_state)
            .map_err(|reason| ApiError::forbidden(format!("Not allowed by its auth events: {reason}")))?;
        let prev_events: Vec<String> = ruma::state_res::Event::prev_events(pdu).map(|id| id.to_string()).collect();
        // Made on another branch of the room's history: checked against the state it was sent
        // in, and the room's state resolved where the branches meet.
        let resolution = match relay {
            Relay::No => self.resolve_fork(&room_id, &rules, pdu, &prev_events).await?,
            _ => None,
        };
        if let Some(resolution) = &resolution {
            let mut before = self.state_events_for(&resolution.before, &keys, &rules).await?;
            if let Some(create) = current.get(&create_key()) {
                before.entry(create_key()).or_insert_with(|| AuthEvent::clone(create));
            }
            event_auth::check_event(&rules.authorization, pdu, &auth_events, &before)
                .map_err(|reason| ApiError::forbidden(format!("Not allowed by the state before it: {reason}")))?;
        }
        if let Err(reason) = event_auth::check_event(&rules.authorization, pdu, &auth_events, &current) {
            if !matches!(relay, Relay::No) {
                return Err(ApiError::forbidden(format!("Not allowed by the current state: {reason}")));
            }
            // Made on the room's current state (no other branch): the state before it is the
            // current state, so it is rejected, not soft-failed.
            if resolution.is_none() {
                return Err(ApiError::forbidden(format!("Not allowed by the state before it: {reason}")));
            }
            // Soft fail (spec: Server-Server API § Soft failure): allowed by the events it cites
            // but not by the room as it is now — kept, so events citing it can be checked, but
            // never shown, never state, never a forward extremity; the sending server is told it
            // was accepted.
            tracing::info!(event_id = %pdu.event_id(), %reason, "soft-failed an event");
            let prepared = Prepared::of(pdu)?;
            let position = self.db.min_stream().await? - 1;
            let row = prepared.row(pdu, &room_id, &[], None, PersistKind::AuthOutlier);
            self.db.persist_events(vec![(position, row)]).await?;
            return Ok(());
        }

        let push = self.push_actions(&room_id, pdu, &current, &rules).await?;
        let destinations = match relay {
            Relay::No => Vec::new(),
            Relay::ToAll => self.destinations(&room_id, pdu).await?,
            Relay::AllBut(origin) => {
                self.destinations(&room_id, pdu).await?.into_iter().filter(|server| server != origin).collect()
            }
        };
        let changed = match &resolution {
            Some(resolution) => Some(self.state_changes(&resolution.current, &resolution.resolved, pdu).await?),
            None => None,
        };
        let resets: Option<Vec<StateReset<'_>>> = changed.as_ref().map(|changed| {
            changed
                .iter()
                .map(|(key, id, membership)| StateReset {
                    event_type: &key.0,
                    state_key: &key.1,
                    event_id: id,
                    membership: membership.as_ref().map(|(m, name)| (m.as_str(), name.as_deref())),
                })
                .collect()
        });
        let stream = slot.position();
        let commit = Commit {
            push: Some(&push),
            remote: true,
            destinations: &destinations,
            resolved: resets.as_deref(),
            branch_state: resolution.as_ref().map_or(&[][..], |resolution| resolution.branch_state.as_slice()),
            ..Commit::default()
        };
        self.persist(pdu, &room_id, &prev_events, commit, stream).await?;
        self.federation_sender.wake(&destinations);
        let event_type = pdu.event_type_str();
        let visibility_moved = changed
            .as_ref()
            .is_some_and(|changed| changed.iter().any(|(key, _, _)| key.0 == "m.room.history_visibility"));
        if event_type == "m.room.history_visibility" || visibility_moved {
            self.refresh_history_settings(&room_id).await;
        }
        match (event_type.as_str(), pdu.state_key()) {
            ("m.room.member", Some(target)) => {
                slot.committed(&[Scope::Room(&room_id), Scope::Keys(&room_id), Scope::User(target)])
            }
            _ => slot.committed(&[Scope::Room(&room_id)]),
        };
        Ok(())
    }

    /// The entries of `resolved` that differ from `current`: (key, event id, for a membership
    /// event its membership and display name). `pdu` is the event being taken in (not stored
    /// yet).
    async fn state_changes(
        &self,
        current: &super::state_resolution::StateIds,
        resolved: &super::state_resolution::StateIds,
        pdu: &Pdu,
    ) -> ApiResult<Vec<(StateKey, String, Option<MemberInfo>)>> {
        let changed: Vec<(&StateKey, &String)> =
            resolved.iter().filter(|(key, id)| current.get(*key) != Some(*id)).collect();
        let member_ids: Vec<String> = changed
            .iter()
            .filter(|(key, id)| key.0 == "m.room.member" && id.as_str() != pdu.event_id().as_str())
            .map(|(_, id)| (*id).clone())
            .collect();
        let mut memberships: HashMap<String, Option<MemberInfo>> = HashMap::new();
        for stored in self.db.events(&member_ids).await? {
            let content: Value =
                serde_json::from_str(&stored.json).map(|json: Value| json["content"].clone()).unwrap_or_default();
            let info = content["membership"]
                .as_str()
                .map(|m| (m.to_owned(), content["displayname"].as_str().map(str::to_owned)));
            memberships.insert(stored.event_id, info);
        }
        if let Ok(prepared) = Prepared::of(pdu) {
            memberships.insert(pdu.event_id().to_string(), prepared.membership);
        }
        Ok(changed
            .into_iter()
            .map(|(key, id)| {
                let membership = if key.0 == "m.room.member" { memberships.get(id).cloned().flatten() } else { None };
                (key.clone(), id.clone(), membership)
            })
            .collect())
    }

    /// Whether this server is in the room: it holds the room and one of its users is joined.
    pub async fn server_in_room(&self, room_id: &str) -> ApiResult<bool> {
        Ok(self.db.has_joined_member_of(room_id, &self.server_name).await?)
    }

    /// The auth events an event cites, by id and as state, when this server holds all of them
    /// (None when it lacks some).
    #[allow(clippy::type_complexity)]
    pub(super) async fn cited_auth_events(
        &self,
        pdu: &Pdu,
        room_id: &str,
        rules: &ruma::room_version_rules::RoomVersionRules,
    ) -> ApiResult<Option<(HashMap<OwnedEventId, AuthEvent>, HashMap<StateKey, AuthEvent>)>> {
        let auth_ids: Vec<String> = ruma::state_res::Event::auth_events(pdu).map(|id| id.to_string()).collect();
        let mut auth_events: HashMap<OwnedEventId, AuthEvent> = HashMap::new();
        let mut cited_state: HashMap<StateKey, AuthEvent> = HashMap::new();
        for stored in self.db.events(&auth_ids).await? {
            if stored.room_id != room_id {
                return Err(ApiError::forbidden("An auth event belongs to another room"));
            }
            let parsed = AuthEvent::from(super::parse_stored(&stored, rules)?);
            if let Some(key) = parsed.state_key() {
                cited_state.insert((parsed.event_type_str(), key.to_owned()), parsed.clone());
            }
            auth_events.insert(parsed.event_id().to_owned(), parsed);
        }
        Ok((auth_events.len() == auth_ids.len()).then_some((auth_events, cited_state)))
    }

    /// GET /make_join, /make_leave or /make_knock as the room's server: a membership event for
    /// `user_id` to fill in and sign, built on the current extremities; refused when the
    /// authorization rules would refuse it.
    pub async fn make_membership(
        &self,
        room_id: &str,
        user_id: &str,
        membership: &str,
        versions: &[String],
    ) -> ApiResult<(String, Value)> {
        let version = self.db.room_version(room_id).await?.ok_or_else(|| ApiError::not_found("Unknown room"))?;
        if membership != "leave" && !versions.contains(&version) {
            return Err(ApiError::new(
                ErrorKind::IncompatibleRoomVersion { room_version: version },
                "Your server does not support this room's version",
            ));
        }
        let rules = self.rules(room_id).await?;
        let user = UserId::parse(user_id).map_err(|_| ApiError::invalid_param("Invalid user id"))?;
        let content = json!({"membership": membership});
        let raw = serde_json::value::to_raw_value(&content).map_err(ApiError::internal)?;
        let _quiet = self.streams.hold().await;
        let auth_types =
            event_auth::auth_types_for_event("m.room.member", &user, Some(user_id), &raw, &rules.authorization)
                .map_err(ApiError::internal)?;
        let mut keys = auth_types.clone();
        keys.push(create_key());
        let current = self.head_state(room_id, &rules, &keys).await?;
        let auth_events: Vec<String> =
            auth_types.iter().filter_map(|key| current.get(key)).map(|pdu| pdu.event_id().to_string()).collect();
        let (prev_events, depth) = self.head_extremities(room_id).await?;
        let template_prev = self.references_json(&rules, &prev_events).await?;
        let template_auth = self.references_json(&rules, &auth_events).await?;
        let template = json!({
            "room_id": room_id,
            "sender": user_id,
            "type": "m.room.member",
            "state_key": user_id,
            "content": content,
            "prev_events": template_prev,
            "auth_events": template_auth,
            "depth": depth + 1,
            "origin_server_ts": now_ms(),
        });
        // A dry run of the authorization rules, so a user who may not do this hears so now.
        let object = hearth_federation::to_canonical_object(template.clone()).map_err(ApiError::internal)?;
        let probe = Pdu::from_signed(EventId::parse("$probe").map_err(ApiError::internal)?, object, &rules)
            .map_err(ApiError::internal)?;
        let by_id: HashMap<OwnedEventId, Arc<AuthEvent>> =
            current.values().map(|event| (event.event_id().to_owned(), event.clone())).collect();
        event_auth::check_event(&rules.authorization, &probe, &by_id, &current)
            .map_err(|reason| ApiError::forbidden(format!("Not allowed by the room's rules: {reason}")))?;
        Ok((version, template))
    }

    /// A signed membership event another server sends (send_join, send_leave, send_knock),
    /// checked like any federated event and for being `membership` of its own sender, a user of
    /// `origin`, in this room; then committed and passed on to the room's other servers (the
    /// sending server may know only this one).
    async fn receive_membership(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &str,
        event: Value,
        membership: &str,
    ) -> ApiResult<()> {
        let rules = self.rules(room_id).await?;
        let pdu = incoming::check_pdu(&self.remote_keys, event, &rules).await.map_err(ApiError::bad_json)?;
        if pdu.event_id().as_str() != event_id {
            return Err(ApiError::bad_json("The event id does not match the event"));
        }
        let content: Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        if pdu.event_type_str() != "m.room.member"
            || pdu.state_key() != Some(pdu.sender().as_str())
            || content["membership"] != membership
            || pdu.room_id_or_derived().as_deref().map(RoomId::as_str) != Some(room_id)
        {
            return Err(ApiError::bad_json(format!("Not a {membership} event of its sender in this room")));
        }
        if pdu.sender().server_name().as_str() != origin {
            return Err(ApiError::forbidden("The event is not for a user of the sending server"));
        }
        self.append_checked(&pdu, Relay::AllBut(origin)).await
    }

    /// PUT /send_leave as the room's server.
    pub async fn receive_leave(&self, origin: &str, room_id: &str, event_id: &str, event: Value) -> ApiResult<()> {
        self.receive_membership(origin, room_id, event_id, event, "leave").await
    }

    /// PUT /send_knock as the room's server: takes in the knock and answers the room's stripped
    /// state, which the knocking user is shown.
    pub async fn receive_knock(&self, origin: &str, room_id: &str, event_id: &str, event: Value) -> ApiResult<Value> {
        self.receive_membership(origin, room_id, event_id, event, "knock").await?;
        Ok(json!({"knock_room_state": self.stripped_room_state(room_id).await?}))
    }

    /// PUT /send_join as the room's server: takes in the signed join and answers the room's
    /// state before it and the auth chain of that state. With `omit_members` (what Synapse
    /// asks for, to join large rooms fast) the state leaves out other users' membership events
    /// — all but the joining user's own, those the join cites, and, in a room with neither name
    /// nor canonical alias, the few members clients name it after — and the auth chain leaves
    /// out what the state already holds; the joining server fetches the rest (/state_ids,
    /// /state) later.
    pub async fn receive_join(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &str,
        event: Value,
        omit_members: bool,
    ) -> ApiResult<Value> {
        self.receive_membership(origin, room_id, event_id, event, "join").await?;
        let joined_at = self.db.event(event_id).await?.ok_or_else(|| ApiError::internal("join not stored"))?;
        let entries = self.db.state_at(room_id, joined_at.stream - 1).await?;
        // The servers with joined members before this join.
        let joiner = joined_at.state_key.as_deref().unwrap_or_default();
        let servers: BTreeSet<String> = self
            .db
            .room_members(room_id, "join")
            .await?
            .iter()
            .filter(|user| user.as_str() != joiner)
            .map(|user| server_of(user).to_owned())
            .collect();
        let state_ids: Vec<String> = if omit_members {
            self.partial_state_ids(room_id, &entries, &joined_at).await?
        } else {
            entries.into_iter().map(|entry| entry.event_id).collect()
        };
        let state = self.db.events(&state_ids).await?;
        let mut auth_chain = self.auth_chain(state.iter().chain(std::iter::once(&joined_at))).await?;
        if omit_members {
            let in_state: HashSet<&str> = state_ids.iter().map(String::as_str).collect();
            auth_chain.retain(|event| !in_state.contains(event.event_id.as_str()));
        }
        Ok(json!({
            "origin": self.server_name,
            "event": raw_json(&joined_at),
            "state": state.iter().map(raw_json).collect::<Vec<_>>(),
            "auth_chain": auth_chain.iter().map(raw_json).collect::<Vec<_>>(),
            "members_omitted": omit_members,
            "servers_in_room": servers,
        }))
    }

    /// The state a join with `omit_members` is answered: every non-membership event, the
    /// joining user's own membership, the memberships the join cites, and (a room without name
    /// or canonical alias) the memberships of up to five members clients name the room after.
    async fn partial_state_ids(
        &self,
        room_id: &str,
        entries: &[crate::storage::rooms::StateEntry],
        join: &StoredEvent,
    ) -> ApiResult<Vec<String>> {
        let joiner = join.state_key.as_deref().unwrap_or_default();
        let cited_by_join: HashSet<String> = cited(join, "auth_events").into_iter().collect();
        let unnamed =
            !entries.iter().any(|e| matches!(e.event_type.as_str(), "m.room.name" | "m.room.canonical_alias"));
        let heroes: HashSet<String> = if unnamed {
            self.db.room_members(room_id, "join").await?.into_iter().filter(|user| user != joiner).take(5).collect()
        } else {
            HashSet::new()
        };
        Ok(entries
            .iter()
            .filter(|entry| {
                entry.event_type != "m.room.member"
                    || entry.state_key == joiner
                    || heroes.contains(&entry.state_key)
                    || cited_by_join.contains(&entry.event_id)
            })
            .map(|entry| entry.event_id.clone())
            .collect())
    }

    /// The room's state shown to someone outside it (an invitee, a knocker): the
    /// identifying events stripped, except the create event, sent whole (v12 clients check the
    /// room id against it).
    pub(super) async fn stripped_room_state(&self, room_id: &str) -> ApiResult<Vec<Value>> {
        let entries = self.db.current_state(room_id).await?;
        let ids: Vec<String> = entries
            .into_iter()
            .filter(|entry| crate::services::sync::response::INVITE_STATE_TYPES.contains(&entry.event_type.as_str()))
            .map(|entry| entry.event_id)
            .collect();
        Ok(self
            .db
            .events(&ids)
            .await?
            .iter()
            .map(|event| {
                if event.event_type == "m.room.create" { raw_json(event) } else { super::format::stripped_state(event) }
            })
            .collect())
    }

    /// Every event in the auth chains of `events` (not the events themselves).
    pub async fn auth_chain<'a>(
        &self,
        events: impl IntoIterator<Item = &'a StoredEvent>,
    ) -> ApiResult<Vec<StoredEvent>> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut chain = Vec::new();
        let mut frontier: Vec<String> = events.into_iter().flat_map(|event| cited(event, "auth_events")).collect();
        while !frontier.is_empty() {
            frontier.retain(|id| seen.insert(id.clone()));
            if frontier.is_empty() {
                break;
            }
            let found = self.db.events(&frontier).await?;
            frontier = found.iter().flat_map(|event| cited(event, "auth_events")).collect();
            chain.extend(found);
        }
        Ok(chain)
    }

    /// Joins `user_id` to a room this server is not in, through one of `via` (or the alias's
    /// or the room id's server): make_join, sign, send_join, check what came back, and take in
    /// the room's state and the join in one transaction.
    pub async fn join_remote(&self, user_id: &str, room_id: &str, via: &[String]) -> ApiResult<String> {
        let user = UserId::parse(user_id).map_err(ApiError::internal)?;
        let candidates = self.candidate_servers(room_id, via);
        if candidates.is_empty() {
            return Err(ApiError::not_found("Unknown room; name a server to join it through (via)"));
        }
        let mut last_error = bad_gateway("No server could be asked");
        for server in &candidates {
            let made = match self.federation.get(server, &make_path("join", room_id, user_id)).await {
                Ok(made) => made,
                Err(error) => {
                    tracing::info!(%error, room_id, "make_join failed");
                    last_error = error.into_api_error();
                    continue;
                }
            };
            match self.finish_remote_join(&user, room_id, server, made).await {
                Ok(()) => return Ok(room_id.to_owned()),
                Err(error) => {
                    tracing::info!(?error, room_id, server = %server, "send_join failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    async fn finish_remote_join(
        &self,
        user: &UserId,
        room_id: &str,
        server: &ServerName,
        made: Value,
    ) -> ApiResult<()> {
        let mut content = self.member_content(user.as_str(), "join").await?;
        if let Some(authorised) = made["event"]["content"].get("join_authorised_via_users_server") {
            content["join_authorised_via_users_server"] = authorised.clone();
        }
        let SignedMembership { version, rules, object, event_id } =
            self.sign_membership(&made, user, room_id, "join", content)?;
        let body = serde_json::to_value(&object).map_err(ApiError::internal)?;
        let path = format!("/_matrix/federation/v2/send_join/{}/{}", query_value(room_id), query_value(&event_id));
        let answer = self
            .federation
            .send_json(server, Method::PUT, &path, &body)
            .await
            .map_err(FederationError::into_api_error)?;

        // Everything the server sent is checked like any event from federation.
        let mut checked: HashMap<OwnedEventId, Pdu> = HashMap::new();
        let mut state_ids: Vec<OwnedEventId> = Vec::new();
        for (field, is_state) in [("auth_chain", false), ("state", true)] {
            for value in answer[field].as_array().into_iter().flatten() {
                let pdu = incoming::check_pdu(&self.remote_keys, value.clone(), &rules)
                    .await
                    .map_err(|reason| bad_gateway(format!("The room's server sent a bad event: {reason}")))?;
                if is_state {
                    state_ids.push(pdu.event_id().to_owned());
                }
                checked.insert(pdu.event_id().to_owned(), pdu);
            }
        }
        let join = Pdu::from_signed(EventId::parse(&event_id).map_err(ApiError::internal)?, object, &rules)
            .map_err(ApiError::internal)?;
        let create = state_ids
            .iter()
            .filter_map(|id| checked.get(id))
            .find(|pdu| pdu.event_type_str() == "m.room.create" && pdu.state_key() == Some(""))
            .ok_or_else(|| bad_gateway("The room's state has no create event"))?
            .clone();
        if create.room_id_or_derived().as_deref().map(RoomId::as_str) != Some(room_id) {
            return Err(bad_gateway("The room's create event is for another room"));
        }
        let create_content: Value = serde_json::from_str(create.content_json().get()).unwrap_or_default();
        if create_content["room_version"].as_str().unwrap_or("1") != version {
            return Err(bad_gateway("The room's create event names another room version"));
        }
        // The join must pass the rules against the state the server sent.
        let state: HashMap<StateKey, Pdu> = state_ids
            .iter()
            .filter_map(|id| checked.get(id))
            .filter_map(|pdu| Some(((pdu.event_type_str(), pdu.state_key()?.to_owned()), pdu.clone())))
            .collect();
        event_auth::check_event(&rules.authorization, &join, &checked, &state)
            .map_err(|reason| bad_gateway(format!("The join does not pass the room's rules: {reason}")))?;
        self.import_joined_room(room_id, &version, &create, &checked, &state, &join).await
    }

    /// Stores a remote room's state (and its auth chain) below every sync position, then the
    /// join at the next position, all in one transaction.
    async fn import_joined_room(
        &self,
        room_id: &str,
        version: &str,
        create: &Pdu,
        events: &HashMap<OwnedEventId, Pdu>,
        state: &HashMap<StateKey, Pdu>,
        join: &Pdu,
    ) -> ApiResult<()> {
        let slot = self.streams.begin().await;
        let rejoin = self.db.room_version(room_id).await?.is_some();
        if rejoin && self.server_in_room(room_id).await? {
            return Err(ApiError::forbidden("This server joined the room meanwhile; join again"));
        }
        let state_ids: HashSet<&EventId> = state.values().map(|pdu| pdu.event_id()).collect();
        // Events already held (an invite that came before the join) are not stored twice.
        let all_ids: Vec<String> = events.keys().map(|id| id.to_string()).collect();
        let held: HashSet<String> = self.db.events(&all_ids).await?.into_iter().map(|e| e.event_id).collect();
        // Oldest first, so positions follow depth.
        let mut ordered: Vec<&Pdu> = events.values().filter(|pdu| !held.contains(pdu.event_id().as_str())).collect();
        ordered.sort_by_key(|pdu| (pdu.depth(), pdu.origin_server_ts()));
        let base = self.db.min_stream().await? - ordered.len() as i64 - 1;
        let prepared: Vec<Prepared> = ordered.iter().map(|pdu| Prepared::of(pdu)).collect::<ApiResult<_>>()?;
        let join_prepared = Prepared::of(join)?;
        let creator = create.sender().to_string();
        let join_prev: Vec<String> = ruma::state_res::Event::prev_events(join).map(|id| id.to_string()).collect();
        let mut rows: Vec<(i64, EventToPersist<'_>)> = Vec::new();
        for (index, (pdu, prepared)) in ordered.iter().zip(&prepared).enumerate() {
            // Rejoining, the state applies as a whole at the join (below), not event by event.
            let kind = if state_ids.contains(pdu.event_id()) && !rejoin {
                PersistKind::StateOutlier
            } else {
                PersistKind::AuthOutlier
            };
            let new_room = (pdu.event_id() == create.event_id()).then_some((version, creator.as_str()));
            rows.push((base + index as i64, prepared.row(pdu, room_id, &[], new_room, kind)));
        }
        let stream = slot.position();
        let join_row = join_prepared.row(join, room_id, &join_prev, None, PersistKind::Timeline);
        let mut changed_members: Vec<(String, String)> = Vec::new();
        if rejoin {
            let held_state = self.current_state_ids(room_id).await?;
            let changed: Vec<(&StateKey, &Pdu, Option<MemberInfo>)> = state
                .iter()
                .filter(|(key, pdu)| held_state.get(*key).map(String::as_str) != Some(pdu.event_id().as_str()))
                .map(|(key, pdu)| (key, pdu, Prepared::of(pdu).ok().and_then(|p| p.membership)))
                .collect();
            let resets: Vec<StateReset<'_>> = changed
                .iter()
                .map(|(key, pdu, membership)| StateReset {
                    event_type: &key.0,
                    state_key: &key.1,
                    event_id: pdu.event_id().as_str(),
                    membership: membership.as_ref().map(|(m, name)| (m.as_str(), name.as_deref())),
                })
                .collect();
            changed_members = changed
                .iter()
                .filter_map(|(key, _, membership)| Some((key.1.clone(), membership.as_ref()?.0.clone())))
                .collect();
            self.db.rejoin_room(rows, &resets, stream, join_row).await?;
        } else {
            rows.push((stream, join_row));
            self.db.persist_events(rows).await?;
        }

        // In-memory views start over from storage for this room.
        self.heads.forget_room(room_id);
        self.versions.lock().expect("versions lock").remove(room_id);
        self.refresh_history_settings(room_id).await;
        let target = join.sender().as_str();
        // Local users whose membership changed while this server was away.
        for (user, _) in changed_members.iter().filter(|(user, _)| server_of(user) == self.server_name) {
            if let Some(record) = self.db.membership(room_id, user).await? {
                self.memberships.apply(user, record);
            }
        }
        self.memberships.apply(
            target,
            MembershipRecord {
                room_id: room_id.to_owned(),
                membership: "join".into(),
                event_id: join.event_id().to_string(),
                stream,
            },
        );
        self.recent.committed(
            StoredEvent {
                stream,
                event_id: join.event_id().to_string(),
                room_id: room_id.to_owned(),
                sender: target.to_owned(),
                event_type: "m.room.member".into(),
                state_key: Some(target.to_owned()),
                json: join_prepared.json.clone(),
                redacted_because: None,
            },
            None,
            None,
            None,
        );
        slot.committed(&[Scope::Room(room_id), Scope::Keys(room_id), Scope::User(target)]);
        Ok(())
    }
}

impl Rooms {
    /// Invites a user of another server (spec: Server-Server API § Inviting to a room): the
    /// invite is built here, countersigned by the invitee's server (PUT /v2/invite, with the
    /// room's stripped state), and only then committed and sent to the room's other servers.
    pub(super) async fn invite_remote(&self, new: super::NewEvent<'_>) -> ApiResult<()> {
        let target = new.state_key.unwrap_or_default();
        let destination =
            ServerName::parse(server_of(target)).map_err(|_| ApiError::invalid_param("Invalid user id"))?;
        let built = {
            let _slot = self.streams.begin().await;
            self.build_local(&new).await?
        };
        let version = self.db.room_version(new.room_id).await?.ok_or_else(|| ApiError::not_found("Unknown room"))?;
        let invite_state = self.stripped_room_state(new.room_id).await?;
        let body = json!({"room_version": version, "event": built.pdu.json(), "invite_room_state": invite_state});
        let path = format!(
            "/_matrix/federation/v2/invite/{}/{}",
            query_value(new.room_id),
            query_value(built.pdu.event_id().as_str())
        );
        let answer = self
            .federation
            .send_json(&destination, Method::PUT, &path, &body)
            .await
            .map_err(FederationError::into_api_error)?;
        let signed = incoming::check_pdu(&self.remote_keys, answer["event"].clone(), &built.rules)
            .await
            .map_err(|reason| bad_gateway(format!("The invitee's server returned a bad invite: {reason}")))?;
        if signed.event_id() != built.pdu.event_id() {
            return Err(bad_gateway("The invitee's server changed the invite"));
        }
        self.append_checked(&signed, Relay::ToAll).await
    }
}

/// A membership event's membership and display name.
type MemberInfo = (String, Option<String>);

/// What storage needs of an event taken in with a remote room.
pub(super) struct Prepared {
    json: String,
    event_type: String,
    membership: Option<MemberInfo>,
}

impl Prepared {
    pub(super) fn of(pdu: &Pdu) -> ApiResult<Self> {
        let event_type = pdu.event_type_str();
        let membership = if event_type == "m.room.member" {
            let content: Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
            content["membership"].as_str().map(|m| (m.to_owned(), content["displayname"].as_str().map(str::to_owned)))
        } else {
            None
        };
        Ok(Self { json: serde_json::to_string(pdu.json()).map_err(ApiError::internal)?, event_type, membership })
    }

    pub(super) fn row<'a>(
        &'a self,
        pdu: &'a Pdu,
        room_id: &'a str,
        prev_events: &'a [String],
        new_room: Option<(&'a str, &'a str)>,
        kind: PersistKind,
    ) -> EventToPersist<'a> {
        EventToPersist {
            event_id: pdu.event_id().as_str(),
            room_id,
            sender: pdu.sender().as_str(),
            event_type: &self.event_type,
            state_key: pdu.state_key(),
            depth: pdu.depth() as i64,
            origin_server_ts: pdu.origin_server_ts() as i64,
            json: &self.json,
            prev_events,
            new_room,
            membership: match (&self.membership, pdu.state_key()) {
                (Some((membership, name)), Some(target)) => Some((target, membership.as_str(), name.as_deref())),
                _ => None,
            },
            search_text: None,
            relation: None,
            shared_push: None,
            push_actions: &[],
            redacts: None,
            transaction: None,
            media: &[],
            destinations: &[],
            kind,
        }
    }
}

/// An event's JSON as stored (what federation sends).
pub fn raw_json(event: &StoredEvent) -> Value {
    serde_json::from_str(&event.json).unwrap_or(Value::Null)
}

pub use super::references::cited;
