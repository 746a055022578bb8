//! The federation sender: drains the durable outbox (`federation_outbox`, written in each
//! event's own transaction) with one worker per destination and one transaction in flight per
//! destination. EDUs that must arrive (to-device messages, device list changes) wait durably
//! beside the events (`federation_edu_outbox`); typing, receipts and presence are queued in
//! memory. A failed send waits with exponential backoff up to a cap — or less, if the peer
//! contacts us meanwhile — and then resends the same events, so a peer that was down catches up
//! on everything it missed, in order. Rows go only once the peer answered 200, so a crash at any
//! point resends rather than loses (peers de-duplicate by event id). A slow or dead peer holds
//! up only its own worker, never local messaging.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use reqwest::Method;
use ruma::ServerName;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::FederationClient;
use crate::{
    storage::{Db, now_ms},
    tasks::Shutdown,
};

/// PDUs and EDUs per transaction (the spec's limits).
const MAX_PDUS: i64 = 50;
const MAX_EDUS: usize = 100;

/// Retry timing: the first retry after `min`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

pub struct FederationSender {
    db: Db,
    client: Arc<FederationClient>,
    backoff: Backoff,
    shutdown: Shutdown,
    /// Each destination's worker, woken by new rows or by the peer contacting us.
    workers: Mutex<HashMap<String, Arc<Worker>>>,
    this: Weak<FederationSender>,
    /// Numbers each transaction (with the start time, its id): ids never repeat, and PDUs
    /// resent under a new id are de-duplicated by event id at the receiver.
    transactions: std::sync::atomic::AtomicU64,
    started_ms: i64,
}

#[derive(Default)]
struct Worker {
    /// EDUs waiting (typing, receipts, presence): kept in memory only — they are ephemeral, and
    /// a receipt lost to a crash is superseded by the next.
    edus: Mutex<Vec<Value>>,
    /// New events were queued.
    queued: Notify,
    /// The peer showed it is up (it sent us a request): retry now.
    alive: Notify,
}

impl FederationSender {
    pub fn new(db: Db, client: Arc<FederationClient>, backoff: Backoff, shutdown: Shutdown) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            db,
            client,
            backoff,
            shutdown,
            workers: Default::default(),
            this: this.clone(),
            transactions: Default::default(),
            started_ms: now_ms(),
        })
    }

    /// Starts workers for destinations with events left from before a restart.
    pub async fn resume(&self) {
        match self.db.outbox_destinations().await {
            Ok(destinations) => self.wake(&destinations),
            Err(error) => tracing::error!(%error, "cannot read the federation outbox"),
        }
    }

    /// New events for `destinations` were committed.
    pub fn wake(&self, destinations: &[String]) {
        for destination in destinations {
            self.worker(destination).queued.notify_one();
        }
    }

    /// Queues an EDU for each of `destinations` (the oldest are dropped past the limit).
    pub fn queue_edu(&self, destinations: &[String], edu: &Value) {
        for destination in destinations {
            let worker = self.worker(destination);
            {
                let mut edus = worker.edus.lock().expect("edus");
                if edus.len() >= MAX_EDUS * 10 {
                    edus.remove(0);
                }
                edus.push(edu.clone());
            }
            worker.queued.notify_one();
        }
    }

    /// Queues an EDU that must not be lost (a to-device message, a device list change) for
    /// each of `destinations`: stored before this returns, sent like events, deleted once
    /// acknowledged.
    pub async fn queue_durable_edu(&self, destinations: &[String], edu: &Value) -> sqlx::Result<()> {
        if destinations.is_empty() {
            return Ok(());
        }
        self.db.queue_durable_edu(destinations, &edu.to_string()).await?;
        self.wake(destinations);
        Ok(())
    }

    /// `origin` just sent us a request: if its worker is backing off, it retries now.
    pub fn peer_is_up(&self, origin: &str) {
        if let Some(worker) = self.workers.lock().expect("workers").get(origin) {
            worker.alive.notify_one();
        }
    }

    fn worker(&self, destination: &str) -> Arc<Worker> {
        let mut workers = self.workers.lock().expect("workers");
        if let Some(worker) = workers.get(destination) {
            return worker.clone();
        }
        let worker = Arc::new(Worker::default());
        workers.insert(destination.to_owned(), worker.clone());
        if let Some(sender) = self.this.upgrade() {
            tokio::spawn(sender.run(destination.to_owned(), worker.clone()));
        }
        worker
    }

    async fn run(self: Arc<Self>, destination: String, worker: Arc<Worker>) {
        let Ok(server) = ServerName::parse(destination.as_str()) else {
            tracing::error!(%destination, "an outbox destination is not a server name");
            return;
        };
        let mut failures: u32 = 0;
        loop {
            if self.shutdown.is_triggered() {
                return;
            }
            let batch = match self.db.outbox_batch(&destination, MAX_PDUS).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, %destination, "cannot read the federation outbox");
                    Vec::new()
                }
            };
            let durable = match self.db.edu_outbox_batch(&destination, MAX_EDUS as i64).await {
                Ok(durable) => durable,
                Err(error) => {
                    tracing::error!(%error, %destination, "cannot read the EDU outbox");
                    Vec::new()
                }
            };
            let last_durable = durable.last().map(|(id, _)| *id);
            let mut durable: Vec<Value> =
                durable.iter().filter_map(|(_, json)| serde_json::from_str(json).ok()).collect();
            let edus: Vec<Value> = {
                let mut queued = worker.edus.lock().expect("edus");
                let take = queued.len().min(MAX_EDUS - durable.len());
                queued.drain(..take).collect()
            };
            if batch.is_empty() && edus.is_empty() && durable.is_empty() {
                tokio::select! {
                    () = worker.queued.notified() => continue,
                    () = self.shutdown.wait() => return,
                }
            }
            let last = batch.last().map(|(stream, _)| *stream);
            let pdus: Vec<Value> = batch.iter().filter_map(|(_, json)| serde_json::from_str(json).ok()).collect();
            let number = self.transactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let txn_id = format!("{}.{number}", self.started_ms);
            let memory_edus = edus.len();
            durable.extend(edus);
            let mut edus = durable;
            match self.send(&server, &txn_id, pdus, &edus).await {
                Ok(()) => {
                    failures = 0;
                    if let Some(last) = last
                        && let Err(error) = self.db.outbox_sent(&destination, last).await
                    {
                        tracing::error!(%error, %destination, "cannot clear sent events from the outbox");
                    }
                    if let Some(last) = last_durable
                        && let Err(error) = self.db.edu_outbox_sent(&destination, last).await
                    {
                        tracing::error!(%error, %destination, "cannot clear sent EDUs from the outbox");
                    }
                }
                Err(error) => {
                    // Durable EDUs stay stored; of the rest, receipts wait for the next attempt
                    // and typing would be stale by then.
                    let memory: Vec<Value> = edus.split_off(edus.len() - memory_edus);
                    let keep: Vec<Value> = memory.into_iter().filter(|edu| edu["edu_type"] != "m.typing").collect();
                    worker.edus.lock().expect("edus").splice(0..0, keep);
                    failures = failures.saturating_add(1);
                    let wait = self.backoff.min.saturating_mul(2u32.saturating_pow(failures - 1)).min(self.backoff.max);
                    tracing::info!(%destination, %error, retry_in_ms = wait.as_millis() as u64, "federation send failed");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = worker.alive.notified() => failures = 0,
                        () = self.shutdown.wait() => return,
                    }
                }
            }
        }
    }

    /// PUT /_matrix/federation/v1/send/{txnId}. Per-PDU errors are the peer's verdicts on
    /// those events (logged); the transaction itself succeeded.
    async fn send(&self, server: &ServerName, txn_id: &str, pdus: Vec<Value>, edus: &[Value]) -> Result<(), String> {
        let body = json!({
            "origin": self.client.server_name().as_str(),
            "origin_server_ts": now_ms(),
            "pdus": pdus,
            "edus": edus,
        });
        let path = format!("/_matrix/federation/v1/send/{}", super::query_value(txn_id));
        let answer =
            self.client.send_json(server, Method::PUT, &path, &body).await.map_err(|error| error.to_string())?;
        for (event_id, result) in answer["pdus"].as_object().into_iter().flatten() {
            if let Some(error) = result.get("error") {
                tracing::warn!(%server, %event_id, %error, "a peer refused an event");
            }
        }
        Ok(())
    }
}
