//! The room protocol's inbound routes (spec: Server-Server API § Joining rooms, § Leaving
//! rooms, § Knocking upon a room, § Transactions): make_/send_ join, leave and knock as the
//! room's server, invites for this server's users, and /send transactions
//! carrying other servers' events, each answered with its own result, and their typing and read
//! receipt EDUs.

use axum::{
    Json, Router,
    extract::State,
    http::Uri,
    routing::{get, put},
};
use serde_json::{Map, Value, json};

use super::auth::Signed;
use crate::{
    api::extract::{MatrixPath, query_values},
    error::{ApiError, ApiResult},
    services::{federation::incoming, usernames::server_of},
    state::AppState,
};

/// The spec's limits on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/make_join/{room_id}/{user_id}", get(make_join))
        .route("/_matrix/federation/v2/send_join/{room_id}/{event_id}", put(send_join))
        .route("/_matrix/federation/v1/make_leave/{room_id}/{user_id}", get(make_leave))
        .route("/_matrix/federation/v2/send_leave/{room_id}/{event_id}", put(send_leave))
        .route("/_matrix/federation/v1/make_knock/{room_id}/{user_id}", get(make_knock))
        .route("/_matrix/federation/v1/send_knock/{room_id}/{event_id}", put(send_knock))
        .route("/_matrix/federation/v1/send/{txn_id}", put(send_transaction))
        .route("/_matrix/federation/v2/invite/{room_id}/{event_id}", put(invite))
}

/// The membership template of a make_join, make_leave or make_knock, for one of the asking
/// server's own users.
async fn make_membership(
    state: &AppState,
    origin: &str,
    room_id: &str,
    user_id: &str,
    membership: &str,
    versions: &[String],
) -> ApiResult<Json<Value>> {
    if crate::services::usernames::server_of(user_id) != origin {
        return Err(ApiError::forbidden("You may only ask for your own users"));
    }
    state.rooms.check_server_acl(room_id, origin).await?;
    let (version, event) = state.rooms.make_membership(room_id, user_id, membership, versions).await?;
    Ok(Json(json!({"room_version": version, "event": event})))
}

/// GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…
async fn make_join(
    State(state): State<AppState>,
    MatrixPath((room_id, user_id)): MatrixPath<(String, String)>,
    uri: Uri,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    make_membership(&state, signed.origin.as_str(), &room_id, &user_id, "join", &versions(&uri)).await
}

/// GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
async fn make_leave(
    State(state): State<AppState>,
    MatrixPath((room_id, user_id)): MatrixPath<(String, String)>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    make_membership(&state, signed.origin.as_str(), &room_id, &user_id, "leave", &[]).await
}

/// GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=…
async fn make_knock(
    State(state): State<AppState>,
    MatrixPath((room_id, user_id)): MatrixPath<(String, String)>,
    uri: Uri,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    make_membership(&state, signed.origin.as_str(), &room_id, &user_id, "knock", &versions(&uri)).await
}

/// The room versions a make_join or make_knock says the asking server supports (the spec's
/// default when it names none: version 1).
fn versions(uri: &Uri) -> Vec<String> {
    let versions = query_values(uri, "ver");
    if versions.is_empty() { vec!["1".to_owned()] } else { versions }
}

/// PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}[?omit_members=true]
async fn send_join(
    State(state): State<AppState>,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    uri: Uri,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let omit_members = match query_values(&uri, "omit_members").first().map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid_param("omit_members must be true or false")),
    };
    state.rooms.check_server_acl(&room_id, signed.origin.as_str()).await?;
    let answer =
        state.rooms.receive_join(signed.origin.as_str(), &room_id, &event_id, signed.body, omit_members).await?;
    Ok(Json(answer))
}

/// PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
async fn send_leave(
    State(state): State<AppState>,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    state.rooms.check_server_acl(&room_id, signed.origin.as_str()).await?;
    state.rooms.receive_leave(signed.origin.as_str(), &room_id, &event_id, signed.body).await?;
    Ok(Json(json!({})))
}

/// PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}
async fn send_knock(
    State(state): State<AppState>,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    state.rooms.check_server_acl(&room_id, signed.origin.as_str()).await?;
    Ok(Json(state.rooms.receive_knock(signed.origin.as_str(), &room_id, &event_id, signed.body).await?))
}

/// PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
async fn invite(
    State(state): State<AppState>,
    MatrixPath((room_id, event_id)): MatrixPath<(String, String)>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    // A room this server knows may have shut the inviting server out.
    state.rooms.check_server_acl(&room_id, signed.origin.as_str()).await?;
    let answer = state.rooms.receive_invite(signed.origin.as_str(), &room_id, &event_id, signed.body).await?;
    Ok(Json(answer))
}

/// PUT /_matrix/federation/v1/send/{txnId}: each PDU is checked and taken in on its own; the
/// answer names every PDU with `{}` or its error. Typing and receipt EDUs are taken in.
async fn send_transaction(
    State(state): State<AppState>,
    MatrixPath(_txn_id): MatrixPath<String>,
    signed: Signed<Value>,
) -> ApiResult<Json<Value>> {
    let body = signed.body;
    if body["origin"].as_str().is_some_and(|origin| origin != signed.origin.as_str()) {
        return Err(ApiError::forbidden("The transaction's origin is not the server that signed it"));
    }
    let pdus = body["pdus"].as_array().cloned().unwrap_or_default();
    let edus = body["edus"].as_array().map_or(0, Vec::len);
    if pdus.len() > MAX_PDUS || edus > MAX_EDUS {
        return Err(ApiError::bad_json("A transaction carries at most 50 PDUs and 100 EDUs"));
    }
    let _in_order = state.inbound_transactions.lock(signed.origin.as_str()).await;
    let mut results = Map::new();
    for edu in body["edus"].as_array().into_iter().flatten() {
        take_in_edu(&state, signed.origin.as_str(), edu).await;
    }
    for pdu in pdus {
        let (event_id, outcome) = take_in(&state, signed.origin.as_str(), pdu).await;
        if let Some(event_id) = event_id {
            let result = match outcome {
                Ok(()) => json!({}),
                Err(error) => json!({"error": error}),
            };
            results.insert(event_id, result);
        }
    }
    Ok(Json(json!({"pdus": results})))
}

/// Whether `user_id` belongs to `origin` and is joined to `room_id` (EDUs speak only for the
/// sending server's own users, in rooms they are in).
async fn speaks_for(state: &AppState, origin: &str, room_id: &str, user_id: &str) -> bool {
    crate::services::usernames::server_of(user_id) == origin
        && state.rooms.check_server_acl(room_id, origin).await.is_ok()
        && state.db.membership(room_id, user_id).await.ok().flatten().is_some_and(|m| m.membership == "join")
}

/// One EDU of a transaction: typing, read receipts, presence, to-device messages, device list
/// and cross-signing key changes.
async fn take_in_edu(state: &AppState, origin: &str, edu: &Value) {
    let content = &edu["content"];
    match edu["edu_type"].as_str() {
        Some("m.typing") => {
            let (Some(room_id), Some(user_id)) = (content["room_id"].as_str(), content["user_id"].as_str()) else {
                return;
            };
            if speaks_for(state, origin, room_id, user_id).await {
                let typing = content["typing"].as_bool().unwrap_or(false);
                state.typing.set(room_id, user_id, typing, std::time::Duration::from_secs(30));
            }
        }
        Some("m.receipt") => {
            for (room_id, by_type) in content.as_object().into_iter().flatten() {
                for (user_id, receipt) in by_type["m.read"].as_object().into_iter().flatten() {
                    if !speaks_for(state, origin, room_id, user_id).await {
                        continue;
                    }
                    let ts = receipt["data"]["ts"].as_i64().unwrap_or_else(crate::storage::now_ms);
                    let thread = receipt["data"]["thread_id"].as_str();
                    for event_id in receipt["event_ids"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                        if let Err(error) = state.receipts.store_remote(room_id, user_id, event_id, ts, thread).await {
                            tracing::info!(?error, "a remote receipt was not stored");
                        }
                    }
                }
            }
        }
        Some("m.presence") => {
            if let Err(error) = state.presence.receive_remote(origin, content).await {
                tracing::info!(?error, "remote presence was not stored");
            }
        }
        Some("m.direct_to_device") => {
            if let Err(error) = state.to_device.receive_remote(origin, content).await {
                tracing::info!(?error, "a remote to-device message was not delivered");
            }
        }
        // A remote user's devices or cross-signing keys changed: local members who share a room
        // with them re-query their keys (which go to their server each time).
        Some("m.device_list_update" | "m.signing_key_update") => {
            let user_id = content["user_id"].as_str().unwrap_or_default();
            if crate::services::usernames::server_of(user_id) == origin
                && let Err(error) = state.device_lists.changed(user_id).await
            {
                tracing::info!(?error, "a remote device list change was not recorded");
            }
        }
        _ => {}
    }
}

/// One PDU of a transaction: its event id (when it can be computed) and the outcome.
async fn take_in(state: &AppState, origin: &str, pdu: Value) -> (Option<String>, Result<(), String>) {
    let Some(room_id) = pdu["room_id"].as_str().map(str::to_owned) else {
        return (None, Err("the event has no room_id".into()));
    };
    let rules = match state.rooms.rules(&room_id).await {
        Ok(rules) => rules,
        // A leave ending a local user's invite or knock is all that may come for such a room.
        Err(_) => {
            return match state.rooms.receive_out_of_band(origin, &room_id, pdu).await {
                Ok(event_id) => (Some(event_id), Ok(())),
                Err(error) => (None, Err(error)),
            };
        }
    };
    if let Err(error) = state.rooms.check_server_acl(&room_id, origin).await {
        let event_id = hearth_federation::to_canonical_object(pdu)
            .ok()
            .and_then(|object| hearth_federation::event_id_of(&object, &rules).ok());
        return (event_id.map(|id| id.to_string()), Err(error.message));
    }
    // A membership event for a local user of a room this server has left (an invite withdrawn
    // or a knock refused since) is out of band too.
    let local_target = pdu["type"] == "m.room.member"
        && pdu["state_key"].as_str().is_some_and(|user| server_of(user) == state.config.server_name);
    if local_target && !state.rooms.server_in_room(&room_id).await.unwrap_or(true) {
        return match state.rooms.receive_out_of_band(origin, &room_id, pdu).await {
            Ok(event_id) => (Some(event_id), Ok(())),
            Err(error) => (None, Err(error)),
        };
    }
    let checked = match incoming::check_pdu_naming(&state.remote_keys, pdu, &rules).await {
        Ok(checked) => checked,
        Err((event_id, error)) => return (event_id.map(|id| id.to_string()), Err(error)),
    };
    let event_id = checked.event_id().to_string();
    let outcome = state.rooms.append_remote_from(origin, &checked).await.map_err(|error| error.message);
    (Some(event_id), outcome)
}
