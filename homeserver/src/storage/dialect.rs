//! The real differences between SQLite and PostgreSQL, in one place.

use anyhow::bail;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How long a SQLite connection waits for a lock before SQLITE_BUSY.
pub(crate) const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            bail!("database.url must start with sqlite: or postgres://")
        }
    }

    /// The pool size when `database.max_connections` is unset. PostgreSQL: 10. SQLite: one per
    /// core, at least 2 and at most 10; each SQLite connection is a thread doing the work itself,
    /// with its own schema copy, page cache and prepared statements (about 1 MiB), and more of
    /// them than cores only queue behind each other. Twice the cores cost 2 MiB more on two cores
    /// with no better delivery latency at 100 messages/s (`hearth-bench`).
    pub fn default_pool_size(self) -> u32 {
        match self {
            Self::Postgres => 10,
            Self::Sqlite => {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
                cores.clamp(2, 10)
            }
        }
    }

    /// SQLite: create the file (and its directory) when missing.
    pub fn prepare_url(self, url: &str) -> anyhow::Result<String> {
        match self {
            Self::Sqlite => {
                let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or_default();
                if path != ":memory:"
                    && let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)?;
                }
                Ok(if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") })
            }
            Self::Postgres => Ok(url.to_owned()),
        }
    }

    /// Run once per pool: WAL is a property of the SQLite file, so setting it once sticks.
    pub fn once_statements(self) -> &'static [&'static str] {
        match self {
            Self::Sqlite => &["PRAGMA journal_mode = WAL"],
            Self::Postgres => &[],
        }
    }

    /// Run on every new connection. `synchronous = NORMAL` is durable in WAL mode except for the
    /// last transactions on power loss (not on a process crash); busy_timeout lets concurrent
    /// writers queue instead of failing with SQLITE_BUSY. A small page cache per connection: hot
    /// reads come from memory above the database (see ARCHITECTURE.md), and memory-mapping the
    /// file instead counted the mapped pages against the server's memory. No automatic
    /// checkpoints: the
    /// connection whose commit crossed the threshold would copy the WAL into the database and
    /// fsync while the event writer waits (a 100-250 ms stall every few hundred messages);
    /// a background task checkpoints instead (`Db::checkpoint`).
    pub fn per_connection_statements(self) -> &'static [&'static str] {
        match self {
            Self::Sqlite => &[
                BUSY_TIMEOUT,
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
                "PRAGMA wal_autocheckpoint = 0",
                "PRAGMA cache_size = -256",
                // What a restarted write-ahead log is trimmed to (`Db::checkpoint`), in bytes.
                "PRAGMA journal_size_limit = 67108864",
            ],
            Self::Postgres => &[],
        }
    }

    /// Whether a database error is a unique-constraint violation (codes differ per backend).
    pub fn is_unique_violation(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Database(db) => {
                matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
                    || db.code().is_some_and(|code| code == "23505" || code == "2067" || code == "1555")
            }
            _ => false,
        }
    }
}
