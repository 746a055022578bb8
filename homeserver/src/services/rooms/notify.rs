//! Push actions for a new event: the room's joined members and which of them have their own
//! push rules (both kept in the writer's room heads) go through `push::evaluate`.

use std::{collections::HashMap, sync::Arc};

use hearth_federation::{AuthEvent, Pdu};
use ruma::{UserId, push::Ruleset, room_version_rules::RoomVersionRules};
use serde_json::Value;

use super::Rooms;
use crate::{
    error::ApiResult,
    services::push::evaluate::{PushOutcome, RoomMembers, evaluate, ruleset_for},
};

impl Rooms {
    /// What the event means for each member (call holding the stream).
    pub(super) async fn push_actions(
        &self,
        room_id: &str,
        pdu: &Pdu,
        state: &HashMap<(String, String), Arc<AuthEvent>>,
        rules: &RoomVersionRules,
    ) -> ApiResult<PushOutcome> {
        let members = self.head_members(room_id).await?;
        if members.len() <= 1 {
            return Ok(PushOutcome::default());
        }
        let custom_rules = self.head_custom_rules(room_id, &members).await?;
        let room_members = RoomMembers { members: &members, custom_rules: &custom_rules };
        let content = |key: &str| {
            state
                .get(&(key.to_owned(), String::new()))
                .and_then(|pdu| serde_json::from_str::<Value>(pdu.content_json().get()).ok())
        };
        let power_levels = content("m.room.power_levels");
        let mut creators = Vec::new();
        if let Some(create) = state.get(&("m.room.create".to_owned(), String::new())) {
            creators.push(create.sender().to_owned());
            let additional = content("m.room.create").and_then(|c| c["additional_creators"].as_array().cloned());
            creators.extend(
                additional
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|id| id.as_str().and_then(|id| UserId::parse(id).ok())),
            );
        }
        evaluate(room_id, pdu, &room_members, power_levels.as_ref(), creators, &rules.authorization).await
    }
}

impl Rooms {
    /// Each user's own push rules, None for the spec's defaults: from the cache, the rest from
    /// storage in one query (call holding the stream).
    pub(super) async fn push_rules_of(&self, users: &[String]) -> ApiResult<Vec<(String, Option<Arc<Ruleset>>)>> {
        let cached = self.push_rules.get(users);
        let missing: Vec<String> =
            users.iter().zip(&cached).filter(|(_, rules)| rules.is_none()).map(|(user, _)| user.clone()).collect();
        let stored: HashMap<String, String> = if missing.is_empty() {
            HashMap::new()
        } else {
            self.db.stored_push_rules(&missing).await?.into_iter().collect()
        };
        let mut out = Vec::with_capacity(users.len());
        for (user, cached) in users.iter().zip(cached) {
            let rules = match cached {
                Some(rules) => rules,
                None => {
                    let rules = match (stored.get(user), UserId::parse(user.as_str())) {
                        (Some(json), Ok(user_id)) => Some(Arc::new(ruleset_for(&user_id, Some(json)))),
                        _ => None,
                    };
                    self.push_rules.insert(user, rules.clone());
                    rules
                }
            };
            out.push((user.clone(), rules));
        }
        Ok(out)
    }
}
