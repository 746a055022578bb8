//! Storage: one API (`Db`) grouped by domain, two backends behind it (SQLite, the embedded
//! default, and PostgreSQL), chosen by the database URL. Queries are portable SQL with `$n`
//! placeholders, which both backends accept; the few real dialect differences live in
//! `dialect.rs`. Migrations in `migrations/{sqlite,postgres}` are applied at start-up.

pub mod account_data;
pub mod branch_state;
pub mod dehydrated;
pub mod devices;
mod dialect;
pub mod directory;
pub mod key_backup;
pub mod keys;
pub mod media;
pub mod outbox;
pub mod push;
pub mod relations;
pub mod remote_invites;
pub mod rooms;
pub mod search;
pub mod server_keys;
pub mod threepids;
pub mod to_device;
mod token_cache;
pub mod tokens;
pub mod users;

pub use dialect::Backend;

use sqlx::{AnyPool, any::AnyPoolOptions};

/// The database handle every service shares. Cloning is cheap (a pool handle).
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    tokens: std::sync::Arc<token_cache::TokenCache>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects, configures the backend and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = backend.prepare_url(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            // No ping before each use: it doubled the round trips of every query (a broken
            // connection is noticed by the query that uses it, and the pool replaces it).
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    for statement in backend.per_connection_statements() {
                        sqlx::query(*statement).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        for statement in backend.once_statements() {
            sqlx::query(*statement).execute(&pool).await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend, tokens: Default::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that writes. SQLite takes its write lock at once (BEGIN
    /// IMMEDIATE): a deferred transaction that reads first and writes later fails outright
    /// (SQLITE_BUSY, which busy_timeout does not wait out) when another connection wrote in
    /// between — a 500 under concurrent writers. PostgreSQL needs nothing of the kind.
    pub(crate) async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Closes every connection (on shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch, the unit every timestamp column uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Db {
    /// Copies the SQLite write-ahead log into the database without blocking readers or writers
    /// (the background task calls it every second; SQLite's own automatic checkpoints are off,
    /// see `dialect.rs`). Nothing to do on PostgreSQL.
    pub async fn checkpoint(&self) -> sqlx::Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}
