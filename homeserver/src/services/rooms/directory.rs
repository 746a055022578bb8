//! The room directory (spec: Client-Server API § Room aliases, § Listing rooms in the room
//! directory) and the user directory (§ User directory).

use serde_json::{Map, Value, json};

use super::{Rooms, read::Visibility};
use crate::{
    error::{ApiError, ApiResult},
    storage::directory::UserHit,
};

pub struct PublicRoomsPage {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
    pub prev_batch: Option<String>,
    pub total: usize,
}

impl PublicRoomsPage {
    /// The page as /publicRooms answers it (client and federation alike).
    pub fn to_json(&self) -> Value {
        let mut body = serde_json::json!({"chunk": self.chunk, "total_room_count_estimate": self.total});
        if let Some(next) = &self.next_batch {
            body["next_batch"] = next.clone().into();
        }
        if let Some(prev) = &self.prev_batch {
            body["prev_batch"] = prev.clone().into();
        }
        body
    }
}

impl Rooms {
    fn local_alias(&self, alias: &str) -> ApiResult<()> {
        let parsed = ruma::RoomAliasId::parse(alias).map_err(|_| ApiError::invalid_param("Invalid room alias"))?;
        if parsed.server_name().as_str() != self.server_name {
            return Err(ApiError::invalid_param("Aliases on other servers cannot be managed here"));
        }
        Ok(())
    }

    /// PUT /directory/room/{roomAlias}: members may add aliases to their rooms.
    pub async fn create_alias(&self, user_id: &str, alias: &str, room_id: &str) -> ApiResult<()> {
        self.local_alias(alias)?;
        self.rules(room_id).await?;
        if !matches!(self.visibility(user_id, room_id).await?, Visibility::Member) {
            return Err(ApiError::forbidden("You are not in this room"));
        }
        if !self.db.create_alias(alias, room_id, user_id).await? {
            return Err(ApiError::new(crate::error::ErrorKind::AliasInUse, "Room alias already exists"));
        }
        Ok(())
    }

    /// GET /directory/room/{roomAlias}
    /// Aliases of other servers are asked of their server
    /// (GET /_matrix/federation/v1/query/directory).
    pub async fn resolve_alias(&self, alias: &str) -> ApiResult<(String, Vec<String>)> {
        let parsed = ruma::RoomAliasId::parse(alias).map_err(|_| ApiError::invalid_param("Invalid room alias"))?;
        if parsed.server_name().as_str() != self.server_name {
            let path = format!(
                "/_matrix/federation/v1/query/directory?room_alias={}",
                crate::services::federation::query_value(alias)
            );
            let answer = self
                .federation
                .get(parsed.server_name(), &path)
                .await
                .map_err(crate::services::federation::FederationError::into_api_error)?;
            let room_id =
                answer["room_id"].as_str().filter(|id| ruma::RoomId::parse(*id).is_ok()).ok_or_else(|| {
                    ApiError::new(crate::error::ErrorKind::BadGateway, "The alias's server sent no room id")
                })?;
            let servers = answer["servers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|server| server.as_str().filter(|s| ruma::ServerName::parse(*s).is_ok()))
                .map(str::to_owned)
                .collect();
            return Ok((room_id.to_owned(), servers));
        }
        let room_id = self.db.alias_room(alias).await?.ok_or_else(|| ApiError::not_found("Room alias not found"))?;
        Ok((room_id, vec![self.server_name.clone()]))
    }

    /// DELETE /directory/room/{roomAlias}: its creator, or someone who may change the room's
    /// canonical alias.
    pub async fn delete_alias(&self, user_id: &str, alias: &str) -> ApiResult<()> {
        self.local_alias(alias)?;
        let (room_id, creator) =
            self.db.alias_creator(alias).await?.ok_or_else(|| ApiError::not_found("Room alias not found"))?;
        if creator != user_id && !self.may_send_state(&room_id, user_id, "m.room.canonical_alias").await? {
            return Err(ApiError::forbidden("You may not remove this alias"));
        }
        self.db.delete_alias(alias).await?;
        Ok(())
    }

    /// GET /rooms/{roomId}/aliases
    pub async fn room_aliases(&self, user_id: &str, room_id: &str) -> ApiResult<Vec<String>> {
        self.rules(room_id).await?;
        self.visibility(user_id, room_id).await?;
        Ok(self.db.aliases_of_room(room_id).await?.into_iter().map(|(alias, _)| alias).collect())
    }

    /// Whether the user's power level allows sending this state event type.
    pub(super) async fn may_send_state(&self, room_id: &str, user_id: &str, event_type: &str) -> ApiResult<bool> {
        if !matches!(self.visibility(user_id, room_id).await, Ok(Visibility::Member)) {
            return Ok(false);
        }
        let levels = self.power_levels_content(room_id).await?;
        let needed = levels["events"][event_type].as_i64().or_else(|| levels["state_default"].as_i64()).unwrap_or(50);
        Ok(self.power_level(room_id, user_id).await? >= needed)
    }

    /// PUT /directory/list/room/{roomId}
    pub async fn set_directory_visibility(&self, user_id: &str, room_id: &str, visibility: &str) -> ApiResult<()> {
        self.rules(room_id).await?;
        let public = match visibility {
            "public" => true,
            "private" => false,
            _ => return Err(ApiError::invalid_param("visibility must be 'public' or 'private'")),
        };
        if !self.may_send_state(room_id, user_id, "m.room.canonical_alias").await? {
            return Err(ApiError::forbidden("Only room admins may publish the room"));
        }
        self.db.set_room_public(room_id, public).await?;
        Ok(())
    }

    /// GET /directory/list/room/{roomId}
    pub async fn directory_visibility(&self, room_id: &str) -> ApiResult<&'static str> {
        self.rules(room_id).await?;
        Ok(if self.db.room_is_public(room_id).await? { "public" } else { "private" })
    }

    /// GET/POST /publicRooms: published rooms, largest first, filtered by a search term and
    /// paged by offset (`since` is an offset token).
    pub async fn public_rooms(
        &self,
        search: Option<&str>,
        since: Option<&str>,
        limit: Option<usize>,
    ) -> ApiResult<PublicRoomsPage> {
        let offset = match since {
            Some(token) => token
                .strip_prefix('p')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ApiError::invalid_param("Invalid since token"))?,
            None => 0,
        };
        let term = search.map(str::to_lowercase).filter(|t| !t.is_empty());
        let mut summaries = Vec::new();
        for (room_id, members) in self.db.public_rooms().await? {
            let summary = self.room_summary(&room_id, members).await?;
            let matches = term.as_deref().is_none_or(|term| {
                ["name", "topic", "canonical_alias"]
                    .iter()
                    .any(|k| summary[*k].as_str().is_some_and(|v| v.to_lowercase().contains(term)))
            });
            if matches {
                summaries.push(summary);
            }
        }
        let total = summaries.len();
        let limit = limit.unwrap_or(total.max(1)).clamp(1, 500);
        let chunk: Vec<Value> = summaries.into_iter().skip(offset).take(limit).collect();
        let next_batch = (offset + chunk.len() < total).then(|| format!("p{}", offset + chunk.len()));
        let prev_batch = (offset > 0).then(|| format!("p{}", offset.saturating_sub(limit)));
        Ok(PublicRoomsPage { chunk, next_batch, prev_batch, total })
    }

    /// GET/POST /publicRooms?server=… for another server: its directory, asked over
    /// federation (POST /_matrix/federation/v1/publicRooms, which takes the search filter),
    /// and passed on as it answered, once it looks like a directory page.
    pub async fn remote_public_rooms(
        &self,
        server: &str,
        search: Option<&str>,
        since: Option<&str>,
        limit: Option<usize>,
    ) -> ApiResult<Value> {
        let server = ruma::ServerName::parse(server).map_err(|_| ApiError::invalid_param("Invalid server name"))?;
        let mut body = serde_json::json!({});
        if let Some(term) = search {
            body["filter"] = serde_json::json!({"generic_search_term": term});
        }
        if let Some(since) = since {
            body["since"] = since.into();
        }
        if let Some(limit) = limit {
            body["limit"] = limit.into();
        }
        let answer = self
            .federation
            .send_json(&server, reqwest::Method::POST, "/_matrix/federation/v1/publicRooms", &body)
            .await
            .map_err(crate::services::federation::FederationError::into_api_error)?;
        if !answer["chunk"].is_array() {
            return Err(ApiError::new(crate::error::ErrorKind::BadGateway, "The server sent no room directory"));
        }
        Ok(answer)
    }

    pub(super) async fn room_summary(&self, room_id: &str, members: i64) -> ApiResult<Value> {
        let mut summary = Map::new();
        summary.insert("room_id".into(), room_id.into());
        summary.insert("num_joined_members".into(), members.into());
        let content = |event: Option<crate::storage::rooms::StoredEvent>| {
            event
                .and_then(|e| serde_json::from_str::<Value>(&e.json).ok())
                .map(|v| v["content"].clone())
                .unwrap_or(Value::Null)
        };
        let state = |t: &'static str| async move { self.db.current_state_event(room_id, t, "").await };
        let name = content(state("m.room.name").await?);
        let topic = content(state("m.room.topic").await?);
        let alias = content(state("m.room.canonical_alias").await?);
        let avatar = content(state("m.room.avatar").await?);
        let join_rules = content(state("m.room.join_rules").await?);
        let history = content(state("m.room.history_visibility").await?);
        let guests = content(state("m.room.guest_access").await?);
        let create = content(state("m.room.create").await?);
        for (key, value) in [
            ("name", &name["name"]),
            ("topic", &topic["topic"]),
            ("canonical_alias", &alias["alias"]),
            ("avatar_url", &avatar["url"]),
            ("join_rule", &join_rules["join_rule"]),
            ("room_type", &create["type"]),
        ] {
            if value.is_string() {
                summary.insert(key.into(), value.clone());
            }
        }
        summary.insert("world_readable".into(), (history["history_visibility"] == "world_readable").into());
        summary.insert("guest_can_join".into(), (guests["guest_access"] == "can_join").into());
        Ok(Value::Object(summary))
    }

    /// POST /user_directory/search
    pub async fn search_users(&self, searcher: &str, term: &str, limit: i64) -> ApiResult<(Vec<Value>, bool)> {
        let limit = limit.clamp(1, 50);
        let mut hits: Vec<UserHit> = self.db.search_users(searcher, term, limit + 1).await?;
        let limited = hits.len() as i64 > limit;
        hits.truncate(limit as usize);
        let results = hits
            .into_iter()
            .map(|hit| {
                let mut result = json!({"user_id": hit.user_id});
                if let Some(name) = hit.displayname {
                    result["display_name"] = name.into();
                }
                if let Some(avatar) = hit.avatar_url {
                    result["avatar_url"] = avatar.into();
                }
                result
            })
            .collect();
        Ok((results, limited))
    }
}
