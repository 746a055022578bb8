//! Test helpers: start a server on a fresh database of either backend, and typed requests.

use std::sync::OnceLock;

use figment::{Figment, providers::Serialized};
use hearth::{App, Config, config::Secret, tasks::Shutdown};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` as two tests: `name::sqlite` and
/// `name::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Where media bytes go: the local directory or an S3 bucket (moto's server on loopback,
/// started by scripts/test and named by HEARTH_TEST_S3_URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Storage {
    Local,
    S3,
}

/// Runs each listed `async fn name(backend: Backend, storage: Storage)` four times: on SQLite
/// and PostgreSQL, each with local and S3 media storage.
macro_rules! media_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{Backend, Storage};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_local() {
                    super::$name(Backend::Sqlite, Storage::Local).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_s3() {
                    super::$name(Backend::Sqlite, Storage::S3).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_local() {
                    super::$name(Backend::Postgres, Storage::Local).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_s3() {
                    super::$name(Backend::Postgres, Storage::S3).await
                }
            }
        )*
    };
}

pub struct TestApp {
    pub base: String,
    /// The `[[listen.extra]]` listeners' addresses, in configuration order.
    #[allow(dead_code)]
    pub extra_addrs: Vec<std::net::SocketAddr>,
    pub client: reqwest::Client,
    #[allow(dead_code)]
    pub backend: Backend,
    pub shutdown: Shutdown,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    data_dir: tempfile::TempDir,
    postgres_database: Option<String>,
    config: Config,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub device_id: String,
    pub token: String,
}

pub const PASSWORD: &str = "correct horse battery";

/// HEARTH_TEST_POSTGRES_URL, or the `test` database on 127.0.0.1:5432 as the current OS user
/// (named explicitly: sqlx falls back to "anonymous" when $USER is unset, as it is in CI).
fn postgres_admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("HEARTH_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            let user = ["PGUSER", "USER", "LOGNAME"]
                .into_iter()
                .find_map(|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
                .or_else(|| {
                    let output = std::process::Command::new("id").arg("-un").output().ok()?;
                    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned()).filter(|u| !u.is_empty())
                })
                .unwrap_or_else(|| "postgres".to_owned());
            format!("postgres://{user}@127.0.0.1:5432/test")
        })
    })
    .clone()
}

/// Whether PostgreSQL answers; decided once per test run, with the reason printed when not.
async fn postgres_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    if let Some(available) = AVAILABLE.get() {
        return *available;
    }
    let available = match sqlx::PgConnection::connect(&postgres_admin_url()).await {
        Ok(connection) => {
            let _ = connection.close().await;
            true
        }
        Err(error) => {
            let reason = format!("cannot connect to {} ({error})", postgres_admin_url());
            // CI on a machine that has PostgreSQL must never test less without failing.
            if std::env::var("HEARTH_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("PostgreSQL is required (HEARTH_TEST_REQUIRE_POSTGRES=1) but {reason}");
            }
            eprintln!("SKIP PostgreSQL tests: {reason}");
            false
        }
    };
    *AVAILABLE.get_or_init(|| available)
}

/// A configuration for tests: port 0, fast argon2, no rate limits (tests that need them turn
/// them on).
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config { data_dir: data_dir.to_owned(), ..Config::default() };
    config.listen.client = "127.0.0.1:0".parse().unwrap();
    config.auth.argon2_memory_kib = 1024;
    config.auth.argon2_iterations = 1;
    config.rate_limits.enabled = false;
    config
}

/// The S3-compatible test server, or None (after printing why) when there is none.
fn s3_url() -> Option<String> {
    match std::env::var("HEARTH_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("HEARTH_TEST_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("an S3 server is required (HEARTH_TEST_REQUIRE_S3=1) but HEARTH_TEST_S3_URL is not set");
            }
            eprintln!("SKIP S3 media tests: HEARTH_TEST_S3_URL is not set (scripts/test starts moto)");
            None
        }
    }
}

/// Starts a server whose media go to `storage` (a fresh bucket for S3).
#[allow(dead_code)]
pub async fn spawn_app_on(backend: Backend, storage: Storage, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    match storage {
        Storage::Local => spawn_app_with(backend, tweak).await,
        Storage::S3 => {
            let url = s3_url()?;
            let bucket = format!("hearth-test-{}", hearth::services::tokens::generate_session_id().to_lowercase());
            let created =
                reqwest::Client::new().put(format!("{url}/{bucket}")).send().await.expect("S3 server answers");
            assert!(created.status().is_success(), "cannot create bucket {bucket}: {}", created.status());
            spawn_app_with(backend, |config| {
                config.media.backend = hearth::config::MediaBackend::S3;
                config.media.s3.bucket = bucket;
                config.media.s3.endpoint = url;
                config.media.s3.path_style = true;
                config.media.s3.access_key_id = Secret::new("test");
                config.media.s3.secret_access_key = Secret::new("test");
                config.media.s3.prefix = "media/".into();
                tweak(config);
            })
            .await
        }
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server; None (after printing why) when the backend is PostgreSQL and none answers.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(data_dir.path());
    let mut postgres_database = None;
    if backend == Backend::Postgres {
        if !postgres_available().await {
            return None;
        }
        let name = format!("hearth_test_{}", hearth::services::tokens::generate_session_id().to_lowercase());
        let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let _ = admin.close().await;
        config.database.url = Secret::new(database_url(&name));
        postgres_database = Some(name);
    }
    tweak(&mut config);
    // Round-trip through figment so tests exercise the same validation as the binary.
    let config = Config::from_figment(Figment::from(Serialized::defaults(config))).expect("valid test config");
    let app = App::build(config.clone()).await.expect("server starts");
    let base = format!("http://{}", app.client_addr());
    let extra_addrs = app.extra_addrs();
    let shutdown = app.shutdown_signal();
    let server = tokio::spawn(app.run_until_stopped());
    Some(TestApp {
        base,
        extra_addrs,
        client: reqwest::Client::new(),
        backend,
        shutdown,
        server: Some(server),
        data_dir,
        postgres_database,
        config,
    })
}

fn database_url(name: &str) -> String {
    let admin = postgres_admin_url();
    let (prefix, _) = admin.rsplit_once('/').expect("postgres URL has a database path");
    format!("{prefix}/{name}")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(name) = self.postgres_database.take() {
            // Drop the test database from a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                    }
                });
            })
            .join();
        }
    }
}

impl TestApp {
    /// Stops the server and starts it again on the same data (on a new port).
    #[allow(dead_code)]
    pub async fn restart(&mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
        let app = App::build(self.config.clone()).await.expect("server restarts");
        self.base = format!("http://{}", app.client_addr());
        self.extra_addrs = app.extra_addrs();
        self.shutdown = app.shutdown_signal();
        self.server = Some(tokio::spawn(app.run_until_stopped()));
    }

    /// Changes the configuration and restarts the server with it, on the same data.
    #[allow(dead_code)]
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut Config)) {
        tweak(&mut self.config);
        self.restart().await;
    }

    /// The server's database, opened beside it (for tests that check what is stored).
    #[allow(dead_code)]
    pub async fn open_db(&self) -> hearth::storage::Db {
        hearth::storage::Db::open(&self.config.database_url(), 1).await.expect("database opens")
    }

    /// The server's data directory (SQLite file, signing key, local media).
    #[allow(dead_code)]
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Sends a request and returns the status and JSON body (Null for an empty body). Panics if
    /// the body is not JSON: every answer of a Matrix server must be.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} answered non-JSON {status}: {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, token, Some(body)).await
    }

    /// Registers `username` with the dummy stage and returns the logged-in session.
    pub async fn register(&self, username: &str) -> Session {
        let (status, body) = self
            .post(
                "/_matrix/client/v3/register",
                None,
                json!({"username": username, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        session_from(&body)
    }

    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": username}, "password": password}),
        )
        .await
    }
}

pub fn session_from(body: &Value) -> Session {
    Session {
        user_id: body["user_id"].as_str().expect("user_id").to_owned(),
        device_id: body["device_id"].as_str().expect("device_id").to_owned(),
        token: body["access_token"].as_str().expect("access_token").to_owned(),
    }
}

/// Asserts a Matrix error: the status, the errcode, and a human-readable `error`.
#[track_caller]
pub fn assert_error(response: &(StatusCode, Value), status: StatusCode, errcode: &str) {
    let (actual_status, body) = response;
    assert_eq!(*actual_status, status, "{body}");
    assert_eq!(body["errcode"], errcode, "{body}");
    assert!(body["error"].is_string(), "error message missing: {body}");
}

/// The password UIA auth object for `user`, continuing `session` if given.
pub fn password_auth(user_id: &str, password: &str, session: Option<&str>) -> Value {
    let mut auth = json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    });
    if let Some(session) = session {
        auth["session"] = json!(session);
    }
    auth
}

/// Percent-encodes a path segment (room ids, aliases and event ids carry `!`, `#`, `$`, `:`).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl TestApp {
    pub async fn create_room(&self, token: &str, body: Value) -> String {
        let (status, response) = self.post("/_matrix/client/v3/createRoom", Some(token), body).await;
        assert_eq!(status, StatusCode::OK, "{response}");
        response["room_id"].as_str().unwrap().to_owned()
    }

    pub async fn join(&self, token: &str, room_id: &str) -> (StatusCode, Value) {
        self.post(&format!("/_matrix/client/v3/join/{}", encode(room_id)), Some(token), json!({})).await
    }

    pub async fn send_text(&self, token: &str, room_id: &str, body: &str) -> String {
        let txn = hearth::services::tokens::generate_session_id();
        let (status, response) = self
            .put(
                &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", encode(room_id)),
                Some(token),
                json!({"msgtype": "m.text", "body": body}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{response}");
        response["event_id"].as_str().unwrap().to_owned()
    }

    pub async fn sync(&self, token: &str, since: Option<&str>, timeout_ms: u64) -> Value {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        let (status, body) = self.get(&path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub fn room_path(&self, room_id: &str, rest: &str) -> String {
        format!("/_matrix/client/v3/rooms/{}/{rest}", encode(room_id))
    }
}

/// The timeline events of a room in a sync response.
pub fn timeline<'a>(sync: &'a Value, room_id: &str) -> Vec<&'a Value> {
    sync["rooms"]["join"][room_id]["timeline"]["events"]
        .as_array()
        .map(|events| events.iter().collect())
        .unwrap_or_default()
}

/// Starts a server that federates over TLS on loopback, named `127.0.0.1:{port}` after its
/// federation listener (resources federation, keys and media, a fresh self-signed certificate).
/// It accepts peers' self-signed certificates and loopback addresses, as a development set-up
/// on one machine must.
#[allow(dead_code)]
pub async fn spawn_federating(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    use hearth::config::{ListenerConfig, Resource, TlsFiles};
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let files = TlsFiles { certificate: dir.path().join("cert.pem"), private_key: dir.path().join("key.pem") };
    std::fs::write(&files.certificate, made.cert.pem()).unwrap();
    std::fs::write(&files.private_key, made.key_pair.serialize_pem()).unwrap();
    // The server name carries the port, so the port is chosen first (and the certificate
    // directory kept for the server's lifetime).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(backend, |config| {
        config.server_name = format!("127.0.0.1:{port}");
        config.listen.extra = vec![ListenerConfig {
            address: format!("127.0.0.1:{port}").parse().unwrap(),
            resources: vec![Resource::Federation, Resource::Keys, Resource::Media],
            tls: Some(files),
        }];
        config.federation.verify_certificates = false;
        config.federation.allowed_ip_ranges = vec!["127.0.0.0/8".into()];
        tweak(config);
    })
    .await?;
    KEEP_DIRS.lock().unwrap().push(dir);
    Some(app)
}

/// Certificate directories of federating test servers, kept until the test process ends.
static KEEP_DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

impl TestApp {
    /// The configuration the server runs with.
    #[allow(dead_code)]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This server's name.
    #[allow(dead_code)]
    pub fn server_name(&self) -> &str {
        &self.config.server_name
    }
}
