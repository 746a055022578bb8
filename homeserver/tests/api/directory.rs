//! Aliases, the public room directory, the user directory, /context, /timestamp_to_event,
//! reports and knocking.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, assert_error, encode, spawn_app};

both_backends!(
    aliases_are_created_resolved_listed_and_deleted,
    public_rooms_are_listed_searched_and_paged,
    users_are_found_through_shared_and_public_rooms,
    context_and_timestamps_find_events,
    reports_need_visibility,
    knocking_asks_to_join,
);

async fn aliases_are_created_resolved_listed_and_deleted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let path = format!("/_matrix/client/v3/directory/room/{}", encode("#team:localhost"));
    assert_eq!(app.put(&path, Some(&alice.token), json!({"room_id": room})).await.0, StatusCode::OK);
    let (status, resolved) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resolved, json!({"room_id": room, "servers": ["localhost"]}));
    assert_error(
        &app.put(&path, Some(&alice.token), json!({"room_id": room})).await,
        StatusCode::CONFLICT,
        "M_UNKNOWN",
    );
    let (_, aliases) = app.get(&app.room_path(&room, "aliases"), Some(&alice.token)).await;
    assert_eq!(aliases, json!({"aliases": ["#team:localhost"]}));
    assert_error(
        &app.get(&app.room_path(&room, "aliases"), Some(&bob.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let outsider = format!("/_matrix/client/v3/directory/room/{}", encode("#bobs:localhost"));
    assert_error(
        &app.put(&outsider, Some(&bob.token), json!({"room_id": room})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(&app.delete(&path, Some(&bob.token), json!({})).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let remote = format!("/_matrix/client/v3/directory/room/{}", encode("#x:elsewhere.org"));
    assert_error(
        &app.put(&remote, Some(&alice.token), json!({"room_id": room})).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    assert_eq!(app.delete(&path, Some(&alice.token), json!({})).await.0, StatusCode::OK);
    assert_error(&app.get(&path, None).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn public_rooms_are_listed_searched_and_paged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let big = app
        .create_room(
            &alice.token,
            json!({"visibility": "public", "name": "Gardening", "topic": "tomatoes", "room_alias_name": "garden"}),
        )
        .await;
    app.join(&bob.token, &big).await;
    let small = app.create_room(&alice.token, json!({"visibility": "public", "name": "Chess club"})).await;
    let hidden = app.create_room(&alice.token, json!({"preset": "public_chat", "name": "Unlisted"})).await;
    let (status, list) = app.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["chunk"].as_array().unwrap().iter().map(|r| r["room_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![big.as_str(), small.as_str()], "published rooms only, largest first");
    assert_eq!(list["chunk"][0]["num_joined_members"], 2);
    assert_eq!(list["chunk"][0]["canonical_alias"], "#garden:localhost");
    assert_eq!(list["chunk"][0]["topic"], "tomatoes");
    assert_eq!(list["chunk"][0]["join_rule"], "public");
    assert_eq!(list["total_room_count_estimate"], 2);

    let (_, found) = app
        .post("/_matrix/client/v3/publicRooms", Some(&bob.token), json!({"filter": {"generic_search_term": "chess"}}))
        .await;
    assert_eq!(found["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(found["chunk"][0]["room_id"], small.as_str());
    let (_, page) = app.get("/_matrix/client/v3/publicRooms?limit=1", None).await;
    assert_eq!(page["chunk"].as_array().unwrap().len(), 1);
    let next = page["next_batch"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/_matrix/client/v3/publicRooms?limit=1&since={next}"), None).await;
    assert_eq!(page2["chunk"][0]["room_id"], small.as_str());

    let list_path = format!("/_matrix/client/v3/directory/list/room/{}", encode(&hidden));
    assert_eq!(app.get(&list_path, None).await.1, json!({"visibility": "private"}));
    assert_error(
        &app.put(&list_path, Some(&bob.token), json!({"visibility": "public"})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_eq!(app.put(&list_path, Some(&alice.token), json!({"visibility": "public"})).await.0, StatusCode::OK);
    assert_eq!(app.get(&list_path, None).await.1, json!({"visibility": "public"}));
    assert_eq!(app.get("/_matrix/client/v3/publicRooms", None).await.1["chunk"].as_array().unwrap().len(), 3);
}

async fn users_are_found_through_shared_and_public_rooms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    app.register("hermit").await;
    let path = format!("/_matrix/client/v3/profile/{}/displayname", bob.user_id);
    app.put(&path, Some(&bob.token), json!({"displayname": "Bobby Tables"})).await;
    let private = app.create_room(&alice.token, json!({"invite": [bob.user_id]})).await;
    app.join(&bob.token, &private).await;
    let public = app.create_room(&carol.token, json!({"visibility": "public"})).await;
    let _ = public;

    let search = |term: &'static str| {
        let app = &app;
        let token = alice.token.clone();
        async move {
            app.post("/_matrix/client/v3/user_directory/search", Some(&token), json!({"search_term": term})).await.1
        }
    };
    let found = search("tables").await;
    assert_eq!(found["results"], json!([{"user_id": "@bob:localhost", "display_name": "Bobby Tables"}]));
    assert_eq!(
        search("carol").await["results"][0]["user_id"],
        "@carol:localhost",
        "users in public rooms are findable"
    );
    assert_eq!(search("hermit").await["results"], json!([]), "users who share nothing stay hidden");
    assert_eq!(search("%").await["results"], json!([]), "LIKE wildcards are literal");
    assert_eq!(found["limited"], false);
}

async fn context_and_timestamps_find_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let room = app.create_room(&alice.token, json!({"name": "ctx"})).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.send_text(&alice.token, &room, &format!("m{i}")).await);
    }
    let (status, context) =
        app.get(&app.room_path(&room, &format!("context/{}?limit=4", encode(&ids[3]))), Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{context}");
    assert_eq!(context["event"]["event_id"], ids[3].as_str());
    assert_eq!(context["events_before"][0]["event_id"], ids[2].as_str());
    assert_eq!(context["events_before"][1]["event_id"], ids[1].as_str());
    assert_eq!(context["events_after"][0]["event_id"], ids[4].as_str());
    assert_eq!(context["events_after"][1]["event_id"], ids[5].as_str());
    assert!(context["state"].as_array().unwrap().iter().any(|e| e["type"] == "m.room.name"));
    let (_, page) = app
        .get(
            &format!("{}?dir=b&limit=1&from={}", app.room_path(&room, "messages"), context["start"].as_str().unwrap()),
            Some(&alice.token),
        )
        .await;
    assert_eq!(page["chunk"][0]["event_id"], ids[0].as_str(), "start continues backwards");

    let (_, event) = app.get(&app.room_path(&room, &format!("event/{}", encode(&ids[5]))), Some(&alice.token)).await;
    let ts = event["origin_server_ts"].as_i64().unwrap();
    let path = format!("/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={ts}&dir=f", encode(&room));
    let (status, found) = app.get(&path, Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["origin_server_ts"], ts);
    let future = format!("/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={}&dir=f", encode(&room), ts + 3_600_000);
    assert_error(&app.get(&future, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let past = format!("/_matrix/client/v1/rooms/{}/timestamp_to_event?ts={}&dir=b", encode(&room), ts + 3_600_000);
    assert_eq!(app.get(&past, Some(&alice.token)).await.1["event_id"], ids[6].as_str());
}

async fn reports_need_visibility(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let eve = app.register("eve").await;
    let room = app.create_room(&alice.token, json!({})).await;
    let event = app.send_text(&alice.token, &room, "reportable").await;
    let path = app.room_path(&room, &format!("report/{}", encode(&event)));
    assert_eq!(app.post(&path, Some(&alice.token), json!({"reason": "test", "score": -100})).await.0, StatusCode::OK);
    assert_eq!(
        app.post(&app.room_path(&room, "report"), Some(&alice.token), json!({"reason": "room"})).await.0,
        StatusCode::OK
    );
    assert_error(
        &app.post(&path, Some(&eve.token), json!({"reason": "?"})).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    assert_error(
        &app.post(&path, Some(&alice.token), json!({"score": 5})).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
}

async fn knocking_asks_to_join(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice.token, json!({"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}], "name": "Knock knock"})).await;
    assert_error(&app.join(&bob.token, &room).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, body) = app
        .post(&format!("/_matrix/client/v3/knock/{}", encode(&room)), Some(&bob.token), json!({"reason": "let me in"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync = app.sync(&bob.token, None, 0).await;
    let knock_state = &sync["rooms"]["knock"][&room]["knock_state"]["events"];
    assert!(knock_state.as_array().unwrap().iter().any(|e| e["type"] == "m.room.name"), "{sync}");
    let (_, member) =
        app.get(&app.room_path(&room, &format!("state/m.room.member/{}", bob.user_id)), Some(&alice.token)).await;
    assert_eq!(member["membership"], "knock");
    assert_eq!(
        app.post(&app.room_path(&room, "invite"), Some(&alice.token), json!({"user_id": bob.user_id})).await.0,
        StatusCode::OK
    );
    assert_eq!(app.join(&bob.token, &room).await.0, StatusCode::OK);
    let private = app.create_room(&alice.token, json!({})).await;
    assert_error(
        &app.post(&format!("/_matrix/client/v3/knock/{}", encode(&private)), Some(&bob.token), json!({})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}
