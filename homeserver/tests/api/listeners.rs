//! Listeners as configuration: an extra listener with TLS serving only the federation and key
//! resources beside the plain client listener, a clear start-up error for bad TLS files, and the
//! deadline for a request head.

use std::time::{Duration, Instant};

use hearth::config::{ListenerConfig, Resource, TlsFiles};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Backend, spawn_app_with, test_config};

both_backends!(a_tls_listener_serves_only_its_resources, a_request_head_must_arrive_in_time);

/// A self-signed certificate for `localhost`, written as PEM files into `dir`.
fn certificate(dir: &std::path::Path) -> (TlsFiles, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (certificate, private_key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&certificate, made.cert.pem()).unwrap();
    std::fs::write(&private_key, made.key_pair.serialize_pem()).unwrap();
    (TlsFiles { certificate, private_key }, made.cert.pem())
}

async fn a_tls_listener_serves_only_its_resources(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = certificate(dir.path());
    let Some(app) = spawn_app_with(backend, |config| {
        config.listen.extra = vec![ListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            resources: vec![Resource::Federation, Resource::Keys],
            tls: Some(files),
        }];
    })
    .await
    else {
        return;
    };
    let port = app.extra_addrs[0].port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", app.extra_addrs[0])
        .build()
        .unwrap();
    let get = |path: &str| {
        let request = client.get(format!("https://localhost:{port}{path}"));
        async move {
            let response = request.send().await.expect("TLS connection");
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, keys) = get("/_matrix/key/v2/server").await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    assert_eq!(keys["server_name"], "localhost");
    assert_eq!(get("/_matrix/federation/v1/version").await.0, StatusCode::OK);
    assert_eq!(get("/health").await.0, StatusCode::OK);
    // The client API is not on this listener...
    let (status, body) = get("/_matrix/client/versions").await;
    assert_eq!((status, body["errcode"].as_str()), (StatusCode::NOT_FOUND, Some("M_UNRECOGNIZED")));
    // ...but on the client listener, which serves everything.
    assert_eq!(app.get("/_matrix/client/versions", None).await.0, StatusCode::OK);
    assert_eq!(app.get("/_matrix/key/v2/server", None).await.0, StatusCode::OK);
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/health")).await.is_err());
}

#[tokio::test]
async fn bad_tls_files_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen.tls =
        Some(TlsFiles { certificate: dir.path().join("missing.pem"), private_key: dir.path().join("key.pem") });
    let error = hearth::App::build(config).await.err().expect("start-up fails");
    assert!(format!("{error:#}").contains("missing.pem"), "{error:#}");
}

/// Reads until the server closes the connection (or 10 s pass); returns what was read and
/// whether it closed (a reset counts as closed).
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    (String::from_utf8_lossy(&received).into_owned(), outcome.is_ok())
}

/// A client that trickles its request head is cut off after `request_head_timeout_ms`, as is a
/// keep-alive connection idle that long; a /sync long-poll that waits longer is not.
async fn a_request_head_must_arrive_in_time(backend: Backend) {
    // Presence off: nothing but a message could end the long-poll below early.
    let Some(app) = spawn_app_with(backend, |config| {
        config.listen.request_head_timeout_ms = 700;
        config.presence.enabled = false;
    })
    .await
    else {
        return;
    };
    let address = app.base.trim_start_matches("http://").to_owned();

    // Half a request head, then nothing: the server closes the connection without answering.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    let opened = Instant::now();
    slow.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut slow).await;
    assert!(closed, "the connection stays open");
    assert_eq!(answer, "", "a partial head got an answer");
    assert!(opened.elapsed() >= Duration::from_millis(600), "closed before the deadline: {:?}", opened.elapsed());

    // A whole request is answered; the connection is then closed once it has been idle that long.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"versions\""), "{answer}");
    assert!(closed, "an idle keep-alive connection stays open");

    // The deadline covers only the head: a long-poll that waits 1.5 s for events answers.
    let session = app.register("waiter").await;
    let started = Instant::now();
    let first = app.sync(&session.token, None, 0).await;
    let next = first["next_batch"].as_str().unwrap();
    let waited = app.sync(&session.token, Some(next), 1500).await;
    assert!(waited["next_batch"].is_string(), "{waited}");
    assert!(started.elapsed() >= Duration::from_millis(1400), "the long-poll did not wait");
}
