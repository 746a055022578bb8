//! Membership changes (spec: Client-Server API § Room membership): join, invite, leave, kick,
//! ban, unban, forget. Every change is an m.room.member event through the event writer, so the
//! authorization rules decide who may do what.

use serde_json::{Value, json};

use super::{NewEvent, Rooms};
use crate::{
    error::{ApiError, ApiResult},
    services::usernames::server_of,
};

impl Rooms {
    /// Appends an m.room.member event for `target`; the auth rules decide whether `sender` may.
    pub(super) async fn append_member(
        &self,
        sender: &str,
        room_id: &str,
        target: &str,
        content: Value,
    ) -> ApiResult<String> {
        self.append(NewEvent {
            room_id,
            sender,
            event_type: "m.room.member",
            state_key: Some(target),
            content,
            transaction: None,
        })
        .await
    }

    /// The content of a member event for `user`: the membership plus their current profile.
    pub(super) async fn member_content(&self, user_id: &str, membership: &str) -> ApiResult<Value> {
        let mut content = json!({"membership": membership});
        if let Some(user) = self.db.user(user_id).await? {
            if let Some(name) = user.displayname {
                content["displayname"] = name.into();
            }
            if let Some(avatar) = user.avatar_url {
                content["avatar_url"] = avatar.into();
            }
        }
        Ok(content)
    }

    /// After a profile change, the user's member event in every room they are joined to carries
    /// the new display name and avatar (what clients show next to their messages). A room that
    /// refuses (the user lost the right to change their member event) is skipped.
    pub async fn refresh_profile(&self, user_id: &str) -> ApiResult<()> {
        let joined = self.joined_room_ids(user_id).await?;
        for room_id in joined {
            let content = self.member_content(user_id, "join").await?;
            if let Err(error) = self.append_member(user_id, &room_id, user_id, content).await {
                tracing::warn!(%room_id, ?error, "could not update a member event after a profile change");
            }
        }
        Ok(())
    }

    /// Resolves a room id or `#alias:server` to a room this server knows.
    pub async fn resolve_room(&self, room_id_or_alias: &str) -> ApiResult<String> {
        if room_id_or_alias.starts_with('#') {
            return self
                .db
                .alias_room(room_id_or_alias)
                .await?
                .ok_or_else(|| ApiError::not_found("Room alias not found"));
        }
        if ruma::RoomId::parse(room_id_or_alias).is_err() {
            return Err(ApiError::invalid_param("Invalid room id or alias"));
        }
        if self.db.room_version(room_id_or_alias).await?.is_none() {
            // Joining rooms on other servers arrives with federation.
            return Err(ApiError::not_found("Unknown room"));
        }
        Ok(room_id_or_alias.to_owned())
    }

    /// Where a join or knock on `room_id_or_alias` goes: the room id, and the servers to go
    /// through when this server is not in the room — `via`, the alias's servers, a remote
    /// inviter's, and for a room this server left the servers its members were on. None: here
    /// (this server is in the room, or it is a room only this server ever held).
    async fn route_membership(
        &self,
        user_id: &str,
        room_id_or_alias: &str,
        via: &[String],
    ) -> ApiResult<(String, Option<Vec<String>>)> {
        let (room_id, mut servers) = if room_id_or_alias.starts_with('#') {
            self.resolve_alias(room_id_or_alias).await?
        } else {
            ruma::RoomId::parse(room_id_or_alias).map_err(|_| ApiError::invalid_param("Invalid room id or alias"))?;
            (room_id_or_alias.to_owned(), Vec::new())
        };
        if self.server_in_room(&room_id).await? {
            return Ok((room_id, None));
        }
        let known = self.db.room_version(&room_id).await?.is_some();
        servers.splice(0..0, via.iter().cloned());
        servers.extend(self.remote_inviter_server(&room_id, user_id).await?);
        if known {
            servers.extend(self.db.room_members(&room_id, "join").await?.iter().map(|u| server_of(u).to_owned()));
        }
        if known && self.candidate_servers(&room_id, &servers).is_empty() {
            return Ok((room_id, None));
        }
        Ok((room_id, Some(servers)))
    }

    /// Joins a room: locally when this server is in it, otherwise through another server —
    /// one of `via`, the alias's servers or the room id's server (see `federated.rs`).
    pub async fn join(
        &self,
        user_id: &str,
        room_id_or_alias: &str,
        is_guest: bool,
        via: &[String],
    ) -> ApiResult<String> {
        let (room_id, through) = self.route_membership(user_id, room_id_or_alias, via).await?;
        if let Some(servers) = through {
            if is_guest {
                return Err(ApiError::forbidden("Guests cannot join rooms on other servers"));
            }
            return self.join_remote(user_id, &room_id, &servers).await;
        }
        if self.db.membership(&room_id, user_id).await?.is_some_and(|m| m.membership == "join") {
            return Ok(room_id);
        }
        if is_guest {
            self.check_guest_may_join(&room_id).await?;
        }
        let content = self.member_content(user_id, "join").await?;
        self.append_member(user_id, &room_id, user_id, content).await?;
        Ok(room_id)
    }

    /// POST /knock/{roomIdOrAlias}: ask to join a room whose join rule is `knock` — through
    /// another server (one of `via` or the alias's servers) when this one is not in the room.
    pub async fn knock(
        &self,
        user_id: &str,
        room_id_or_alias: &str,
        via: &[String],
        reason: Option<&str>,
    ) -> ApiResult<String> {
        let (room_id, through) = self.route_membership(user_id, room_id_or_alias, via).await?;
        if let Some(servers) = through {
            return self.knock_remote(user_id, &room_id, &servers, reason).await;
        }
        let mut content = self.member_content(user_id, "knock").await?;
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        self.append_member(user_id, &room_id, user_id, content).await?;
        Ok(room_id)
    }

    pub async fn invite(
        &self,
        sender: &str,
        room_id: &str,
        target: &str,
        reason: Option<&str>,
        is_direct: bool,
    ) -> ApiResult<()> {
        let target_id = ruma::UserId::parse(target).map_err(|_| ApiError::invalid_param("Invalid user id"))?;
        let remote = target_id.server_name().as_str() != self.server_name;
        if !remote && !self.db.user_exists(target).await? {
            return Err(ApiError::not_found("Unknown user"));
        }
        let mut content = if remote {
            serde_json::json!({"membership": "invite"})
        } else {
            self.member_content(target, "invite").await?
        };
        if is_direct {
            content["is_direct"] = true.into();
        }
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        if remote {
            let new = NewEvent {
                room_id,
                sender,
                event_type: "m.room.member",
                state_key: Some(target),
                content,
                transaction: None,
            };
            return self.invite_remote(new).await;
        }
        self.append_member(sender, room_id, target, content).await?;
        Ok(())
    }

    /// Leave (target == sender), kick (membership leave on someone else), ban or unban.
    pub async fn set_membership(
        &self,
        sender: &str,
        room_id: &str,
        target: &str,
        membership: &str,
        reason: Option<&str>,
    ) -> ApiResult<()> {
        ruma::UserId::parse(target).map_err(|_| ApiError::invalid_param("Invalid user id"))?;
        if sender == target && membership == "leave" && self.is_out_of_band(room_id, sender).await? {
            // An invite or knock into a room on another server.
            return self.leave_out_of_band(sender, room_id, reason).await;
        }
        self.rules(room_id).await?;
        let current = self.db.membership(room_id, target).await?.map(|m| m.membership);
        let in_room = matches!(current.as_deref(), Some("join" | "invite" | "knock"));
        if membership == "leave" && !in_room {
            if sender == target {
                return Err(ApiError::forbidden("You are not in this room"));
            }
            // Leave on a banned user is an unban; anything else needs the user in the room.
            if current.as_deref() != Some("ban") {
                return Err(ApiError::forbidden("The user is not in this room"));
            }
        }
        let mut content = json!({"membership": membership});
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        self.append_member(sender, room_id, target, content).await?;
        Ok(())
    }

    /// POST /unban: only a banned user can be unbanned.
    pub async fn unban(&self, sender: &str, room_id: &str, target: &str, reason: Option<&str>) -> ApiResult<()> {
        if self.db.membership(room_id, target).await?.map(|m| m.membership).as_deref() != Some("ban") {
            return Err(ApiError::forbidden("The user is not banned"));
        }
        self.set_membership(sender, room_id, target, "leave", reason).await
    }

    /// POST /forget: the room disappears from the user's sync; only after leaving.
    pub async fn forget(&self, user_id: &str, room_id: &str) -> ApiResult<()> {
        match self.db.membership(room_id, user_id).await?.map(|m| m.membership).as_deref() {
            Some("join") | Some("invite") | Some("knock") => {
                Err(ApiError::unknown("You must leave the room before forgetting it"))
            }
            Some(_) => {
                let _quiet = self.streams.hold().await;
                self.db.forget_room(room_id, user_id).await?;
                self.memberships.forget(user_id, room_id);
                Ok(())
            }
            None => Err(ApiError::not_found("You have never been in this room")),
        }
    }
}
