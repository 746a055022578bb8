//! Login, refresh tokens, logout, failed-login backoff and rate limits.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app, spawn_app_with};

both_backends!(
    login_flows_offer_password,
    login_accepts_user_identifiers_legacy_user_and_full_ids,
    login_by_email_finds_the_account,
    wrong_passwords_and_unknown_users_are_forbidden_alike,
    unknown_login_types_are_refused,
    login_with_an_existing_device_id_replaces_its_token,
    refresh_tokens_rotate_and_a_used_one_stops_working,
    an_expired_access_token_is_a_soft_logout,
    logout_revokes_the_token_and_device,
    logout_all_revokes_every_device,
    missing_and_forged_tokens_are_rejected,
    repeated_failed_logins_back_off_without_locking_out_forever,
    login_is_rate_limited_per_ip,
    a_login_rehashes_a_password_made_with_other_parameters,
);

const LOGIN: &str = "/_matrix/client/v3/login";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

async fn login_flows_offer_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app.get(LOGIN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["flows"], json!([{"type": "m.login.password"}]));
}

async fn login_accepts_user_identifiers_legacy_user_and_full_ids(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.register("alice").await;
    for body in [
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}),
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@alice:localhost"}, "password": PASSWORD}),
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "Alice"}, "password": PASSWORD}),
        json!({"type": "m.login.password", "user": "alice", "password": PASSWORD}),
    ] {
        let (status, session) = app.post(LOGIN, None, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} -> {session}");
        assert_eq!(session["user_id"], "@alice:localhost");
        assert_eq!(session["home_server"], "localhost");
        let (status, who) = app.get(WHOAMI, session["access_token"].as_str()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(who["device_id"], session["device_id"]);
    }
    let other_server = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@alice:elsewhere"}, "password": PASSWORD});
    assert_error(&app.post(LOGIN, None, other_server).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn login_by_email_finds_the_account(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, _) = app
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "alice", "password": PASSWORD, "email": "alice@example.org", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let by_identifier = json!({"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "ALICE@example.org"}, "password": PASSWORD});
    let (status, body) = app.post(LOGIN, None, by_identifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@alice:localhost");
    let legacy =
        json!({"type": "m.login.password", "medium": "email", "address": "alice@example.org", "password": PASSWORD});
    assert_eq!(app.post(LOGIN, None, legacy).await.0, StatusCode::OK);
    let unknown = json!({"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "nobody@example.org"}, "password": PASSWORD});
    assert_error(&app.post(LOGIN, None, unknown).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn wrong_passwords_and_unknown_users_are_forbidden_alike(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.register("alice").await;
    let wrong = app.login("alice", "not the password").await;
    let unknown = app.login("nobody", PASSWORD).await;
    assert_error(&wrong, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_error(&unknown, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(wrong.1["error"], unknown.1["error"], "the answer does not reveal which names exist");
    let no_password = app.post(LOGIN, None, json!({"type": "m.login.password", "user": "alice"})).await;
    assert_error(&no_password, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
}

async fn unknown_login_types_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.post(LOGIN, None, json!({"type": "m.login.token", "token": "abc"})).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    let response = app.post(LOGIN, None, json!({"password": PASSWORD, "user": "alice"})).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn login_with_an_existing_device_id_replaces_its_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let body = json!({"type": "m.login.password", "user": "alice", "password": PASSWORD, "device_id": alice.device_id});
    let (status, again) = app.post(LOGIN, None, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["device_id"], alice.device_id.as_str());
    assert_error(&app.get(WHOAMI, Some(&alice.token)).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(app.get(WHOAMI, again["access_token"].as_str()).await.0, StatusCode::OK);
    let (_, devices) = app.get("/_matrix/client/v3/devices", again["access_token"].as_str()).await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 1);
}

async fn refresh_tokens_rotate_and_a_used_one_stops_working(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.register("alice").await;
    let (status, session) = app
        .post(
            LOGIN,
            None,
            json!({"type": "m.login.password", "user": "alice", "password": PASSWORD, "refresh_token": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["expires_in_ms"], 300_000);
    let first_refresh = session["refresh_token"].as_str().unwrap();

    let (status, refreshed) =
        app.post("/_matrix/client/v3/refresh", None, json!({"refresh_token": first_refresh})).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed["expires_in_ms"].as_u64().unwrap() > 0);
    let new_token = refreshed["access_token"].as_str().unwrap();
    assert_ne!(new_token, session["access_token"].as_str().unwrap());
    let (status, who) = app.get(WHOAMI, Some(new_token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["device_id"], session["device_id"], "refresh keeps the device");
    assert_error(&app.get(WHOAMI, session["access_token"].as_str()).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");

    let reused = app.post("/_matrix/client/v3/refresh", None, json!({"refresh_token": first_refresh})).await;
    assert_error(&reused, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let (status, _) =
        app.post("/_matrix/client/v3/refresh", None, json!({"refresh_token": refreshed["refresh_token"]})).await;
    assert_eq!(status, StatusCode::OK, "the rotated refresh token works once");
    let forged = app.post("/_matrix/client/v3/refresh", None, json!({"refresh_token": "hthr_forged"})).await;
    assert_error(&forged, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

async fn an_expired_access_token_is_a_soft_logout(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.auth.refreshable_access_token_lifetime_ms = 1000).await else {
        return;
    };
    app.register("alice").await;
    let (_, session) = app
        .post(
            LOGIN,
            None,
            json!({"type": "m.login.password", "user": "alice", "password": PASSWORD, "refresh_token": true}),
        )
        .await;
    assert_eq!(app.get(WHOAMI, session["access_token"].as_str()).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = app.get(WHOAMI, session["access_token"].as_str()).await;
    assert_error(&expired, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(expired.1["soft_logout"], true);
    let (status, refreshed) =
        app.post("/_matrix/client/v3/refresh", None, json!({"refresh_token": session["refresh_token"]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(WHOAMI, refreshed["access_token"].as_str()).await.0, StatusCode::OK);
    // An expired token may still log out, so soft-logged-out clients can clean up.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = app.post("/_matrix/client/v3/logout", refreshed["access_token"].as_str(), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let refresh_after_logout =
        app.post("/_matrix/client/v3/refresh", None, json!({"refresh_token": refreshed["refresh_token"]})).await;
    assert_error(&refresh_after_logout, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

async fn logout_revokes_the_token_and_device(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, second) = app.login("alice", PASSWORD).await;
    let (status, body) = app.post("/_matrix/client/v3/logout", Some(&alice.token), json!({})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let revoked = app.get(WHOAMI, Some(&alice.token)).await;
    assert_error(&revoked, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(revoked.1["soft_logout"], false);
    let (_, devices) = app.get("/_matrix/client/v3/devices", second["access_token"].as_str()).await;
    let ids: Vec<&str> =
        devices["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![second["device_id"].as_str().unwrap()], "the logged-out device is gone, the other stays");
}

async fn logout_all_revokes_every_device(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let (_, second) = app.login("alice", PASSWORD).await;
    let bob = app.register("bob").await;
    let (status, _) = app.post("/_matrix/client/v3/logout/all", Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(&app.get(WHOAMI, Some(&alice.token)).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_error(&app.get(WHOAMI, second["access_token"].as_str()).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(app.get(WHOAMI, Some(&bob.token)).await.0, StatusCode::OK, "other users are untouched");
    assert_eq!(app.login("alice", PASSWORD).await.0, StatusCode::OK, "the account itself still works");
}

async fn missing_and_forged_tokens_are_rejected(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    assert_error(&app.get(WHOAMI, None).await, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    assert_error(&app.get(WHOAMI, Some("hth_forged")).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let almost = format!("{}x", alice.token);
    assert_error(&app.get(WHOAMI, Some(&almost)).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let sql = "' OR '1'='1";
    assert_error(&app.get(WHOAMI, Some(sql)).await, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let response =
        app.client.get(format!("{}{WHOAMI}", app.base)).header("Authorization", "Basic abc").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The deprecated query parameter still works.
    let (status, who) = app.get(&format!("{WHOAMI}?access_token={}", alice.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["user_id"], alice.user_id);
}

async fn repeated_failed_logins_back_off_without_locking_out_forever(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.auth.login_free_failures = 2;
        c.auth.login_max_backoff_ms = 1500;
    })
    .await
    else {
        return;
    };
    app.register("alice").await;
    for _ in 0..2 {
        assert_error(&app.login("alice", "wrong").await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    let limited = app.login("alice", PASSWORD).await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    let wait = limited.1["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 1500, "{wait}");
    assert_eq!(app.login("bob", PASSWORD).await.0, StatusCode::FORBIDDEN, "other accounts are not slowed");
    // Many more failures never push the wait past the cap.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    for _ in 0..5 {
        let _ = app.login("alice", "wrong").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, _) = app.login("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "the owner gets in after at most the maximum wait");
    assert_eq!(app.login("alice", PASSWORD).await.0, StatusCode::OK, "success resets the count");
}

async fn login_is_rate_limited_per_ip(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limits.enabled = true;
        c.rate_limits.login.burst = 3;
        c.rate_limits.login.period_ms = 60_000;
    })
    .await
    else {
        return;
    };
    for _ in 0..3 {
        assert_eq!(app.login("nobody", "x").await.0, StatusCode::FORBIDDEN);
    }
    let response = app
        .client
        .post(format!("{}{LOGIN}", app.base))
        .json(&json!({"type": "m.login.password", "user": "nobody", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], "M_LIMIT_EXCEEDED");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 1000);
}

async fn a_login_rehashes_a_password_made_with_other_parameters(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let before = stored_hash(&app, &alice.user_id).await;
    assert!(before.contains("$m=1024,t=1,p=1$"), "{before}");

    // The admin raises the cost (as a new default does after an upgrade).
    app.restart_with(|config| config.auth.argon2_iterations = 2).await;
    let login =
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD});
    let (status, _) = app.post(LOGIN, None, login.clone()).await;
    assert_eq!(status, StatusCode::OK, "the old hash still verifies");
    let after = stored_hash(&app, &alice.user_id).await;
    assert!(after.contains("$m=1024,t=2,p=1$"), "rehashed with the configured parameters: {after}");
    let (status, _) = app.post(LOGIN, None, login.clone()).await;
    assert_eq!(status, StatusCode::OK, "and the new hash verifies");
    assert_eq!(stored_hash(&app, &alice.user_id).await, after, "a current hash is left alone");

    let wrong =
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "wrong"});
    app.restart_with(|config| config.auth.argon2_iterations = 3).await;
    let (status, _) = app.post(LOGIN, None, wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(stored_hash(&app, &alice.user_id).await, after, "a failed login changes nothing");
}

async fn stored_hash(app: &crate::helpers::TestApp, user_id: &str) -> String {
    app.open_db().await.user(user_id).await.unwrap().unwrap().password_hash.unwrap()
}
