//! Push rules, unread counts, notifications and pushers.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, assert_error, encode, spawn_app};

both_backends!(
    default_push_rules_are_served_and_synced,
    messages_count_as_unread_until_read,
    push_rules_can_be_changed,
    notifications_are_listed,
    pushers_are_stored,
    group_members_are_notified_by_their_own_rules_and_names,
);

async fn default_push_rules_are_served_and_synced(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (status, rules) = app.get("/_matrix/client/v3/pushrules/", Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |kind: &str| -> Vec<String> {
        rules["global"][kind].as_array().unwrap().iter().map(|r| r["rule_id"].as_str().unwrap().to_owned()).collect()
    };
    assert!(ids("override").contains(&".m.rule.master".to_owned()));
    assert!(ids("underride").contains(&".m.rule.message".to_owned()));
    assert!(ids("underride").contains(&".m.rule.call".to_owned()));
    let sync = app.sync(&alice.token, None, 0).await;
    let synced = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .cloned()
        .unwrap();
    assert_eq!(synced["content"], rules);
    let (_, master) = app.get("/_matrix/client/v3/pushrules/global/override/.m.rule.master", Some(&alice.token)).await;
    assert_eq!(master["enabled"], false);
}

async fn messages_count_as_unread_until_read(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app
        .create_room(
            &alice.token,
            json!({"preset": "trusted_private_chat", "invite": [bob.user_id], "is_direct": true}),
        )
        .await;
    app.join(&bob.token, &room).await;
    app.send_text(&bob.token, &room, "first").await;
    let (_, mention) = app
        .put(
            &app.room_path(&room, "send/m.room.message/m1"),
            Some(&bob.token),
            json!({"msgtype": "m.text", "body": "alice: look", "m.mentions": {"user_ids": [alice.user_id]}}),
        )
        .await;
    let sync = app.sync(&alice.token, None, 0).await;
    let counts = &sync["rooms"]["join"][&room]["unread_notifications"];
    assert_eq!(counts["notification_count"], 2, "{sync}");
    assert_eq!(counts["highlight_count"], 1, "a mention highlights");
    let own = app.sync(&bob.token, None, 0).await;
    assert_eq!(
        own["rooms"]["join"][&room]["unread_notifications"]["notification_count"], 0,
        "own messages never notify"
    );

    let since = sync["next_batch"].as_str().unwrap().to_owned();
    let receipt = app.room_path(&room, &format!("receipt/m.read/{}", encode(mention["event_id"].as_str().unwrap())));
    assert_eq!(app.post(&receipt, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    let sync = app.sync(&alice.token, Some(&since), 5_000).await;
    assert_eq!(
        sync["rooms"]["join"][&room]["unread_notifications"],
        json!({"notification_count": 0, "highlight_count": 0})
    );
}

async fn push_rules_can_be_changed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    let rule = format!("/_matrix/client/v3/pushrules/global/room/{}", encode(&room));
    assert_eq!(app.put(&rule, Some(&alice.token), json!({"actions": []})).await.0, StatusCode::OK);
    let (_, stored) = app.get(&rule, Some(&alice.token)).await;
    assert_eq!(stored["rule_id"], room.as_str());
    app.send_text(&bob.token, &room, "muted").await;
    let sync = app.sync(&alice.token, None, 0).await;
    assert_eq!(
        sync["rooms"]["join"][&room]["unread_notifications"]["notification_count"], 0,
        "a muted room does not count"
    );

    assert_eq!(
        app.put(&format!("{rule}/enabled"), Some(&alice.token), json!({"enabled": false})).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get(&format!("{rule}/enabled"), Some(&alice.token)).await.1, json!({"enabled": false}));
    assert_eq!(
        app.put(&format!("{rule}/actions"), Some(&alice.token), json!({"actions": ["notify"]})).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get(&format!("{rule}/actions"), Some(&alice.token)).await.1, json!({"actions": ["notify"]}));
    assert_eq!(app.delete(&rule, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    assert_error(&app.get(&rule, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let keyword = "/_matrix/client/v3/pushrules/global/content/cake";
    assert_eq!(
        app.put(keyword, Some(&alice.token), json!({"pattern": "cake", "actions": ["notify"]})).await.0,
        StatusCode::OK
    );
    let placed = app
        .put(
            "/_matrix/client/v3/pushrules/global/content/pie?before=cake",
            Some(&alice.token),
            json!({"pattern": "pie", "actions": ["notify"]}),
        )
        .await;
    assert_eq!(placed.0, StatusCode::OK);
    let (_, all) = app.get("/_matrix/client/v3/pushrules/global/", Some(&alice.token)).await;
    let content_ids: Vec<&str> =
        all["content"].as_array().unwrap().iter().map(|r| r["rule_id"].as_str().unwrap()).collect();
    let pie = content_ids.iter().position(|id| *id == "pie").unwrap();
    let cake = content_ids.iter().position(|id| *id == "cake").unwrap();
    assert!(pie < cake, "{content_ids:?}");

    assert_error(
        &app.get("/_matrix/client/v3/pushrules/global/nonsense/x", Some(&alice.token)).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    assert_error(
        &app.get("/_matrix/client/v3/pushrules/device/override/x", Some(&alice.token)).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let default_delete =
        app.delete("/_matrix/client/v3/pushrules/global/override/.m.rule.master", Some(&alice.token), json!({})).await;
    assert_error(&default_delete, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let bad_actions = app.put(keyword, Some(&alice.token), json!({"pattern": "cake", "actions": "loud"})).await;
    assert_error(&bad_actions, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_error(
        &app.put(
            "/_matrix/client/v3/pushrules/global/content/x?before=nope",
            Some(&alice.token),
            json!({"pattern": "x", "actions": []}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
}

async fn notifications_are_listed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"preset": "public_chat"})).await;
    app.join(&bob.token, &room).await;
    app.send_text(&bob.token, &room, "plain").await;
    app.put(
        &app.room_path(&room, "send/m.room.message/h"),
        Some(&bob.token),
        json!({"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [alice.user_id]}}),
    )
    .await;
    let (status, list) = app.get("/_matrix/client/v3/notifications", Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    let notifications = list["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 2, "{list}");
    assert_eq!(notifications[0]["event"]["content"]["body"], "hey");
    assert_eq!(notifications[0]["room_id"], room.as_str());
    assert_eq!(notifications[0]["read"], false);
    assert!(notifications[0]["actions"].as_array().unwrap().iter().any(|a| a == "notify"));
    let (_, highlights) = app.get("/_matrix/client/v3/notifications?only=highlight", Some(&alice.token)).await;
    assert_eq!(highlights["notifications"].as_array().unwrap().len(), 1);
    let (_, page) = app.get("/_matrix/client/v3/notifications?limit=1", Some(&alice.token)).await;
    let next = page["next_token"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/_matrix/client/v3/notifications?limit=1&from={next}"), Some(&alice.token)).await;
    assert_eq!(rest["notifications"][0]["event"]["content"]["body"], "plain");
}

async fn pushers_are_stored(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let pusher = json!({
        "pushkey": "device-token-1", "kind": "http", "app_id": "org.example.app", "app_display_name": "Example",
        "device_display_name": "Phone", "lang": "en", "data": {"url": "https://push.example.org/_matrix/push/v1/notify", "format": "event_id_only"}
    });
    assert_eq!(app.post("/_matrix/client/v3/pushers/set", Some(&alice.token), pusher.clone()).await.0, StatusCode::OK);
    let (_, list) = app.get("/_matrix/client/v3/pushers", Some(&alice.token)).await;
    assert_eq!(list["pushers"][0]["pushkey"], "device-token-1");
    assert_eq!(list["pushers"][0]["data"]["format"], "event_id_only");
    let mut bad = pusher.clone();
    bad["data"]["url"] = json!("https://push.example.org/elsewhere");
    assert_error(
        &app.post("/_matrix/client/v3/pushers/set", Some(&alice.token), bad).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let mut delete = pusher.clone();
    delete["kind"] = json!(null);
    assert_eq!(app.post("/_matrix/client/v3/pushers/set", Some(&alice.token), delete).await.0, StatusCode::OK);
    assert_eq!(app.get("/_matrix/client/v3/pushers", Some(&alice.token)).await.1, json!({"pushers": []}));
}

async fn group_members_are_notified_by_their_own_rules_and_names(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let bob = app.register("bob").await;
    let room = app.create_room(&bob.token, json!({"preset": "public_chat"})).await;
    let mut members = Vec::new();
    for name in ["alice", "carol", "dave"] {
        let member = app.register(name).await;
        app.join(&member.token, &room).await;
        members.push(member);
    }
    let (alice, carol, dave) = (&members[0], &members[1], &members[2]);
    let counts = |sync: &serde_json::Value| {
        let counts = &sync["rooms"]["join"][&room]["unread_notifications"];
        (counts["notification_count"].as_i64().unwrap(), counts["highlight_count"].as_i64().unwrap())
    };
    app.send_text(&bob.token, &room, "hello everyone").await;
    for member in &members {
        assert_eq!(counts(&app.sync(&member.token, None, 0).await), (1, 0), "{}", member.user_id);
    }
    // Mentioning carol highlights for her alone.
    let mention =
        json!({"msgtype": "m.text", "body": "what do you think, carol?", "m.mentions": {"user_ids": [carol.user_id]}});
    assert_eq!(
        app.put(&app.room_path(&room, "send/m.room.message/m1"), Some(&bob.token), mention).await.0,
        StatusCode::OK
    );
    assert_eq!(counts(&app.sync(&carol.token, None, 0).await), (2, 1));
    assert_eq!(counts(&app.sync(&alice.token, None, 0).await), (2, 0));
    // Dave turns off notifications for ordinary messages; the next one does not count for him.
    let rule = "/_matrix/client/v3/pushrules/global/underride/.m.rule.message/enabled";
    assert_eq!(app.put(rule, Some(&dave.token), json!({"enabled": false})).await.0, StatusCode::OK);
    app.send_text(&bob.token, &room, "one more thing").await;
    assert_eq!(counts(&app.sync(&dave.token, None, 0).await), (2, 0));
    assert_eq!(counts(&app.sync(&alice.token, None, 0).await), (3, 0));
    // Someone who changed their rules before joining is judged by them from their first message.
    let erin = app.register("erin").await;
    assert_eq!(app.put(rule, Some(&erin.token), json!({"enabled": false})).await.0, StatusCode::OK);
    app.join(&erin.token, &room).await;
    app.send_text(&bob.token, &room, "welcome erin").await;
    assert_eq!(counts(&app.sync(&erin.token, None, 0).await), (0, 0));
    assert_eq!(counts(&app.sync(&alice.token, None, 0).await), (4, 0));
}
