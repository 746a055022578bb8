//! POST /createRoom (spec: Client-Server API § Creation): the create event, the creator's join,
//! power levels, alias, preset state, initial_state, name, topic and invites, in that order.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{NewEvent, Rooms};
use crate::error::{ApiError, ApiResult, ErrorKind};

#[derive(Debug, Default, Deserialize)]
pub struct CreateRoomRequest {
    pub preset: Option<String>,
    pub visibility: Option<String>,
    pub room_version: Option<String>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub room_alias_name: Option<String>,
    #[serde(default)]
    pub invite: Vec<String>,
    #[serde(default)]
    pub is_direct: bool,
    #[serde(default)]
    pub initial_state: Vec<InitialState>,
    pub power_level_content_override: Option<Map<String, Value>>,
    pub creation_content: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
pub struct InitialState {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub state_key: String,
    pub content: Value,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Preset {
    Private,
    TrustedPrivate,
    Public,
}

impl Rooms {
    pub async fn create_room(&self, creator: &str, request: CreateRoomRequest) -> ApiResult<String> {
        let creator_id = ruma::UserId::parse(creator).map_err(ApiError::internal)?;
        let version = request.room_version.clone().unwrap_or_else(|| self.default_version.clone());
        let Some(rules) = hearth_federation::room_versions::rules_for(&version) else {
            return Err(ApiError::new(
                ErrorKind::UnsupportedRoomVersion,
                format!("Room version {version} is not supported"),
            ));
        };
        let preset = match request.preset.as_deref() {
            Some("private_chat") => Preset::Private,
            Some("trusted_private_chat") => Preset::TrustedPrivate,
            Some("public_chat") => Preset::Public,
            Some(other) => return Err(ApiError::invalid_param(format!("Unknown preset {other}"))),
            None if request.visibility.as_deref() == Some("public") => Preset::Public,
            None => Preset::Private,
        };
        if let Some(visibility) = request.visibility.as_deref()
            && !matches!(visibility, "public" | "private")
        {
            return Err(ApiError::invalid_param("visibility must be 'public' or 'private'"));
        }
        let mut invitees = Vec::new();
        for invitee in &request.invite {
            let user = ruma::UserId::parse(invitee.as_str())
                .map_err(|_| ApiError::invalid_param(format!("Invalid user id {invitee}")))?;
            invitees.push(user.to_string());
        }
        let alias = match &request.room_alias_name {
            Some(local) => {
                let alias = format!("#{local}:{}", self.server_name);
                if local.is_empty() || local.contains([':', '#']) || ruma::RoomAliasId::parse(alias.as_str()).is_err() {
                    return Err(ApiError::invalid_param("Invalid room_alias_name"));
                }
                if self.db.alias_room(&alias).await?.is_some() {
                    return Err(ApiError::new(ErrorKind::RoomInUse, "Room alias already taken"));
                }
                Some(alias)
            }
            None => None,
        };

        let room_id = self.append_create(&creator_id, &version, request.creation_content.unwrap_or_default()).await?;
        let state = |event_type: &'static str, content: Value| (event_type.to_owned(), String::new(), content);

        let join = self.member_content(creator, "join").await?;
        self.append(NewEvent {
            room_id: &room_id,
            sender: creator,
            event_type: "m.room.member",
            state_key: Some(creator),
            content: join,
            transaction: None,
        })
        .await?;

        let mut power_levels =
            default_power_levels(creator, !rules.authorization.explicitly_privilege_room_creators, preset, &invitees);
        if let Some(overrides) = request.power_level_content_override {
            for (key, value) in overrides {
                power_levels.insert(key, value);
            }
        }
        let mut events: Vec<(String, String, Value)> = vec![state("m.room.power_levels", Value::Object(power_levels))];
        if let Some(alias) = &alias {
            events.push(state("m.room.canonical_alias", json!({"alias": alias})));
        }
        let (join_rule, guest_access) = match preset {
            Preset::Public => ("public", "forbidden"),
            Preset::Private | Preset::TrustedPrivate => ("invite", "can_join"),
        };
        let preset_events = [
            state("m.room.join_rules", json!({"join_rule": join_rule})),
            state("m.room.history_visibility", json!({"history_visibility": "shared"})),
            state("m.room.guest_access", json!({"guest_access": guest_access})),
        ];
        // initial_state wins over the preset; name and topic win over initial_state.
        for event in preset_events {
            if !request.initial_state.iter().any(|i| i.event_type == event.0 && i.state_key == event.1) {
                events.push(event);
            }
        }
        for initial in request.initial_state {
            if initial.event_type == "m.room.create" || initial.event_type == "m.room.member" {
                return Err(ApiError::invalid_param("initial_state may not contain m.room.create or m.room.member"));
            }
            events.push((initial.event_type, initial.state_key, initial.content));
        }
        if let Some(name) = request.name {
            events.push(state("m.room.name", json!({"name": name})));
        }
        if let Some(topic) = request.topic {
            events.push(state(
                "m.room.topic",
                json!({"topic": topic, "m.topic": [{"body": topic, "mimetype": "text/plain"}]}),
            ));
        }
        for (event_type, state_key, content) in events {
            self.append(NewEvent {
                room_id: &room_id,
                sender: creator,
                event_type: &event_type,
                state_key: Some(&state_key),
                content,
                transaction: None,
            })
            .await?;
        }
        if let Some(alias) = &alias {
            self.db.create_alias(alias, &room_id, creator).await?;
        }
        if request.visibility.as_deref() == Some("public") {
            self.db.set_room_public(&room_id, true).await?;
        }
        for invitee in invitees {
            self.invite(creator, &room_id, &invitee, None, request.is_direct).await?;
        }
        tracing::info!(%room_id, %version, "room created");
        Ok(room_id)
    }
}

/// Power levels as Synapse writes them for a new room. From v12 the creators hold implicit
/// unlimited power and are not listed in `users`.
fn default_power_levels(creator: &str, list_creator: bool, preset: Preset, invitees: &[String]) -> Map<String, Value> {
    let mut users = Map::new();
    if list_creator {
        users.insert(creator.to_owned(), 100.into());
    }
    if preset == Preset::TrustedPrivate {
        for invitee in invitees {
            users.insert(invitee.clone(), 100.into());
        }
    }
    let tombstone = if list_creator { 100 } else { 150 };
    let Value::Object(levels) = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": tombstone,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "historical": 100,
        "notifications": {"room": 50},
    }) else {
        unreachable!("a JSON object literal")
    };
    levels
}
