//! Evaluating push rules for a new event, for every joined member but the sender. ruma's
//! `Ruleset` holds the spec's default rules and does the matching.

use std::collections::BTreeMap;

use hearth_federation::Pdu;
use ruma::{
    Int, OwnedUserId, RoomId, UInt, UserId,
    power_levels::NotificationPowerLevels,
    push::{PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    room_version_rules::{AuthorizationRules, RoomPowerLevelsRules},
    serde::Raw,
};
use serde_json::Value;

use crate::{
    error::{ApiError, ApiResult},
    storage::{Db, push::PushActionRow},
};

/// A user's rules: their stored `m.push_rules` account data, or the spec's defaults. Building
/// the default set allocates a few dozen rules, so defaults are made once per user and kept.
fn cached_ruleset(user_id: &UserId, stored: Option<&str>) -> std::sync::Arc<Ruleset> {
    use std::{
        collections::HashMap,
        sync::{Arc, LazyLock, Mutex},
    };
    // Only the spec's defaults are cached (keyed by user id: they name the user); stored
    // rules are parsed each time, as they can change at any moment.
    static DEFAULTS: LazyLock<Mutex<HashMap<String, Arc<Ruleset>>>> = LazyLock::new(Default::default);
    if stored.is_some() {
        return Arc::new(ruleset_for(user_id, stored));
    }
    let mut defaults = DEFAULTS.lock().expect("push defaults lock");
    if defaults.len() > 100_000 {
        defaults.clear();
    }
    defaults.entry(user_id.to_string()).or_insert_with(|| Arc::new(Ruleset::server_default(user_id))).clone()
}

/// A user's rules: their stored `m.push_rules` account data, or the spec's defaults.
pub fn ruleset_for(user_id: &UserId, stored: Option<&str>) -> Ruleset {
    stored
        .and_then(|json| serde_json::from_str::<Value>(json).ok())
        .and_then(|value| serde_json::from_value::<Ruleset>(value["global"].clone()).ok())
        .unwrap_or_else(|| Ruleset::server_default(user_id))
}

/// Push actions of `pdu` for each joined member of the room (the sender excluded).
pub async fn evaluate(
    db: &Db,
    room_id: &str,
    pdu: &Pdu,
    power_levels: Option<&Value>,
    creators: Vec<OwnedUserId>,
    authorization: &AuthorizationRules,
) -> ApiResult<Vec<PushActionRow>> {
    let members = db.push_members(room_id).await?;
    if members.len() <= 1 {
        return Ok(Vec::new());
    }
    let room = RoomId::parse(room_id).map_err(ApiError::internal)?;
    let raw = serde_json::value::to_raw_value(pdu.json()).map_err(ApiError::internal)?;
    let event = Raw::<Value>::from_json(raw);
    let power_ctx = power_levels_ctx(power_levels, creators, authorization);
    let member_count = UInt::try_from(members.len() as u64).unwrap_or(UInt::MAX);
    let mut rows = Vec::new();
    for member in members {
        if member.user_id == pdu.sender().as_str() {
            continue;
        }
        let Ok(user_id) = UserId::parse(member.user_id.as_str()) else { continue };
        let ruleset = cached_ruleset(&user_id, member.rules.as_deref());
        let display_name = member.displayname.clone().unwrap_or_else(|| user_id.localpart().to_owned());
        let mut context = PushConditionRoomCtx::new(room.clone(), member_count, user_id.clone(), display_name);
        context.power_levels = Some(power_ctx.clone());
        let actions = ruleset.get_actions(&event, &context).await;
        let notify = actions.iter().any(|a| a.should_notify());
        if !notify {
            continue;
        }
        rows.push(PushActionRow {
            user_id: member.user_id,
            actions: serde_json::to_string(actions).map_err(ApiError::internal)?,
            notify,
            highlight: actions.iter().any(|a| a.is_highlight()),
        });
    }
    Ok(rows)
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
