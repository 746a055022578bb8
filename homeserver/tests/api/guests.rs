//! Guest accounts (spec: Client-Server API § Guest access).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, Session, assert_error, session_from, spawn_app, spawn_app_with, timeline};

both_backends!(guests_are_refused_unless_enabled, guests_join_rooms_open_to_guests_and_may_upgrade);

async fn guests_are_refused_unless_enabled(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.post("/_matrix/client/v3/register?kind=guest", None, json!({})).await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN");
}

async fn guests_join_rooms_open_to_guests_and_may_upgrade(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.registration.guests = true).await else { return };
    let alice = app.register("alice").await;
    let (status, body) = app.post("/_matrix/client/v3/register?kind=guest", None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let guest: Session = session_from(&body);
    let (_, whoami) = app.get("/_matrix/client/v3/account/whoami", Some(&guest.token)).await;
    assert_eq!(whoami["user_id"], guest.user_id.as_str());

    // Guests cannot create rooms or join rooms that do not allow guests.
    assert_error(
        &app.post("/_matrix/client/v3/createRoom", Some(&guest.token), json!({})).await,
        StatusCode::FORBIDDEN,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    let closed = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    assert_error(&app.join(&guest.token, &closed).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let open = app
        .create_room(
            &alice.token,
            json!({"preset": "public_chat", "initial_state": [
                {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}}]}),
        )
        .await;
    assert_eq!(app.join(&guest.token, &open).await.0, StatusCode::OK);
    app.send_text(&guest.token, &open, "hello from a guest").await;
    let sync = app.sync(&alice.token, None, 0).await;
    assert!(timeline(&sync, &open).iter().any(|e| e["content"]["body"] == "hello from a guest"));

    // Closing the room to guests makes them leave.
    let (status, _) = app
        .put(
            &app.room_path(&open, "state/m.room.guest_access"),
            Some(&alice.token),
            json!({"guest_access": "forbidden"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, members) = app.get(&app.room_path(&open, "joined_members"), Some(&alice.token)).await;
    assert!(members["joined"].get(&guest.user_id).is_none(), "{members}");

    // Upgrading keeps the user id and gives the account a password.
    let localpart = guest.user_id[1..].split(':').next().unwrap().to_owned();
    let (status, upgraded) = app
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": localpart, "password": PASSWORD, "guest_access_token": guest.token, "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{upgraded}");
    assert_eq!(upgraded["user_id"], guest.user_id.as_str());
    let full = session_from(&upgraded);
    assert_eq!(app.post("/_matrix/client/v3/createRoom", Some(&full.token), json!({})).await.0, StatusCode::OK);
    assert_eq!(app.login(&localpart, PASSWORD).await.0, StatusCode::OK);
}
