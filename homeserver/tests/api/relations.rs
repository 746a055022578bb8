//! Relations: edits, reactions, threads and references, bundled aggregations, /relations and
//! /threads.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_error, encode, spawn_app};

both_backends!(
    edits_threads_and_references_are_bundled_and_listed,
    relations_respect_visibility_and_redaction,
    recursive_relations_follow_reactions_to_thread_replies,
);

async fn send(app: &crate::helpers::TestApp, token: &str, room: &str, event_type: &str, content: Value) -> String {
    let txn = hearth::services::tokens::generate_session_id();
    let (status, body) = app.put(&app.room_path(room, &format!("send/{event_type}/{txn}")), Some(token), content).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

async fn edits_threads_and_references_are_bundled_and_listed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let root = app.send_text(&alice.token, &room, "teh root").await;
    let edit = send(
        &app,
        &alice.token,
        &room,
        "m.room.message",
        json!({
        "msgtype": "m.text", "body": "* the root", "m.new_content": {"msgtype": "m.text", "body": "the root"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}}),
    )
    .await;
    // An "edit" by someone else is not an edit.
    send(
        &app,
        &bob.token,
        &room,
        "m.room.message",
        json!({
        "msgtype": "m.text", "body": "* hijacked", "m.new_content": {"msgtype": "m.text", "body": "hijacked"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}}),
    )
    .await;
    let reply1 = send(
        &app,
        &bob.token,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    .await;
    let reply2 = send(
        &app,
        &alice.token,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "thread 2", "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    .await;
    let reaction = send(
        &app,
        &bob.token,
        &room,
        "m.reaction",
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "🎉"}}),
    )
    .await;
    let reference = send(&app, &bob.token, &room, "m.room.message", json!({"msgtype": "m.text", "body": "see above", "m.relates_to": {"rel_type": "m.reference", "event_id": root}})).await;

    let (_, event) = app.get(&app.room_path(&room, &format!("event/{}", encode(&root))), Some(&bob.token)).await;
    let bundle = &event["unsigned"]["m.relations"];
    assert_eq!(bundle["m.replace"]["event_id"], edit.as_str(), "{event}");
    assert_eq!(bundle["m.thread"]["count"], 2);
    assert_eq!(bundle["m.thread"]["latest_event"]["event_id"], reply2.as_str());
    assert_eq!(bundle["m.thread"]["current_user_participated"], true);
    assert_eq!(bundle["m.reference"]["chunk"], json!([{"event_id": reference}]));
    // Sync bundles the same way.
    let sync = app.sync(&bob.token, None, 0).await;
    let synced = crate::helpers::timeline(&sync, &room).into_iter().find(|e| e["event_id"] == root.as_str());
    if let Some(synced) = synced {
        assert_eq!(synced["unsigned"]["m.relations"]["m.thread"]["count"], 2);
    }

    let base = format!("/_matrix/client/v1/rooms/{}/relations/{}", encode(&room), encode(&root));
    let (status, all) = app.get(&base, Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["chunk"].as_array().unwrap().len(), 6);
    assert_eq!(all["chunk"][0]["event_id"], reference.as_str(), "newest first by default");
    let (_, reactions) = app.get(&format!("{base}/m.annotation/m.reaction"), Some(&bob.token)).await;
    assert_eq!(reactions["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(reactions["chunk"][0]["event_id"], reaction.as_str());
    let (_, thread) = app.get(&format!("{base}/m.thread?dir=f&limit=1"), Some(&bob.token)).await;
    assert_eq!(thread["chunk"][0]["event_id"], reply1.as_str());
    let next = thread["next_batch"].as_str().unwrap();
    let (_, thread2) = app.get(&format!("{base}/m.thread?dir=f&limit=1&from={next}"), Some(&bob.token)).await;
    assert_eq!(thread2["chunk"][0]["event_id"], reply2.as_str());

    let (status, threads) =
        app.get(&format!("/_matrix/client/v1/rooms/{}/threads", encode(&room)), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(threads["chunk"][0]["event_id"], root.as_str());
    assert_eq!(threads["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"], 2);
    let carol = app.register("carol").await;
    app.join(&carol.token, &room).await;
    let (_, mine) = app
        .get(&format!("/_matrix/client/v1/rooms/{}/threads?include=participated", encode(&room)), Some(&carol.token))
        .await;
    assert_eq!(mine["chunk"], json!([]));
}

async fn relations_respect_visibility_and_redaction(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let root = app.send_text(&alice.token, &room, "root").await;
    let reply = send(
        &app,
        &alice.token,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "t", "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    .await;
    let base = format!("/_matrix/client/v1/rooms/{}/relations/{}", encode(&room), encode(&root));
    assert_error(&app.get(&base, Some(&eve.token)).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_error(
        &app.get(&format!("/_matrix/client/v1/rooms/{}/threads", encode(&room)), Some(&eve.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let missing = format!("/_matrix/client/v1/rooms/{}/relations/%24missing", encode(&room));
    assert_error(&app.get(&missing, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Redacting the reply removes it from the thread.
    let (status, _) =
        app.put(&app.room_path(&room, &format!("redact/{}/r1", encode(&reply))), Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = app.get(&base, Some(&alice.token)).await;
    assert_eq!(all["chunk"], json!([]));
    let (_, event) = app.get(&app.room_path(&room, &format!("event/{}", encode(&root))), Some(&alice.token)).await;
    assert!(event["unsigned"].get("m.relations").is_none(), "{event}");
}

async fn recursive_relations_follow_reactions_to_thread_replies(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let root = app.send_text(&alice.token, &room, "root").await;
    let reply = send(
        &app,
        &alice.token,
        &room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    .await;
    let reaction = send(
        &app,
        &alice.token,
        &room,
        "m.reaction",
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": reply, "key": "👍"}}),
    )
    .await;
    let path = format!("/_matrix/client/v1/rooms/{}/relations/{}", encode(&room), encode(&root));
    let (_, direct) = app.get(&path, Some(&alice.token)).await;
    let ids: Vec<&str> = direct["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![reply.as_str()]);
    assert!(direct.get("recursion_depth").is_none(), "absent unless asked: {direct}");
    let (_, deep) = app.get(&format!("{path}?recurse=true"), Some(&alice.token)).await;
    let ids: Vec<&str> = deep["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![reaction.as_str(), reply.as_str()], "newest first: {deep}");
    assert_eq!(deep["recursion_depth"], 3);
    let (_, reactions) = app.get(&format!("{path}/m.annotation?recurse=true"), Some(&alice.token)).await;
    assert_eq!(reactions["chunk"].as_array().unwrap().len(), 1);
    let bad = app.get(&format!("{path}?recurse=maybe"), Some(&alice.token)).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}
