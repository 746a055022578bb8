//! `hearthctl`: the administrator's command line. It talks to a running Hearth server over HTTP:
//! its health, and the admin API (`/_hearth/admin/v1`) with an admin's access token.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use serde_json::Value;

/// Administer a Hearth homeserver.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The server's client API base URL.
    #[arg(long, global = true, env = "HEARTH_URL", default_value = "http://127.0.0.1:8008")]
    url: String,
    /// An admin's access token (a user listed in `[admin] users`).
    #[arg(long, global = true, env = "HEARTH_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that the server answers and its database is reachable.
    Health,
    /// Look up, quarantine or delete uploaded media.
    Media {
        #[command(subcommand)]
        action: MediaAction,
    },
}

#[derive(Subcommand)]
enum MediaAction {
    /// Show what the server knows about a file.
    Info { mxc: String },
    /// Make a file unreachable to everyone, keeping its bytes for review.
    Quarantine { mxc: String },
    /// Make a file unreachable to everyone; its bytes are removed after the grace period.
    Delete { mxc: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("hearthctl: {error}");
            return ExitCode::FAILURE;
        }
    };
    let base = cli.url.trim_end_matches('/').to_owned();
    match cli.command {
        Command::Health => health(&client, &base).await,
        Command::Media { action } => {
            let Some(token) = cli.token else {
                eprintln!("hearthctl: an admin access token is needed (--token or HEARTH_ADMIN_TOKEN)");
                return ExitCode::from(2);
            };
            let (method, mxc, suffix) = match &action {
                MediaAction::Info { mxc } => (reqwest::Method::GET, mxc, ""),
                MediaAction::Quarantine { mxc } => (reqwest::Method::POST, mxc, "/quarantine"),
                MediaAction::Delete { mxc } => (reqwest::Method::DELETE, mxc, ""),
            };
            let Some(path) = mxc.strip_prefix("mxc://").filter(|p| p.contains('/')) else {
                eprintln!("hearthctl: {mxc} is not an mxc:// URI");
                return ExitCode::from(2);
            };
            admin(&client, method, &format!("{base}/_hearth/admin/v1/media/{path}{suffix}"), &token).await
        }
    }
}

/// One admin API call; prints the JSON answer, or the Matrix error.
async fn admin(client: &reqwest::Client, method: reqwest::Method, url: &str, token: &str) -> ExitCode {
    match client.request(method, url).bearer_auth(token).send().await {
        Ok(response) => {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "hearthctl: {status}: {} {}",
                    body["errcode"].as_str().unwrap_or("?"),
                    body["error"].as_str().unwrap_or("")
                );
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("unreachable: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn health(client: &reqwest::Client, base: &str) -> ExitCode {
    let url = format!("{base}/health");
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => match response.json::<Value>().await {
            Ok(body) => {
                println!(
                    "ok: {} (hearth {}, {} database)",
                    body["server_name"].as_str().unwrap_or("?"),
                    body["version"].as_str().unwrap_or("?"),
                    body["database"].as_str().unwrap_or("?")
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("unhealthy: {url} answered something that is not Hearth's health JSON: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unreachable: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
