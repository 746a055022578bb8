//! Background tasks (SQLite checkpoints, media cleanup, rate-limit pruning) and the one
//! shutdown signal every task and listener obeys.

use std::time::Duration;

use tokio::sync::watch;

use crate::state::AppState;

/// A shutdown signal: cloneable, triggered once, awaited by many.
#[derive(Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { sender: watch::channel(false).0 }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Resolves once `trigger` has been called (at once if it already was).
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }
}

/// Triggers `shutdown` on ctrl-c or SIGTERM.
pub async fn trigger_on_os_signals(shutdown: Shutdown) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
    shutdown.trigger();
}

/// Starts the periodic housekeeping tasks; each stops when `shutdown` fires.
pub fn spawn_background_tasks(state: AppState, shutdown: Shutdown) {
    let (db, stopping) = (state.db.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(error) = db.checkpoint().await {
                        tracing::warn!(%error, "WAL checkpoint failed");
                    }
                }
                () = stopping.wait() => break,
            }
        }
    });
    let (media, stopping) = (state.media.clone(), shutdown.clone());
    let every = Duration::from_millis(state.config.media.cleanup_interval_ms.max(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(error) = media.cleanup().await {
                        tracing::warn!(?error, "media cleanup failed");
                    }
                }
                () = stopping.wait() => break,
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => state.rate_limits.prune(),
                () = shutdown.wait() => break,
            }
        }
    });
}
