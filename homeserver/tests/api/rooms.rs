//! Rooms: creation, membership, power levels, sending, state, redaction and access control.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, assert_error, encode, spawn_app};

both_backends!(
    a_new_room_is_version_12_with_the_preset_state,
    older_room_versions_name_their_creator,
    unsupported_room_versions_are_refused,
    a_direct_chat_invites_joins_and_delivers,
    non_members_can_neither_read_nor_write,
    an_admin_renames_promotes_and_kicks_but_a_member_cannot,
    a_banned_user_cannot_rejoin_until_unbanned,
    sending_is_idempotent_per_device_and_transaction,
    redaction_strips_content_for_everyone_and_needs_power,
    public_rooms_are_joined_by_alias,
    leaving_and_forgetting,
    bad_room_requests_get_matrix_errors,
    history_visibility_joined_hides_the_past,
);

fn state_of<'a>(state: &'a [Value], event_type: &str, state_key: &str) -> &'a Value {
    state
        .iter()
        .find(|e| e["type"] == event_type && e["state_key"] == state_key)
        .unwrap_or_else(|| panic!("no {event_type}"))
}

async fn a_new_room_is_version_12_with_the_preset_state(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({"name": "Book club", "topic": "Chapter 3"})).await;
    assert!(room.starts_with('!') && !room.contains(':'), "v12 room ids are the create event's hash: {room}");
    let (status, state) = app.get(&app.room_path(&room, "state"), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    let state = state.as_array().unwrap();
    let create = state_of(state, "m.room.create", "");
    assert_eq!(create["content"]["room_version"], "12");
    assert_eq!(create["event_id"].as_str().unwrap()[1..], room[1..], "room id = create event's reference hash");
    assert_eq!(state_of(state, "m.room.member", &alice.user_id)["content"]["membership"], "join");
    let power = &state_of(state, "m.room.power_levels", "")["content"];
    assert_eq!(power["users"], json!({}), "v12 creators have implicit power");
    assert_eq!(power["events"]["m.room.tombstone"], 150);
    assert_eq!(state_of(state, "m.room.join_rules", "")["content"]["join_rule"], "invite");
    assert_eq!(state_of(state, "m.room.history_visibility", "")["content"]["history_visibility"], "shared");
    assert_eq!(state_of(state, "m.room.name", "")["content"]["name"], "Book club");
    assert_eq!(state_of(state, "m.room.topic", "")["content"]["topic"], "Chapter 3");
    let (_, name) = app.get(&app.room_path(&room, "state/m.room.name/"), Some(&alice.token)).await;
    assert_eq!(name, json!({"name": "Book club"}));
    let (_, joined) = app.get("/_matrix/client/v3/joined_rooms", Some(&alice.token)).await;
    assert_eq!(joined["joined_rooms"], json!([room]));
}

async fn older_room_versions_name_their_creator(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for version in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"] {
        let room = app.create_room(&alice.token, json!({"room_version": version, "preset": "public_chat"})).await;
        assert!(room.ends_with(":localhost"), "{room}");
        let (_, power) = app.get(&app.room_path(&room, "state/m.room.power_levels"), Some(&alice.token)).await;
        assert_eq!(power["users"][&alice.user_id], 100);
        let event_id = app.send_text(&alice.token, &room, "hello").await;
        let (status, event) =
            app.get(&app.room_path(&room, &format!("event/{}", encode(&event_id))), Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {event}");
        assert_eq!(event["content"]["body"], "hello");
        assert_eq!(event["room_id"], room.as_str());
        // Before v3 the sending server names its events; later versions name them by hash.
        assert_eq!(event_id.ends_with(":localhost"), ["1", "2"].contains(&version), "v{version}: {event_id}");
        // Joins, redactions and kicks follow each version's rules.
        assert_eq!(app.join(&bob.token, &room).await.0, StatusCode::OK, "v{version}");
        let said = app.send_text(&bob.token, &room, "oops").await;
        let redact = app.room_path(&room, &format!("redact/{}/r{version}", encode(&said)));
        let (status, body) = app.put(&redact, Some(&bob.token), json!({})).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        let (_, gone) = app.get(&app.room_path(&room, &format!("event/{}", encode(&said))), Some(&alice.token)).await;
        assert_eq!(gone["content"], json!({}), "v{version}: {gone}");
        let kick = app.room_path(&room, "kick");
        let (status, body) = app.post(&kick, Some(&alice.token), json!({"user_id": bob.user_id})).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        let (status, _) = app.post(&kick, Some(&bob.token), json!({"user_id": alice.user_id})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "v{version}");
    }
}

async fn unsupported_room_versions_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let response = app.post("/_matrix/client/v3/createRoom", Some(&alice.token), json!({"room_version": "0"})).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION");
}

async fn a_direct_chat_invites_joins_and_delivers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app
        .create_room(
            &alice.token,
            json!({"preset": "trusted_private_chat", "invite": [bob.user_id], "is_direct": true}),
        )
        .await;

    let sync = app.sync(&bob.token, None, 0).await;
    let invite = &sync["rooms"]["invite"][&room]["invite_state"]["events"];
    let me = invite
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
        .unwrap();
    assert_eq!(me["content"]["membership"], "invite");
    assert_eq!(me["content"]["is_direct"], true);
    let since = sync["next_batch"].as_str().unwrap().to_owned();

    assert_eq!(app.join(&bob.token, &room).await.0, StatusCode::OK);
    let hello = app.send_text(&alice.token, &room, "hi bob").await;
    let sync = app.sync(&bob.token, Some(&since), 0).await;
    let events = crate::helpers::timeline(&sync, &room);
    assert!(events.iter().any(|e| e["event_id"] == hello.as_str() && e["content"]["body"] == "hi bob"), "{sync}");
    assert!(
        sync["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create"),
        "a newly joined room comes with its state"
    );

    let (status, messages) =
        app.get(&format!("{}?dir=b&limit=5", app.room_path(&room, "messages")), Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(messages["chunk"][0]["content"]["body"], "hi bob");
    let (_, members) = app.get(&app.room_path(&room, "joined_members"), Some(&bob.token)).await;
    assert_eq!(members["joined"].as_object().unwrap().len(), 2);
    assert_eq!(members["joined"][&alice.user_id]["displayname"], "alice");
}

async fn non_members_can_neither_read_nor_write(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let secret = app.send_text(&alice.token, &room, "secret").await;
    let forbidden = [
        app.get(&format!("{}?dir=b", app.room_path(&room, "messages")), Some(&eve.token)).await,
        app.get(&app.room_path(&room, "state"), Some(&eve.token)).await,
        app.get(&app.room_path(&room, "state/m.room.name/"), Some(&eve.token)).await,
        app.get(&app.room_path(&room, &format!("event/{}", encode(&secret))), Some(&eve.token)).await,
        app.get(&app.room_path(&room, "joined_members"), Some(&eve.token)).await,
        app.get(&app.room_path(&room, "members"), Some(&eve.token)).await,
        app.put(&app.room_path(&room, "send/m.room.message/x1"), Some(&eve.token), json!({"body": "hi"})).await,
        app.put(&app.room_path(&room, &format!("redact/{}/x2", encode(&secret))), Some(&eve.token), json!({})).await,
        app.put(&app.room_path(&room, "state/m.room.name/"), Some(&eve.token), json!({"name": "pwned"})).await,
        app.join(&eve.token, &room).await,
    ];
    for response in &forbidden {
        assert_error(response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    let sync = app.sync(&eve.token, None, 0).await;
    assert_eq!(sync["rooms"]["join"], json!({}), "nothing of the room reaches a non-member");
}

async fn an_admin_renames_promotes_and_kicks_but_a_member_cannot(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app
        .create_room(
            &alice.token,
            json!({"preset": "private_chat", "name": "Team", "invite": [bob.user_id, carol.user_id]}),
        )
        .await;
    assert_eq!(app.join(&bob.token, &room).await.0, StatusCode::OK);
    assert_eq!(app.join(&carol.token, &room).await.0, StatusCode::OK);

    let rename = |token: String, name: &'static str| {
        let app = &app;
        let path = app.room_path(&room, "state/m.room.name/");
        async move { app.put(&path, Some(&token), json!({"name": name})).await }
    };
    assert_error(&rename(bob.token.clone(), "Bob's").await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(rename(alice.token.clone(), "Team 2").await.0, StatusCode::OK);

    let (_, mut power) = app.get(&app.room_path(&room, "state/m.room.power_levels/"), Some(&alice.token)).await;
    power["users"][&bob.user_id] = json!(50);
    assert_error(
        &app.put(&app.room_path(&room, "state/m.room.power_levels/"), Some(&bob.token), power.clone()).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_eq!(
        app.put(&app.room_path(&room, "state/m.room.power_levels/"), Some(&alice.token), power).await.0,
        StatusCode::OK
    );
    assert_eq!(rename(bob.token.clone(), "Bob's team").await.0, StatusCode::OK, "a moderator may rename");

    let kick_bob = app.post(&app.room_path(&room, "kick"), Some(&carol.token), json!({"user_id": bob.user_id})).await;
    assert_error(&kick_bob, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, _) = app
        .post(&app.room_path(&room, "kick"), Some(&alice.token), json!({"user_id": carol.user_id, "reason": "bye"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, member) =
        app.get(&app.room_path(&room, &format!("state/m.room.member/{}", carol.user_id)), Some(&alice.token)).await;
    assert_eq!(member, json!({"membership": "leave", "reason": "bye"}));
    assert_error(
        &app.put(&app.room_path(&room, "send/m.room.message/k1"), Some(&carol.token), json!({"body": "still here?"}))
            .await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    // Carol still sees the room up to her kick, not after it.
    let after = app.send_text(&alice.token, &room, "after carol left").await;
    let (status, page) =
        app.get(&format!("{}?dir=b&limit=50", app.room_path(&room, "messages")), Some(&carol.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page["chunk"].as_array().unwrap().iter().any(|e| e["event_id"] == after.as_str()));
    let (_, name) = app.get(&app.room_path(&room, "state/m.room.name/"), Some(&bob.token)).await;
    assert_eq!(name["name"], "Bob's team");
}

async fn a_banned_user_cannot_rejoin_until_unbanned(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    assert_eq!(app.join(&mallory.token, &room).await.0, StatusCode::OK);
    assert_eq!(
        app.post(&app.room_path(&room, "ban"), Some(&alice.token), json!({"user_id": mallory.user_id})).await.0,
        StatusCode::OK
    );
    assert_error(&app.join(&mallory.token, &room).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let unban_self =
        app.post(&app.room_path(&room, "unban"), Some(&mallory.token), json!({"user_id": mallory.user_id})).await;
    assert_error(&unban_self, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        app.post(&app.room_path(&room, "unban"), Some(&alice.token), json!({"user_id": mallory.user_id})).await.0,
        StatusCode::OK
    );
    assert_eq!(app.join(&mallory.token, &room).await.0, StatusCode::OK);
}

async fn sending_is_idempotent_per_device_and_transaction(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let path = app.room_path(&room, "send/m.room.message/txn-1");
    let (_, first) = app.put(&path, Some(&alice.token), json!({"msgtype": "m.text", "body": "once"})).await;
    let (_, again) = app.put(&path, Some(&alice.token), json!({"msgtype": "m.text", "body": "once"})).await;
    assert_eq!(first["event_id"], again["event_id"]);
    let (_, other_device) = app.login("alice", crate::helpers::PASSWORD).await;
    let (_, third) =
        app.put(&path, other_device["access_token"].as_str(), json!({"msgtype": "m.text", "body": "once"})).await;
    assert_ne!(first["event_id"], third["event_id"], "transaction ids are per device");
    let (_, page) = app.get(&format!("{}?dir=b&limit=50", app.room_path(&room, "messages")), Some(&alice.token)).await;
    let bodies = page["chunk"].as_array().unwrap().iter().filter(|e| e["content"]["body"] == "once").count();
    assert_eq!(bodies, 2);
    // The sending device sees its transaction id on its own event.
    let sync = app.sync(&alice.token, None, 0).await;
    let mine = crate::helpers::timeline(&sync, &room)
        .into_iter()
        .find(|e| e["event_id"] == first["event_id"])
        .cloned()
        .unwrap();
    assert_eq!(mine["unsigned"]["transaction_id"], "txn-1");

    // The same transaction id sent to another room, or as another event type, is another
    // request (a bot counting its sends per room does this).
    let other_room = app.create_room(&alice.token, json!({})).await;
    let elsewhere = app.room_path(&other_room, "send/m.room.message/txn-1");
    let (status, there) = app.put(&elsewhere, Some(&alice.token), json!({"msgtype": "m.text", "body": "there"})).await;
    assert_eq!(status, StatusCode::OK, "{there}");
    assert_ne!(there["event_id"], first["event_id"]);
    let (_, event) = app
        .get(
            &app.room_path(&other_room, &format!("event/{}", encode(there["event_id"].as_str().unwrap()))),
            Some(&alice.token),
        )
        .await;
    assert_eq!(event["content"]["body"], "there");
    let (_, reaction) = app.put(&app.room_path(&room, "send/m.reaction/txn-1"), Some(&alice.token), json!({})).await;
    assert!(reaction["event_id"].is_string() && reaction["event_id"] != first["event_id"], "{reaction}");
    let (_, again) = app.put(&elsewhere, Some(&alice.token), json!({"msgtype": "m.text", "body": "there"})).await;
    assert_eq!(again["event_id"], there["event_id"], "and a retry of it is still the same event");
    // Redactions of two events under one transaction id are two redactions.
    let path = app.room_path(&room, &format!("redact/{}/same-txn", encode(first["event_id"].as_str().unwrap())));
    assert_eq!(app.put(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let second = app.send_text(&alice.token, &room, "redact me too").await;
    let path = app.room_path(&room, &format!("redact/{}/same-txn", encode(&second)));
    assert_eq!(app.put(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let (_, event) = app.get(&app.room_path(&room, &format!("event/{}", encode(&second))), Some(&alice.token)).await;
    assert!(event["unsigned"]["redacted_because"].is_object(), "redacted: {event}");
    assert!(event["content"].as_object().unwrap().is_empty(), "{event}");
}

async fn redaction_strips_content_for_everyone_and_needs_power(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    app.join(&carol.token, &room).await;
    let oops = app.send_text(&bob.token, &room, "oops, wrong chat").await;
    let spam = app.send_text(&bob.token, &room, "spam").await;

    let carol_try =
        app.put(&app.room_path(&room, &format!("redact/{}/r1", encode(&oops))), Some(&carol.token), json!({})).await;
    assert_error(&carol_try, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, redaction) = app
        .put(
            &app.room_path(&room, &format!("redact/{}/r2", encode(&oops))),
            Some(&bob.token),
            json!({"reason": "typo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{redaction}");
    let (status, _) =
        app.put(&app.room_path(&room, &format!("redact/{}/r3", encode(&spam))), Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "the room admin may redact others' events");

    for viewer in [&alice, &carol] {
        let (_, event) = app.get(&app.room_path(&room, &format!("event/{}", encode(&oops))), Some(&viewer.token)).await;
        assert_eq!(event["content"], json!({}), "{event}");
        assert_eq!(event["unsigned"]["redacted_because"]["event_id"], redaction["event_id"]);
        assert_eq!(event["unsigned"]["redacted_because"]["content"]["redacts"], oops.as_str());
    }
    let sync = app.sync(&carol.token, None, 0).await;
    let timeline = crate::helpers::timeline(&sync, &room);
    let redacted = timeline.iter().find(|e| e["event_id"] == oops.as_str()).unwrap();
    assert_eq!(redacted["content"], json!({}));
    assert!(timeline.iter().any(|e| e["type"] == "m.room.redaction" && e["content"]["redacts"] == oops.as_str()));
}

async fn public_rooms_are_joined_by_alias(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat", "room_alias_name": "lobby"})).await;
    let (_, alias) = app.get(&app.room_path(&room, "state/m.room.canonical_alias/"), Some(&alice.token)).await;
    assert_eq!(alias["alias"], "#lobby:localhost");
    let (status, joined) = app.join(&bob.token, "#lobby:localhost").await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["room_id"], room.as_str());
    let taken =
        app.post("/_matrix/client/v3/createRoom", Some(&alice.token), json!({"room_alias_name": "lobby"})).await;
    assert_error(&taken, StatusCode::BAD_REQUEST, "M_ROOM_IN_USE");
    assert_error(&app.join(&bob.token, "#nowhere:localhost").await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn leaving_and_forgetting(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let since = app.sync(&bob.token, None, 0).await["next_batch"].as_str().unwrap().to_owned();
    assert_error(
        &app.post(&app.room_path(&room, "forget"), Some(&bob.token), json!({})).await,
        StatusCode::BAD_REQUEST,
        "M_UNKNOWN",
    );
    assert_eq!(app.post(&app.room_path(&room, "leave"), Some(&bob.token), json!({})).await.0, StatusCode::OK);
    let sync = app.sync(&bob.token, Some(&since), 0).await;
    let left = &sync["rooms"]["leave"][&room]["timeline"]["events"];
    assert!(
        left.as_array().unwrap().iter().any(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "leave"),
        "{sync}"
    );
    assert_error(
        &app.post(&app.room_path(&room, "leave"), Some(&bob.token), json!({})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_eq!(app.post(&app.room_path(&room, "forget"), Some(&bob.token), json!({})).await.0, StatusCode::OK);
    let (_, joined) = app.get("/_matrix/client/v3/joined_rooms", Some(&bob.token)).await;
    assert_eq!(joined["joined_rooms"], json!([]));
}

async fn bad_room_requests_get_matrix_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let path = app.room_path(&room, "send/m.room.message/t");
    assert_error(&app.put(&path, Some(&alice.token), json!([1])).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_error(&app.put(&path, None, json!({})).await, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let unknown =
        app.put(&app.room_path("!nope:localhost", "send/m.room.message/t"), Some(&alice.token), json!({})).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let float = app.put(&path, Some(&alice.token), json!({"body": "x", "n": 1.5})).await;
    assert_error(&float, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_error(
        &app.get(&format!("{}?dir=x", app.room_path(&room, "messages")), Some(&alice.token)).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    assert_error(
        &app.get(&format!("{}?dir=b&from=garbage", app.room_path(&room, "messages")), Some(&alice.token)).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    assert_error(
        &app.get("/_matrix/client/v3/sync?since=garbage", Some(&alice.token)).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let bad_invite =
        app.post("/_matrix/client/v3/createRoom", Some(&alice.token), json!({"invite": ["not a user"]})).await;
    assert_error(&bad_invite, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_eq!(
        app.post(&app.room_path(&room, "invite"), Some(&alice.token), json!({"user_id": "@ghost:localhost"})).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn history_visibility_joined_hides_the_past(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app
        .create_room(
            &alice.token,
            json!({"preset": "public_chat", "initial_state": [
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}]}),
        )
        .await;
    let secret = app.send_text(&alice.token, &room, "before bob").await;
    app.join(&bob.token, &room).await;
    let after = app.send_text(&alice.token, &room, "after bob").await;
    let (_, page) = app.get(&format!("{}?dir=b&limit=50", app.room_path(&room, "messages")), Some(&bob.token)).await;
    let ids: Vec<&str> = page["chunk"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&after.as_str()) && !ids.contains(&secret.as_str()), "{ids:?}");
    assert_error(
        &app.get(&app.room_path(&room, &format!("event/{}", encode(&secret))), Some(&bob.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let sync = app.sync(&bob.token, None, 0).await;
    let timeline = crate::helpers::timeline(&sync, &room);
    assert!(!timeline.iter().any(|e| e["event_id"] == secret.as_str()), "{sync}");
    // In a `shared` room a newcomer reads the whole history.
    let shared = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    let old = app.send_text(&alice.token, &shared, "old news").await;
    app.join(&carol.token, &shared).await;
    assert_eq!(
        app.get(&app.room_path(&shared, &format!("event/{}", encode(&old))), Some(&carol.token)).await.0,
        StatusCode::OK
    );
}
