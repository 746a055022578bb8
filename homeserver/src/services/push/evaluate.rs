//! Evaluating push rules for a new event, for every joined member but the sender. ruma's
//! `Ruleset` holds the spec's default rules and does the matching.
//!
//! In a large room most members have the default rules and are not mentioned by a given
//! message; for all of them the default rules give the same answer, so it is computed once
//! (with a stand-in member whose name appears nowhere in the event), shared, and stored once
//! per event. Only members with their own rules, the users the event mentions and the target
//! of a membership event are evaluated one by one, and stored only when their result differs.
//! A message to 10,000 members costs a few evaluations and a handful of rows, whatever the
//! room's size.

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
    storage::push::{PushActionRow, SharedPush},
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
    /// Bumped by every change, so per-room views of who has their own rules know to refresh.
    generation: std::sync::atomic::AtomicU64,
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
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
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

    /// Whether the event's text names the member (for legacy text-mention rules).
    fn names(&self, user_id: &str, displayname: Option<&str>) -> bool {
        let localpart = user_id.trim_start_matches('@').split(':').next().unwrap_or_default();
        self.text.contains(&localpart.to_lowercase())
            || displayname.is_some_and(|name| self.text.contains(&name.to_lowercase()))
    }
}

/// The room as push evaluation sees it: its joined members with their display names, and
/// those of them who changed their push rules.
pub struct RoomMembers<'a> {
    pub members: &'a HashMap<String, Option<String>>,
    pub custom_rules: &'a HashMap<String, Arc<Ruleset>>,
}

/// Whether a rule set could treat members differently by what the event's text says about
/// them (the legacy display-name and user-name mention rules, gone from the spec's defaults
/// since mentions became explicit `m.mentions`).
fn defaults_mention_by_text() -> bool {
    // A property of the rule set ruma ships, decided once.
    static BY_TEXT: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        let user = UserId::parse("@probe:localhost").expect("a valid user id");
        let ruleset = Ruleset::server_default(&user);
        !ruleset.content.is_empty()
            || serde_json::to_string(&ruleset).is_ok_and(|json| json.contains("contains_display_name"))
    });
    *BY_TEXT
}

/// What an event means for the room's members: the result most of them share (stored once,
/// when it notifies) and the members whose result differs (stored one row each).
#[derive(Debug, Default)]
pub struct PushOutcome {
    pub shared: Option<SharedPush>,
    pub differing: Vec<PushActionRow>,
}

/// Push results of `pdu` for the room's members (the sender excluded). Members with their own
/// rules, the users the event mentions and the target of a membership event are evaluated one
/// by one; everyone else gets the shared result, computed once.
pub async fn evaluate(
    room_id: &str,
    pdu: &Pdu,
    room_members: &RoomMembers<'_>,
    power_levels: Option<&Value>,
    creators: Vec<OwnedUserId>,
    authorization: &AuthorizationRules,
) -> ApiResult<PushOutcome> {
    let members = room_members.members;
    if members.len() <= 1 {
        return Ok(PushOutcome::default());
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
    // The shared result: the default rules for a stand-in whose name cannot be in the event.
    let stand_in = stand_in_user(room.server_name().map_or("localhost", |s| s.as_str()), &mentions);
    let defaults = Ruleset::server_default(&stand_in);
    let shared_actions =
        defaults.get_actions(&event, &context(stand_in.clone(), stand_in.localpart().to_owned())).await.to_vec();
    let shared = row_for("", &shared_actions)?;

    // Who may differ from it.
    let mut individuals: Vec<&str> = room_members.custom_rules.keys().map(String::as_str).collect();
    individuals.extend(mentions.user_ids.iter().map(String::as_str).filter(|id| members.contains_key(*id)));
    if let Some(target) = pdu.state_key().filter(|target| members.contains_key(*target)) {
        individuals.push(target);
    }
    if defaults_mention_by_text() {
        individuals.extend(
            members.iter().filter(|(user, name)| mentions.names(user, name.as_deref())).map(|(user, _)| user.as_str()),
        );
    }
    individuals.sort_unstable();
    individuals.dedup();

    let mut differing = Vec::new();
    for member in individuals {
        if member == pdu.sender().as_str() {
            continue;
        }
        let Ok(user_id) = UserId::parse(member) else { continue };
        let own_defaults;
        let ruleset = match room_members.custom_rules.get(member) {
            Some(rules) => rules.as_ref(),
            None => {
                own_defaults = Ruleset::server_default(&user_id);
                &own_defaults
            }
        };
        let display_name = members.get(member).cloned().flatten().unwrap_or_else(|| user_id.localpart().to_owned());
        let actions = ruleset.get_actions(&event, &context(user_id.clone(), display_name)).await;
        let own = row_for(member, actions)?;
        let same = match (&own, &shared) {
            (Some(own), Some(shared)) => own.actions == shared.actions,
            (None, None) => true,
            _ => false,
        };
        if !same {
            // A member the shared result would count but whose own result does not notify is
            // stored too, so the shared row does not count for them.
            differing.push(own.unwrap_or_else(|| PushActionRow {
                user_id: member.to_owned(),
                actions: "[]".to_owned(),
                notify: false,
                highlight: false,
            }));
        }
    }
    Ok(PushOutcome {
        shared: shared.map(|row| SharedPush { actions: row.actions, highlight: row.highlight }),
        differing,
    })
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
