//! Push actions for a new event: the room's joined members (from the writer's room heads) with
//! their push rules (from the push rule cache) go through `push::evaluate`.

use std::{collections::HashMap, sync::Arc};

use hearth_federation::Pdu;
use ruma::{UserId, room_version_rules::RoomVersionRules};
use serde_json::Value;

use super::Rooms;
use crate::{
    error::ApiResult,
    services::push::evaluate::{Member, evaluate, ruleset_for},
    storage::push::PushActionRow,
};

impl Rooms {
    /// What the event means for each member (call holding the stream).
    pub(super) async fn push_actions(
        &self,
        room_id: &str,
        pdu: &Pdu,
        state: &HashMap<(String, String), Pdu>,
        rules: &RoomVersionRules,
    ) -> ApiResult<Vec<PushActionRow>> {
        let members = self.head_members(room_id).await?;
        if members.len() <= 1 {
            return Ok(Vec::new());
        }
        let users: Vec<String> = members.keys().cloned().collect();
        let mut cached = self.push_rules.get(&users);
        let missing: Vec<String> =
            users.iter().zip(&cached).filter(|(_, rules)| rules.is_none()).map(|(user, _)| user.clone()).collect();
        if !missing.is_empty() {
            let stored: HashMap<String, String> = self.db.stored_push_rules(&missing).await?.into_iter().collect();
            for user in &missing {
                let rules = match (stored.get(user), UserId::parse(user.as_str())) {
                    (Some(json), Ok(user_id)) => Some(Arc::new(ruleset_for(&user_id, Some(json)))),
                    _ => None,
                };
                self.push_rules.insert(user, rules);
            }
            cached = self.push_rules.get(&users);
        }
        let member_list: Vec<Member<'_>> = users
            .iter()
            .zip(&cached)
            .map(|(user, rules)| Member {
                user_id: user,
                displayname: members.get(user).and_then(|name| name.as_deref()),
                rules: rules.as_ref().and_then(|rules| rules.as_deref()),
            })
            .collect();

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
        evaluate(room_id, pdu, &member_list, power_levels.as_ref(), creators, &rules.authorization).await
    }
}
