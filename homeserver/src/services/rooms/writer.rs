//! The single event writer. A local event is built on the room's forward extremities, cites
//! its auth events from current state, is hashed and signed, checked against the spec's
//! authorization rules, committed in one transaction at the next stream position, and only
//! then published to the notifier.

use std::{collections::HashMap, sync::Arc};

use hearth_federation::{AuthEvent, NewPdu, Pdu, event_auth, room_versions::rules_for};
use ruma::{EventId, OwnedEventId, RoomId, UserId};
use serde_json::Value;

use super::Rooms;
use crate::{
    error::{ApiError, ApiResult, ErrorKind},
    services::sync::notifier::Scope,
    storage::{
        now_ms,
        rooms::{EventToPersist, MembershipRecord, StoredEvent},
    },
};

/// What is committed with an event besides the event itself.
#[derive(Default)]
pub(super) struct Commit<'a> {
    /// For the create event: (room version, creator).
    pub new_room: Option<(&'a str, &'a str)>,
    /// (user, device, txn id) of a client send.
    pub transaction: Option<(&'a str, &'a str, &'a str)>,
    pub push: Option<&'a crate::services::push::evaluate::PushOutcome>,
    /// Remote servers the event goes to (outbox rows).
    pub destinations: &'a [String],
    /// Whether the event came from another server.
    pub remote: bool,
    /// Where branches meet: the state entries state resolution changed, applied instead of the
    /// event's own state.
    pub resolved: Option<&'a [crate::storage::rooms::StateReset<'a>]>,
    /// With `resolved`: the state the event was sent in, where it differs from the state just
    /// before its position.
    pub branch_state: &'a [crate::storage::branch_state::BranchEntry],
}

/// A local event built and authorized but not yet committed.
pub(super) struct Built {
    pub pdu: Pdu,
    pub rules: ruma::room_version_rules::RoomVersionRules,
    /// The current state entries the checks read.
    pub state_events: HashMap<(String, String), Arc<AuthEvent>>,
    pub prev_events: Vec<String>,
}

/// A local event to append to a room.
pub struct NewEvent<'a> {
    pub room_id: &'a str,
    pub sender: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub content: Value,
    /// (device, txn id) for PUT /send idempotency.
    pub transaction: Option<(&'a str, &'a str)>,
}

impl Rooms {
    /// Appends an event; returns its event id. A repeated (device, txn id) for the same room and
    /// event type returns the event the first request created.
    pub async fn append(&self, new: NewEvent<'_>) -> ApiResult<String> {
        let (sender, transaction, room_id, event_type) = (new.sender, new.transaction, new.room_id, new.event_type);
        let redacts = new.content["redacts"].as_str().map(str::to_owned);
        match self.append_new(new).await {
            Ok(event_id) => Ok(event_id),
            // A repeated transaction fails somewhere (at the latest on the transaction id's
            // primary key, in the same database transaction as the event), and only then is
            // the earlier event looked up: new sends, nearly all of them, never ask.
            Err(error) => match transaction {
                Some((device, txn)) => {
                    match self
                        .db
                        .transaction_event((sender, device, txn), (room_id, event_type, redacts.as_deref()))
                        .await?
                    {
                        Some(existing) => Ok(existing),
                        None => Err(error),
                    }
                }
                None => Err(error),
            },
        }
    }

    /// Builds, signs and authorizes a local event on the room's current head, without
    /// committing it (call holding the stream).
    pub(super) async fn build_local(&self, new: &NewEvent<'_>) -> ApiResult<Built> {
        let rules = self.rules(new.room_id).await?;
        let room_id = RoomId::parse(new.room_id).map_err(|_| ApiError::invalid_param("Invalid room id"))?;
        let sender = UserId::parse(new.sender).map_err(ApiError::internal)?;
        let Value::Object(mut content) = new.content.clone() else {
            return Err(ApiError::bad_json("Event content must be a JSON object"));
        };
        let raw_content = serde_json::value::to_raw_value(&content).map_err(ApiError::internal)?;

        let auth_types = event_auth::auth_types_for_event(
            new.event_type,
            &sender,
            new.state_key,
            &raw_content,
            &rules.authorization,
        )
        .map_err(|reason| ApiError::bad_json(format!("Invalid event: {reason}")))?;
        // Only the state entries the checks need (a handful), not the whole room state: a
        // message in a room of 10,000 members reads five rows, not ten thousand.
        let create_key = ("m.room.create".to_owned(), String::new());
        let mut keys = auth_types.clone();
        if !keys.contains(&create_key) {
            keys.push(create_key.clone());
        }
        let current = self.head_state(new.room_id, &rules, &keys).await?;
        let auth_event_ids: Vec<String> =
            auth_types.iter().filter_map(|key| current.get(key).map(|pdu| pdu.event_id().to_string())).collect();
        let mut auth_events: HashMap<OwnedEventId, Arc<AuthEvent>> = HashMap::new();
        let mut state_events: HashMap<(String, String), Arc<AuthEvent>> = HashMap::new();
        for (key, pdu) in current {
            // v12 rooms find their create event by id (the room id is its hash), so it is always
            // available to the checks even though it is not cited.
            if auth_event_ids.iter().any(|id| id == pdu.event_id().as_str()) || key == create_key {
                auth_events.insert(pdu.event_id().to_owned(), pdu.clone());
            }
            state_events.insert(key, pdu);
        }

        let (prev_events, max_depth) = self.head_extremities(new.room_id).await?;
        let redacts = if new.event_type == "m.room.redaction" {
            let redacts = content.get("redacts").and_then(Value::as_str).and_then(|id| EventId::parse(id).ok());
            if !rules.redaction.content_field_redacts {
                content.remove("redacts");
            }
            redacts
        } else {
            None
        };
        let canonical_content = match hearth_federation::to_canonical_object(Value::Object(content)) {
            Ok(object) => object,
            Err(error) => return Err(ApiError::bad_json(format!("Event content is not canonical JSON: {error}"))),
        };
        // Only room versions 1 and 2 cite events with their hashes (read from storage).
        let cited_hashes = if super::references::cites_with_hashes(&rules) {
            self.cited_hashes(&rules, &[prev_events.as_slice(), &auth_event_ids].concat()).await?
        } else {
            HashMap::new()
        };
        let pdu = Pdu::build_and_sign(
            NewPdu {
                room_id: Some(&room_id),
                sender: &sender,
                event_type: new.event_type,
                state_key: new.state_key,
                content: canonical_content,
                prev_events: prev_events.iter().filter_map(|id| EventId::parse(id.as_str()).ok()).collect(),
                auth_events: auth_event_ids.iter().filter_map(|id| EventId::parse(id.as_str()).ok()).collect(),
                depth: (max_depth + 1) as u64,
                origin_server_ts: now_ms() as u64,
                redacts: redacts.as_deref(),
                cited_hashes: &cited_hashes,
            },
            &rules,
            &self.server_name,
            &self.signing_key,
        )
        .map_err(|error| ApiError::bad_json(error.to_string()))?;
        event_auth::check_event(&rules.authorization, &pdu, &auth_events, &state_events)
            .map_err(|reason| ApiError::forbidden(format!("Not allowed: {reason}")))?;
        Ok(Built { pdu, rules, state_events, prev_events })
    }

    async fn append_new(&self, new: NewEvent<'_>) -> ApiResult<String> {
        let slot = self.streams.begin().await;
        let Built { pdu, rules, state_events, prev_events } = self.build_local(&new).await?;
        let push_actions = self.push_actions(new.room_id, &pdu, &state_events, &rules).await?;
        let destinations = self.destinations(new.room_id, &pdu).await?;
        let stream = slot.position();
        self.persist(
            &pdu,
            new.room_id,
            &prev_events,
            Commit {
                transaction: new.transaction.map(|(d, t)| (new.sender, d, t)),
                push: Some(&push_actions),
                destinations: &destinations,
                ..Commit::default()
            },
            stream,
        )
        .await?;
        self.federation_sender.wake(&destinations);
        if new.event_type == "m.room.history_visibility" {
            self.refresh_history_settings(new.room_id).await;
        }
        // A membership change also concerns its target, who may not be in the room yet.
        match (new.event_type, new.state_key) {
            // A membership change also tells the room's members to re-check device lists.
            ("m.room.member", Some(target)) => {
                slot.committed(&[Scope::Room(new.room_id), Scope::Keys(new.room_id), Scope::User(target)])
            }
            _ => slot.committed(&[Scope::Room(new.room_id)]),
        };
        Ok(pdu.event_id().to_string())
    }

    /// Reloads a room's history visibility changes after a commit that changed them.
    pub(super) async fn refresh_history_settings(&self, room_id: &str) {
        // Set from storage after the commit, so a reader that loaded the list before this
        // commit cannot leave it stale (readers only fill an empty entry).
        // Nothing after the commit may fail the request: on a read error the entry is dropped
        // and the next reader loads it.
        let settings = self.load_history_settings(room_id).await;
        let mut cache = self.history_settings.lock().expect("history lock");
        match settings {
            Ok(settings) => cache.insert(room_id.to_owned(), settings),
            Err(_) => cache.remove(room_id),
        };
    }

    /// Creates a room from its signed create event (the first event, which has no prev or auth
    /// events). Returns the room id.
    pub(super) async fn append_create(
        &self,
        creator: &UserId,
        version: &str,
        mut content: serde_json::Map<String, Value>,
    ) -> ApiResult<String> {
        let rules = rules_for(version).ok_or_else(|| ApiError::internal("unsupported room version"))?;
        content.insert("room_version".into(), version.into());
        // Before v11 the create event names its creator in the content.
        if !rules.authorization.use_room_create_sender {
            content.insert("creator".into(), creator.to_string().into());
        }
        let content = hearth_federation::to_canonical_object(Value::Object(content))
            .map_err(|error| ApiError::bad_json(format!("creation_content: {error}")))?;
        // v12: the room id is the create event's hash; earlier versions name it up front.
        let named_room = (!rules.authorization.room_create_event_id_as_room_id)
            .then(|| RoomId::parse(format!("!{}:{}", crate::services::tokens::generate_session_id(), self.server_name)))
            .transpose()
            .map_err(ApiError::internal)?;
        let slot = self.streams.begin().await;
        let pdu = Pdu::build_and_sign(
            NewPdu {
                room_id: named_room.as_deref(),
                sender: creator,
                event_type: "m.room.create",
                state_key: Some(""),
                content,
                prev_events: Vec::new(),
                auth_events: Vec::new(),
                depth: 1,
                origin_server_ts: now_ms() as u64,
                redacts: None,
                cited_hashes: &HashMap::new(),
            },
            &rules,
            &self.server_name,
            &self.signing_key,
        )
        .map_err(|error| ApiError::bad_json(error.to_string()))?;
        event_auth::check_event::<Pdu, Pdu>(&rules.authorization, &pdu, &HashMap::new(), &HashMap::new())
            .map_err(|reason| ApiError::bad_json(format!("Invalid create event: {reason}")))?;
        let room_id =
            pdu.room_id_or_derived().ok_or_else(|| ApiError::internal("create event without a room id"))?.to_string();
        let stream = slot.position();
        let commit = Commit { new_room: Some((version, creator.as_str())), ..Commit::default() };
        self.persist(&pdu, &room_id, &[], commit, stream).await?;
        slot.committed(&[Scope::Room(&room_id)]);
        Ok(room_id)
    }

    /// Commits one event (holding the stream) and brings the in-memory views up to date.
    pub(super) async fn persist(
        &self,
        pdu: &Pdu,
        room_id: &str,
        prev_events: &[String],
        commit: Commit<'_>,
        stream: i64,
    ) -> ApiResult<()> {
        let Commit { new_room, transaction, push, destinations, remote, resolved, branch_state } = commit;
        let no_push = crate::services::push::evaluate::PushOutcome::default();
        let push = push.unwrap_or(&no_push);
        let mut json = serde_json::to_string(pdu.json()).map_err(ApiError::internal)?;
        // The serialiser grew the text by doubling; the recent-events cache keeps it for seconds,
        // at its length.
        json.shrink_to_fit();
        let event_type = pdu.event_type_str();
        let member_content: Value = if event_type == "m.room.member" {
            serde_json::from_str(pdu.content_json().get()).unwrap_or_default()
        } else {
            Value::Null
        };
        let membership = member_content.get("membership").and_then(Value::as_str).map(str::to_owned);
        let displayname = member_content.get("displayname").and_then(Value::as_str);
        let redacts = if event_type == "m.room.redaction" { pdu.redacts().map(|id| id.to_string()) } else { None };
        let content: Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        let search_text = crate::storage::search::SEARCH_KEYS
            .iter()
            .find(|(kind, _)| *kind == event_type)
            .and_then(|(_, key)| content[key.trim_start_matches("content.")].as_str().map(|text| (*key, text)));
        let media = crate::services::media::refs::references(&content);
        let relates_to = &content["m.relates_to"];
        let relation = match (relates_to["event_id"].as_str(), relates_to["rel_type"].as_str()) {
            (Some(parent), Some(rel_type)) if pdu.state_key().is_none() => {
                Some((parent, rel_type, relates_to["key"].as_str()))
            }
            _ => None,
        };
        let kind = if resolved.is_some() {
            crate::storage::rooms::PersistKind::TimelineResolved
        } else {
            crate::storage::rooms::PersistKind::Timeline
        };
        let row = EventToPersist {
            event_id: pdu.event_id().as_str(),
            room_id,
            sender: pdu.sender().as_str(),
            event_type: &event_type,
            state_key: pdu.state_key(),
            depth: pdu.depth() as i64,
            origin_server_ts: pdu.origin_server_ts() as i64,
            json: &json,
            prev_events,
            new_room,
            membership: match (&membership, pdu.state_key()) {
                (Some(membership), Some(target)) => Some((target, membership.as_str(), displayname)),
                _ => None,
            },
            shared_push: push.shared.as_ref(),
            push_actions: &push.differing,
            redacts: redacts.as_deref(),
            relation,
            search_text,
            transaction,
            media: &media,
            destinations,
            kind,
        };
        let written = match resolved {
            Some(resets) => self.db.persist_resolved(stream, row, resets, branch_state).await,
            None => self.db.persist_event(stream, row).await,
        };
        written.map_err(|error| {
            if crate::storage::Backend::is_unique_violation(&error) {
                // A repeated transaction id: `append` answers with the earlier event.
                ApiError::new(ErrorKind::Unknown, "The event conflicts with one already stored")
            } else {
                error.into()
            }
        })?;
        // Still holding the stream: in-memory views follow the commit before it is published.
        if resolved.is_some() {
            // The state moved by resolution: the in-memory head reloads from storage.
            self.heads.forget_room(room_id);
        } else {
            self.heads.advance(room_id, pdu);
        }
        if remote {
            // A remote event need not cite every extremity: storage has the true set.
            self.heads.forget_extremities(room_id);
        }
        if let Some(redacted) = &redacts {
            self.heads.redacted(room_id, redacted);
        }
        if (push.shared.is_some() || !push.differing.is_empty())
            && let Some(members) = self.heads.members(room_id)
        {
            self.unread.add(room_id, pdu.sender().as_str(), &members, push);
        }
        self.recent.committed(
            StoredEvent {
                stream,
                event_id: pdu.event_id().to_string(),
                room_id: room_id.to_owned(),
                sender: pdu.sender().to_string(),
                event_type: event_type.to_string(),
                state_key: pdu.state_key().map(str::to_owned),
                json,
                redacted_because: None,
            },
            relation.map(|(parent, _, _)| parent),
            redacts.as_deref(),
            transaction.map(|(_, device, txn)| (device, txn)),
        );
        if let Some(resets) = resolved {
            for reset in resets.iter().filter(|reset| reset.membership.is_some()) {
                let record = MembershipRecord {
                    room_id: room_id.to_owned(),
                    membership: reset.membership.map(|(m, _)| m.to_owned()).unwrap_or_default(),
                    event_id: reset.event_id.to_owned(),
                    stream,
                };
                self.memberships.apply(reset.state_key, record);
            }
        } else if let (Some(membership), Some(target)) = (membership, pdu.state_key()) {
            let record = MembershipRecord {
                room_id: room_id.to_owned(),
                membership,
                event_id: pdu.event_id().to_string(),
                stream,
            };
            self.memberships.apply(target, record);
        }
        Ok(())
    }
}
