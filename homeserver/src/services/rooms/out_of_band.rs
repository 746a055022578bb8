//! Memberships in rooms this server is not in — "out of band" (spec: Server-Server API
//! § Inviting to a room, § Leaving rooms (rejecting invites), § Knocking upon a room): an invite
//! from another server, countersigned and kept with the room's stripped state; a knock on a
//! room elsewhere (make_knock/send_knock); and the leave that rejects such an invite or
//! withdraws such a knock (make_leave/send_leave through a server in the room, or, when none
//! answers, a leave signed here alone so the user is rid of the invite either way). A leave
//! the room's server sends for one of them (an invite withdrawn, a knock refused) is taken in
//! too.
//!
//! None of these rooms' timelines is held: the user's membership, the event and the stripped
//! state are kept (`storage::remote_invites`), which is what /sync shows for them.

use std::collections::HashSet;

use hearth_federation::{Pdu, room_versions::rules_for};
use reqwest::Method;
use ruma::{
    CanonicalJsonObject, EventId, OwnedServerName, RoomId, ServerName, UserId, room_version_rules::RoomVersionRules,
};
use serde_json::{Value, json};

use super::{Rooms, federated::bad_gateway, format::FormatContext};
use crate::{
    error::{ApiError, ApiResult, ErrorKind},
    services::{
        federation::{FederationError, incoming, query_value},
        sync::notifier::Scope,
        usernames::server_of,
    },
    storage::{
        now_ms,
        remote_invites::OutOfBandMembership,
        rooms::{MembershipRecord, StoredEvent},
    },
};

/// A make_join/make_leave/make_knock template filled in and signed by this server.
pub(super) struct SignedMembership {
    pub version: String,
    pub rules: RoomVersionRules,
    pub object: CanonicalJsonObject,
    pub event_id: String,
}

/// The path of a make_join, make_leave or make_knock for `user_id` (the joins and knocks
/// naming every room version this server supports).
pub(super) fn make_path(membership: &str, room_id: &str, user_id: &str) -> String {
    let mut path =
        format!("/_matrix/federation/v1/make_{membership}/{}/{}", query_value(room_id), query_value(user_id));
    if membership != "leave" {
        let versions: Vec<String> = hearth_federation::room_versions::SUPPORTED_ROOM_VERSIONS
            .iter()
            .map(|version| format!("ver={version}"))
            .collect();
        path = format!("{path}?{}", versions.join("&"));
    }
    path
}

impl Rooms {
    /// The servers to ask about a room this server is not in: `via` first, then the room id's
    /// server (rooms before v12 name one); never this server, each once.
    pub(super) fn candidate_servers(&self, room_id: &str, via: &[String]) -> Vec<OwnedServerName> {
        let mut names: Vec<String> = via.to_vec();
        if let Ok(room) = RoomId::parse(room_id)
            && let Some(server) = room.server_name()
        {
            names.push(server.to_string());
        }
        let mut seen = HashSet::new();
        names
            .into_iter()
            .filter(|server| *server != self.server_name && seen.insert(server.clone()))
            .filter_map(|server| ServerName::parse(server.as_str()).ok())
            .collect()
    }

    /// Fills in a make_* answer: checks it is `membership` of `user` in `room_id`, gives it
    /// `content` and a fresh timestamp, and hashes and signs it here.
    pub(super) fn sign_membership(
        &self,
        made: &Value,
        user: &UserId,
        room_id: &str,
        membership: &str,
        content: Value,
    ) -> ApiResult<SignedMembership> {
        let version = made["room_version"].as_str().unwrap_or("1").to_owned();
        let rules = rules_for(&version).ok_or_else(|| {
            ApiError::new(ErrorKind::UnsupportedRoomVersion, format!("Room version {version} is not supported"))
        })?;
        let mut template = made["event"].clone();
        if template["sender"] != user.as_str()
            || template["state_key"] != user.as_str()
            || template["type"] != "m.room.member"
            || template["room_id"] != room_id
        {
            return Err(bad_gateway(format!("The room's server offered a different {membership} event")));
        }
        let Value::Object(fields) = &mut template else {
            return Err(bad_gateway(format!("The room's server sent no {membership} event")));
        };
        for unsigned in ["event_id", "hashes", "signatures", "unsigned"] {
            fields.remove(unsigned);
        }
        fields.insert("origin_server_ts".into(), now_ms().into());
        fields.insert("content".into(), content);
        // Room versions 1 and 2: the event's id is ours to give, and is signed with it.
        if rules.event_id_format == ruma::room_version_rules::EventIdFormatVersion::V1 {
            fields.insert("event_id".into(), hearth_federation::new_server_event_id(&self.server_name).into());
        }
        let mut object = hearth_federation::to_canonical_object(template).map_err(|e| bad_gateway(e.to_string()))?;
        self.signing_key.hash_and_sign_event(&self.server_name, &mut object, &rules).map_err(ApiError::internal)?;
        let event_id = hearth_federation::event_id_of(&object, &rules).map_err(ApiError::internal)?;
        Ok(SignedMembership { version, rules, object, event_id: event_id.to_string() })
    }

    /// Asks `server` for a `membership` template, signs it with `content` and sends it back
    /// (send_leave v2, send_knock v1); the answer and the signed event.
    async fn make_and_send(
        &self,
        server: &ServerName,
        user: &UserId,
        room_id: &str,
        membership: &str,
        content: Value,
    ) -> ApiResult<(Value, SignedMembership)> {
        let made = self
            .federation
            .get(server, &make_path(membership, room_id, user.as_str()))
            .await
            .map_err(FederationError::into_api_error)?;
        let signed = self.sign_membership(&made, user, room_id, membership, content)?;
        let send_version = if membership == "knock" { "v1" } else { "v2" };
        let path = format!(
            "/_matrix/federation/{send_version}/send_{membership}/{}/{}",
            query_value(room_id),
            query_value(&signed.event_id)
        );
        let body = serde_json::to_value(&signed.object).map_err(ApiError::internal)?;
        let answer = self
            .federation
            .send_json(server, Method::PUT, &path, &body)
            .await
            .map_err(FederationError::into_api_error)?;
        Ok((answer, signed))
    }

    /// POST /knock on a room this server is not in: make_knock and send_knock through one of
    /// `via` (or the room id's server); the knock is kept with the stripped state the room's
    /// server answered, which the user sees in /sync until they are let in or refused.
    pub(super) async fn knock_remote(
        &self,
        user_id: &str,
        room_id: &str,
        via: &[String],
        reason: Option<&str>,
    ) -> ApiResult<String> {
        let user = UserId::parse(user_id).map_err(ApiError::internal)?;
        let candidates = self.candidate_servers(room_id, via);
        if candidates.is_empty() {
            return Err(ApiError::not_found("Unknown room; name a server to knock through (via)"));
        }
        let mut content = self.member_content(user_id, "knock").await?;
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        let mut last_error = bad_gateway("No server could be asked");
        for server in &candidates {
            match self.make_and_send(server, &user, room_id, "knock", content.clone()).await {
                Ok((answer, signed)) => {
                    let state = answer.get("knock_room_state").or_else(|| answer.get("knock_state_events"));
                    let state = state.and_then(Value::as_array).cloned().unwrap_or_default();
                    self.keep_out_of_band(signed, "knock", Some(&state)).await?;
                    return Ok(room_id.to_owned());
                }
                Err(error) => {
                    tracing::info!(?error, room_id, server = %server, "knocking failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// POST /leave on a room this server is not in: rejects the user's invite or withdraws
    /// their knock through a server in the room (the inviter's, those that sent the stripped
    /// state, the room id's); when none will, a leave signed here alone still ends the
    /// membership on this server.
    pub(super) async fn leave_out_of_band(&self, user_id: &str, room_id: &str, reason: Option<&str>) -> ApiResult<()> {
        let Some(record) = self.db.membership(room_id, user_id).await? else {
            return Err(ApiError::forbidden("You are not in this room"));
        };
        if !matches!(record.membership.as_str(), "invite" | "knock") {
            return Err(ApiError::forbidden("You are not in this room"));
        }
        let user = UserId::parse(user_id).map_err(ApiError::internal)?;
        let mut content = json!({"membership": "leave"});
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        let candidates = self.candidate_servers(room_id, &self.out_of_band_servers(room_id, user_id).await?);
        for server in &candidates {
            match self.make_and_send(server, &user, room_id, "leave", content.clone()).await {
                Ok((_, signed)) => return self.keep_out_of_band(signed, "leave", None).await,
                Err(error) => tracing::info!(?error, room_id, server = %server, "make_leave/send_leave failed"),
            }
        }
        let signed = self.leave_signed_here(&user, room_id, &record.event_id, content).await?;
        self.keep_out_of_band(signed, "leave", None).await
    }

    /// Whether the user's membership of the room is out of band: the room is unknown here, or
    /// their current membership is the invite or knock kept for a room this server is not in.
    pub(super) async fn is_out_of_band(&self, room_id: &str, user_id: &str) -> ApiResult<bool> {
        if self.db.room_version(room_id).await?.is_none() {
            return Ok(true);
        }
        let Some(current) = self.db.membership(room_id, user_id).await? else {
            return Ok(false);
        };
        let kept = self.db.remote_invite(room_id, user_id).await?;
        Ok(kept.is_some_and(|(_, event_id)| event_id == current.event_id) && !self.server_in_room(room_id).await?)
    }

    /// The servers known to be in a room this server is not in: the sender of the user's
    /// invite, and the senders of the stripped state it (or a knock) brought.
    async fn out_of_band_servers(&self, room_id: &str, user_id: &str) -> ApiResult<Vec<String>> {
        let Some((state, event_id)) = self.db.remote_invite(room_id, user_id).await? else {
            return Ok(Vec::new());
        };
        let mut servers = Vec::new();
        if let Some(event) = self.db.event(&event_id).await? {
            servers.push(server_of(&event.sender).to_owned());
        }
        let state: Vec<Value> = serde_json::from_str(&state).unwrap_or_default();
        servers.extend(state.iter().filter_map(|event| event["sender"].as_str()).map(|s| server_of(s).to_owned()));
        Ok(servers)
    }

    /// A leave built and signed here alone, on top of the invite or knock it ends (what the
    /// room's servers never see; it only ends the membership on this server).
    async fn leave_signed_here(
        &self,
        user: &UserId,
        room_id: &str,
        membership_event_id: &str,
        content: Value,
    ) -> ApiResult<SignedMembership> {
        let version = self
            .db
            .out_of_band_room_version(room_id, user.as_str())
            .await?
            .ok_or_else(|| ApiError::forbidden("You are not in this room"))?;
        let depth = self.db.event(membership_event_id).await?.map_or(0, |event| {
            serde_json::from_str::<Value>(&event.json).ok().and_then(|json| json["depth"].as_i64()).unwrap_or(0)
        });
        let cited = match rules_for(&version) {
            Some(rules) => self.references_json(&rules, &[membership_event_id.to_owned()]).await?,
            None => json!([membership_event_id]),
        };
        let made = json!({
            "room_version": version,
            "event": {
                "room_id": room_id,
                "sender": user.as_str(),
                "type": "m.room.member",
                "state_key": user.as_str(),
                "prev_events": cited,
                "auth_events": cited,
                "depth": depth + 1,
            },
        });
        self.sign_membership(&made, user, room_id, "leave", content)
    }

    /// Keeps an out-of-band membership event (and the stripped state an invite or knock
    /// brought) at the next stream position, and tells the user's syncs.
    async fn keep_out_of_band(
        &self,
        signed: SignedMembership,
        membership: &str,
        stripped_state: Option<&[Value]>,
    ) -> ApiResult<()> {
        let event_id = EventId::parse(&signed.event_id).map_err(ApiError::internal)?;
        let pdu = Pdu::from_signed(event_id, signed.object, &signed.rules).map_err(ApiError::internal)?;
        self.keep_out_of_band_pdu(&pdu, &signed.version, membership, stripped_state).await
    }

    async fn keep_out_of_band_pdu(
        &self,
        pdu: &Pdu,
        version: &str,
        membership: &str,
        stripped_state: Option<&[Value]>,
    ) -> ApiResult<()> {
        let room_id = pdu.room_id_or_derived().ok_or_else(|| ApiError::bad_json("The event has no room"))?;
        let target = pdu.state_key().unwrap_or_default().to_owned();
        let json = serde_json::to_string(pdu.json()).map_err(ApiError::internal)?;
        let stripped_state = stripped_state.map(serde_json::to_string).transpose().map_err(ApiError::internal)?;
        let slot = self.streams.begin().await;
        let stream = slot.position();
        self.db
            .store_out_of_band(
                stream,
                OutOfBandMembership {
                    membership,
                    room_id: room_id.as_str(),
                    user_id: &target,
                    event_id: pdu.event_id().as_str(),
                    sender: pdu.sender().as_str(),
                    room_version: version,
                    origin_server_ts: pdu.origin_server_ts() as i64,
                    depth: pdu.depth() as i64,
                    json: &json,
                    invite_state: stripped_state.as_deref(),
                },
            )
            .await?;
        let record = MembershipRecord {
            room_id: room_id.to_string(),
            membership: membership.into(),
            event_id: pdu.event_id().to_string(),
            stream,
        };
        self.memberships.apply(&target, record);
        slot.committed(&[Scope::User(&target)]);
        Ok(())
    }

    /// An out-of-band membership event of `user_id` in client format (its room's version is
    /// the one the invite or knock named).
    pub async fn format_out_of_band(&self, user_id: &str, event: &StoredEvent) -> ApiResult<Value> {
        let version = self.db.out_of_band_room_version(&event.room_id, user_id).await?;
        let rules = version
            .as_deref()
            .and_then(rules_for)
            .ok_or_else(|| ApiError::internal(format_args!("no room version for {}", event.room_id)))?;
        let context = FormatContext { omit_room_id: true, ..FormatContext::default() };
        Ok(super::format::client_event(event, &rules, &context))
    }

    /// A PDU another server sent for a room this server is not in. Only a leave ending a local
    /// user's invite or knock (the invite withdrawn, the knock refused) is taken in; it is
    /// checked for its sender's signature and for coming from the sender's server, and an invite
    /// can only be withdrawn by the server that sent it (this server cannot check anyone
    /// else's power in a room it is not in).
    pub async fn receive_out_of_band(&self, origin: &str, room_id: &str, event: Value) -> Result<String, String> {
        const NOT_IN_ROOM: &str = "this server is not in that room";
        let target = event["state_key"].as_str().unwrap_or_default().to_owned();
        if event["type"] != "m.room.member" || server_of(&target) != self.server_name {
            return Err(NOT_IN_ROOM.into());
        }
        let Some(current) = self.db.membership(room_id, &target).await.ok().flatten() else {
            return Err(NOT_IN_ROOM.into());
        };
        match current.membership.as_str() {
            "knock" => {}
            "invite" => {
                let invite = self.db.event(&current.event_id).await.ok().flatten();
                if invite.is_none_or(|invite| server_of(&invite.sender) != origin) {
                    return Err("only the inviting server may withdraw an invite".into());
                }
            }
            _ => return Err(NOT_IN_ROOM.into()),
        }
        let version = self.db.out_of_band_room_version(room_id, &target).await.ok().flatten();
        let rules = version.as_deref().and_then(rules_for).ok_or(NOT_IN_ROOM)?;
        let pdu = incoming::check_pdu(&self.remote_keys, event, &rules).await?;
        let content: Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        if content["membership"] != "leave" || pdu.sender().server_name().as_str() != origin {
            return Err(NOT_IN_ROOM.into());
        }
        if pdu.room_id_or_derived().as_deref().map(RoomId::as_str) != Some(room_id) {
            return Err("the event is for another room".into());
        }
        let version = version.unwrap_or_default();
        self.keep_out_of_band_pdu(&pdu, &version, "leave", None).await.map_err(|error| error.message)?;
        Ok(pdu.event_id().to_string())
    }

    /// PUT /v2/invite as the invited user's server: checks the invite, countersigns it, and
    /// (for a room this server is not in) keeps it with the room's stripped state so the user
    /// sees the invite in /sync and can join through the inviting server.
    pub async fn receive_invite(&self, origin: &str, room_id: &str, event_id: &str, body: Value) -> ApiResult<Value> {
        let version = body["room_version"].as_str().unwrap_or("1").to_owned();
        let rules = rules_for(&version).ok_or_else(|| {
            ApiError::new(
                ErrorKind::IncompatibleRoomVersion { room_version: version.clone() },
                "This server does not support the room's version",
            )
        })?;
        let pdu =
            incoming::check_pdu(&self.remote_keys, body["event"].clone(), &rules).await.map_err(ApiError::bad_json)?;
        let content: Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        let target = pdu.state_key().unwrap_or_default().to_owned();
        if pdu.event_id().as_str() != event_id
            || pdu.event_type_str() != "m.room.member"
            || content["membership"] != "invite"
            || pdu.room_id_or_derived().as_deref().map(RoomId::as_str) != Some(room_id)
        {
            return Err(ApiError::bad_json("Not an invite into this room"));
        }
        if pdu.sender().server_name().as_str() != origin {
            return Err(ApiError::forbidden("The invite is not from a user of the sending server"));
        }
        if server_of(&target) != self.server_name || !self.db.user_exists(&target).await? {
            return Err(ApiError::not_found("No such user on this server"));
        }
        let mut object = pdu.json().clone();
        self.signing_key.hash_and_sign_event(&self.server_name, &mut object, &rules).map_err(ApiError::internal)?;
        let signed = Pdu::from_signed(pdu.event_id().to_owned(), object, &rules).map_err(ApiError::internal)?;
        if self.server_in_room(room_id).await? {
            // A room this server is in: the invite is an ordinary event of it.
            if let Err(error) = self.append_remote(&signed).await {
                tracing::info!(?error, room_id, "an invite into a known room was not taken in");
            }
        } else {
            let stripped_state = body["invite_room_state"].as_array().map(Vec::as_slice).unwrap_or_default();
            self.keep_out_of_band_pdu(&signed, &version, "invite", Some(stripped_state)).await?;
        }
        Ok(json!({"event": signed.json()}))
    }

    /// The server that invited `user_id` into a room this server is not in, if any.
    pub(super) async fn remote_inviter_server(&self, room_id: &str, user_id: &str) -> ApiResult<Option<String>> {
        let Some((_, event_id)) = self.db.remote_invite(room_id, user_id).await? else {
            return Ok(None);
        };
        Ok(self.db.event(&event_id).await?.map(|event| server_of(&event.sender).to_owned()))
    }
}
