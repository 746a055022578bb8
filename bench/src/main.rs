//! `hearth-bench`: a message delivery benchmark that speaks only the Matrix Client-Server API,
//! so the same run measures Hearth and Synapse alike.
//!
//! It registers N users, puts them in M rooms, keeps every user in a /sync long-poll, sends at a
//! fixed rate from random members of random rooms, and reports send→/sync delivery latency to
//! every member (p50, p99, max), sustained throughput, lost and duplicated deliveries, and the
//! server's peak memory (VmHWM of the given pids). Written in Rust because a Python client with a
//! thousand long-polls became the bottleneck it was meant to measure.
//!
//! Only loopback targets are intended; every loop stops at its deadline.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use hearth_bench::{Client, join_all, memory_mib, percentile};
use rand::Rng;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
#[command(version, about)]
struct Args {
    /// The homeserver's client API base URL.
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1000)]
    users: usize,
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Messages per second to send.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Server process ids (comma-separated) whose peak memory to report.
    #[arg(long)]
    pid: Option<String>,
    #[arg(long, default_value = "server")]
    label: String,
    /// Also write the JSON result to this file.
    #[arg(long)]
    json: Option<String>,
}

const FILTER: &str = r#"{"room":{"timeline":{"limit":500},"state":{"lazy_load_members":true}},"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]}}"#;

#[derive(Default)]
struct Deliveries {
    /// (message, user) -> times seen
    seen: HashMap<(u64, usize), u32>,
    latencies_ms: Vec<f64>,
    limited: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Arc::new(Client::new(&args.url)?);
    let run: u32 = rand::thread_rng().r#gen();
    let password = format!("bench-password-{run:x}");

    // Register every user (16 at a time).
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));
    let mut jobs = Vec::new();
    for i in 0..args.users {
        let (client, semaphore, password) = (client.clone(), semaphore.clone(), password.clone());
        jobs.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.expect("semaphore");
            let body = json!({"username": format!("bench{run:x}x{i}"), "password": password, "auth": {"type": "m.login.dummy"}});
            let value = client.call(reqwest::Method::POST, "/_matrix/client/v3/register", None, Some(&body), &[]).await?;
            anyhow::Ok(value["access_token"].as_str().context("access_token")?.to_owned())
        }));
    }
    let tokens: Vec<String> = join_all(jobs).await.into_iter().collect::<anyhow::Result<_>>()?;
    eprintln!("[{}] registered {} users in {:.1}s", args.label, tokens.len(), started.elapsed().as_secs_f64());

    // Rooms: user i belongs to room i % rooms; the first member creates it, the rest join.
    let members: Vec<Vec<usize>> =
        (0..args.rooms).map(|r| (0..args.users).filter(|u| u % args.rooms == r).collect()).collect();
    let mut jobs = Vec::new();
    for group in &members {
        let (client, semaphore, token) = (client.clone(), semaphore.clone(), tokens[group[0]].clone());
        jobs.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.expect("semaphore");
            let value = client
                .call(
                    reqwest::Method::POST,
                    "/_matrix/client/v3/createRoom",
                    Some(&token),
                    Some(&json!({"preset": "public_chat"})),
                    &[],
                )
                .await?;
            anyhow::Ok(value["room_id"].as_str().context("room_id")?.to_owned())
        }));
    }
    let room_ids: Vec<String> = join_all(jobs).await.into_iter().collect::<anyhow::Result<_>>()?;
    let mut jobs = Vec::new();
    for (r, group) in members.iter().enumerate() {
        for &user in &group[1..] {
            let (client, semaphore, token, room) =
                (client.clone(), semaphore.clone(), tokens[user].clone(), room_ids[r].clone());
            jobs.push(tokio::spawn(async move {
                let _permit = semaphore.acquire().await.expect("semaphore");
                client
                    .call(
                        reqwest::Method::POST,
                        &format!("/_matrix/client/v3/join/{}", room.replace('!', "%21").replace(':', "%3A")),
                        Some(&token),
                        Some(&json!({})),
                        &[],
                    )
                    .await
            }));
        }
    }
    for result in join_all(jobs).await {
        result?;
    }
    eprintln!("[{}] {} rooms of {} members ready", args.label, args.rooms, members[0].len());

    // Every user long-polls /sync.
    let epoch = Instant::now();
    let deliveries = Arc::new(Mutex::new(Deliveries::default()));
    let sent_at: Arc<Mutex<HashMap<u64, f64>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut syncers = Vec::new();
    for (user, token) in tokens.iter().enumerate() {
        let (client, token, deliveries, sent_at, stop) =
            (client.clone(), token.clone(), deliveries.clone(), sent_at.clone(), stop.clone());
        syncers.push(tokio::spawn(async move {
            let initial = client
                .call(
                    reqwest::Method::GET,
                    "/_matrix/client/v3/sync",
                    Some(&token),
                    None,
                    &[("filter", FILTER), ("timeout", "0")],
                )
                .await?;
            let mut since = initial["next_batch"].as_str().context("next_batch")?.to_owned();
            while !stop.load(Ordering::Relaxed) {
                let query =
                    [("filter", FILTER), ("timeout", "5000"), ("since", since.as_str()), ("set_presence", "offline")];
                let Ok(value) =
                    client.call(reqwest::Method::GET, "/_matrix/client/v3/sync", Some(&token), None, &query).await
                else {
                    continue;
                };
                let now_ms = epoch.elapsed().as_secs_f64() * 1000.0;
                since = value["next_batch"].as_str().context("next_batch")?.to_owned();
                let Some(rooms) = value["rooms"]["join"].as_object() else { continue };
                let sent_at = sent_at.lock().expect("lock").clone_subset(rooms);
                let mut deliveries = deliveries.lock().expect("lock");
                for room in rooms.values() {
                    if room["timeline"]["limited"].as_bool().unwrap_or(false) {
                        deliveries.limited += 1;
                    }
                    for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                        let Some(id) = event["content"]["bench_id"].as_u64() else { continue };
                        let count = deliveries.seen.entry((id, user)).or_insert(0);
                        *count += 1;
                        if *count == 1
                            && let Some(sent) = sent_at.get(&id)
                        {
                            deliveries.latencies_ms.push(now_ms - sent);
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Resident memory while messages flow (the whole-run peak also covers registration, where
    // password hashing dominates).
    let messaging_peak = Arc::new(Mutex::new(0.0f64));
    let sampler = args.pid.clone().map(|pids| {
        let (peak, stop) = (messaging_peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = memory_mib(&pids, "VmRSS:") {
                    let mut peak = peak.lock().expect("lock");
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    // Send at a fixed rate.
    let accepted = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(Mutex::new(HashMap::<u64, usize>::new()));
    let total = (args.rate * args.duration) as u64;
    let send_start = Instant::now();
    let mut sends = Vec::new();
    for n in 0..total {
        let target = send_start + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(target.into()).await;
        let room = rand::thread_rng().gen_range(0..args.rooms);
        let sender = members[room][rand::thread_rng().gen_range(0..members[room].len())];
        let (client, token, room_id) = (client.clone(), tokens[sender].clone(), room_ids[room].clone());
        let (accepted, failures, expected, sent_at) =
            (accepted.clone(), failures.clone(), expected.clone(), sent_at.clone());
        let member_count = members[room].len();
        sends.push(tokio::spawn(async move {
            sent_at.lock().expect("lock").insert(n, epoch.elapsed().as_secs_f64() * 1000.0);
            expected.lock().expect("lock").insert(n, member_count);
            let path = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/b{run:x}-{n}",
                room_id.replace('!', "%21").replace(':', "%3A")
            );
            let body = json!({"msgtype": "m.text", "body": "benchmark", "bench_id": n});
            match client.call(reqwest::Method::PUT, &path, Some(&token), Some(&body), &[]).await {
                Ok(_) => accepted.fetch_add(1, Ordering::Relaxed),
                Err(_) => {
                    expected.lock().expect("lock").remove(&n);
                    failures.fetch_add(1, Ordering::Relaxed)
                }
            };
        }));
    }
    for send in sends {
        send.await?;
    }
    let send_elapsed = send_start.elapsed().as_secs_f64();
    let want: usize = expected.lock().expect("lock").values().sum();
    let drain_deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = deliveries.lock().expect("lock").seen.len();
        if got >= want || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for syncer in syncers {
        syncer.abort();
    }
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }

    let deliveries = deliveries.lock().expect("lock");
    let expected = expected.lock().expect("lock");
    let delivered = deliveries.seen.keys().filter(|(id, _)| expected.contains_key(id)).count();
    let duplicated: u32 = deliveries.seen.values().filter(|c| **c > 1).map(|c| c - 1).sum();
    let mut latencies = deliveries.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let accepted = accepted.load(Ordering::Relaxed);
    let result = json!({
        "label": args.label,
        "users": args.users,
        "rooms": args.rooms,
        "rate_target": args.rate,
        "messages_sent": accepted,
        "send_failures": failures.load(Ordering::Relaxed),
        "send_throughput_per_s": (accepted as f64 / send_elapsed * 10.0).round() / 10.0,
        "deliveries_expected": want,
        "deliveries": delivered,
        "lost": want as i64 - delivered as i64,
        "duplicated": duplicated,
        "limited_timelines": deliveries.limited,
        "latency_ms_p50": (percentile(&latencies, 0.50) * 100.0).round() / 100.0,
        "latency_ms_p99": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        "latency_ms_max": (latencies.last().copied().unwrap_or(f64::NAN) * 100.0).round() / 100.0,
        "peak_memory_mib": args.pid.as_deref().and_then(|pids| memory_mib(pids, "VmHWM:")).map(|m| (m * 10.0).round() / 10.0),
        "messaging_peak_rss_mib": args.pid.as_ref().map(|_| (*messaging_peak.lock().expect("lock") * 10.0).round() / 10.0),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}

/// Copies only the send times the response can need (the map is shared by a thousand tasks;
/// holding its lock while walking JSON would serialise them).
trait CloneSubset {
    fn clone_subset(&self, rooms: &serde_json::Map<String, Value>) -> HashMap<u64, f64>;
}

impl CloneSubset for HashMap<u64, f64> {
    fn clone_subset(&self, rooms: &serde_json::Map<String, Value>) -> HashMap<u64, f64> {
        rooms
            .values()
            .flat_map(|room| room["timeline"]["events"].as_array().into_iter().flatten())
            .filter_map(|event| event["content"]["bench_id"].as_u64())
            .filter_map(|id| self.get(&id).map(|t| (id, *t)))
            .collect()
    }
}
