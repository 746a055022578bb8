//! GET /_matrix/client/v3/capabilities (spec: Client-Server API § Capabilities negotiation).
//! Only what this server really does is listed; room versions arrive with rooms.

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

use crate::{api::extract::AuthUser, state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/capabilities", get(capabilities))
}

async fn capabilities(_user: AuthUser) -> Json<Value> {
    Json(json!({
        "capabilities": {
            "m.change_password": {"enabled": true},
            "m.set_displayname": {"enabled": true},
            "m.set_avatar_url": {"enabled": true},
            "m.3pid_changes": {"enabled": false},
            "m.get_login_token": {"enabled": false},
        }
    }))
}
