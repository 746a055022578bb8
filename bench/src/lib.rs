//! Shared by the benchmark binaries: a Client-Server API client that waits out rate limits,
//! percentiles and the server's memory from /proc.

use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        query: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        for _ in 0..50 {
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).query(query);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await?;
            let status = response.status();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            if status.as_u16() == 429 {
                let wait = value["retry_after_ms"].as_u64().unwrap_or(500).min(5000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                continue;
            }
            if !status.is_success() {
                bail!("{method} {path} -> {status} {value}");
            }
            return Ok(value);
        }
        bail!("{method} {path}: still rate limited")
    }
}

/// Waits for every spawned job (each takes a semaphore permit itself).
pub async fn join_all<T: Send + 'static>(jobs: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(job.await.expect("task"));
    }
    out
}

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((q * sorted.len() as f64) as usize).min(sorted.len() - 1)]
}

/// The sum over `pids` of a /proc/<pid>/status field (VmHWM: peak resident, VmRSS: now), MiB.
pub fn memory_mib(pids: &str, field: &str) -> Option<f64> {
    let mut total = 0.0;
    for pid in pids.split(',') {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: f64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
        total += kib / 1024.0;
    }
    Some(total)
}

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(Duration::from_secs(120)).build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }
}

/// A room id or alias as a path segment.
pub fn path_segment(id: &str) -> String {
    id.replace('!', "%21").replace(':', "%3A").replace('#', "%23")
}
