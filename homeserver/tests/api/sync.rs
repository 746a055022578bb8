//! /sync and /messages: long-polling that wakes on events, limited timelines that paginate back
//! seamlessly, and exact delivery (nothing skipped, nothing repeated) under concurrent senders.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, spawn_app, timeline};

both_backends!(
    a_long_poll_wakes_when_a_message_arrives,
    a_long_poll_wakes_when_the_user_gets_a_new_room,
    an_idle_long_poll_returns_after_its_timeout,
    history_pages_back_and_forth_without_gaps_or_repeats,
    a_limited_timeline_continues_through_messages,
    concurrent_senders_are_delivered_exactly_once,
    filters_are_stored_and_applied,
    lazy_loading_sends_only_the_members_the_timeline_needs,
    filters_choose_rooms_types_and_senders,
    a_filtered_timeline_is_filled_to_its_limit,
    filters_keep_urls_and_fields_as_asked,
    incremental_lazy_sync_sends_each_new_sender_once,
);

async fn a_long_poll_wakes_when_a_message_arrives(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let since = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let (sync, sent) = tokio::join!(app.sync(&bob.token, Some(&since), 30_000), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.send_text(&alice.token, &room, "wake up").await
    });
    assert!(started.elapsed() < Duration::from_secs(10), "the long-poll returned on the event, not the timeout");
    let events = timeline(&sync, &room);
    assert_eq!(events.len(), 1, "{sync}");
    assert_eq!(events[0]["event_id"], sent.as_str());
    assert_eq!(sync["rooms"]["join"][&room]["timeline"]["limited"], false);
}

/// A room created by the user (on another device) or an invite reaches a sync that was already
/// waiting, although the room was not among those it waited on.
async fn a_long_poll_wakes_when_the_user_gets_a_new_room(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for (waiting, expected_section) in [(&alice, "join"), (&bob, "invite")] {
        let since = app.sync(&waiting.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
        let started = Instant::now();
        let (sync, room) = tokio::join!(app.sync(&waiting.token, Some(&since), 30_000), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.create_room(&alice.token, json!({"invite": [bob.user_id]})).await
        });
        assert!(started.elapsed() < Duration::from_secs(10), "woken by the new room, not the timeout");
        assert!(sync["rooms"][expected_section].get(&room).is_some(), "{sync}");
    }
}

async fn an_idle_long_poll_returns_after_its_timeout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let since = app.sync(&alice.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let sync = app.sync(&alice.token, Some(&since), 500).await;
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert_eq!(sync["next_batch"], since.as_str(), "nothing happened, the token stays");
}

async fn history_pages_back_and_forth_without_gaps_or_repeats(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let mut sent = Vec::new();
    for i in 0..120 {
        sent.push(app.send_text(&alice.token, &room, &format!("message {i}")).await);
    }
    // Backwards from the newest.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!("{}?dir=b&limit=25", app.room_path(&room, "messages"));
        if let Some(from) = &from {
            path.push_str(&format!("&from={from}"));
        }
        let (status, page) = app.get(&path, Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK);
        for event in page["chunk"].as_array().unwrap() {
            if event["type"] == "m.room.message" {
                seen.push(event["event_id"].as_str().unwrap().to_owned());
            }
        }
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
    }
    seen.reverse();
    assert_eq!(seen, sent, "every message exactly once, in order");
    // Forwards from the beginning.
    let mut forward = Vec::new();
    let mut from = "s0".to_owned();
    loop {
        let (_, page) = app
            .get(&format!("{}?dir=f&limit=40&from={from}", app.room_path(&room, "messages")), Some(&alice.token))
            .await;
        forward.extend(
            page["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "m.room.message")
                .map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
        match page["end"].as_str() {
            Some(end) => from = end.to_owned(),
            None => break,
        }
    }
    assert_eq!(forward, sent);
}

async fn a_limited_timeline_continues_through_messages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let since = app.sync(&alice.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(app.send_text(&alice.token, &room, &format!("m{i}")).await);
    }
    let sync = app.sync(&alice.token, Some(&since), 0).await;
    let joined = &sync["rooms"]["join"][&room];
    assert_eq!(joined["timeline"]["limited"], true);
    let latest: Vec<String> =
        timeline(&sync, &room).iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(latest, sent[20..], "the newest ten");
    let prev_batch = joined["timeline"]["prev_batch"].as_str().unwrap();
    let (_, page) = app
        .get(
            &format!("{}?dir=b&limit=50&from={prev_batch}&to={since}", app.room_path(&room, "messages")),
            Some(&alice.token),
        )
        .await;
    let mut earlier: Vec<String> =
        page["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect();
    earlier.reverse();
    assert_eq!(earlier, sent[..20], "prev_batch continues exactly where the timeline starts");
}

async fn concurrent_senders_are_delivered_exactly_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let owner = app.register("owner").await;
    let room = app.create_room(&owner.token, json!({"preset": "public_chat"})).await;
    let mut senders = Vec::new();
    for i in 0..6 {
        let user = app.register(&format!("sender{i}")).await;
        app.join(&user.token, &room).await;
        senders.push(user);
    }
    let reader = app.register("reader").await;
    app.join(&reader.token, &room).await;
    let mut since = app.sync(&reader.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();

    const PER_SENDER: usize = 25;
    let sending = futures_join_all(senders.iter().map(|user| {
        let app = &app;
        let room = &room;
        async move {
            for n in 0..PER_SENDER {
                app.send_text(&user.token, room, &format!("{}:{n}", user.user_id)).await;
            }
        }
    }));
    let reading = async {
        let mut seen: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.len() < senders.len() * PER_SENDER && Instant::now() < deadline {
            let sync = app.sync(&reader.token, Some(&since), 2_000).await;
            let timeline_info = &sync["rooms"]["join"][&room]["timeline"];
            if timeline_info["limited"].as_bool().unwrap_or(false) {
                // A gap: fetch what lies between the previous token and this timeline, as a
                // client does, newest first down to `since`.
                let prev_batch = timeline_info["prev_batch"].as_str().unwrap();
                let mut gap = Vec::new();
                let mut from = prev_batch.to_owned();
                loop {
                    let (_, page) = app
                        .get(
                            &format!("{}?dir=b&limit=100&from={from}&to={since}", app.room_path(&room, "messages")),
                            Some(&reader.token),
                        )
                        .await;
                    gap.extend(
                        page["chunk"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|e| e["type"] == "m.room.message")
                            .map(|e| e["content"]["body"].as_str().unwrap().to_owned()),
                    );
                    match page["end"].as_str() {
                        Some(end) => from = end.to_owned(),
                        None => break,
                    }
                }
                gap.reverse();
                seen.extend(gap);
            }
            for event in timeline(&sync, &room) {
                if event["type"] == "m.room.message" {
                    seen.push(event["content"]["body"].as_str().unwrap().to_owned());
                }
            }
            since = sync["next_batch"].as_str().unwrap().to_owned();
        }
        seen
    };
    let ((), seen) = tokio::join!(sending, reading);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event delivered twice");
    assert_eq!(seen.len(), senders.len() * PER_SENDER, "no event lost");
    // Each sender's messages arrive in the order they were sent.
    let mut next: HashMap<String, usize> = HashMap::new();
    for body in &seen {
        let (sender, n) = body.rsplit_once(':').unwrap();
        let expected = next.entry(sender.to_owned()).or_default();
        assert_eq!(n.parse::<usize>().unwrap(), *expected, "{sender} out of order");
        *expected += 1;
    }
}

/// `futures::future::join_all` without the dependency: run every future to completion.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in pending.iter_mut() {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    all_done = false;
                }
            }
        }
        if all_done { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await
}

async fn filters_are_stored_and_applied(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({})).await;
    for i in 0..5 {
        app.send_text(&alice.token, &room, &format!("m{i}")).await;
    }
    let filter = json!({"room": {"timeline": {"limit": 2}}});
    let (status, created) = app
        .post(&format!("/_matrix/client/v3/user/{}/filter", alice.user_id), Some(&alice.token), filter.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = created["filter_id"].as_str().unwrap();
    let (_, stored) =
        app.get(&format!("/_matrix/client/v3/user/{}/filter/{id}", alice.user_id), Some(&alice.token)).await;
    assert_eq!(stored, filter);
    let (_, sync) = app.get(&format!("/_matrix/client/v3/sync?filter={id}"), Some(&alice.token)).await;
    assert_eq!(timeline(&sync, &room).len(), 2);
    let inline = crate::helpers::encode(r#"{"room":{"timeline":{"limit":3}}}"#);
    let (_, sync) = app.get(&format!("/_matrix/client/v3/sync?filter={inline}"), Some(&alice.token)).await;
    assert_eq!(timeline(&sync, &room).len(), 3);
    let others =
        app.post(&format!("/_matrix/client/v3/user/{}/filter", alice.user_id), Some(&bob.token), json!({})).await;
    crate::helpers::assert_error(&others, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let missing = app.get("/_matrix/client/v3/sync?filter=999", Some(&alice.token)).await;
    crate::helpers::assert_error(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn lazy_loading_sends_only_the_members_the_timeline_needs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    for i in 0..4 {
        let user = app.register(&format!("lurker{i}")).await;
        app.join(&user.token, &room).await;
    }
    let talker = app.register("talker").await;
    app.join(&talker.token, &room).await;
    for i in 0..12 {
        app.send_text(&talker.token, &room, &format!("chatter {i}")).await;
    }
    let filter = crate::helpers::encode(r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":5}}}"#);
    let (_, sync) = app.get(&format!("/_matrix/client/v3/sync?filter={filter}"), Some(&alice.token)).await;
    let state = sync["rooms"]["join"][&room]["state"]["events"].as_array().unwrap();
    let members: HashSet<&str> =
        state.iter().filter(|e| e["type"] == "m.room.member").map(|e| e["state_key"].as_str().unwrap()).collect();
    assert_eq!(members, HashSet::from(["@alice:localhost", "@talker:localhost"]), "{sync}");
    let (_, full) = app.get("/_matrix/client/v3/sync", Some(&alice.token)).await;
    let all_members = full["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .count();
    assert_eq!(all_members, 6, "without lazy loading every member is sent");
}

async fn filters_choose_rooms_types_and_senders(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let wanted = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    let other = app.create_room(&alice.token, json!({})).await;
    app.join(&bob.token, &wanted).await;
    app.send_text(&alice.token, &wanted, "from alice").await;
    app.send_text(&bob.token, &wanted, "from bob").await;
    app.put(&app.room_path(&wanted, "send/m.reaction/r1"), Some(&bob.token), json!({})).await;
    let filter = json!({
        "room": {"rooms": [wanted], "timeline": {"types": ["m.room.message"], "not_senders": [bob.user_id]},
                 "state": {"types": ["m.room.name", "m.room.create"]}},
        "presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}
    });
    let (_, sync) = app
        .get(
            &format!("/_matrix/client/v3/sync?filter={}", crate::helpers::encode(&filter.to_string())),
            Some(&alice.token),
        )
        .await;
    assert!(sync["rooms"]["join"].get(&other).is_none(), "only the filtered room");
    let events = timeline(&sync, &wanted);
    assert!(
        events.iter().all(|e| e["type"] == "m.room.message" && e["sender"] == alice.user_id.as_str()),
        "{events:?}"
    );
    assert!(!events.is_empty());
    let state = sync["rooms"]["join"][&wanted]["state"]["events"].as_array().unwrap();
    assert!(state.iter().all(|e| e["type"] == "m.room.create" || e["type"] == "m.room.name"), "{state:?}");
    assert_eq!(sync["account_data"]["events"], json!([]));

    let message_filter = crate::helpers::encode(r#"{"types":["m.room.message"],"lazy_load_members":true}"#);
    let (_, page) = app
        .get(&format!("{}?dir=b&filter={message_filter}", app.room_path(&wanted, "messages")), Some(&alice.token))
        .await;
    let chunk = page["chunk"].as_array().unwrap();
    assert_eq!(chunk.len(), 2, "{page}");
    let members: HashSet<&str> =
        page["state"].as_array().unwrap().iter().map(|e| e["state_key"].as_str().unwrap()).collect();
    assert_eq!(members, HashSet::from(["@alice:localhost", "@bob:localhost"]));
    let bad = app.get(&format!("{}?dir=b&filter=%7Bnot", app.room_path(&wanted, "messages")), Some(&alice.token)).await;
    crate::helpers::assert_error(&bad, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn a_filtered_timeline_is_filled_to_its_limit(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    for i in 0..3 {
        app.send_text(&alice.token, &room, &format!("keep {i}")).await;
        for j in 0..4 {
            app.put(&app.room_path(&room, &format!("send/m.noise/n{i}{j}")), Some(&alice.token), json!({})).await;
        }
    }
    let filter = crate::helpers::encode(r#"{"room":{"timeline":{"limit":3,"types":["m.room.message"]}}}"#);
    let (_, sync) = app.get(&format!("/_matrix/client/v3/sync?filter={filter}"), Some(&alice.token)).await;
    let bodies: Vec<&str> = timeline(&sync, &room).iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["keep 0", "keep 1", "keep 2"], "the limit counts wanted events: {sync}");
    let message_filter = crate::helpers::encode(r#"{"types":["m.room.message"]}"#);
    let (_, page) = app
        .get(&format!("{}?dir=b&limit=2&filter={message_filter}", app.room_path(&room, "messages")), Some(&alice.token))
        .await;
    let bodies: Vec<&str> =
        page["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["keep 2", "keep 1"]);
    let (_, rest) = app
        .get(
            &format!(
                "{}?dir=b&limit=2&filter={message_filter}&from={}",
                app.room_path(&room, "messages"),
                page["end"].as_str().unwrap()
            ),
            Some(&alice.token),
        )
        .await;
    let bodies: Vec<&str> =
        rest["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["keep 0"], "{rest}");
}

async fn filters_keep_urls_and_fields_as_asked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    app.send_text(&alice.token, &room, "just words").await;
    app.put(
        &app.room_path(&room, "send/m.room.message/img"),
        Some(&alice.token),
        json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/cat"}),
    )
    .await;
    let with_url =
        crate::helpers::encode(r#"{"room":{"timeline":{"contains_url":true}},"event_fields":["type","content.body"]}"#);
    let (_, sync) = app.get(&format!("/_matrix/client/v3/sync?filter={with_url}"), Some(&alice.token)).await;
    let events = timeline(&sync, &room);
    assert_eq!(events.len(), 1, "{sync}");
    assert_eq!(*events[0], json!({"type": "m.room.message", "content": {"body": "cat.png"}}));
    let no_url = crate::helpers::encode(r#"{"contains_url":false,"types":["m.room.message"]}"#);
    let (_, page) =
        app.get(&format!("{}?dir=b&filter={no_url}", app.room_path(&room, "messages")), Some(&alice.token)).await;
    let bodies: Vec<&str> =
        page["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["just words"]);
    let federation = crate::helpers::encode(r#"{"event_format":"federation"}"#);
    let (_, sync) = app.get(&format!("/_matrix/client/v3/sync?filter={federation}"), Some(&alice.token)).await;
    let first = timeline(&sync, &room)[0];
    assert!(first["hashes"]["sha256"].is_string() && first["signatures"].is_object(), "{first}");
}

async fn incremental_lazy_sync_sends_each_new_sender_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    let lazy = crate::helpers::encode(r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":10}}}"#);
    let (_, first) = app.get(&format!("/_matrix/client/v3/sync?filter={lazy}"), Some(&alice.token)).await;
    let mut since = first["next_batch"].as_str().unwrap().to_owned();
    app.join(&bob.token, &room).await;
    // Bob's join is in the timeline, so his member event is not repeated in `state`.
    let (_, joined) =
        app.get(&format!("/_matrix/client/v3/sync?filter={lazy}&since={since}"), Some(&alice.token)).await;
    assert_eq!(joined["rooms"]["join"][&room]["state"]["events"], json!([]), "{joined}");
    since = joined["next_batch"].as_str().unwrap().to_owned();
    app.send_text(&bob.token, &room, "first").await;
    let (_, next) = app.get(&format!("/_matrix/client/v3/sync?filter={lazy}&since={since}"), Some(&alice.token)).await;
    assert_eq!(next["rooms"]["join"][&room]["state"]["events"], json!([]), "already sent: {next}");

    // A device that never saw bob (a fresh login syncing from alice's token) gets his member event.
    let (_, login) = app.login("alice", crate::helpers::PASSWORD).await;
    let other_device = crate::helpers::session_from(&login);
    since = next["next_batch"].as_str().unwrap().to_owned();
    app.send_text(&bob.token, &room, "second").await;
    let (_, fresh) =
        app.get(&format!("/_matrix/client/v3/sync?filter={lazy}&since={since}"), Some(&other_device.token)).await;
    let state = fresh["rooms"]["join"][&room]["state"]["events"].as_array().unwrap();
    assert!(state.iter().any(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str()), "{fresh}");
}
