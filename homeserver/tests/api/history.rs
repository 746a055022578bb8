//! History visibility decided per event: the setting in force when each event was sent and the
//! reader's membership then (spec: Client-Server API § History visibility).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, assert_error, encode, spawn_app, timeline};

both_backends!(each_event_is_judged_by_the_setting_it_was_sent_under, world_readable_rooms_can_be_read_without_joining);

fn bodies(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["content"]["body"].as_str()).collect()
}

async fn each_event_is_judged_by_the_setting_it_was_sent_under(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    let shared_era = app.send_text(&alice.token, &room, "said while shared").await;
    let (status, _) = app
        .put(
            &app.room_path(&room, "state/m.room.history_visibility"),
            Some(&alice.token),
            json!({"history_visibility": "joined"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let joined_era = app.send_text(&alice.token, &room, "said while joined-only").await;
    app.join(&bob.token, &room).await;
    app.send_text(&alice.token, &room, "said to bob").await;

    let (_, page) = app.get(&format!("{}?dir=b&limit=50", app.room_path(&room, "messages")), Some(&bob.token)).await;
    let chunk = page["chunk"].as_array().unwrap();
    assert_eq!(bodies(chunk), vec!["said to bob", "said while shared"], "{page}");
    assert!(
        chunk.iter().any(|e| e["type"] == "m.room.history_visibility"),
        "the change itself is visible by the setting before it"
    );
    assert_eq!(
        app.get(&app.room_path(&room, &format!("event/{}", encode(&shared_era))), Some(&bob.token)).await.0,
        StatusCode::OK
    );
    assert_error(
        &app.get(&app.room_path(&room, &format!("event/{}", encode(&joined_era))), Some(&bob.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let (_, context) = app
        .get(
            &format!("{}?limit=10", app.room_path(&room, &format!("context/{}", encode(&shared_era)))),
            Some(&bob.token),
        )
        .await;
    let after: Vec<serde_json::Value> = context["events_after"].as_array().unwrap().clone();
    assert!(!bodies(&after).contains(&"said while joined-only"), "{context}");

    let sync = app.sync(&bob.token, None, 0).await;
    let events: Vec<serde_json::Value> = timeline(&sync, &room).into_iter().cloned().collect();
    assert!(bodies(&events).contains(&"said while shared") && !bodies(&events).contains(&"said while joined-only"));

    // Alice, joined throughout, sees everything.
    let (_, all) = app.get(&format!("{}?dir=b&limit=50", app.room_path(&room, "messages")), Some(&alice.token)).await;
    assert_eq!(
        bodies(all["chunk"].as_array().unwrap()),
        vec!["said to bob", "said while joined-only", "said while shared"]
    );
}

async fn world_readable_rooms_can_be_read_without_joining(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let room = app
        .create_room(
            &alice.token,
            json!({"preset": "public_chat", "initial_state": [
                {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}]}),
        )
        .await;
    let open = app.send_text(&alice.token, &room, "anyone may read this").await;
    let (status, page) = app.get(&format!("{}?dir=b", app.room_path(&room, "messages")), Some(&carol.token)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(bodies(page["chunk"].as_array().unwrap()), vec!["anyone may read this"]);
    assert_eq!(
        app.get(&app.room_path(&room, &format!("event/{}", encode(&open))), Some(&carol.token)).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get(&app.room_path(&room, "state"), Some(&carol.token)).await.0, StatusCode::OK);
    // Reading is not taking part.
    let txn = "t1";
    assert_error(
        &app.put(
            &app.room_path(&room, &format!("send/m.room.message/{txn}")),
            Some(&carol.token),
            json!({"msgtype": "m.text", "body": "hi"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    // Once the room stops being world-readable, non-members are shut out again.
    app.put(
        &app.room_path(&room, "state/m.room.history_visibility"),
        Some(&alice.token),
        json!({"history_visibility": "shared"}),
    )
    .await;
    assert_error(
        &app.get(&format!("{}?dir=b", app.room_path(&room, "messages")), Some(&carol.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}
