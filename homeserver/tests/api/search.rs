//! Server-side search on both full-text backends (SQLite FTS5, PostgreSQL tsvector).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, assert_error, encode, spawn_app};

both_backends!(
    search_finds_messages_in_my_rooms_only,
    search_orders_pages_and_forgets_redacted_text,
    search_groups_results_and_includes_state_and_profiles,
);

async fn search_finds_messages_in_my_rooms_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice.token, json!({"name": "Recipes", "topic": "baking bread"})).await;
    let secret = app.create_room(&eve.token, json!({})).await;
    app.send_text(&alice.token, &room, "The sourdough bread needs a long proof").await;
    app.send_text(&alice.token, &room, "Pancakes on Sunday").await;
    app.send_text(&eve.token, &secret, "my secret bread recipe").await;
    let search = |token: String, body: serde_json::Value| {
        let app = &app;
        async move { app.post("/_matrix/client/v3/search", Some(&token), body).await }
    };
    let (status, found) =
        search(alice.token.clone(), json!({"search_categories": {"room_events": {"search_term": "bread"}}})).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let results = found["search_categories"]["room_events"]["results"].as_array().unwrap();
    let bodies: Vec<&str> = results.iter().filter_map(|r| r["result"]["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["The sourdough bread needs a long proof"], "eve's room is not searched");
    assert!(results.iter().any(|r| r["result"]["type"] == "m.room.topic"), "topics are searched too: {found}");
    assert!(found["search_categories"]["room_events"]["highlights"].as_array().unwrap().contains(&json!("bread")));
    assert!(results[0]["rank"].as_f64().is_some());

    let (_, bodies_only) = search(alice.token.clone(), json!({"search_categories": {"room_events": {"search_term": "bread", "keys": ["content.body"], "event_context": {"before_limit": 1, "after_limit": 1}}}})).await;
    let hit = &bodies_only["search_categories"]["room_events"]["results"][0];
    assert_eq!(bodies_only["search_categories"]["room_events"]["count"], 1);
    assert_eq!(hit["context"]["events_after"][0]["content"]["body"], "Pancakes on Sunday");
    // Query syntax in user input is just text.
    let (status, _) = search(
        alice.token.clone(),
        json!({"search_categories": {"room_events": {"search_term": "\"bread\" OR NEAR( *"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, filtered) = search(
        alice.token.clone(),
        json!({"search_categories": {"room_events": {"search_term": "bread", "filter": {"rooms": [secret]}}}}),
    )
    .await;
    assert_eq!(
        filtered["search_categories"]["room_events"]["count"], 0,
        "a room filter cannot reach rooms one is not in"
    );
    let bad = search(
        alice.token.clone(),
        json!({"search_categories": {"room_events": {"search_term": "x", "keys": ["content.secret"]}}}),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

async fn search_orders_pages_and_forgets_redacted_text(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.send_text(&alice.token, &room, &format!("meeting notes number {i}")).await);
    }
    let body = |next: Option<&str>| {
        let _ = next;
        json!({"search_categories": {"room_events": {"search_term": "meeting", "order_by": "recent", "filter": {"limit": 2}}}})
    };
    let (_, first) = app.post("/_matrix/client/v3/search", Some(&alice.token), body(None)).await;
    let events = &first["search_categories"]["room_events"];
    assert_eq!(events["count"], 5);
    assert_eq!(events["results"][0]["result"]["event_id"], ids[4].as_str(), "most recent first");
    let next = events["next_batch"].as_str().unwrap();
    let (_, second) =
        app.post(&format!("/_matrix/client/v3/search?next_batch={next}"), Some(&alice.token), body(Some(next))).await;
    assert_eq!(second["search_categories"]["room_events"]["results"][0]["result"]["event_id"], ids[2].as_str());

    app.put(&app.room_path(&room, &format!("redact/{}/r", encode(&ids[4]))), Some(&alice.token), json!({})).await;
    let (_, after) = app.post("/_matrix/client/v3/search", Some(&alice.token), body(None)).await;
    assert_eq!(after["search_categories"]["room_events"]["count"], 4, "redacted text is no longer searchable");
}

async fn search_groups_results_and_includes_state_and_profiles(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let kitchen = app.create_room(&alice.token, json!({"preset": "public_chat", "name": "Kitchen"})).await;
    let garden = app.create_room(&alice.token, json!({"preset": "public_chat", "name": "Garden"})).await;
    app.join(&bob.token, &kitchen).await;
    app.send_text(&alice.token, &kitchen, "tomato soup tonight").await;
    app.send_text(&bob.token, &kitchen, "tomato salad instead").await;
    app.send_text(&alice.token, &garden, "the tomato plants grew").await;
    app.put(
        &app.room_path(&garden, "send/m.room.message/x"),
        Some(&alice.token),
        json!({"msgtype": "m.notice", "body": "tomato alert"}),
    )
    .await;
    let (status, found) = app
        .post(
            "/_matrix/client/v3/search",
            Some(&alice.token),
            json!({"search_categories": {"room_events": {
                "search_term": "tomato",
                "keys": ["content.body"],
                "filter": {"not_senders": [bob.user_id], "types": ["m.room.message"]},
                "groupings": {"group_by": [{"key": "room_id"}, {"key": "sender"}]},
                "include_state": true,
                "event_context": {"before_limit": 1, "after_limit": 1, "include_profile": true}
            }}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let events = &found["search_categories"]["room_events"];
    let results = events["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "bob's message is filtered out: {events}");
    assert!(results.iter().all(|r| r["result"]["sender"] == alice.user_id.as_str()));
    let by_room = events["groups"]["room_id"].as_object().unwrap();
    assert_eq!(by_room[&kitchen]["results"].as_array().unwrap().len(), 1);
    assert_eq!(by_room[&garden]["results"].as_array().unwrap().len(), 2);
    assert_eq!(events["groups"]["sender"][&alice.user_id]["results"].as_array().unwrap().len(), 3);
    let kitchen_state = events["state"][&kitchen].as_array().unwrap();
    assert!(kitchen_state.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Kitchen"));
    let with_context = results.iter().find(|r| r["result"]["room_id"] == kitchen.as_str()).unwrap();
    assert_eq!(with_context["context"]["profile_info"][&bob.user_id]["displayname"], "bob", "{with_context}");
    let bad = app
        .post(
            "/_matrix/client/v3/search",
            Some(&alice.token),
            json!({"search_categories": {"room_events": {"search_term": "x", "groupings": {"group_by": [{"key": "colour"}]}}}}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}
