//! `hearthctl`: the administrator's command line. It talks to a running Hearth server over HTTP
//! (the admin API grows with later issues); for now it checks a server's health.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

/// Administer a Hearth homeserver.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The server's client API base URL.
    #[arg(long, global = true, env = "HEARTH_URL", default_value = "http://127.0.0.1:8008")]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that the server answers and its database is reachable.
    Health,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Health => health(&cli.url).await,
    }
}

async fn health(base: &str) -> ExitCode {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("hearthctl: {error}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("{}/health", base.trim_end_matches('/'));
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => match response.json::<serde_json::Value>().await {
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
