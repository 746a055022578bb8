//! POST /search (spec: Client-Server API § Server Side Search).

use axum::{Json, Router, extract::State, routing::post};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    api::extract::{AuthUser, MatrixJson, MatrixQuery},
    error::{ApiError, ApiResult},
    services::rooms::search::RoomEventsSearch,
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
    filter: Option<SearchFilter>,
    order_by: Option<String>,
    event_context: Option<EventContext>,
}

#[derive(Deserialize)]
struct SearchFilter {
    rooms: Option<Vec<String>>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct EventContext {
    before_limit: Option<i64>,
    after_limit: Option<i64>,
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
    let request = RoomEventsSearch {
        search_term: criteria.search_term,
        keys: criteria.keys,
        rooms: criteria.filter.as_ref().and_then(|f| f.rooms.clone()),
        limit: criteria.filter.as_ref().and_then(|f| f.limit),
        order_by_recent,
        context: criteria.event_context.map(|c| (c.before_limit.unwrap_or(5), c.after_limit.unwrap_or(5))),
        next_batch: query.next_batch,
    };
    Ok(Json(state.rooms.search(&user.user_id, request).await?))
}
