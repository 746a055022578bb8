//! Account data (m.direct, tags, ignoring users), typing, receipts, read markers and presence.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_error, encode, spawn_app, spawn_app_with, timeline};

both_backends!(
    account_data_is_stored_and_synced,
    tags_are_set_and_removed,
    an_ignored_user_is_invisible,
    typing_wakes_sync_and_times_out,
    receipts_show_who_read_what,
    presence_is_shared_with_room_members,
    presence_can_be_switched_off,
);

async fn account_data_is_stored_and_synced(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let since = app.sync(&alice.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let direct = json!({"@bob:localhost": [room]});
    let global = format!("/_matrix/client/v3/user/{}/account_data/m.direct", alice.user_id);
    assert_eq!(app.put(&global, Some(&alice.token), direct.clone()).await.0, StatusCode::OK);
    assert_eq!(app.get(&global, Some(&alice.token)).await.1, direct);
    let per_room =
        format!("/_matrix/client/v3/user/{}/rooms/{}/account_data/org.example.draft", alice.user_id, encode(&room));
    assert_eq!(app.put(&per_room, Some(&alice.token), json!({"text": "half a thought"})).await.0, StatusCode::OK);

    let started = Instant::now();
    let sync = app.sync(&alice.token, Some(&since), 10_000).await;
    assert!(started.elapsed() < Duration::from_secs(5), "account data wakes sync");
    let events = sync["account_data"]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["type"] == "m.direct" && e["content"] == direct), "{sync}");
    let room_data = &sync["rooms"]["join"][&room]["account_data"]["events"];
    assert_eq!(room_data[0]["content"]["text"], "half a thought");

    assert_error(&app.get(&global, Some(&bob.token)).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let missing = format!("/_matrix/client/v3/user/{}/account_data/org.example.none", alice.user_id);
    assert_error(&app.get(&missing, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let not_member = format!("/_matrix/client/v3/user/{}/rooms/{}/account_data/x.y", bob.user_id, encode(&room));
    assert_error(&app.put(&not_member, Some(&bob.token), json!({})).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let managed = format!("/_matrix/client/v3/user/{}/account_data/m.fully_read", alice.user_id);
    assert_error(&app.put(&managed, Some(&alice.token), json!({})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn tags_are_set_and_removed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let base = format!("/_matrix/client/v3/user/{}/rooms/{}/tags", alice.user_id, encode(&room));
    assert_eq!(app.get(&base, Some(&alice.token)).await.1, json!({"tags": {}}));
    assert_eq!(
        app.put(&format!("{base}/m.favourite"), Some(&alice.token), json!({"order": 0.5})).await.0,
        StatusCode::OK
    );
    assert_eq!(app.put(&format!("{base}/u.work"), Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let (_, tags) = app.get(&base, Some(&alice.token)).await;
    assert_eq!(tags, json!({"tags": {"m.favourite": {"order": 0.5}, "u.work": {}}}));
    let sync = app.sync(&alice.token, None, 0).await;
    let tag_event = &sync["rooms"]["join"][&room]["account_data"]["events"][0];
    assert_eq!(tag_event["type"], "m.tag");
    assert_eq!(app.delete(&format!("{base}/u.work"), Some(&alice.token), json!({})).await.0, StatusCode::OK);
    assert_eq!(app.get(&base, Some(&alice.token)).await.1, json!({"tags": {"m.favourite": {"order": 0.5}}}));
    let bad = app.put(&format!("{base}/m.lowpriority"), Some(&alice.token), json!({"order": "first"})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn an_ignored_user_is_invisible(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let troll = app.register("troll").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&troll.token, &room).await;
    let ignore = format!("/_matrix/client/v3/user/{}/account_data/m.ignored_user_list", alice.user_id);
    assert_eq!(
        app.put(&ignore, Some(&alice.token), json!({"ignored_users": {troll.user_id.clone(): {}}})).await.0,
        StatusCode::OK
    );
    app.send_text(&troll.token, &room, "spam spam").await;
    let kept = app.send_text(&alice.token, &room, "hello world").await;
    let sync = app.sync(&alice.token, None, 0).await;
    let events = timeline(&sync, &room);
    assert!(events.iter().any(|e| e["event_id"] == kept.as_str()));
    assert!(!events.iter().any(|e| e["content"]["body"] == "spam spam"), "an ignored user's messages are hidden");
    let (_, page) = app.get(&format!("{}?dir=b&limit=50", app.room_path(&room, "messages")), Some(&alice.token)).await;
    assert!(!page["chunk"].as_array().unwrap().iter().any(|e| e["content"]["body"] == "spam spam"));
    // Invites from an ignored user never arrive.
    let trap = app.create_room(&troll.token, json!({"invite": [alice.user_id]})).await;
    let sync = app.sync(&alice.token, None, 0).await;
    assert!(sync["rooms"]["invite"].get(&trap).is_none(), "{sync}");
}

async fn typing_wakes_sync_and_times_out(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let since = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let typing_path = app.room_path(&room, &format!("typing/{}", alice.user_id));
    let (sync, _) = tokio::join!(app.sync(&bob.token, Some(&since), 10_000), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.put(&typing_path, Some(&alice.token), json!({"typing": true, "timeout": 1000})).await
    });
    let ephemeral = &sync["rooms"]["join"][&room]["ephemeral"]["events"];
    assert_eq!(ephemeral[0], json!({"type": "m.typing", "content": {"user_ids": [alice.user_id]}}), "{sync}");
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    let sync = app.sync(&bob.token, Some(&since), 5_000).await;
    assert_eq!(
        sync["rooms"]["join"][&room]["ephemeral"]["events"][0]["content"]["user_ids"],
        json!([]),
        "typing ends after its timeout"
    );

    let other = app.room_path(&room, &format!("typing/{}", bob.user_id));
    assert_error(
        &app.put(&other, Some(&alice.token), json!({"typing": true})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let outsider = app.room_path(&room, &format!("typing/{}", eve.user_id));
    assert_error(
        &app.put(&outsider, Some(&eve.token), json!({"typing": true})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

async fn receipts_show_who_read_what(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let message = app.send_text(&alice.token, &room, "did you read this?").await;
    let since = app.sync(&alice.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let path = app.room_path(&room, &format!("receipt/m.read/{}", encode(&message)));
    assert_eq!(app.post(&path, Some(&bob.token), json!({})).await.0, StatusCode::OK);
    let private = app.room_path(&room, &format!("receipt/m.read.private/{}", encode(&message)));
    assert_eq!(app.post(&private, Some(&bob.token), json!({})).await.0, StatusCode::OK);

    let sync = app.sync(&alice.token, Some(&since), 10_000).await;
    let receipt = sync["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .cloned()
        .unwrap_or_else(|| panic!("{sync}"));
    assert!(receipt["content"][&message]["m.read"][&bob.user_id]["ts"].as_i64().unwrap() > 0);
    assert!(receipt["content"][&message].get("m.read.private").is_none(), "private receipts stay private");
    let own = app.sync(&bob.token, None, 0).await;
    let own_receipts = own["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .cloned()
        .unwrap();
    assert!(own_receipts["content"][&message]["m.read.private"][&bob.user_id].is_object());

    let markers = app
        .post(
            &app.room_path(&room, "read_markers"),
            Some(&bob.token),
            json!({"m.fully_read": message, "m.read": message}),
        )
        .await;
    assert_eq!(markers.0, StatusCode::OK);
    let marker = format!("/_matrix/client/v3/user/{}/rooms/{}/account_data/m.fully_read", bob.user_id, encode(&room));
    assert_eq!(app.get(&marker, Some(&bob.token)).await.1, json!({"event_id": message}));
    let threaded = app.post(&path, Some(&bob.token), json!({"thread_id": "main"})).await;
    assert_eq!(threaded.0, StatusCode::OK);

    let bogus = app.room_path(&room, "receipt/m.read/%24nope");
    assert_error(&app.post(&bogus, Some(&bob.token), json!({})).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let bad_type = app.room_path(&room, &format!("receipt/m.seen/{}", encode(&message)));
    assert_error(&app.post(&bad_type, Some(&bob.token), json!({})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

async fn presence_is_shared_with_room_members(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let stranger = app.register("stranger").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let since = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let path = format!("/_matrix/client/v3/presence/{}/status", alice.user_id);
    let set =
        app.put(&path, Some(&alice.token), json!({"presence": "unavailable", "status_msg": "in a meeting"})).await;
    assert_eq!(set.0, StatusCode::OK);
    let (status, presence) = app.get(&path, Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(presence["presence"], "unavailable");
    assert_eq!(presence["status_msg"], "in a meeting");
    assert!(presence["last_active_ago"].as_i64().unwrap() >= 0);

    let sync = app.sync(&bob.token, Some(&since), 10_000).await;
    let events: &Vec<Value> = sync["presence"]["events"].as_array().unwrap();
    let alices = events.iter().find(|e| e["sender"] == alice.user_id.as_str()).unwrap_or_else(|| panic!("{sync}"));
    assert_eq!(alices["content"]["presence"], "unavailable");
    let strangers_view = app.sync(&stranger.token, None, 0).await;
    assert!(
        !strangers_view["presence"]["events"].as_array().unwrap().iter().any(|e| e["sender"] == alice.user_id.as_str())
    );

    assert_error(
        &app.put(&path, Some(&bob.token), json!({"presence": "online"})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &app.put(
            &format!("/_matrix/client/v3/presence/{}/status", bob.user_id),
            Some(&bob.token),
            json!({"presence": "busy"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    // A sync marks its user online.
    let _ = app.sync(&bob.token, None, 0).await;
    let (_, bobs) = app.get(&format!("/_matrix/client/v3/presence/{}/status", bob.user_id), Some(&alice.token)).await;
    assert_eq!(bobs["presence"], "online");
}

async fn presence_can_be_switched_off(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.presence.enabled = false).await else { return };
    let alice = app.register("alice").await;
    let path = format!("/_matrix/client/v3/presence/{}/status", alice.user_id);
    assert_error(&app.get(&path, Some(&alice.token)).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_error(
        &app.put(&path, Some(&alice.token), json!({"presence": "online"})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_eq!(app.sync(&alice.token, None, 0).await["presence"]["events"], json!([]));
}
