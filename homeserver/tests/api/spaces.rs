//! Spaces: GET /v1/rooms/{roomId}/hierarchy walks a space's m.space.child events breadth first,
//! in the spec's order, listing only rooms the caller may see, with suggested_only, max_depth
//! and pagination; across servers the rooms one server lacks are asked of another.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Session, TestApp, assert_error, encode, spawn_app, spawn_federating};

both_backends!(a_space_lists_the_rooms_each_user_may_see, a_space_on_another_server_is_walked_through_it);

fn hierarchy_path(room_id: &str, query: &str) -> String {
    format!("/_matrix/client/v1/rooms/{}/hierarchy{query}", encode(room_id))
}

/// Adds `child` to `space` with `content` (its `via` set to `server` unless given).
async fn add_child(app: &TestApp, token: &str, space: &str, child: &str, server: &str, mut content: Value) {
    if content.get("via").is_none() {
        content["via"] = json!([server]);
    }
    let path = app.room_path(space, &format!("state/m.space.child/{}", encode(child)));
    let (status, body) = app.put(&path, Some(token), content).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Children without `order` sort by when they were added: no two in the same millisecond.
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn names(answer: &Value) -> Vec<String> {
    answer["rooms"].as_array().unwrap().iter().map(|room| room["name"].as_str().unwrap_or("?").to_owned()).collect()
}

async fn create(app: &TestApp, user: &Session, preset: &str, name: &str, space: bool) -> String {
    let mut body = json!({"preset": preset, "name": name});
    if space {
        body["creation_content"] = json!({"type": "m.space"});
    }
    app.create_room(&user.token, body).await
}

async fn a_space_lists_the_rooms_each_user_may_see(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let server = app.server_name().to_owned();
    let space = create(&app, &alice, "public_chat", "Company", true).await;
    let lobby = create(&app, &alice, "public_chat", "Lobby", false).await;
    let staff = create(&app, &alice, "private_chat", "Staff", false).await;
    let news = create(&app, &alice, "public_chat", "News", false).await;
    let teams = create(&app, &alice, "public_chat", "Teams", true).await;
    let deep = create(&app, &alice, "public_chat", "Deep", false).await;
    let gone = create(&app, &alice, "public_chat", "Gone", false).await;
    add_child(&app, &alice.token, &space, &lobby, &server, json!({})).await;
    add_child(&app, &alice.token, &space, &staff, &server, json!({})).await;
    add_child(&app, &alice.token, &space, &news, &server, json!({"order": "a", "suggested": true})).await;
    add_child(&app, &alice.token, &space, &teams, &server, json!({})).await;
    add_child(&app, &alice.token, &space, &gone, &server, json!({"via": []})).await;
    add_child(&app, &alice.token, &teams, &deep, &server, json!({})).await;

    // Bob, in none of them, sees the open rooms: the space, its children (ordered first, then
    // by when they were added), then the sub-space's child; not Staff, not the removed child.
    let (status, answer) = app.get(&hierarchy_path(&space, ""), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(names(&answer), ["Company", "News", "Lobby", "Teams", "Deep"], "{answer}");
    let root = &answer["rooms"][0];
    assert_eq!((root["room_type"].as_str(), root["num_joined_members"].as_i64()), (Some("m.space"), Some(1)));
    assert_eq!(root["children_state"].as_array().unwrap().len(), 4, "the removed child is not listed: {root}");
    let child = &root["children_state"][0];
    assert!(child["type"] == "m.space.child" && child["origin_server_ts"].is_i64(), "{child}");
    assert!(answer.get("next_batch").is_none(), "{answer}");

    // Alice, in Staff, sees it too.
    let (_, answer) = app.get(&hierarchy_path(&space, ""), Some(&alice.token)).await;
    assert_eq!(names(&answer), ["Company", "News", "Lobby", "Staff", "Teams", "Deep"]);

    // suggested_only, max_depth.
    let (_, answer) = app.get(&hierarchy_path(&space, "?suggested_only=true"), Some(&bob.token)).await;
    assert_eq!(names(&answer), ["Company", "News"]);
    let (_, answer) = app.get(&hierarchy_path(&space, "?max_depth=1"), Some(&bob.token)).await;
    assert_eq!(names(&answer), ["Company", "News", "Lobby", "Teams"]);
    let (_, answer) = app.get(&hierarchy_path(&space, "?max_depth=0"), Some(&bob.token)).await;
    assert_eq!(names(&answer), ["Company"]);

    // Pages of two, joined up, are the whole walk.
    let mut pages = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let query = match &from {
            Some(token) => format!("?limit=2&from={}", encode(token)),
            None => "?limit=2".to_owned(),
        };
        let (status, page) = app.get(&hierarchy_path(&space, &query), Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages.extend(names(&page));
        from = page["next_batch"].as_str().map(str::to_owned);
        if from.is_none() {
            break;
        }
    }
    assert_eq!(pages, ["Company", "News", "Lobby", "Teams", "Deep"]);

    // A private space is closed to outsiders; unknown rooms and bad parameters are errors.
    let private = create(&app, &alice, "private_chat", "Board", true).await;
    assert_error(&app.get(&hierarchy_path(&private, ""), Some(&bob.token)).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, _) = app.get(&hierarchy_path(&private, ""), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    let unknown = format!("!nowhere:{server}");
    assert_error(&app.get(&hierarchy_path(&unknown, ""), Some(&bob.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    for query in ["?from=nonsense", "?limit=lots", "?suggested_only=maybe"] {
        let response = app.get(&hierarchy_path(&space, query), Some(&bob.token)).await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }
    assert_error(&app.get(&hierarchy_path(&space, ""), None).await, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

async fn a_space_on_another_server_is_walked_through_it(backend: Backend) {
    let Some(a) = spawn_federating(backend, |_| {}).await else { return };
    let Some(b) = spawn_federating(backend, |_| {}).await else { return };
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let b_name = b.server_name().to_owned();
    let space = create(&b, &bob, "public_chat", "B's space", true).await;
    let open = create(&b, &bob, "public_chat", "Open on B", false).await;
    let closed = create(&b, &bob, "private_chat", "Closed on B", false).await;
    let sub = create(&b, &bob, "public_chat", "Sub-space on B", true).await;
    let deep = create(&b, &bob, "public_chat", "Deep on B", false).await;
    add_child(&b, &bob.token, &space, &open, &b_name, json!({})).await;
    add_child(&b, &bob.token, &space, &closed, &b_name, json!({})).await;
    add_child(&b, &bob.token, &space, &sub, &b_name, json!({})).await;
    add_child(&b, &bob.token, &sub, &deep, &b_name, json!({})).await;

    // Alice's own space on A lists B's space as a child: A holds neither B's space nor its
    // rooms, so it asks B (GET /_matrix/federation/v1/hierarchy), for each level.
    let home = create(&a, &alice, "public_chat", "Alice's space", true).await;
    add_child(&a, &alice.token, &home, &space, &b_name, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, answer) = a.get(&hierarchy_path(&home, ""), Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let listed = names(&answer);
        if listed.len() > 1 {
            assert_eq!(listed, ["Alice's space", "B's space", "Open on B", "Sub-space on B", "Deep on B"]);
            break;
        }
        assert!(Instant::now() < deadline, "B's space never showed: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Once Alice joins B's space, A walks it from its own copy and asks B for the children.
    let join = format!("/_matrix/client/v3/join/{}?via={}", encode(&space), encode(&b_name));
    assert_eq!(a.post(&join, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let (status, answer) = a.get(&hierarchy_path(&space, "?max_depth=1"), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(names(&answer), ["B's space", "Open on B", "Sub-space on B"]);
}
