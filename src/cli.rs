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
    let store = crate::store::open(&config, data_dir)
        .await
        .context("cannot open the store")?;
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
        store,
        jwt_secret,
        executable,
        sessions_path: sessions,
        data_dir: data_dir.to_owned(),
        simulator_args,
        demo: sim,
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
    let store_name = match config.store.kind {
        crate::config::StoreKind::Sqlite => format!(
            "sqlite {}",
            crate::store::sqlite_path(&config, data_dir).display()
        ),
        crate::config::StoreKind::Postgres => "postgres".to_owned(),
        crate::config::StoreKind::Supabase => format!(
            "supabase {}",
            config.store.supabase_url.as_deref().unwrap_or_default()
        ),
    };
    match crate::store::open_once(&config, data_dir).await {
        Ok(_) => println!("ok    store: {store_name}"),
        Err(error) => {
            ok = false;
            println!("FAIL  store: {store_name}: {error}");
        }
    }
    let backups = crate::server::backups_of(&config, data_dir, &sessions);
    match crate::backup::create_private_dir(&backups.dir)
        .map_err(std::io::Error::other)
        .and_then(|()| {
            let probe = backups.dir.join(".wa-supervisor-check");
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(probe)
        }) {
        Ok(()) => println!(
            "ok    backups: {} is writable, {} archives{}",
            backups.dir.display(),
            backups.list(None).len(),
            if config.backup.enabled {
                format!(", schedule \"{}\"", config.backup.schedule)
            } else {
                ", scheduled backups off".to_owned()
            }
        ),
        Err(error) => {
            ok = false;
            println!("FAIL  backups: {}: {error}", backups.dir.display());
        }
    }
    match (&config.mail.transport, &config.mail.smtp_url) {
        (crate::config::MailTransport::Smtp, Some(url)) => match smtp_greeting(url).await {
            Ok(greeting) => println!("ok    smtp: {greeting}"),
            Err(error) => {
                ok = false;
                println!("FAIL  smtp: {error}");
            }
        },
        (transport, _) => println!("ok    mail: transport {transport:?} (no SMTP server to try)"),
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Connects to the SMTP server of `url` as the mailer would (EHLO, STARTTLS or TLS, AUTH with
/// the URL's credentials) and says `host:port` without the credentials.
async fn smtp_greeting(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("mail.smtp_url: {e}"))?;
    let default_port = if parsed.scheme() == "smtps" { 465 } else { 587 };
    let place = format!(
        "{}:{}",
        parsed.host_str().unwrap_or_default(),
        parsed.port().unwrap_or(default_port)
    );
    let transport = crate::mail::smtp_transport(url).map_err(|e| format!("mail.smtp_url: {e}"))?;
    match transport.test_connection().await {
        Ok(true) => Ok(format!(
            "{place} accepts the mailer ({}{})",
            match (
                parsed.scheme(),
                parsed
                    .query_pairs()
                    .find(|(k, _)| k == "tls")
                    .map(|(_, v)| v.into_owned())
                    .as_deref()
            ) {
                ("smtps", _) => "TLS",
                (_, Some("none")) => "no TLS, as configured",
                (_, Some("opportunistic")) => "STARTTLS if offered",
                _ => "STARTTLS",
            },
            if parsed.username().is_empty() {
                ""
            } else {
                ", credentials accepted"
            }
        )),
        Ok(false) => Err(format!("{place} did not answer NOOP")),
        Err(error) => Err(format!("{place}: {error}")),
    }
}

pub enum BackupAction {
    Now(Option<String>),
    List(Option<String>),
    Restore(String),
}

/// `wa-supervisor backup now|list|restore`.
pub fn backup(
    config_file: Option<&Path>,
    data_dir: &Path,
    action: BackupAction,
) -> anyhow::Result<ExitCode> {
    let config = Config::from_env(config_file)?;
    let sessions = sessions_path(&config, data_dir);
    let backups = crate::server::backups_of(&config, data_dir, &sessions);
    let session = |raw: &str| {
        crate::ids::SessionId::new(raw).map_err(|e| anyhow::anyhow!("session id {raw:?}: {}", e.0))
    };
    let mut ok = true;
    match action {
        BackupAction::Now(only) => {
            let results = match only {
                Some(raw) => {
                    let id = session(&raw)?;
                    vec![(id.clone(), backups.backup(&id))]
                }
                None => backups.backup_all(),
            };
            if results.is_empty() {
                println!(
                    "no session profiles with credentials under {}",
                    sessions.display()
                );
            }
            for (session_id, result) in results {
                match result {
                    Ok(archive) => println!(
                        "ok    {session_id} {} ({} bytes, verified)",
                        archive.path.display(),
                        archive.bytes
                    ),
                    Err(error) => {
                        ok = false;
                        println!("FAIL  {session_id}: {error}");
                    }
                }
            }
        }
        BackupAction::List(only) => {
            let only = only.as_deref().map(session).transpose()?;
            let archives = backups.list(only.as_ref());
            if archives.is_empty() {
                println!("no backups in {}", backups.dir.display());
            }
            for archive in archives {
                println!(
                    "{}  {}  {:>10} bytes  {}",
                    archive.session_id,
                    archive.stamp,
                    archive.bytes,
                    archive.path.display()
                );
            }
        }
        BackupAction::Restore(raw) => {
            let id = session(&raw)?;
            match backups.restore(&id) {
                Ok((archive, skipped)) => {
                    for (bad, error) in skipped {
                        println!("skipped {}: {error}", bad.path.display());
                    }
                    println!(
                        "restored {id} from {} into {}",
                        archive.path.display(),
                        backups.profile(&id).display()
                    );
                }
                Err(error) => {
                    ok = false;
                    println!("FAIL  {error}");
                }
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
