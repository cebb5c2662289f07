//! The subcommands behind `main`: each loads the configuration, then runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use warp::Filter;

use crate::browser::{self, Engine};
use crate::config::Config;
use crate::sim::{QrTiming, Simulator};

/// Where sessions keep their profiles: `sessions.path`, or `<data-dir>/sessions`.
pub fn sessions_path(config: &Config, data_dir: &Path) -> PathBuf {
    config
        .sessions
        .path
        .clone()
        .unwrap_or_else(|| data_dir.join("sessions"))
}

fn qr_timing(config: &Config) -> QrTiming {
    QrTiming {
        first: config.sim.first_qr,
        rotate: config.sim.qr_rotate,
    }
}

/// `wa-supervisor serve`.
pub async fn serve(
    config_file: Option<&Path>,
    listen: Option<SocketAddr>,
    data_dir: &Path,
    sim: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::from_env(config_file)?;
    let bind = listen.unwrap_or(config.server.bind);
    let sessions = sessions_path(&config, data_dir);
    std::fs::create_dir_all(&sessions)
        .with_context(|| format!("cannot create {}", sessions.display()))?;
    browser::process::sweep_leftovers(&sessions);
    let executable = browser::find_chromium(config.chromium.path.as_deref())?;
    let store =
        crate::store::sqlite::SqliteStore::open(&crate::server::sqlite_path(&config, data_dir))
            .await
            .context("cannot open the SQLite store")?;
    let jwt_secret = crate::auth::jwt_secret(config.auth.jwt_secret.as_deref(), data_dir)
        .with_context(|| format!("cannot keep the JWT secret in {}", data_dir.display()))?;
    let simulator = if sim {
        Some(Simulator::start(config.sim.listen, qr_timing(&config)).await?)
    } else {
        None
    };
    let simulator_args = simulator
        .as_ref()
        .map(|s| s.chromium_args())
        .unwrap_or_default();
    let extra = simulator
        .as_ref()
        .map(|s| s.simulator.control_routes().boxed());
    let app = crate::server::App::start(crate::server::AppParts {
        config,
        store: std::sync::Arc::new(store),
        jwt_secret,
        executable,
        sessions_path: sessions,
        simulator_args,
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), "listening");
    let server = tokio::spawn(crate::server::run(
        listener,
        app.clone(),
        extra,
        std::future::pending(),
    ));
    let restoring = {
        let app = app.clone();
        tokio::spawn(async move {
            let restored = app.restore().await;
            tracing::info!(restored, "sessions restored");
        })
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    restoring.abort();
    app.shutdown().await;
    server.abort();
    drop(simulator);
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `wa-supervisor sim`.
pub async fn sim(
    config_file: Option<&Path>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let config = Config::from_env(config_file)?;
    let handle = Simulator::start(listen.unwrap_or(config.sim.listen), qr_timing(&config))
        .await
        .context("cannot start the simulator")?;
    println!("simulator listening on {}", handle.addr);
    println!("control API: {}", handle.control_url());
    println!(
        "point Chromium at it with: {}",
        handle.chromium_args().join(" ")
    );
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}

/// `wa-supervisor token`: prints a user JWT signed with the configured (or kept) secret.
pub fn token(
    config_file: Option<&Path>,
    data_dir: &Path,
    user: &str,
    email: Option<&str>,
    ttl: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let config = Config::from_env(config_file)?;
    let user = crate::ids::UserId::new(user)?;
    let secret = crate::auth::jwt_secret(config.auth.jwt_secret.as_deref(), data_dir)
        .with_context(|| format!("cannot keep the JWT secret in {}", data_dir.display()))?;
    println!("{}", crate::auth::Jwt::new(&secret).mint(&user, email, ttl));
    Ok(ExitCode::SUCCESS)
}

/// `wa-supervisor check`: prints what works and what does not; non-zero when something required fails.
pub async fn check(config_file: Option<&Path>, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let config = match Config::from_env(config_file) {
        Ok(config) => {
            println!("ok    configuration");
            config
        }
        Err(error) => {
            println!("FAIL  configuration: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match browser::find_chromium(config.chromium.path.as_deref()) {
        Ok(path) => {
            let version = tokio::process::Command::new(&path)
                .arg("--version")
                .output()
                .await;
            match version {
                Ok(out) if out.status.success() => println!(
                    "ok    chromium {} ({:?}): {}",
                    path.display(),
                    Engine::of(&path),
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
                Ok(out) => {
                    ok = false;
                    println!(
                        "FAIL  chromium {} --version exited with {}",
                        path.display(),
                        out.status
                    );
                }
                Err(error) => {
                    ok = false;
                    println!("FAIL  chromium {}: {error}", path.display());
                }
            }
        }
        Err(error) => {
            ok = false;
            println!("FAIL  chromium: {error}");
        }
    }
    let sessions = sessions_path(&config, data_dir);
    match std::fs::create_dir_all(&sessions).and_then(|_| {
        let probe = sessions.join(".write-check");
        std::fs::write(&probe, b"ok")?;
        std::fs::remove_file(probe)
    }) {
        Ok(()) => println!(
            "ok    sessions directory {} is writable",
            sessions.display()
        ),
        Err(error) => {
            ok = false;
            println!("FAIL  sessions directory {}: {error}", sessions.display());
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
