//! The push rules API (GET/PUT/DELETE /pushrules/...). A user's rules are stored as their
//! `m.push_rules` account data (`{"global": ruleset}`), which is also how clients receive them
//! in /sync; until a user changes anything, the spec's defaults apply.

use std::sync::Arc;

use ruma::{
    UserId,
    push::{
        Action, AnyPushRule, InsertPushRuleError, NewConditionalPushRule, NewPatternedPushRule, NewPushRule,
        NewSimplePushRule, PushCondition, RuleKind, Ruleset,
    },
};
use serde_json::{Value, json};

use super::evaluate::ruleset_for;
use crate::{
    error::{ApiError, ApiResult},
    services::account_data::AccountData,
    storage::Db,
};

pub struct PushRules {
    db: Db,
    account_data: Arc<AccountData>,
}

fn kind(kind: &str) -> ApiResult<RuleKind> {
    match kind {
        "override" => Ok(RuleKind::Override),
        "underride" => Ok(RuleKind::Underride),
        "sender" => Ok(RuleKind::Sender),
        "room" => Ok(RuleKind::Room),
        "content" => Ok(RuleKind::Content),
        _ => Err(ApiError::invalid_param(format!("Unknown push rule kind {kind}"))),
    }
}

fn scope(scope: &str) -> ApiResult<()> {
    if scope == "global" { Ok(()) } else { Err(ApiError::invalid_param("The only push rule scope is 'global'")) }
}

impl PushRules {
    pub fn new(db: Db, account_data: Arc<AccountData>) -> Self {
        Self { db, account_data }
    }

    pub async fn ruleset(&self, user_id: &str) -> ApiResult<Ruleset> {
        let user = UserId::parse(user_id).map_err(ApiError::internal)?;
        let stored = self.db.account_data(user_id, "", "m.push_rules").await?;
        Ok(ruleset_for(&user, stored.as_deref()))
    }

    async fn save(&self, user_id: &str, ruleset: &Ruleset) -> ApiResult<()> {
        let content = json!({"global": serde_json::to_value(ruleset).map_err(ApiError::internal)?});
        self.account_data.write(user_id, None, "m.push_rules", &content).await
    }

    /// The `m.push_rules` account data content: `{"global": ruleset}`.
    pub async fn content(&self, user_id: &str) -> ApiResult<Value> {
        Ok(json!({"global": serde_json::to_value(self.ruleset(user_id).await?).map_err(ApiError::internal)?}))
    }

    pub async fn get_rule(&self, user_id: &str, scope_name: &str, kind_name: &str, rule_id: &str) -> ApiResult<Value> {
        scope(scope_name)?;
        let ruleset = self.ruleset(user_id).await?;
        let rule = ruleset.get(kind(kind_name)?, rule_id).ok_or_else(|| ApiError::not_found("Unknown push rule"))?;
        let value = match rule.to_owned() {
            AnyPushRule::Override(rule) | AnyPushRule::Underride(rule) => serde_json::to_value(rule),
            AnyPushRule::Content(rule) => serde_json::to_value(rule),
            AnyPushRule::Room(rule) => serde_json::to_value(rule),
            AnyPushRule::Sender(rule) => serde_json::to_value(rule),
            _ => return Err(ApiError::not_found("Unknown push rule")),
        };
        value.map_err(ApiError::internal)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn put_rule(
        &self,
        user_id: &str,
        scope_name: &str,
        kind_name: &str,
        rule_id: &str,
        body: &Value,
        before: Option<&str>,
        after: Option<&str>,
    ) -> ApiResult<()> {
        scope(scope_name)?;
        let kind = kind(kind_name)?;
        let actions: Vec<Action> = serde_json::from_value(body["actions"].clone())
            .map_err(|_| ApiError::bad_json("'actions' must be a list of push actions"))?;
        let rule = match kind {
            RuleKind::Override | RuleKind::Underride => {
                let conditions: Vec<PushCondition> = match body.get("conditions") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(value) => {
                        serde_json::from_value(value.clone()).map_err(|_| ApiError::bad_json("Invalid 'conditions'"))?
                    }
                };
                let rule = NewConditionalPushRule::new(rule_id.to_owned(), conditions, actions);
                if kind == RuleKind::Override { NewPushRule::Override(rule) } else { NewPushRule::Underride(rule) }
            }
            RuleKind::Content => {
                let pattern =
                    body["pattern"].as_str().ok_or_else(|| ApiError::missing_param("'pattern' is required"))?;
                NewPushRule::Content(NewPatternedPushRule::new(rule_id.to_owned(), pattern.to_owned(), actions))
            }
            RuleKind::Room => {
                let room = ruma::RoomId::parse(rule_id)
                    .map_err(|_| ApiError::invalid_param("A room rule's id is a room id"))?;
                NewPushRule::Room(NewSimplePushRule::new(room, actions))
            }
            RuleKind::Sender => {
                let user =
                    UserId::parse(rule_id).map_err(|_| ApiError::invalid_param("A sender rule's id is a user id"))?;
                NewPushRule::Sender(NewSimplePushRule::new(user, actions))
            }
            _ => return Err(ApiError::invalid_param("Unknown push rule kind")),
        };
        let mut ruleset = self.ruleset(user_id).await?;
        ruleset.insert(rule, after, before).map_err(|error| match error {
            InsertPushRuleError::UnknownRuleId => ApiError::not_found(error.to_string()),
            _ => ApiError::invalid_param(error.to_string()),
        })?;
        self.save(user_id, &ruleset).await
    }

    pub async fn delete_rule(&self, user_id: &str, scope_name: &str, kind_name: &str, rule_id: &str) -> ApiResult<()> {
        scope(scope_name)?;
        let kind = kind(kind_name)?;
        if rule_id.starts_with('.') {
            return Err(ApiError::invalid_param("Server-default rules cannot be deleted"));
        }
        let mut ruleset = self.ruleset(user_id).await?;
        ruleset.get(kind.clone(), rule_id).ok_or_else(|| ApiError::not_found("Unknown push rule"))?;
        ruleset.remove(kind, rule_id).map_err(|error| ApiError::invalid_param(error.to_string()))?;
        self.save(user_id, &ruleset).await
    }

    pub async fn set_enabled(
        &self,
        user_id: &str,
        scope_name: &str,
        kind_name: &str,
        rule_id: &str,
        enabled: bool,
    ) -> ApiResult<()> {
        scope(scope_name)?;
        let mut ruleset = self.ruleset(user_id).await?;
        ruleset
            .set_enabled(kind(kind_name)?, rule_id, enabled)
            .map_err(|_| ApiError::not_found("Unknown push rule"))?;
        self.save(user_id, &ruleset).await
    }

    pub async fn set_actions(
        &self,
        user_id: &str,
        scope_name: &str,
        kind_name: &str,
        rule_id: &str,
        actions: &Value,
    ) -> ApiResult<()> {
        scope(scope_name)?;
        let actions: Vec<Action> = serde_json::from_value(actions.clone())
            .map_err(|_| ApiError::bad_json("'actions' must be a list of push actions"))?;
        let mut ruleset = self.ruleset(user_id).await?;
        ruleset
            .set_actions(kind(kind_name)?, rule_id, actions)
            .map_err(|_| ApiError::not_found("Unknown push rule"))?;
        self.save(user_id, &ruleset).await
    }
}
