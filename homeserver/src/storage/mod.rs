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

/// Write-ahead log frames (4 KiB pages) past which the checkpoint also restarts the log.
///
/// A passive checkpoint copies the log into the database without waiting for anyone, but the
/// log only starts over from its beginning when a writer finds it fully copied and no reader
/// in it. Under steady traffic some reader always is, so the log grew for as long as messages
/// flowed (220 MiB in the benchmark's 30 s), and with it the shared index every connection
/// maps. Past this size a RESTART checkpoint waits for the readers to leave the log (at most
/// `RESTART_BUSY_TIMEOUT`, writers queue meanwhile); `journal_size_limit` then trims the file.
const WAL_RESTART_FRAMES: i64 = 16_384;
/// How long a restarting checkpoint may hold writers back waiting for readers (100 ms); if they
/// have not left by then it gives up and the next second's checkpoint tries again.
const RESTART_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 100";

impl Db {
    /// Copies the SQLite write-ahead log into the database without blocking readers or writers,
    /// and restarts the log once it holds `WAL_RESTART_FRAMES` (the background task calls it
    /// every second; SQLite's own automatic checkpoints are off, see `dialect.rs`). Nothing to
    /// do on PostgreSQL.
    pub async fn checkpoint(&self) -> sqlx::Result<()> {
        self.checkpoint_restarting_after(WAL_RESTART_FRAMES).await
    }

    async fn checkpoint_restarting_after(&self, frames: i64) -> sqlx::Result<()> {
        use sqlx::Row as _;
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        // The result row: busy, frames in the log, frames copied.
        let passive = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?;
        if passive.try_get::<i64, _>(1)? < frames {
            return Ok(());
        }
        sqlx::query(RESTART_BUSY_TIMEOUT).execute(&mut *conn).await?;
        let restarted = sqlx::query("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut *conn).await;
        // Back to the usual busy timeout before the connection returns to the pool; one that
        // cannot be reset is closed instead.
        if let Err(error) = sqlx::query(dialect::BUSY_TIMEOUT).execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(error);
        }
        restarted.map(drop)
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };

    use sqlx::Row as _;

    use super::*;

    /// Frames now in the log (a passive checkpoint reports them).
    async fn log_frames(db: &Db) -> i64 {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&db.pool).await.unwrap();
        row.try_get::<i64, _>(1).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_starts_over_while_readers_never_stop() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("sqlite://{}", dir.path().join("wal.db").display()), 4).await.unwrap();
        sqlx::query("CREATE TABLE filler (id INTEGER PRIMARY KEY, data TEXT)").execute(&db.pool).await.unwrap();

        // Two readers whose read transactions overlap, so one is always inside the log: a
        // passive checkpoint alone never lets the log start over.
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for offset in [0, 3] {
            let (db, stop) = (db.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(offset)).await;
                while !stop.load(Ordering::Relaxed) {
                    let mut read = db.pool.begin().await.unwrap();
                    sqlx::query("SELECT count(*) FROM filler").fetch_one(&mut *read).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(6)).await;
                    read.commit().await.unwrap();
                }
            }));
        }

        let data = "x".repeat(3000);
        let mut most = 0;
        for n in 0..1200 {
            sqlx::query("INSERT INTO filler (data) VALUES ($1)").bind(&data).execute(&db.pool).await.unwrap();
            if n % 20 == 19 {
                db.checkpoint_restarting_after(100).await.unwrap();
                most = most.max(log_frames(&db).await);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        // 1,200 rows of 3 KB wrote well over 1,200 frames; the log started over again and again.
        assert!(most < 600, "the log held {most} frames at most");
    }
}
