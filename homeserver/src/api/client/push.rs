//! Push rules, notifications and pushers (spec: Client-Server API § Push Notifications).

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixPath, MatrixQuery},
    error::{ApiError, ApiResult},
    services::sync::token::StreamToken,
    state::AppState,
    storage::push::PusherRow,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pushrules/", get(all_rules))
        .route("/pushrules/{scope}/", get(scope_rules))
        .route("/pushrules/{scope}/{kind}/{rule_id}", get(get_rule).put(put_rule).delete(delete_rule))
        .route("/pushrules/{scope}/{kind}/{rule_id}/enabled", get(get_enabled).put(put_enabled))
        .route("/pushrules/{scope}/{kind}/{rule_id}/actions", get(get_actions).put(put_actions))
        .route("/notifications", get(notifications))
        .route("/pushers", get(pushers))
        .route("/pushers/set", post(set_pusher))
}

/// GET /pushrules/
async fn all_rules(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    Ok(Json(state.push_rules.content(&user.user_id).await?))
}

/// GET /pushrules/global/
async fn scope_rules(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath(scope): MatrixPath<String>,
) -> ApiResult<Json<Value>> {
    if scope != "global" {
        return Err(ApiError::invalid_param("The only push rule scope is 'global'"));
    }
    Ok(Json(state.push_rules.content(&user.user_id).await?["global"].clone()))
}

/// GET /pushrules/global/{kind}/{ruleId}
async fn get_rule(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.push_rules.get_rule(&user.user_id, &scope, &kind, &rule_id).await?))
}

#[derive(Deserialize)]
struct Placement {
    before: Option<String>,
    after: Option<String>,
}

/// PUT /pushrules/global/{kind}/{ruleId}
async fn put_rule(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
    MatrixQuery(placement): MatrixQuery<Placement>,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let body = Value::Object(body);
    state
        .push_rules
        .put_rule(
            &user.user_id,
            &scope,
            &kind,
            &rule_id,
            &body,
            placement.before.as_deref(),
            placement.after.as_deref(),
        )
        .await?;
    Ok(Json(json!({})))
}

/// DELETE /pushrules/global/{kind}/{ruleId}
async fn delete_rule(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    state.push_rules.delete_rule(&user.user_id, &scope, &kind, &rule_id).await?;
    Ok(Json(json!({})))
}

/// GET /pushrules/global/{kind}/{ruleId}/enabled
async fn get_enabled(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let rule = state.push_rules.get_rule(&user.user_id, &scope, &kind, &rule_id).await?;
    Ok(Json(json!({"enabled": rule["enabled"]})))
}

#[derive(Deserialize)]
struct EnabledBody {
    enabled: bool,
}

/// PUT /pushrules/global/{kind}/{ruleId}/enabled
async fn put_enabled(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
    MatrixJson(body): MatrixJson<EnabledBody>,
) -> ApiResult<Json<Value>> {
    state.push_rules.set_enabled(&user.user_id, &scope, &kind, &rule_id, body.enabled).await?;
    Ok(Json(json!({})))
}

/// GET /pushrules/global/{kind}/{ruleId}/actions
async fn get_actions(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let rule = state.push_rules.get_rule(&user.user_id, &scope, &kind, &rule_id).await?;
    Ok(Json(json!({"actions": rule["actions"]})))
}

/// PUT /pushrules/global/{kind}/{ruleId}/actions
async fn put_actions(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixPath((scope, kind, rule_id)): MatrixPath<(String, String, String)>,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let actions = body.get("actions").ok_or_else(|| ApiError::missing_param("'actions' is required"))?;
    state.push_rules.set_actions(&user.user_id, &scope, &kind, &rule_id, actions).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct NotificationsQuery {
    from: Option<String>,
    limit: Option<String>,
    only: Option<String>,
}

/// GET /notifications
async fn notifications(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(query): MatrixQuery<NotificationsQuery>,
) -> ApiResult<Json<Value>> {
    let before = match query.from.as_deref() {
        Some(token) => StreamToken::parse(token)?.0,
        None => i64::MAX,
    };
    let limit = match query.limit.as_deref() {
        Some(limit) => {
            limit.parse::<i64>().map_err(|_| ApiError::invalid_param("limit must be an integer"))?.clamp(1, 100)
        }
        None => 20,
    };
    let only_highlight = query.only.as_deref() == Some("highlight");
    let rows = state.db.notifications(&user.user_id, before, limit, only_highlight).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    let events = state.db.events(&ids).await?;
    let formatted = state.rooms.format_events(&events, false).await?;
    let by_id: std::collections::HashMap<&str, &Value> =
        events.iter().map(|e| e.event_id.as_str()).zip(formatted.iter()).collect();
    let notifications: Vec<Value> = rows
        .iter()
        .filter_map(|row| {
            let event = by_id.get(row.event_id.as_str())?;
            Some(json!({
                "actions": serde_json::from_str::<Value>(&row.actions).unwrap_or_default(),
                "event": event,
                "read": row.read,
                "room_id": row.room_id,
                "ts": event["origin_server_ts"],
            }))
        })
        .collect();
    let mut body = json!({"notifications": notifications});
    if rows.len() as i64 == limit
        && let Some(last) = rows.last()
    {
        body["next_token"] = StreamToken(last.stream).to_string().into();
    }
    Ok(Json(body))
}

/// GET /pushers
async fn pushers(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Value>> {
    let pushers: Vec<Value> = state
        .db
        .pushers(&user.user_id)
        .await?
        .into_iter()
        .map(|p| {
            let mut pusher = json!({
                "app_id": p.app_id,
                "pushkey": p.pushkey,
                "kind": p.kind,
                "app_display_name": p.app_display_name,
                "device_display_name": p.device_display_name,
                "lang": p.lang,
                "data": serde_json::from_str::<Value>(&p.data).unwrap_or_default(),
            });
            if let Some(tag) = p.profile_tag {
                pusher["profile_tag"] = tag.into();
            }
            pusher
        })
        .collect();
    Ok(Json(json!({"pushers": pushers})))
}

#[derive(Deserialize)]
struct PusherBody {
    pushkey: String,
    kind: Option<String>,
    app_id: String,
    app_display_name: Option<String>,
    device_display_name: Option<String>,
    profile_tag: Option<String>,
    lang: Option<String>,
    data: Option<Map<String, Value>>,
    #[serde(default)]
    append: bool,
}

/// POST /pushers/set — `kind: null` deletes the pusher.
async fn set_pusher(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixJson(body): MatrixJson<PusherBody>,
) -> ApiResult<Json<Value>> {
    if body.app_id.is_empty() || body.app_id.len() > 64 || body.pushkey.is_empty() || body.pushkey.len() > 512 {
        return Err(ApiError::invalid_param("app_id (max 64) and pushkey (max 512) must be non-empty"));
    }
    let Some(kind) = body.kind else {
        state.db.delete_pusher(&user.user_id, &body.app_id, &body.pushkey).await?;
        return Ok(Json(json!({})));
    };
    if !matches!(kind.as_str(), "http" | "email") {
        return Err(ApiError::invalid_param("kind must be 'http' or 'email'"));
    }
    let data = body.data.unwrap_or_default();
    if kind == "http" {
        let url = data
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing_param("data.url is required for http pushers"))?;
        if !(url.starts_with("https://") || url.starts_with("http://")) || !url.ends_with("/_matrix/push/v1/notify") {
            return Err(ApiError::invalid_param("data.url must be an http(s) URL ending in /_matrix/push/v1/notify"));
        }
    }
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| ApiError::missing_param(format!("'{name}' is required")))
    };
    let pusher = PusherRow {
        app_id: body.app_id,
        pushkey: body.pushkey,
        kind,
        app_display_name: required(body.app_display_name, "app_display_name")?,
        device_display_name: required(body.device_display_name, "device_display_name")?,
        profile_tag: body.profile_tag,
        lang: required(body.lang, "lang")?,
        data: serde_json::to_string(&data).map_err(ApiError::internal)?,
    };
    state.db.set_pusher(&user.user_id, &pusher, body.append).await?;
    Ok(Json(json!({})))
}
