//! GET /_matrix/client/v3/capabilities (spec: Client-Server API § Capabilities negotiation).
//! Only what this server really does is listed.

use axum::{Json, Router, extract::State, routing::get};
use hearth_federation::room_versions::SUPPORTED_ROOM_VERSIONS;
use serde_json::{Value, json};

use crate::{api::extract::AuthUser, state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/capabilities", get(capabilities))
}

async fn capabilities(State(state): State<AppState>, _user: AuthUser) -> Json<Value> {
    let available: serde_json::Map<String, Value> =
        SUPPORTED_ROOM_VERSIONS.iter().map(|version| ((*version).to_owned(), json!("stable"))).collect();
    Json(json!({
        "capabilities": {
            "m.room_versions": {"default": state.config.rooms.default_version, "available": available},
            "m.change_password": {"enabled": true},
            "m.set_displayname": {"enabled": true},
            "m.set_avatar_url": {"enabled": true},
            "m.3pid_changes": {"enabled": false},
            "m.get_login_token": {"enabled": false},
        }
    }))
}
