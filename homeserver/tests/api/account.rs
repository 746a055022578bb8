//! whoami, password change and deactivation with user-interactive auth.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, assert_error, password_auth, spawn_app};

both_backends!(
    whoami_names_the_user_and_device,
    changing_the_password_needs_the_old_one_and_logs_out_other_devices,
    changing_the_password_can_keep_other_devices,
    a_uia_session_cannot_be_reused_for_another_operation,
    deactivation_needs_the_password_and_ends_the_account,
    deactivation_with_erase_clears_the_profile,
    an_account_without_emails_lists_none,
    guessing_the_password_through_uia_is_slowed_down,
);

const PASSWORD_PATH: &str = "/_matrix/client/v3/account/password";
const DEACTIVATE: &str = "/_matrix/client/v3/account/deactivate";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

async fn whoami_names_the_user_and_device(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (status, body) = app.get(WHOAMI, Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"user_id": alice.user_id, "device_id": alice.device_id, "is_guest": false}));
}

async fn changing_the_password_needs_the_old_one_and_logs_out_other_devices(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, phone) = app.login("alice", PASSWORD).await;

    let (status, challenge) =
        app.post(PASSWORD_PATH, Some(&alice.token), json!({"new_password": "a brand new secret"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge["flows"], json!([{"stages": ["m.login.password"]}]));
    let session = challenge["session"].as_str().unwrap();

    let wrong =
        json!({"new_password": "a brand new secret", "auth": password_auth(&alice.user_id, "wrong", Some(session))});
    let (status, body) = app.post(PASSWORD_PATH, Some(&alice.token), wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_FORBIDDEN", "a wrong password inside UIA is 401 M_FORBIDDEN with the flows");
    assert!(body["flows"].is_array());

    let weak = json!({"new_password": "short", "auth": password_auth(&alice.user_id, PASSWORD, Some(session))});
    assert_error(&app.post(PASSWORD_PATH, Some(&alice.token), weak).await, StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD");

    let right =
        json!({"new_password": "a brand new secret", "auth": password_auth(&alice.user_id, PASSWORD, Some(session))});
    let (status, body) = app.post(PASSWORD_PATH, Some(&alice.token), right).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    assert_eq!(app.get(WHOAMI, Some(&alice.token)).await.0, StatusCode::OK, "the requesting device stays logged in");
    assert_error(&app.get(WHOAMI, phone["access_token"].as_str()).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_error(&app.login("alice", PASSWORD).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(app.login("alice", "a brand new secret").await.0, StatusCode::OK);
}

async fn changing_the_password_can_keep_other_devices(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, phone) = app.login("alice", PASSWORD).await;
    let body = json!({
        "new_password": "another good secret",
        "logout_devices": false,
        "auth": password_auth(&alice.user_id, PASSWORD, None),
    });
    let (status, _) = app.post(PASSWORD_PATH, Some(&alice.token), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(WHOAMI, phone["access_token"].as_str()).await.0, StatusCode::OK);
}

async fn a_uia_session_cannot_be_reused_for_another_operation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, challenge) = app.post(PASSWORD_PATH, Some(&alice.token), json!({"new_password": "whatever secret"})).await;
    let session = challenge["session"].as_str().unwrap();
    let body = json!({"auth": password_auth(&alice.user_id, PASSWORD, Some(session))});
    assert_error(&app.post(DEACTIVATE, Some(&alice.token), body).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(app.get(WHOAMI, Some(&alice.token)).await.0, StatusCode::OK, "nothing was deactivated");
    // Another user's password does not authorise alice's request.
    app.register("mallory").await;
    let body = json!({"auth": password_auth("@mallory:localhost", PASSWORD, None)});
    let (status, body) = app.post(DEACTIVATE, Some(&alice.token), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_FORBIDDEN");
}

async fn deactivation_needs_the_password_and_ends_the_account(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (status, challenge) = app.post(DEACTIVATE, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge["flows"], json!([{"stages": ["m.login.password"]}]));
    let body = json!({"auth": password_auth(&alice.user_id, PASSWORD, challenge["session"].as_str())});
    let (status, body) = app.post(DEACTIVATE, Some(&alice.token), body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id_server_unbind_result"], "success");

    assert_error(&app.get(WHOAMI, Some(&alice.token)).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_error(&app.login("alice", PASSWORD).await, StatusCode::FORBIDDEN, "M_USER_DEACTIVATED");
    let again = app
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&again, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let (_, profile) = app.get("/_matrix/client/v3/profile/@alice:localhost", None).await;
    assert_eq!(profile["displayname"], "alice", "without erase the profile stays");
}

async fn deactivation_with_erase_clears_the_profile(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let path = format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id);
    assert_eq!(
        app.put(&path, Some(&alice.token), json!({"avatar_url": "mxc://localhost/abc"})).await.0,
        StatusCode::OK
    );
    let body = json!({"erase": true, "auth": password_auth(&alice.user_id, PASSWORD, None)});
    assert_eq!(app.post(DEACTIVATE, Some(&alice.token), body).await.0, StatusCode::OK);
    let (status, profile) = app.get("/_matrix/client/v3/profile/@alice:localhost", None).await;
    assert_eq!((status, profile), (StatusCode::OK, json!({})));
}

async fn an_account_without_emails_lists_none(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (status, body) = app.get("/_matrix/client/v3/account/3pid", Some(&alice.token)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"threepids": []})));
}

async fn guessing_the_password_through_uia_is_slowed_down(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| {
        c.auth.login_free_failures = 2;
        c.auth.login_max_backoff_ms = 60_000;
    })
    .await
    else {
        return;
    };
    let alice = app.register("alice").await;
    for _ in 0..2 {
        let body = json!({"new_password": "new secret pass", "auth": password_auth(&alice.user_id, "guess", None)});
        let (status, _) = app.post(PASSWORD_PATH, Some(&alice.token), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let body = json!({"new_password": "new secret pass", "auth": password_auth(&alice.user_id, PASSWORD, None)});
    assert_error(
        &app.post(PASSWORD_PATH, Some(&alice.token), body).await,
        StatusCode::TOO_MANY_REQUESTS,
        "M_LIMIT_EXCEEDED",
    );
}
