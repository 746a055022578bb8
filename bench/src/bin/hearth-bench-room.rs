//! `hearth-bench-room`: how one very large room behaves, over the Client-Server API only.
//!
//! It registers N users who all join one public room, then has one member send messages at a
//! fixed rate while a few members long-poll /sync, and reports: join latency as the room fills,
//! send latency and send→/sync delivery latency in the full room, the time and size of an
//! initial sync with and without lazy-loaded members, and the server's peak memory.
//!
//! Only loopback targets are intended; every loop is bounded in count and time.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use hearth_bench::{Client, join_all, memory_mib, path_segment, percentile};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long)]
    url: String,
    /// Members of the room.
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Members long-polling /sync while messages are sent.
    #[arg(long, default_value_t = 20)]
    watchers: usize,
    /// Messages to send, and how many per second.
    #[arg(long, default_value_t = 100)]
    messages: u64,
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Server process ids (comma-separated) whose memory to report.
    #[arg(long)]
    pid: Option<String>,
    #[arg(long)]
    json: Option<String>,
}

const LAZY: &str = r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":20}}}"#;

fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    let round = |v: f64| (v * 100.0).round() / 100.0;
    json!({
        "count": samples.len(),
        "p50_ms": round(percentile(&samples, 0.5)),
        "p99_ms": round(percentile(&samples, 0.99)),
        "max_ms": round(samples.last().copied().unwrap_or(f64::NAN)),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Arc::new(Client::new(&args.url)?);
    let run: u32 = rand::random();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));

    let started = Instant::now();
    let mut jobs = Vec::new();
    for i in 0..args.members {
        let (client, semaphore) = (client.clone(), semaphore.clone());
        jobs.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.expect("semaphore");
            let body = json!({"username": format!("room{run:x}x{i}"), "password": format!("bench-{run:x}"), "auth": {"type": "m.login.dummy"}});
            let value = client.call(Method::POST, "/_matrix/client/v3/register", None, Some(&body), &[]).await?;
            anyhow::Ok(value["access_token"].as_str().context("access_token")?.to_owned())
        }));
    }
    let tokens: Vec<String> = join_all(jobs).await.into_iter().collect::<anyhow::Result<_>>()?;
    eprintln!("registered {} users in {:.1}s", tokens.len(), started.elapsed().as_secs_f64());

    let created = client
        .call(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&tokens[0]),
            Some(&json!({"preset": "public_chat"})),
            &[],
        )
        .await?;
    let room = created["room_id"].as_str().context("room_id")?.to_owned();
    let join_path = format!("/_matrix/client/v3/join/{}", path_segment(&room));
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (i, token) in tokens.iter().enumerate().skip(1) {
        let (client, semaphore, token, path) = (client.clone(), semaphore.clone(), token.clone(), join_path.clone());
        jobs.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.expect("semaphore");
            let begun = Instant::now();
            client.call(Method::POST, &path, Some(&token), Some(&json!({})), &[]).await?;
            anyhow::Ok((i, begun.elapsed().as_secs_f64() * 1000.0))
        }));
    }
    let joins: Vec<(usize, f64)> = join_all(jobs).await.into_iter().collect::<anyhow::Result<_>>()?;
    let last_tenth: Vec<f64> = joins.iter().filter(|(i, _)| *i >= args.members * 9 / 10).map(|(_, ms)| *ms).collect();
    eprintln!("{} members joined in {:.1}s", args.members, started.elapsed().as_secs_f64());

    // Initial syncs of a member who did not create the room.
    let member = &tokens[args.members / 2];
    let mut initial = Vec::new();
    for (label, filter) in [("lazy_loaded_members", Some(LAZY)), ("all_members", None)] {
        let begun = Instant::now();
        let mut query = vec![("timeout", "0")];
        if let Some(filter) = filter {
            query.push(("filter", filter));
        }
        let value = client.call(Method::GET, "/_matrix/client/v3/sync", Some(member), None, &query).await?;
        let state_events = value["rooms"]["join"][&room]["state"]["events"].as_array().map_or(0, Vec::len);
        initial.push((
            label,
            json!({"ms": (begun.elapsed().as_secs_f64() * 100_000.0).round() / 100.0, "state_events": state_events,
                   "bytes": value.to_string().len()}),
        ));
    }

    // Watchers long-poll; one member sends.
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent_at = Arc::new(Mutex::new(std::collections::HashMap::<u64, f64>::new()));
    let deliveries = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut watchers = Vec::new();
    for token in tokens.iter().skip(1).step_by((args.members / args.watchers.max(1)).max(1)).take(args.watchers) {
        let (client, token, stop, sent_at, deliveries) =
            (client.clone(), token.clone(), stop.clone(), sent_at.clone(), deliveries.clone());
        watchers.push(tokio::spawn(async move {
            let first = client
                .call(Method::GET, "/_matrix/client/v3/sync", Some(&token), None, &[("filter", LAZY), ("timeout", "0")])
                .await?;
            let mut since = first["next_batch"].as_str().context("next_batch")?.to_owned();
            while !stop.load(Ordering::Relaxed) {
                let query = [("filter", LAZY), ("timeout", "2000"), ("since", since.as_str())];
                let Ok(value) = client.call(Method::GET, "/_matrix/client/v3/sync", Some(&token), None, &query).await
                else {
                    continue;
                };
                let now = epoch.elapsed().as_secs_f64() * 1000.0;
                since = value["next_batch"].as_str().context("next_batch")?.to_owned();
                for room in value["rooms"]["join"].as_object().into_iter().flat_map(|rooms| rooms.values()) {
                    for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                        if let Some(id) = event["content"]["bench_id"].as_u64()
                            && let Some(sent) = sent_at.lock().expect("lock").get(&id)
                        {
                            deliveries.lock().expect("lock").push(now - sent);
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sends = Vec::new();
    let send_start = Instant::now();
    for n in 0..args.messages {
        tokio::time::sleep_until((send_start + Duration::from_secs_f64(n as f64 / args.rate)).into()).await;
        sent_at.lock().expect("lock").insert(n, epoch.elapsed().as_secs_f64() * 1000.0);
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/r{run:x}-{n}", path_segment(&room));
        let begun = Instant::now();
        let body = json!({"msgtype": "m.text", "body": "hello, large room", "bench_id": n});
        client.call(Method::PUT, &path, Some(&tokens[0]), Some(&body), &[]).await?;
        sends.push(begun.elapsed().as_secs_f64() * 1000.0);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let expected = args.messages as usize * watchers.len();
    while deliveries.lock().expect("lock").len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        watcher.abort();
    }
    let delivered = deliveries.lock().expect("lock").clone();
    let result = json!({
        "members": args.members,
        "join_last_tenth": summary(last_tenth),
        "initial_sync": initial.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<serde_json::Map<String, Value>>(),
        "send": summary(sends),
        "delivery": summary(delivered.clone()),
        "deliveries_expected": expected,
        "deliveries": delivered.len(),
        "peak_memory_mib": args.pid.as_deref().and_then(|pids| memory_mib(pids, "VmHWM:")),
        "rss_after_mib": args.pid.as_deref().and_then(|pids| memory_mib(pids, "VmRSS:")),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}
