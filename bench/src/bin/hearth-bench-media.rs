//! `hearth-bench-media`: the media repository's speed and memory, over the Client-Server API
//! only (so it runs against any homeserver).
//!
//! It reports upload and download throughput of a large file (MB/s, median of a few rounds,
//! downloaded bytes checked against what was sent), the time to thumbnail a 12-megapixel JPEG
//! (first request, which decodes and scales it, and a repeat, which is served from the store),
//! and the server's resident memory while a 100 MB upload streams in, sampled every few
//! milliseconds from /proc (the point: it stays far below the file's size).
//!
//! Only loopback targets are intended; every loop is bounded in count and time.

use std::{
    io::Cursor,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use hearth_bench::{Client, memory_mib};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long)]
    url: String,
    /// Size of the file uploaded and downloaded, in MB (10^6 bytes).
    #[arg(long, default_value_t = 50)]
    file_mb: usize,
    /// Upload/download rounds; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Size of the upload during which the server's memory is sampled, in MB.
    #[arg(long, default_value_t = 100)]
    big_mb: usize,
    /// The JPEG's size, width x height (12 megapixels by default).
    #[arg(long, default_value_t = 4000)]
    jpeg_width: u32,
    #[arg(long, default_value_t = 3000)]
    jpeg_height: u32,
    /// Server process id whose memory to sample.
    #[arg(long)]
    pid: Option<String>,
    #[arg(long)]
    json: Option<String>,
}

const MB: f64 = 1_000_000.0;

/// Bytes that do not compress (a server that compressed would look faster than it is).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = rand::random::<u64>() | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A photograph-like JPEG: smooth gradients with a little grain, quality 85.
fn jpeg(width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let mut grain = rand::random::<u32>() | 1;
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        grain ^= grain << 13;
        grain ^= grain >> 17;
        grain ^= grain << 5;
        let noise = (grain & 0x0f) as u8;
        let r = ((x * 255) / width) as u8;
        let g = ((y * 255) / height) as u8;
        let b = (((x + y) * 127) / (width + height)) as u8;
        image::Rgb([r.saturating_add(noise), g.saturating_add(noise), b.saturating_add(noise)])
    });
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&image)?;
    Ok(out.into_inner())
}

async fn upload(client: &Client, token: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<String> {
    let response = client
        .http
        .post(format!("{}/_matrix/media/v3/upload", client.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "upload -> {status} {value}");
    Ok(value["content_uri"].as_str().context("content_uri")?.to_owned())
}

/// Downloads `path` (under /_matrix/client/v1/media/) chunk by chunk; returns the bytes'
/// count after checking them against `expected` when given.
async fn download(client: &Client, token: &str, path: &str, expected: Option<&[u8]>) -> anyhow::Result<usize> {
    let mut response =
        client.http.get(format!("{}/_matrix/client/v1/media/{path}", client.base)).bearer_auth(token).send().await?;
    ensure!(response.status().is_success(), "GET {path} -> {}", response.status());
    let mut received = 0;
    while let Some(chunk) = response.chunk().await? {
        if let Some(expected) = expected {
            ensure!(expected.get(received..received + chunk.len()) == Some(&chunk[..]), "downloaded bytes differ");
        }
        received += chunk.len();
    }
    if let Some(expected) = expected {
        ensure!(received == expected.len(), "downloaded {received} of {} bytes", expected.len());
    }
    Ok(received)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rounds > 0 && args.rounds <= 20, "--rounds: 1 to 20");
    let client = Client::new(&args.url)?;
    let run: u32 = rand::random();
    let registration = json!({"username": format!("media{run:x}"), "password": format!("bench-{run:x}"), "auth": {"type": "m.login.dummy"}});
    let registered = client.call(Method::POST, "/_matrix/client/v3/register", None, Some(&registration), &[]).await?;
    let token = registered["access_token"].as_str().context("access_token")?.to_owned();

    // Memory while a big upload streams in (first, before anything else has grown the heap).
    let memory = match &args.pid {
        None => Value::Null,
        Some(pid) => {
            let before = memory_mib(pid, "VmRSS:").context("reading the server's memory")?;
            let sampling = Arc::new(AtomicBool::new(true));
            let sampler = {
                let (pid, sampling) = (pid.clone(), sampling.clone());
                tokio::spawn(async move {
                    let mut peak = 0.0_f64;
                    // Bounded: at most ten minutes of samples.
                    for _ in 0..120_000 {
                        if !sampling.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Some(now) = memory_mib(&pid, "VmRSS:") {
                            peak = peak.max(now);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    peak
                })
            };
            let big = random_bytes(args.big_mb * 1_000_000);
            let started = Instant::now();
            let uri = upload(&client, &token, "application/octet-stream", big).await?;
            let seconds = started.elapsed().as_secs_f64();
            sampling.store(false, Ordering::Relaxed);
            let peak = sampler.await?;
            if uri.is_empty() {
                bail!("no content_uri");
            }
            json!({
                "upload_mb": args.big_mb,
                "upload_seconds": round(seconds),
                "rss_before_mib": round(before),
                "peak_rss_during_upload_mib": round(peak),
                "growth_mib": round(peak - before),
            })
        }
    };

    // Throughput of a large file, both ways.
    let file = random_bytes(args.file_mb * 1_000_000);
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let started = Instant::now();
        let uri = upload(&client, &token, "application/octet-stream", file.clone()).await?;
        ups.push(file.len() as f64 / MB / started.elapsed().as_secs_f64());
        let path = format!("download/{}", uri.strip_prefix("mxc://").context("mxc uri")?);
        let started = Instant::now();
        download(&client, &token, &path, Some(&file)).await?;
        downs.push(file.len() as f64 / MB / started.elapsed().as_secs_f64());
        eprintln!("round {}: upload {:.0} MB/s, download {:.0} MB/s", round + 1, ups[round], downs[round]);
    }
    drop(file);

    // Thumbnailing a 12-megapixel photo.
    let photo = jpeg(args.jpeg_width, args.jpeg_height)?;
    let photo_bytes = photo.len();
    let uri = upload(&client, &token, "image/jpeg", photo).await?;
    let media = uri.strip_prefix("mxc://").context("mxc uri")?.to_owned();
    let mut thumbnails = serde_json::Map::new();
    for (width, height, method) in [(800, 600, "scale"), (96, 96, "crop")] {
        let path = format!("thumbnail/{media}?width={width}&height={height}&method={method}");
        let started = Instant::now();
        let size = download(&client, &token, &path, None).await?;
        let first = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        download(&client, &token, &path, None).await?;
        let again = started.elapsed().as_secs_f64() * 1000.0;
        thumbnails.insert(
            format!("{width}x{height}_{method}"),
            json!({"first_ms": round(first), "stored_ms": round(again), "bytes": size}),
        );
    }

    let result = json!({
        "file_mb": args.file_mb,
        "rounds": args.rounds,
        "upload_mb_per_s": round(median(ups)),
        "download_mb_per_s": round(median(downs)),
        "jpeg": {"width": args.jpeg_width, "height": args.jpeg_height, "bytes": photo_bytes, "thumbnails": thumbnails},
        "memory": memory,
    });
    let text = serde_json::to_string_pretty(&result)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text)?;
    }
    Ok(())
}
