//! What happens to media after upload: a redacted message's image becomes unreachable to
//! everyone and its bytes go after the grace period, unless something else still uses it (an
//! avatar, another message); profile avatars flow into rooms; admins quarantine and delete.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, Session, Storage, TestApp, encode, spawn_app_on, timeline},
    media::{png, upload},
};

media_backends!(
    redacting_a_message_removes_its_media_unless_used_elsewhere,
    avatars_reach_rooms_and_admins_moderate_media
);

async fn status_of(app: &TestApp, user: &Session, uri: &str, what: &str) -> StatusCode {
    let path = uri.strip_prefix("mxc://").unwrap();
    let query = if what == "thumbnail" { "?width=32&height=32&method=crop" } else { "" };
    app.client
        .get(format!("{}/_matrix/client/v1/media/{what}/{path}{query}", app.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn send_image(app: &TestApp, user: &Session, room: &str, uri: &str, txn: &str) -> String {
    let (status, body) = app
        .put(
            &app.room_path(room, &format!("send/m.room.message/{txn}")),
            Some(&user.token),
            json!({"msgtype": "m.image", "body": "cat.png", "url": uri, "info": {"mimetype": "image/png"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

async fn redact(app: &TestApp, user: &Session, room: &str, event_id: &str) {
    let txn = hearth::services::tokens::generate_session_id();
    let (status, body) = app
        .put(&app.room_path(room, &format!("redact/{}/{txn}", encode(event_id))), Some(&user.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Waits (bounded) for the cleanup task to remove the bytes, as the admin API reports it.
async fn bytes_removed(app: &TestApp, admin: &Session, uri: &str) -> bool {
    let path = uri.strip_prefix("mxc://").unwrap();
    for _ in 0..100 {
        let (_, info) = app.get(&format!("/_hearth/admin/v1/media/{path}"), Some(&admin.token)).await;
        if info["bytes_removed"] == true {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

async fn redacting_a_message_removes_its_media_unless_used_elsewhere(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |config| {
        config.media.redacted_grace_period_ms = 0;
        config.media.cleanup_interval_ms = 50;
        config.admin.users = vec!["@admin:localhost".into()];
    })
    .await
    else {
        return;
    };
    let admin = app.register("admin").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;

    let (_, body) = upload(&app, &alice, "image/png", Some("cat.png"), png(64, 64)).await;
    let uri = body["content_uri"].as_str().unwrap().to_owned();
    let event = send_image(&app, &alice, &room, &uri, "t1").await;
    assert_eq!(status_of(&app, &bob, &uri, "download").await, StatusCode::OK);
    assert_eq!(status_of(&app, &bob, &uri, "thumbnail").await, StatusCode::OK);
    redact(&app, &alice, &room, &event).await;
    for user in [&alice, &bob] {
        assert_eq!(status_of(&app, user, &uri, "download").await, StatusCode::NOT_FOUND);
        assert_eq!(status_of(&app, user, &uri, "thumbnail").await, StatusCode::NOT_FOUND);
    }
    assert!(bytes_removed(&app, &admin, &uri).await, "the bytes go after the grace period");
    if storage == Storage::Local {
        let path = uri.strip_prefix("mxc://localhost/").unwrap();
        let file = app.data_dir().join(format!("media/localhost/{}/{}/{}", &path[..2], &path[2..4], &path[4..]));
        assert!(!file.exists(), "{file:?} is gone");
    }

    // The same image in two messages: deleting one leaves it to the other.
    let (_, body) = upload(&app, &alice, "image/png", Some("dog.png"), png(64, 64)).await;
    let shared = body["content_uri"].as_str().unwrap().to_owned();
    let first = send_image(&app, &alice, &room, &shared, "t2").await;
    let second = send_image(&app, &bob, &room, &shared, "t3").await;
    redact(&app, &alice, &room, &first).await;
    assert_eq!(status_of(&app, &bob, &shared, "download").await, StatusCode::OK, "still in the other message");
    redact(&app, &bob, &room, &second).await;
    assert_eq!(status_of(&app, &bob, &shared, "download").await, StatusCode::NOT_FOUND);
}

async fn avatars_reach_rooms_and_admins_moderate_media(backend: Backend, storage: Storage) {
    let Some(app) = spawn_app_on(backend, storage, |config| {
        config.media.redacted_grace_period_ms = 0;
        config.admin.users = vec!["@admin:localhost".into()];
    })
    .await
    else {
        return;
    };
    let admin = app.register("admin").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let since = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();

    let (_, body) = upload(&app, &alice, "image/png", Some("me.png"), png(96, 96)).await;
    let avatar = body["content_uri"].as_str().unwrap().to_owned();
    let (status, _) = app
        .put(
            &format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id),
            Some(&alice.token),
            json!({"avatar_url": avatar}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, profile) = app.get(&format!("/_matrix/client/v3/profile/{}", alice.user_id), Some(&bob.token)).await;
    assert_eq!(profile["avatar_url"], avatar.as_str());
    // Her member event in the room carries it, so clients show it beside her messages.
    let sync = app.sync(&bob.token, Some(&since), 5000).await;
    let member = timeline(&sync, &room)
        .into_iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(member["content"]["avatar_url"], avatar.as_str(), "{sync}");
    // Deleting a message showing the avatar does not take the avatar away.
    let event = send_image(&app, &alice, &room, &avatar, "a1").await;
    redact(&app, &alice, &room, &event).await;
    assert_eq!(status_of(&app, &bob, &avatar, "download").await, StatusCode::OK);

    // A room avatar, likewise: the group's picture stays while a message showing it is deleted.
    let (_, body) = upload(&app, &alice, "image/png", Some("group.png"), png(128, 128)).await;
    let picture = body["content_uri"].as_str().unwrap().to_owned();
    let (status, body) =
        app.put(&app.room_path(&room, "state/m.room.avatar"), Some(&alice.token), json!({"url": picture})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, state) = app.get(&app.room_path(&room, "state/m.room.avatar"), Some(&bob.token)).await;
    assert_eq!(state["url"], picture.as_str());
    let event = send_image(&app, &alice, &room, &picture, "a2").await;
    redact(&app, &alice, &room, &event).await;
    assert_eq!(status_of(&app, &bob, &picture, "download").await, StatusCode::OK);
    assert_eq!(status_of(&app, &bob, &picture, "thumbnail").await, StatusCode::OK);

    // Admins moderate; others may not.
    let path = avatar.strip_prefix("mxc://").unwrap().to_owned();
    let denied = app.post(&format!("/_hearth/admin/v1/media/{path}/quarantine"), Some(&bob.token), json!({})).await;
    crate::helpers::assert_error(&denied, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, _) =
        app.post(&format!("/_hearth/admin/v1/media/{path}/quarantine"), Some(&admin.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, &bob, &avatar, "download").await, StatusCode::NOT_FOUND);
    let (_, info) = app.get(&format!("/_hearth/admin/v1/media/{path}"), Some(&admin.token)).await;
    assert_eq!(info["quarantined"], true);
    assert_eq!(info["uploader"], alice.user_id.as_str());

    let (_, body) = upload(&app, &alice, "text/plain", None, b"delete me".to_vec()).await;
    let doomed = body["content_uri"].as_str().unwrap().to_owned();
    let (status, _) = app
        .request(
            reqwest::Method::DELETE,
            &format!("/_hearth/admin/v1/media/{}", doomed.strip_prefix("mxc://").unwrap()),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_of(&app, &alice, &doomed, "download").await, StatusCode::NOT_FOUND);
    let missing =
        app.post("/_hearth/admin/v1/media/localhost/nosuchmedia/quarantine", Some(&admin.token), json!({})).await;
    crate::helpers::assert_error(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}
