//! The `hearth` binary: parse arguments, load configuration, start telemetry, run the `App`.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// jemalloc returns freed memory to the OS; glibc kept every freed 19 MiB argon2 block resident
/// (its mmap threshold grows to the largest freed block), multiplying idle memory after logins.
/// Its build options are in `.cargo/config.toml`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod c_math;
use hearth::{App, Config, tasks};

/// Hearth: a federated, self-hostable Matrix homeserver.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A TOML configuration file (see config.example.toml). Without one, the defaults run.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Replace the server's signing key (run it while the server is stopped, then start it).
    /// The old key stays published, expired now, so what it signed keeps verifying.
    RotateSigningKey,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hearth: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::RotateSigningKey) = args.command {
        return match hearth::app::rotate_signing_key(&config) {
            Ok((old, new)) => {
                println!("signing key rotated: {old} is now an old verify key; {new} signs from the next start");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("hearth: cannot rotate the signing key: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hearth: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("hearth: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let server_name = config.server_name.clone();
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    let client_scheme = scheme(config.listen.tls.is_some());
    let extra: Vec<(bool, Vec<hearth::config::Resource>)> =
        config.listen.extra.iter().map(|l| (l.tls.is_some(), l.resources.clone())).collect();
    let app = App::build(config).await?;
    tracing::info!(server_name, client_api = %format!("{client_scheme}://{}", app.client_addr()), "hearth listening");
    for ((tls, resources), address) in extra.into_iter().zip(app.extra_addrs()) {
        tracing::info!(?resources, listener = %format!("{}://{address}", scheme(tls)), "hearth listening");
    }
    tokio::spawn(tasks::trigger_on_os_signals(app.shutdown_signal()));
    app.run_until_stopped().await
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG, when set, overrides the configured filter.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
