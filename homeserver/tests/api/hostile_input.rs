//! Hostile input: every answer is a Matrix error with the spec's status, never a panic, a 500 or
//! HTML, and nothing already stored is lost.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app};

both_backends!(
    malformed_json_is_not_json,
    wrong_json_types_are_bad_json,
    oversized_bodies_are_too_large,
    sql_looking_and_unicode_strings_are_stored_verbatim,
    garbage_never_breaks_the_server,
);

async fn raw_post(
    app: &crate::helpers::TestApp,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request =
        app.client.post(format!("{}{path}", app.base)).header("Content-Type", "application/json").body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(content_type.as_deref(), Some("application/json"), "{path}: {status} {text}");
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
}

async fn malformed_json_is_not_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    for body in
        [&b"{"[..], b"{\"type\": ", b"not json at all", b"\xff\xfe\xfd", b"{'single': 'quotes'}", b"{\"a\":1}trailing"]
    {
        let response = raw_post(&app, "/_matrix/client/v3/login", None, body.to_vec()).await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    }
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let response = raw_post(&app, "/_matrix/client/v3/login", None, deep.into_bytes()).await;
    assert_eq!(response.0, StatusCode::BAD_REQUEST, "deep nesting is refused, not a stack overflow");
}

async fn wrong_json_types_are_bad_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let cases = [
        ("/_matrix/client/v3/login", json!([1, 2, 3])),
        ("/_matrix/client/v3/login", json!("a string")),
        ("/_matrix/client/v3/login", json!({"type": 5})),
        ("/_matrix/client/v3/login", json!({"type": "m.login.password", "user": ["alice"], "password": PASSWORD})),
        ("/_matrix/client/v3/register", json!({"username": 12, "password": PASSWORD})),
        ("/_matrix/client/v3/register", json!({"username": "bob", "password": PASSWORD, "auth": "dummy"})),
        ("/_matrix/client/v3/refresh", json!({})),
        ("/_matrix/client/v3/refresh", json!({"refresh_token": null})),
    ];
    for (path, body) in cases {
        let response = app.post(path, None, body.clone()).await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    }
    let response =
        app.post("/_matrix/client/v3/account/password", Some(&alice.token), json!({"new_password": 123})).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let response = app.post("/_matrix/client/v3/account/deactivate", Some(&alice.token), json!({"erase": "yes"})).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

/// Sends a request with a huge body over a raw socket (the server may answer 413 and close
/// before the client finishes writing, which an HTTP client library reports as a broken pipe).
async fn send_oversized(
    app: &crate::helpers::TestApp,
    method: &str,
    path: &str,
    token: &str,
    declared: Option<usize>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let length_header = match declared {
        Some(length) => format!("Content-Length: {length}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{length_header}Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..48 {
        let written = match declared {
            Some(_) => stream.write_all(&chunk).await,
            None => {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                stream.write_all(&framed).await
            }
        };
        if written.is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

async fn oversized_bodies_are_too_large(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let path = format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id);
    for declared in [Some(3 * 1024 * 1024), None] {
        let response = send_oversized(&app, "PUT", &path, &alice.token, declared).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{declared:?}: {response}");
        assert!(response.contains("\"errcode\":\"M_TOO_LARGE\""), "{response}");
    }
    let response = send_oversized(&app, "POST", "/_matrix/client/v3/login", "none", Some(3 * 1024 * 1024)).await;
    assert!(response.contains("M_TOO_LARGE"), "{response}");
    assert_eq!(app.get("/_matrix/client/v3/profile/@alice:localhost", None).await.1["displayname"], "alice");
}

async fn sql_looking_and_unicode_strings_are_stored_verbatim(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let tricky_password = "'; DROP TABLE users; -- \u{0} \u{202E} 密码 🔑";
    let body = json!({"new_password": tricky_password, "logout_devices": false, "auth": crate::helpers::password_auth(&alice.user_id, PASSWORD, None)});
    assert_eq!(app.post("/_matrix/client/v3/account/password", Some(&alice.token), body).await.0, StatusCode::OK);
    assert_eq!(app.login("alice", tricky_password).await.0, StatusCode::OK);
    assert_error(&app.login("alice' OR '1'='1", tricky_password).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_error(&app.login("alice", "' OR '1'='1").await, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let name = "Robert'); DROP TABLE users;-- \u{1F600} Ünïcödé";
    let path = format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id);
    assert_eq!(app.put(&path, Some(&alice.token), json!({"displayname": name})).await.0, StatusCode::OK);
    assert_eq!(app.get(&path, None).await.1["displayname"], name);
    let control = app.put(&path, Some(&alice.token), json!({"displayname": "bell\u{7}"})).await;
    assert_error(&control, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    app.register("bob").await;
    assert_eq!(app.login("bob", PASSWORD).await.0, StatusCode::OK, "the users table is still there");
}

async fn garbage_never_breaks_the_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let alice = app.register("alice").await;
    let long_token = "a".repeat(8000);
    let paths = [
        "/_matrix/client/v3/profile/%FF%FE",
        "/_matrix/client/v3/profile/@alice:localhost/%00",
        "/_matrix/client/v3/devices/%00%01",
        "/_matrix/client/v3/profile/@al%00ice:localhost",
        "/_matrix/client/v3/register/available?username=%FF",
        "/_matrix/client/v3/register/available?username[]=x",
        "/_matrix/client/v3/account/whoami?access_token=",
    ];
    for path in paths {
        let response = app.client.get(format!("{}{path}", app.base)).bearer_auth(&alice.token).send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error() || status.is_success(), "{path}: {status}");
        let body: Value = response.json().await.unwrap_or_else(|_| panic!("{path}: not JSON"));
        assert!(body.is_object(), "{path}");
    }
    let response = app.get("/_matrix/client/v3/account/whoami", Some(&long_token)).await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let response = raw_post(
        &app,
        "/_matrix/client/v3/register",
        None,
        br#"{"username": "x\u0000y", "password": "long enough!", "auth": {"type": "m.login.dummy"}}"#.to_vec(),
    )
    .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    let response = raw_post(
        &app,
        "/_matrix/client/v3/login",
        None,
        br#"{"type": "m.login.password", "user": "alice", "password": "x", "refresh_token": 1e400}"#.to_vec(),
    )
    .await;
    assert_eq!(response.0, StatusCode::BAD_REQUEST);
    // NUL characters (PostgreSQL text cannot hold them) are refused wherever a string is stored
    // or looked up.
    let nul_login = json!({"type": "m.login.password", "user": "al\u{0}ice", "password": "x", "device_id": "D\u{0}", "initial_device_display_name": "n\u{0}"});
    assert_error(&app.post("/_matrix/client/v3/login", None, nul_login).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let nul_device = json!({"type": "m.login.password", "user": "alice", "password": PASSWORD, "device_id": "D\u{0}"});
    assert_error(
        &app.post("/_matrix/client/v3/login", None, nul_device).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let nul_name = json!({"type": "m.login.password", "user": "alice", "password": PASSWORD, "initial_device_display_name": "n\u{0}"});
    assert_error(
        &app.post("/_matrix/client/v3/login", None, nul_name).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let nul_email = json!({"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a\u{0}@b.org"}, "password": "x"});
    assert_error(&app.post("/_matrix/client/v3/login", None, nul_email).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let nul_rename = app
        .put(
            &format!("/_matrix/client/v3/devices/{}", alice.device_id),
            Some(&alice.token),
            json!({"display_name": "x\u{0}"}),
        )
        .await;
    assert_error(&nul_rename, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_eq!(app.get("/_matrix/client/v3/account/whoami", Some(&alice.token)).await.0, StatusCode::OK);
}
