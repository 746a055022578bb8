//! Operations: graceful shutdown, the binary's logs, migrations.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, PASSWORD, spawn_app};

both_backends!(in_flight_requests_finish_on_shutdown);

async fn in_flight_requests_finish_on_shutdown(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else { return };
    let body = json!({"username": "alice", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}).to_string();
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /_matrix/client/v3/register HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(10);
    stream.write_all(first.as_bytes()).await.unwrap();
    // The request is in flight (the server waits for the rest of its body) when shutdown starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("@alice:localhost"));
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(&address).await.is_err(), "no longer listening");
}

#[test]
fn migration_folders_match() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let names = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert!(!names("sqlite").is_empty());
    assert_eq!(names("sqlite"), names("postgres"), "every migration exists for both backends");
}

/// The `hearth` binary on a fresh data directory, port 0, with its logs captured.
struct RunningBinary {
    child: Child,
    base: String,
    logs: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

fn start_binary(extra_env: &[(&str, &str)]) -> RunningBinary {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HEARTH_") || k == "RUST_LOG") {
        command.env_remove(key);
    }
    command
        .current_dir(dir.path())
        .env("HEARTH_LISTEN__CLIENT", "127.0.0.1:0")
        .env("HEARTH_RATE_LIMITS__ENABLED", "false")
        .envs(extra_env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let (sender, logs) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    let base = loop {
        let line =
            logs.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("hearth did not start: {seen:#?}"));
        if let Some(at) = line.find("client_api=") {
            break line[at + "client_api=".len()..].split_whitespace().next().unwrap().trim_matches('"').to_owned();
        }
        seen.push(line);
    };
    RunningBinary { child, base, logs, _dir: dir }
}

#[tokio::test]
async fn logs_never_contain_passwords_or_tokens() {
    let mut server = start_binary(&[("RUST_LOG", "trace")]);
    let client = reqwest::Client::new();
    let password = "Sup3r-Secret-Passw0rd";
    let register: serde_json::Value = client
        .post(format!("{}/_matrix/client/v3/register", server.base))
        .json(&json!({"username": "alice", "password": password, "auth": {"type": "m.login.dummy"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = register["access_token"].as_str().unwrap().to_owned();
    let login: serde_json::Value = client
        .post(format!("{}/_matrix/client/v3/login", server.base))
        .json(&json!({"type": "m.login.password", "user": "alice", "password": password, "refresh_token": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let whoami = client
        .get(format!("{}/_matrix/client/v3/account/whoami?access_token={token}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), StatusCode::OK);
    let _ = client
        .post(format!("{}/_matrix/client/v3/login", server.base))
        .json(&json!({"type": "m.login.password", "user": "alice", "password": "wrong-Passw0rd-attempt"}))
        .send()
        .await;

    // SIGTERM: the binary stops cleanly.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");

    let logs: Vec<String> = server.logs.try_iter().collect();
    assert!(logs.len() > 5, "trace logging produced output: {logs:#?}");
    for secret in
        [password, "wrong-Passw0rd-attempt", token.as_str(), refresh.as_str(), login["access_token"].as_str().unwrap()]
    {
        assert!(!logs.iter().any(|line| line.contains(secret)), "a secret reached the logs");
    }
}
