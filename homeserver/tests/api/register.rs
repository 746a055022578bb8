//! POST /register and friends: UIA flows, token registration, availability, email 3PIDs.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app, spawn_app_with};
use hearth::config::{RegistrationMode, Secret};

both_backends!(
    registering_with_dummy_auth_in_one_request_logs_in,
    registering_without_auth_returns_the_flows_then_completes,
    an_empty_probe_gets_the_flows,
    registration_is_rate_limited_only_when_accounts_are_created,
    a_taken_username_is_user_in_use,
    invalid_usernames_are_refused,
    weak_passwords_are_refused_by_policy,
    username_availability_is_reported,
    token_registration_requires_a_valid_token,
    closed_registration_is_forbidden,
    email_at_registration_is_listed_and_unique,
    inhibit_login_registers_without_a_device,
    guest_registration_is_refused,
);

const REGISTER: &str = "/_matrix/client/v3/register";

async fn registering_with_dummy_auth_in_one_request_logs_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app
        .post(
            REGISTER,
            None,
            json!({"username": "Alice", "password": PASSWORD, "auth": {"type": "m.login.dummy"}, "initial_device_display_name": "Laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@alice:localhost", "usernames are lowercased");
    assert!(body["access_token"].is_string() && body["device_id"].is_string());
    assert!(body.get("refresh_token").is_none(), "refresh tokens only when asked for");
    let (status, who) = app.get("/_matrix/client/v3/account/whoami", body["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["user_id"], "@alice:localhost");
    let (_, device) = app
        .get(
            &format!("/_matrix/client/v3/devices/{}", body["device_id"].as_str().unwrap()),
            body["access_token"].as_str(),
        )
        .await;
    assert_eq!(device["display_name"], "Laptop");
    let (_, profile) = app.get("/_matrix/client/v3/profile/@alice:localhost", None).await;
    assert_eq!(profile["displayname"], "alice", "the display name starts as the localpart");
}

async fn registering_without_auth_returns_the_flows_then_completes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, challenge) = app.post(REGISTER, None, json!({"username": "bob", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge["flows"], json!([{"stages": ["m.login.dummy"]}]));
    assert!(challenge["params"].is_object());
    let session = challenge["session"].as_str().unwrap();
    let (status, body) = app
        .post(
            REGISTER,
            None,
            json!({"username": "bob", "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@bob:localhost");
    // A finished session cannot be replayed.
    let replay = app
        .post(
            REGISTER,
            None,
            json!({"username": "bob2", "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await;
    assert_error(&replay, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    // A stage this server does not offer is refused inside the UIA body.
    let (status, body) = app
        .post(REGISTER, None, json!({"username": "carol", "password": PASSWORD, "auth": {"type": "m.login.recaptcha"}}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_UNRECOGNIZED");
    assert!(body["flows"].is_array());
}

async fn a_taken_username_is_user_in_use(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.register("alice").await;
    let again = app
        .post(REGISTER, None, json!({"username": "ALICE", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_error(&again, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
}

async fn invalid_usernames_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for bad in [
        "",
        "has space",
        "@alice:localhost",
        "émile",
        "tab\there",
        "nul\u{0}",
        "x'; DROP TABLE users; --",
        &"a".repeat(260),
    ] {
        let response = app
            .post(REGISTER, None, json!({"username": bad, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}))
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    }
    // Nothing was stored by the attempts: a normal registration still works.
    app.register("alice").await;
}

async fn weak_passwords_are_refused_by_policy(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.password_policy.min_length = 10;
        c.password_policy.require_digit = true;
    })
    .await
    else {
        return;
    };
    for weak in ["short1", "longenoughbutnodigit"] {
        let response = app
            .post(REGISTER, None, json!({"username": "alice", "password": weak, "auth": {"type": "m.login.dummy"}}))
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD");
    }
    let (status, _) = app
        .post(
            REGISTER,
            None,
            json!({"username": "alice", "password": "longenough1", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn username_availability_is_reported(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app.get("/_matrix/client/v3/register/available?username=alice", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"available": true})));
    app.register("alice").await;
    assert_error(
        &app.get("/_matrix/client/v3/register/available?username=alice", None).await,
        StatusCode::BAD_REQUEST,
        "M_USER_IN_USE",
    );
    assert_error(
        &app.get("/_matrix/client/v3/register/available?username=no%20spaces", None).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_USERNAME",
    );
    assert_error(
        &app.get("/_matrix/client/v3/register/available", None).await,
        StatusCode::BAD_REQUEST,
        "M_MISSING_PARAM",
    );
}

async fn token_registration_requires_a_valid_token(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.registration.mode = RegistrationMode::Token;
        c.registration.tokens = vec![Secret::new("let-me-in")];
    })
    .await
    else {
        return;
    };
    let (status, challenge) = app.post(REGISTER, None, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge["flows"], json!([{"stages": ["m.login.registration_token", "m.login.dummy"]}]));
    let session = challenge["session"].as_str().unwrap();

    let dummy = app
        .post(REGISTER, None, json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_eq!(dummy.0, StatusCode::UNAUTHORIZED, "dummy auth is not enough when a token is required");

    let (status, wrong) = app
        .post(
            REGISTER,
            None,
            json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.registration_token", "token": "guess", "session": session}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["errcode"], "M_FORBIDDEN");

    let (_, valid) =
        app.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=let-me-in", None).await;
    assert_eq!(valid, json!({"valid": true}));
    let (_, invalid) =
        app.get("/_matrix/client/v1/register/m.login.registration_token/validity?token=nope", None).await;
    assert_eq!(invalid, json!({"valid": false}));

    let (status, body) = app
        .post(
            REGISTER,
            None,
            json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.registration_token", "token": "let-me-in", "session": session}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["completed"], json!(["m.login.registration_token"]));
    let (status, body) = app
        .post(
            REGISTER,
            None,
            json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@alice:localhost");
}

async fn closed_registration_is_forbidden(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.registration.mode = RegistrationMode::Closed).await else { return };
    let response = app
        .post(REGISTER, None, json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn email_at_registration_is_listed_and_unique(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app
        .post(
            REGISTER,
            None,
            json!({"username": "alice", "password": PASSWORD, "email": "Alice@Example.org", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (status, threepids) = app.get("/_matrix/client/v3/account/3pid", Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let list = threepids["threepids"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["medium"], "email");
    assert_eq!(list[0]["address"], "alice@example.org");
    assert_eq!(list[0]["validated_at"], 0, "not verified yet");
    assert!(list[0]["added_at"].as_i64().unwrap() > 0);

    let taken = app
        .post(REGISTER, None, json!({"username": "bob", "password": PASSWORD, "email": "alice@example.org", "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_error(&taken, StatusCode::BAD_REQUEST, "M_THREEPID_IN_USE");
    let invalid = app
        .post(REGISTER, None, json!({"username": "bob", "password": PASSWORD, "email": "not-an-email", "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_error(&invalid, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // Failed attempts left no half-made account behind.
    assert_eq!(app.get("/_matrix/client/v3/register/available?username=bob", None).await.0, StatusCode::OK);
}

async fn inhibit_login_registers_without_a_device(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app
        .post(REGISTER, None, json!({"username": "alice", "password": PASSWORD, "inhibit_login": true, "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], "@alice:localhost");
    assert!(body.get("access_token").is_none());
    assert_eq!(app.login("alice", PASSWORD).await.0, StatusCode::OK);
}

async fn guest_registration_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let response = app.post(&format!("{REGISTER}?kind=guest"), None, json!({})).await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN");
}

async fn an_empty_probe_gets_the_flows(backend: Backend) {
    // Element's first request carries neither username nor password.
    let Some(app) = spawn_app(backend).await else { return };
    let (status, body) = app.post(REGISTER, None, json!({"initial_device_display_name": "Element"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["flows"], json!([{"stages": ["m.login.dummy"]}]));
    // Completing the stage without a password is then the error.
    let done = app
        .post(REGISTER, None, json!({"username": "x", "auth": {"type": "m.login.dummy", "session": body["session"]}}))
        .await;
    assert_error(&done, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
}

async fn registration_is_rate_limited_only_when_accounts_are_created(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limits.enabled = true;
        c.rate_limits.register.burst = 2;
        c.rate_limits.register.period_ms = 60_000;
    })
    .await
    else {
        return;
    };
    for _ in 0..5 {
        assert_eq!(app.post(REGISTER, None, json!({})).await.0, StatusCode::UNAUTHORIZED, "probes are free");
    }
    app.register("one").await;
    app.register("two").await;
    let third = app
        .post(REGISTER, None, json!({"username": "three", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}))
        .await;
    assert_error(&third, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
}
