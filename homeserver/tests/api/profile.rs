//! Profiles: display name and avatar.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, assert_error, spawn_app};

both_backends!(
    a_user_sets_and_reads_their_profile,
    only_the_owner_may_change_a_profile,
    avatar_urls_must_be_mxc_uris,
    unknown_users_and_fields_are_not_found,
);

async fn a_user_sets_and_reads_their_profile(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let base = format!("/_matrix/client/v3/profile/{}", alice.user_id);
    let name = "Alice Liddell \u{1F407}";
    let (status, body) =
        app.put(&format!("{base}/displayname"), Some(&alice.token), json!({"displayname": name})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let avatar = "mxc://localhost/AbC123_-x";
    assert_eq!(
        app.put(&format!("{base}/avatar_url"), Some(&alice.token), json!({"avatar_url": avatar})).await.0,
        StatusCode::OK
    );

    assert_eq!(app.get(&base, None).await.1, json!({"displayname": name, "avatar_url": avatar}));
    assert_eq!(app.get(&format!("{base}/displayname"), None).await.1, json!({"displayname": name}));
    assert_eq!(app.get(&format!("{base}/avatar_url"), None).await.1, json!({"avatar_url": avatar}));
    // Percent-encoded user ids in the path work too.
    assert_eq!(
        app.get("/_matrix/client/v3/profile/%40alice%3Alocalhost/displayname", None).await.1["displayname"],
        name
    );

    assert_eq!(
        app.put(&format!("{base}/displayname"), Some(&alice.token), json!({"displayname": null})).await.0,
        StatusCode::OK
    );
    assert_error(&app.get(&format!("{base}/displayname"), None).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(app.delete(&format!("{base}/avatar_url"), Some(&alice.token), json!({})).await.0, StatusCode::OK);
    assert_eq!(app.get(&base, None).await.1, json!({}));
}

async fn only_the_owner_may_change_a_profile(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let path = format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id);
    assert_error(
        &app.put(&path, Some(&bob.token), json!({"displayname": "hacked"})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &app.put(&path, None, json!({"displayname": "hacked"})).await,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );
    assert_eq!(app.get(&path, None).await.1["displayname"], "alice");
}

async fn avatar_urls_must_be_mxc_uris(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let path = format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id);
    for bad in ["https://evil.example/x.png", "mxc://", "mxc://localhost/../etc/passwd", "javascript:alert(1)"] {
        assert_error(
            &app.put(&path, Some(&alice.token), json!({"avatar_url": bad})).await,
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        &app.put(&path, Some(&alice.token), json!({"avatar_url": 5})).await,
        StatusCode::BAD_REQUEST,
        "M_BAD_JSON",
    );
    let long_name = "x".repeat(300);
    let name_path = format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id);
    assert_error(
        &app.put(&name_path, Some(&alice.token), json!({"displayname": long_name})).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
}

async fn unknown_users_and_fields_are_not_found(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.register("alice").await;
    assert_error(
        &app.get("/_matrix/client/v3/profile/@nobody:localhost", None).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    assert_error(
        &app.get("/_matrix/client/v3/profile/@alice:localhost/m.tz", None).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
}
