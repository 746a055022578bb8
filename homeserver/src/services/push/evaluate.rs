//! Evaluating push rules for a new event, for every joined member but the sender. ruma's
//! `Ruleset` holds the spec's default rules and does the matching.
//!
//! In a large room most members have the default rules and are not mentioned by a given
//! message; for all of them the default rules give the same answer, so it is computed once
//! (with a stand-in member whose name appears nowhere in the event) and shared. Only members
//! with their own rules, or whose user id, localpart or display name the event mentions, are
//! evaluated one by one. This keeps a message to 10,000 members to one evaluation plus a
//! substring check per member.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use hearth_federation::Pdu;
use ruma::{
    Int, OwnedUserId, RoomId, UInt, UserId,
    power_levels::NotificationPowerLevels,
    push::{Action, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    room_version_rules::{AuthorizationRules, RoomPowerLevelsRules},
    serde::Raw,
};
use serde_json::Value;

use crate::{
    error::{ApiError, ApiResult},
    storage::push::PushActionRow,
};

/// A user's rules: their stored `m.push_rules` account data, or the spec's defaults.
pub fn ruleset_for(user_id: &UserId, stored: Option<&str>) -> Ruleset {
    stored
        .and_then(|json| serde_json::from_str::<Value>(json).ok())
        .and_then(|value| serde_json::from_value::<Ruleset>(value["global"].clone()).ok())
        .unwrap_or_else(|| Ruleset::server_default(user_id))
}

/// Each user's rules in memory: `None` means the spec's defaults (the user never changed a
/// rule). Filled by the event writer and cleared by every write of `m.push_rules`; both happen
/// while holding the stream, so a fill never races a change.
#[derive(Default)]
pub struct PushRuleCache {
    users: Mutex<HashMap<String, Option<Arc<Ruleset>>>>,
}

/// Users remembered at once; past it the cache starts over.
const CAPACITY: usize = 200_000;

impl PushRuleCache {
    /// The cached rules of `users`: Some(None) for defaults, None when not cached.
    pub fn get(&self, users: &[String]) -> Vec<Option<Option<Arc<Ruleset>>>> {
        let cache = self.users.lock().expect("push rule cache lock");
        users.iter().map(|user| cache.get(user).cloned()).collect()
    }

    pub fn insert(&self, user_id: &str, rules: Option<Arc<Ruleset>>) {
        let mut cache = self.users.lock().expect("push rule cache lock");
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), rules);
    }

    pub fn forget(&self, user_id: &str) {
        self.users.lock().expect("push rule cache lock").remove(user_id);
    }
}

/// A joined member as push evaluation sees them.
pub struct Member<'a> {
    pub user_id: &'a str,
    pub displayname: Option<&'a str>,
    /// None: the spec's defaults.
    pub rules: Option<&'a Ruleset>,
}

/// The event's text and mentions, lower-cased, to tell who it might name.
struct Mentions {
    text: String,
    user_ids: Vec<String>,
}

impl Mentions {
    fn of(pdu: &Pdu) -> Self {
        let content: Value = serde_json::from_str(pdu.content_json().get()).unwrap_or_default();
        let mut text = String::new();
        for key in ["body", "formatted_body"] {
            if let Some(part) = content[key].as_str() {
                text.push_str(&part.to_lowercase());
                text.push('\n');
            }
        }
        let user_ids = content["m.mentions"]["user_ids"]
            .as_array()
            .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Self { text, user_ids }
    }

    /// Whether the default rules could treat this member differently from anyone else.
    fn may_name(&self, pdu: &Pdu, member: &Member<'_>) -> bool {
        let localpart = member.user_id.trim_start_matches('@').split(':').next().unwrap_or_default();
        pdu.state_key() == Some(member.user_id)
            || self.user_ids.iter().any(|id| id == member.user_id)
            || self.text.contains(&localpart.to_lowercase())
            || member.displayname.is_some_and(|name| self.text.contains(&name.to_lowercase()))
    }
}

/// Push actions of `pdu` for each member (the sender excluded); only notifying results are
/// returned, as only they are stored.
pub async fn evaluate(
    room_id: &str,
    pdu: &Pdu,
    members: &[Member<'_>],
    power_levels: Option<&Value>,
    creators: Vec<OwnedUserId>,
    authorization: &AuthorizationRules,
) -> ApiResult<Vec<PushActionRow>> {
    if members.len() <= 1 {
        return Ok(Vec::new());
    }
    let room = RoomId::parse(room_id).map_err(ApiError::internal)?;
    let raw = serde_json::value::to_raw_value(pdu.json()).map_err(ApiError::internal)?;
    let event = Raw::<Value>::from_json(raw);
    let power_ctx = power_levels_ctx(power_levels, creators, authorization);
    let member_count = UInt::try_from(members.len() as u64).unwrap_or(UInt::MAX);
    let context = |user_id: OwnedUserId, display_name: String| {
        let mut context = PushConditionRoomCtx::new(room.clone(), member_count, user_id, display_name);
        context.power_levels = Some(power_ctx.clone());
        context
    };
    let mentions = Mentions::of(pdu);
    // The shared answer for default-rule members the event does not name, computed for a
    // stand-in whose name cannot be in the event.
    let mut shared: Option<Option<PushActionRow>> = None;
    let mut rows = Vec::new();
    for member in members {
        if member.user_id == pdu.sender().as_str() {
            continue;
        }
        let Ok(user_id) = UserId::parse(member.user_id) else { continue };
        if member.rules.is_none() && !mentions.may_name(pdu, member) {
            if shared.is_none() {
                let stand_in = stand_in_user(room.server_name().map_or("localhost", |s| s.as_str()), &mentions);
                let ruleset = Ruleset::server_default(&stand_in);
                let name = stand_in.localpart().to_owned();
                let actions = ruleset.get_actions(&event, &context(stand_in, name)).await;
                shared = Some(row_for("", actions)?);
            }
            if let Some(Some(row)) = &shared {
                rows.push(PushActionRow { user_id: member.user_id.to_owned(), ..row.clone() });
            }
            continue;
        }
        let defaults;
        let ruleset = match member.rules {
            Some(rules) => rules,
            None => {
                defaults = Ruleset::server_default(&user_id);
                &defaults
            }
        };
        let display_name = member.displayname.map_or_else(|| user_id.localpart().to_owned(), str::to_owned);
        let actions = ruleset.get_actions(&event, &context(user_id.clone(), display_name)).await;
        if let Some(row) = row_for(member.user_id, actions)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// A user id that appears nowhere in the event's text.
fn stand_in_user(server: &str, mentions: &Mentions) -> OwnedUserId {
    let mut localpart = "hearth-push-stand-in".to_owned();
    while mentions.text.contains(&localpart) {
        localpart.push('x');
    }
    UserId::parse(format!("@{localpart}:{server}"))
        .unwrap_or_else(|_| UserId::parse("@hearth-push-stand-in:localhost").expect("a valid user id"))
}

/// The stored row for a result that notifies; None when it does not.
fn row_for(user_id: &str, actions: &[Action]) -> ApiResult<Option<PushActionRow>> {
    let notify = actions.iter().any(|a| a.should_notify());
    if !notify {
        return Ok(None);
    }
    Ok(Some(PushActionRow {
        user_id: user_id.to_owned(),
        actions: serde_json::to_string(actions).map_err(ApiError::internal)?,
        notify,
        highlight: actions.iter().any(|a| a.is_highlight()),
    }))
}

/// The power levels push conditions need (who may notify the whole room with @room).
fn power_levels_ctx(
    content: Option<&Value>,
    creators: Vec<OwnedUserId>,
    authorization: &AuthorizationRules,
) -> PushConditionPowerLevelsCtx {
    let int = |value: &Value| value.as_i64().and_then(|n| Int::try_from(n).ok());
    let users: BTreeMap<OwnedUserId, Int> = content
        .and_then(|c| c["users"].as_object())
        .map(|users| {
            users.iter().filter_map(|(id, level)| Some((UserId::parse(id.as_str()).ok()?, int(level)?))).collect()
        })
        .unwrap_or_default();
    let users_default = content.and_then(|c| int(&c["users_default"])).unwrap_or_default();
    let notifications: NotificationPowerLevels =
        content.and_then(|c| serde_json::from_value(c["notifications"].clone()).ok()).unwrap_or_default();
    PushConditionPowerLevelsCtx::new(
        users,
        users_default,
        notifications,
        RoomPowerLevelsRules::new(authorization, creators),
    )
}
