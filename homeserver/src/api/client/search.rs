//! POST /search (spec: Client-Server API § Server Side Search).

use axum::{Json, Router, extract::State, routing::post};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixQuery},
    error::{ApiError, ApiResult},
    services::{rooms::search::RoomEventsSearch, sync::filter::EventFilter},
    state::AppState,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/search", post(search))
}

#[derive(Deserialize)]
struct SearchBody {
    search_categories: Categories,
}

#[derive(Deserialize)]
struct Categories {
    room_events: Option<RoomEventsCriteria>,
}

#[derive(Deserialize)]
struct RoomEventsCriteria {
    search_term: String,
    keys: Option<Vec<String>>,
    filter: Option<Value>,
    order_by: Option<String>,
    event_context: Option<EventContext>,
    include_state: Option<bool>,
    groupings: Option<Groupings>,
}

#[derive(Deserialize)]
struct EventContext {
    before_limit: Option<i64>,
    after_limit: Option<i64>,
    include_profile: Option<bool>,
}

#[derive(Deserialize)]
struct Groupings {
    group_by: Option<Vec<Group>>,
}

#[derive(Deserialize)]
struct Group {
    key: Option<String>,
}

#[derive(Deserialize)]
struct SearchQuery {
    next_batch: Option<String>,
}

/// POST /search
async fn search(
    State(state): State<AppState>,
    user: AuthUser,
    MatrixQuery(query): MatrixQuery<SearchQuery>,
    MatrixJson(body): MatrixJson<SearchBody>,
) -> ApiResult<Json<Value>> {
    let Some(criteria) = body.search_categories.room_events else {
        return Ok(Json(serde_json::json!({"search_categories": {}})));
    };
    let order_by_recent = match criteria.order_by.as_deref() {
        None | Some("rank") => false,
        Some("recent") => true,
        Some(_) => return Err(ApiError::invalid_param("order_by must be 'rank' or 'recent'")),
    };
    let filter = criteria.filter.unwrap_or(Value::Null);
    if !(filter.is_null() || filter.is_object()) {
        return Err(ApiError::bad_json("filter must be an object"));
    }
    let mut group_by = Vec::new();
    for group in criteria.groupings.and_then(|g| g.group_by).unwrap_or_default() {
        match group.key.as_deref() {
            Some(key @ ("room_id" | "sender")) => group_by.push(key.to_owned()),
            _ => return Err(ApiError::invalid_param("groupings may group by room_id or sender")),
        }
    }
    let include_profile = criteria.event_context.as_ref().and_then(|c| c.include_profile).unwrap_or(false);
    let request = RoomEventsSearch {
        search_term: criteria.search_term,
        keys: criteria.keys,
        rooms: filter["rooms"]
            .as_array()
            .map(|rooms| rooms.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect()),
        limit: filter["limit"].as_i64(),
        filter: EventFilter::from_json(&filter),
        order_by_recent,
        context: criteria.event_context.map(|c| (c.before_limit.unwrap_or(5), c.after_limit.unwrap_or(5))),
        include_profile,
        include_state: criteria.include_state.unwrap_or(false),
        group_by,
        next_batch: query.next_batch,
    };
    Ok(Json(state.rooms.search(&user.user_id, request).await?))
}
