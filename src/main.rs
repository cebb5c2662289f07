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
    /// Print a user JWT signed with the configured secret (for development).
    Token {
        /// The user id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// Where this user's notifications go (the token's `email`).
        #[arg(long)]
        email: Option<String>,
        /// How long the token is valid, e.g. 1h, 30d.
        #[arg(long, default_value = "24h")]
        ttl: humantime::Duration,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Back up, list or restore the credential-bearing part of session profiles.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[arg(long, global = true, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Check the environment: Chromium, data directory, store, SMTP; prints what works.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum BackupAction {
    /// Back up every session profile now (or only the one given); each archive is verified.
    Now {
        /// Only this session.
        session_id: Option<String>,
    },
    /// List the archives, newest first per session.
    List {
        /// Only this session's.
        session_id: Option<String>,
    },
    /// Put a session's newest archive that verifies back into its profile (the session must
    /// not be running).
    Restore { session_id: String },
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
        Command::Token {
            user,
            email,
            ttl,
            config,
            data_dir,
        } => wa_supervisor::cli::token(
            config.as_deref(),
            &data_dir,
            &user,
            email.as_deref(),
            ttl.into(),
        ),
        Command::Backup {
            action,
            config,
            data_dir,
        } => {
            let action = match action {
                BackupAction::Now { session_id } => {
                    wa_supervisor::cli::BackupAction::Now(session_id)
                }
                BackupAction::List { session_id } => {
                    wa_supervisor::cli::BackupAction::List(session_id)
                }
                BackupAction::Restore { session_id } => {
                    wa_supervisor::cli::BackupAction::Restore(session_id)
                }
            };
            wa_supervisor::cli::backup(config.as_deref(), &data_dir, action)
        }
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
