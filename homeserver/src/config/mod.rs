//! Configuration: defaults in code < an optional TOML file (`--config`) < `HEARTH_*` environment
//! variables (`__` nests: `HEARTH_DATABASE__URL`). Every option is documented in
//! `config.example.toml`, which a test parses so it cannot drift from this file.

mod listen;
mod media;

use std::{fmt, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// The whole configuration. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server_name: String,
    pub data_dir: PathBuf,
    /// The URL clients reach the server at. When set, /.well-known/matrix/client and login
    /// responses advertise it; when unset neither does (clients keep the URL they used).
    pub public_baseurl: Option<String>,
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    pub registration: RegistrationConfig,
    pub password_policy: PasswordPolicy,
    pub auth: AuthConfig,
    pub rate_limits: RateLimitConfig,
    pub limits: LimitsConfig,
    pub rooms: RoomsConfig,
    pub presence: PresenceConfig,
    pub media: MediaConfig,
    pub admin: AdminConfig,
    pub federation: FederationConfig,
    pub log: LogConfig,
}

/// `[admin]`: who may use the admin API (`/_hearth/admin/v1`, what `hearthctl` drives).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// User ids with admin rights (besides accounts marked admin in the database).
    pub users: Vec<String>,
}

/// `[federation]`: talking to other Matrix servers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// How long other servers may cache our signing keys (`valid_until_ts` of the key document).
    pub key_validity_ms: u64,
    /// What /.well-known/matrix/server delegates federation to (`host[:port]`); unset, it
    /// answers 404 and peers try SRV records, then port 8448 of the server name.
    pub well_known_server: Option<String>,
    /// Servers asked for another server's keys when that server cannot be reached
    /// (`/_matrix/key/v2/query`). Empty by default: keys come only from their own server.
    pub trusted_key_servers: Vec<String>,
    /// Whether peers' TLS certificates must be valid for their names. Development only: turn
    /// off to federate with servers using self-signed certificates.
    pub verify_certificates: bool,
    /// Internal address ranges (CIDR) peers may be reached on. Outbound federation refuses
    /// loopback, private and link-local addresses unless listed here (protection against
    /// server-side request forgery); development set-ups on one machine list 127.0.0.0/8.
    pub allowed_ip_ranges: Vec<String>,
    /// How long one outbound federation request may take.
    pub request_timeout_ms: u64,
    /// After a failed send to a server, the first retry waits this long; each further failure
    /// doubles the wait up to `retry_max_ms`. A server that contacts us is retried at once.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            // Synapse's default key refresh interval: a day.
            key_validity_ms: 24 * 3600 * 1000,
            well_known_server: None,
            trusted_key_servers: Vec::new(),
            verify_certificates: true,
            allowed_ip_ranges: Vec::new(),
            request_timeout_ms: 60_000,
            retry_min_ms: 60_000,
            retry_max_ms: 4 * 3600 * 1000,
        }
    }
}

pub use listen::{ListenConfig, ListenerConfig, Resource, TlsFiles};
pub use media::{MediaBackend, MediaConfig, S3Config, ThumbnailSize, UrlPreviewConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Share online/away/offline and status messages between users who share a room.
    pub enabled: bool,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// The room version new rooms get unless the client asks for another.
    pub default_version: String,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self { default_version: "12".into() }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` or `postgres://…`; empty means SQLite in the data directory.
    pub url: Secret,
    /// Unset: the backend's default (`Backend::default_pool_size`).
    pub max_connections: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Closed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
    /// Tokens accepted by the `m.login.registration_token` stage when `mode = "token"`.
    pub tokens: Vec<Secret>,
    /// Whether `POST /register?kind=guest` creates guest accounts (off by default, as in
    /// Synapse). Guests may read and join rooms whose `m.room.guest_access` is `can_join`.
    pub guests: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub require_digit: bool,
    pub require_symbol: bool,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of an access token issued with a refresh token (clients that ask for one).
    pub refreshable_access_token_lifetime_ms: u64,
    /// argon2id memory cost in KiB, iterations and parallelism.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Failed logins per account allowed before each further attempt must wait.
    pub login_free_failures: u32,
    /// The longest wait imposed after repeated failed logins: the owner is never locked out longer.
    pub login_max_backoff_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub login: RateLimit,
    pub register: RateLimit,
    pub client: RateLimit,
    /// Every signed request from another server, per server.
    pub federation: RateLimit,
}

/// A token bucket: `burst` requests at once, one more every `period_ms`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub period_ms: u64,
    pub burst: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_request_body_bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter directive such as `info` or `hearth=debug,info`.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".into(),
            data_dir: PathBuf::from("./data"),
            public_baseurl: None,
            listen: ListenConfig::default(),
            database: DatabaseConfig::default(),
            registration: RegistrationConfig::default(),
            password_policy: PasswordPolicy::default(),
            auth: AuthConfig::default(),
            rate_limits: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            rooms: RoomsConfig::default(),
            presence: PresenceConfig::default(),
            media: MediaConfig::default(),
            admin: AdminConfig::default(),
            federation: FederationConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self { mode: RegistrationMode::Open, tokens: Vec::new(), guests: false }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_digit: false,
            require_symbol: false,
            require_lowercase: false,
            require_uppercase: false,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            refreshable_access_token_lifetime_ms: 5 * 60 * 1000,
            // One of OWASP's argon2id configurations, which it rates as equally strong (19 MiB
            // with 2 iterations, 12/3, 9/4, 7 MiB with 5): the one that needs least memory,
            // since each hash running at once holds that much (about the same CPU time).
            argon2_memory_kib: 7 * 1024,
            argon2_iterations: 5,
            argon2_parallelism: 1,
            login_free_failures: 5,
            login_max_backoff_ms: 15 * 60 * 1000,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            login: RateLimit { period_ms: 3_000, burst: 5 },
            register: RateLimit { period_ms: 10_000, burst: 3 },
            client: RateLimit { period_ms: 50, burst: 100 },
            federation: RateLimit { period_ms: 10, burst: 500 },
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_request_body_bytes: 1024 * 1024 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into(), format: "text".into() }
    }
}

/// A configuration error, naming the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults, then `file` if given, then `HEARTH_*` variables from the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        // `HEARTH_TEST_*` variables belong to the test suite, not to the server.
        figment = figment.merge(
            Env::prefixed("HEARTH_").split("__").filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_")),
        );
        Self::from_figment(figment)
    }

    /// Extracts and validates a configuration from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|error| ConfigError(describe_figment_error(error)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return Err(ConfigError(format!("server_name: {:?} is not a valid Matrix server name", self.server_name)));
        }
        if self.registration.mode == RegistrationMode::Token && self.registration.tokens.is_empty() {
            return Err(ConfigError("registration.tokens: mode \"token\" needs at least one token".into()));
        }
        if self.registration.tokens.iter().any(|token| token.expose().is_empty()) {
            return Err(ConfigError("registration.tokens: a token may not be empty".into()));
        }
        let url = self.database.url.expose();
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError("database.url: must start with sqlite: or postgres://".into()));
        }
        self.media.validate().map_err(ConfigError)?;
        if let Some(server) = &self.federation.well_known_server
            && ruma::ServerName::parse(server).is_err()
        {
            return Err(ConfigError(format!("federation.well_known_server: {server:?} is not host or host:port")));
        }
        if self.federation.allowed_ip_ranges.iter().any(|range| crate::services::media::IpRange::parse(range).is_none())
        {
            return Err(ConfigError("federation.allowed_ip_ranges: use CIDR ranges such as 127.0.0.0/8".into()));
        }
        for server in &self.federation.trusted_key_servers {
            if ruma::ServerName::parse(server.as_str()).is_err() {
                return Err(ConfigError(format!("federation.trusted_key_servers: {server:?} is not a server name")));
            }
        }
        if let Some(bad) = self.admin.users.iter().find(|user| ruma::UserId::parse(user.as_str()).is_err()) {
            return Err(ConfigError(format!("admin.users: {bad:?} is not a user id")));
        }
        if self.database.max_connections == Some(0) {
            return Err(ConfigError("database.max_connections: must be at least 1".into()));
        }
        for (key, limit) in [
            ("login", self.rate_limits.login),
            ("register", self.rate_limits.register),
            ("client", self.rate_limits.client),
            ("federation", self.rate_limits.federation),
        ] {
            if limit.period_ms == 0 || limit.burst == 0 {
                return Err(ConfigError(format!("rate_limits.{key}: period_ms and burst must be positive")));
            }
        }
        if self.auth.argon2_memory_kib < 8 * self.auth.argon2_parallelism
            || self.auth.argon2_iterations == 0
            || self.auth.argon2_parallelism == 0
        {
            return Err(ConfigError("auth.argon2_*: parameters out of range".into()));
        }
        if self.auth.refreshable_access_token_lifetime_ms < 1000 {
            return Err(ConfigError("auth.refreshable_access_token_lifetime_ms: must be at least 1000".into()));
        }
        if hearth_federation::room_versions::rules_for(&self.rooms.default_version).is_none() {
            return Err(ConfigError(format!(
                "rooms.default_version: {:?} is not one of {:?}",
                self.rooms.default_version,
                hearth_federation::room_versions::SUPPORTED_ROOM_VERSIONS
            )));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError("log.format: must be \"text\" or \"json\"".into()));
        }
        if self.limits.max_request_body_bytes < 1024 {
            return Err(ConfigError("limits.max_request_body_bytes: must be at least 1024".into()));
        }
        if let Some(base) = &self.public_baseurl
            && !(base.starts_with("http://") || base.starts_with("https://"))
        {
            return Err(ConfigError("public_baseurl: must be an http:// or https:// URL".into()));
        }
        Ok(())
    }

    /// The database URL actually used: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        let url = self.database.url.expose();
        if url.is_empty() { format!("sqlite://{}", self.data_dir.join("hearth.db").display()) } else { url.to_owned() }
    }

    /// The database pool's size: `database.max_connections`, or the backend's default (a URL
    /// naming no backend fails when the database opens).
    pub fn database_connections(&self) -> u32 {
        self.database.max_connections.unwrap_or_else(|| {
            crate::storage::Backend::from_url(&self.database_url())
                .map_or(10, crate::storage::Backend::default_pool_size)
        })
    }
}

/// One line per error, each starting with the key as it is written in the TOML file
/// (environment variables report upper-case keys; we lower-case them back).
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let source = e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
            if key.is_empty() { format!("{}{source}", e.kind) } else { format!("{key}: {}{source}", e.kind) }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A secret string (database URL with password, registration tokens): never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(empty)" } else { "Secret(****)" })
    }
}
