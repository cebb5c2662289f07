//! `wa-supervisor` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wa-supervisor",
    version,
    about = "Runs many WhatsApp Web sessions on one host and keeps them alive"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the supervisor (HTTP/WebSocket API and the sessions).
    Serve {
        /// A TOML file layered over config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides server.bind).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory for profiles, the SQLite file and backups.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Demo mode: start the WhatsApp Web simulator in-process and point sessions at it.
        #[arg(long)]
        sim: bool,
    },
    /// Run the WhatsApp Web simulator alone.
    Sim {
        /// Address to listen on (overrides sim.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// A TOML file layered over config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check the environment: Chromium, data directory; prints what works.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            sim,
        } => wa_supervisor::cli::serve(config.as_deref(), listen, &data_dir, sim).await,
        Command::Sim { listen, config } => wa_supervisor::cli::sim(config.as_deref(), listen).await,
        Command::Check { config, data_dir } => {
            wa_supervisor::cli::check(config.as_deref(), &data_dir).await
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("wa-supervisor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // chromiumoxide logs one unparseable event per page load (newer CDP enums); keep it quiet.
        tracing_subscriber::EnvFilter::new(
            "info,chromiumoxide::handler=error,chromiumoxide::conn=warn",
        )
    });
    tracing_subscriber::fmt().with_env_filter(filter).init();
}
