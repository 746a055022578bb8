//! The devices API.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, assert_error, password_auth, spawn_app};

both_backends!(
    devices_are_listed_renamed_and_fetched,
    deleting_a_device_needs_the_password_and_revokes_it,
    delete_devices_removes_several_at_once,
    a_user_cannot_touch_another_users_devices,
    behind_a_proxy_the_forwarded_address_is_recorded,
);

async fn devices_are_listed_renamed_and_fetched(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, phone) = app
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "alice", "password": PASSWORD, "initial_device_display_name": "Phone"}),
        )
        .await;
    let phone_id = phone["device_id"].as_str().unwrap();
    // Any authenticated request records where the device was last seen.
    let _ = app.get("/_matrix/client/v3/account/whoami", phone["access_token"].as_str()).await;

    let (status, list) = app.get("/_matrix/client/v3/devices", Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let phone_entry = devices.iter().find(|d| d["device_id"] == phone_id).unwrap();
    assert_eq!(phone_entry["display_name"], "Phone");

    let path = format!("/_matrix/client/v3/devices/{phone_id}");
    let (status, body) = app.put(&path, Some(&alice.token), json!({"display_name": "Old phone"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    // last_seen is written off the request path; give it a moment.
    let mut device = json!(null);
    for _ in 0..50 {
        device = app.get(&path, Some(&alice.token)).await.1;
        if device["last_seen_ts"].is_i64() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(device["display_name"], "Old phone");
    let (status, _) = app.put(&path, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(&path, Some(&alice.token)).await.1["display_name"], "Old phone", "no display_name: unchanged");
    assert_eq!(device["device_id"], phone_id);
    assert_eq!(device["last_seen_ip"], "127.0.0.1");
    assert!(device["last_seen_ts"].as_i64().unwrap() > 0);

    assert_error(
        &app.get("/_matrix/client/v3/devices/NOSUCHDEVICE", Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let rename_missing =
        app.put("/_matrix/client/v3/devices/NOSUCHDEVICE", Some(&alice.token), json!({"display_name": "x"})).await;
    assert_error(&rename_missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_error(&app.get("/_matrix/client/v3/devices", None).await, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

async fn deleting_a_device_needs_the_password_and_revokes_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, phone) = app.login("alice", PASSWORD).await;
    let path = format!("/_matrix/client/v3/devices/{}", phone["device_id"].as_str().unwrap());

    let (status, challenge) = app.delete(&path, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge["flows"], json!([{"stages": ["m.login.password"]}]));
    let session = challenge["session"].as_str();

    let (status, body) =
        app.delete(&path, Some(&alice.token), json!({"auth": password_auth(&alice.user_id, "wrong", session)})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    assert_eq!(app.get("/_matrix/client/v3/account/whoami", phone["access_token"].as_str()).await.0, StatusCode::OK);

    let (status, _) =
        app.delete(&path, Some(&alice.token), json!({"auth": password_auth(&alice.user_id, PASSWORD, session)})).await;
    assert_eq!(status, StatusCode::OK);
    let revoked = app.get("/_matrix/client/v3/account/whoami", phone["access_token"].as_str()).await;
    assert_error(&revoked, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_error(&app.get(&path, Some(&alice.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn delete_devices_removes_several_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, a) = app.login("alice", PASSWORD).await;
    let (_, b) = app.login("alice", PASSWORD).await;
    let ids = json!([a["device_id"], b["device_id"], "UNKNOWNDEV"]);
    let (status, _) = app.post("/_matrix/client/v3/delete_devices", Some(&alice.token), json!({"devices": ids})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body = json!({"devices": ids, "auth": password_auth(&alice.user_id, PASSWORD, None)});
    assert_eq!(app.post("/_matrix/client/v3/delete_devices", Some(&alice.token), body).await.0, StatusCode::OK);
    let (_, list) = app.get("/_matrix/client/v3/devices", Some(&alice.token)).await;
    let remaining: Vec<&str> =
        list["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(remaining, vec![alice.device_id.as_str()]);
    let bad = app.post("/_matrix/client/v3/delete_devices", Some(&alice.token), json!({"devices": "notalist"})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn a_user_cannot_touch_another_users_devices(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let path = format!("/_matrix/client/v3/devices/{}", alice.device_id);
    assert_error(&app.get(&path, Some(&bob.token)).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_error(
        &app.put(&path, Some(&bob.token), json!({"display_name": "pwned"})).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let body = json!({"auth": password_auth(&bob.user_id, PASSWORD, None)});
    assert_eq!(app.delete(&path, Some(&bob.token), body).await.0, StatusCode::OK, "deletes nothing of alice's");
    assert_eq!(app.get("/_matrix/client/v3/account/whoami", Some(&alice.token)).await.0, StatusCode::OK);
}

async fn behind_a_proxy_the_forwarded_address_is_recorded(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| c.listen.x_forwarded = true).await else { return };
    let alice = app.register("alice").await;
    let _ = app
        .client
        .get(format!("{}/_matrix/client/v3/account/whoami", app.base))
        .bearer_auth(&alice.token)
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .send()
        .await
        .unwrap();
    // Poll from a second device, whose own requests touch only its own row.
    let (_, other) = app.login("alice", PASSWORD).await;
    let path = format!("/_matrix/client/v3/devices/{}", alice.device_id);
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        seen = app.get(&path, other["access_token"].as_str()).await.1["last_seen_ip"].clone();
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "203.0.113.7");
}
