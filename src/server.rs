//! The HTTP and WebSocket server (warp): `GET /ws` (SPEC §4), `GET /health`, the user routes
//! of SPEC §5 that exist so far, and a placeholder `GET /`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use ractor::{Actor, ActorRef};
use serde_json::json;
use tokio::sync::mpsc;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::ws::{Message, WebSocket};

use crate::auth::{AuthError, Identity, Jwt};
use crate::config::Config;
use crate::gateway::{ConnId, GatewayMsg, OUTBOUND_QUEUE, Outbound};
use crate::ids::SessionId;
use crate::protocol::{self, ErrorCode};
use crate::session::actor::{SessionMsg, SessionSnapshot, StopMode};
use crate::session::policy::Status;
use crate::store::Store;
use crate::supervisor::{RootSupervisor, SessionContextSeed, SupervisorArgs, SupervisorMsg};

const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");

/// Frames per second a connection may send (sustained), and its burst.
const RATE_PER_SEC: f64 = 20.0;
const RATE_BURST: f64 = 40.0;
/// Bad or excessive frames after which a connection is closed.
const STRIKES: u32 = 20;

/// The running program: actors, store, token verification.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub gateway: ActorRef<GatewayMsg>,
    pub jwt: Jwt,
    pub sessions_path: PathBuf,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Demo mode (`serve --sim`): the dashboard signs a demo user in by itself.
    pub demo: bool,
    /// Turns true when the server shuts down: every connection closes with 1001.
    closing: tokio::sync::watch::Sender<bool>,
    /// The scheduled backups (`backup.enabled`), stopped at shutdown.
    scheduled: Option<Arc<tokio::task::AbortHandle>>,
    pub backups: Arc<crate::backup::Backups>,
    next_conn: Arc<AtomicU64>,
}

/// How often the background sampler reads each session's Chromium memory and CPU.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What `App::start` needs besides the configuration.
pub struct AppParts {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub jwt_secret: String,
    pub executable: PathBuf,
    pub sessions_path: PathBuf,
    /// Where the mail directory and backups go unless configured elsewhere.
    pub data_dir: PathBuf,
    pub simulator_args: Vec<String>,
    /// Demo mode: `GET /api/demo` hands out a token for the user `demo`.
    pub demo: bool,
}

impl App {
    /// Spawns the root supervisor (which spawns the gateway).
    pub async fn start(parts: AppParts) -> anyhow::Result<App> {
        let config = Arc::new(parts.config);
        let sessions_path = parts.sessions_path.clone();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mailer = crate::mail::Mailer::start(
            &config.mail,
            &parts.data_dir,
            parts.store.clone(),
            metrics.clone(),
        )?;
        let backups = Arc::new(backups_of(&config, &parts.data_dir, &parts.sessions_path));
        let scheduled = config.backup.enabled.then(|| {
            Arc::new(
                tokio::spawn(crate::backup::run_schedule(
                    backups.clone(),
                    config.backup.schedule.clone(),
                    metrics.clone(),
                ))
                .abort_handle(),
            )
        });
        let (supervisor, _) = Actor::spawn(
            None,
            RootSupervisor,
            SupervisorArgs {
                context: SessionContextSeed {
                    config: config.clone(),
                    store: parts.store.clone(),
                    launcher: Arc::new(crate::session::browser::ChromiumLauncher),
                    metrics: metrics.clone(),
                    executable: parts.executable,
                    sessions_path: parts.sessions_path,
                    simulator_args: parts.simulator_args,
                    mailer,
                    backups: backups.clone(),
                },
            },
        )
        .await?;
        let gateway = gateway_of(&supervisor).await?;
        let app = App {
            config,
            store: parts.store,
            supervisor,
            gateway,
            jwt: Jwt::new(&parts.jwt_secret),
            sessions_path,
            metrics,
            demo: parts.demo,
            closing: tokio::sync::watch::channel(false).0,
            scheduled,
            backups,
            next_conn: Arc::new(AtomicU64::new(1)),
        };
        tokio::spawn(sample(app.clone()));
        Ok(app)
    }

    /// Every session with its last sampled memory and CPU.
    pub async fn sessions_with_usage(&self) -> Vec<(SessionSnapshot, crate::metrics::Usage)> {
        let usage = self.metrics.usage_of();
        self.snapshots()
            .await
            .into_iter()
            .map(|s| {
                let u = usage.get(&s.session_id).copied().unwrap_or_default();
                (s, u)
            })
            .collect()
    }

    /// Restores every stored session that was connected; returns how many.
    pub async fn restore(&self) -> usize {
        self.supervisor
            .call(SupervisorMsg::Restore, Some(Duration::from_secs(600)))
            .await
            .ok()
            .and_then(|r| match r {
                ractor::rpc::CallResult::Success(n) => Some(n),
                _ => None,
            })
            .unwrap_or(0)
    }

    pub async fn snapshots(&self) -> Vec<SessionSnapshot> {
        match self
            .supervisor
            .call(SupervisorMsg::Snapshots, Some(Duration::from_secs(10)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(s)) => s,
            _ => Vec::new(),
        }
    }

    /// Closes every WebSocket (1001), then every browser (stored statuses kept; store writes
    /// flushed), and stops the actors.
    pub async fn shutdown(&self) {
        let _ = self.closing.send(true);
        if let Some(scheduled) = &self.scheduled {
            scheduled.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let timeout = self.config.supervisor.shutdown_timeout + Duration::from_secs(5);
        let _ = self
            .supervisor
            .call(SupervisorMsg::Shutdown, Some(timeout))
            .await;
    }
}

/// A store failure as the client sees it: 503 and a plain message (details go to the log).
fn store_unavailable(error: &crate::store::StoreError) -> warp::reply::Response {
    tracing::warn!(%error, "account store failed a request");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal,
        crate::store::UNAVAILABLE,
    )
}

/// Backups of this configuration: `backup.dir`, or `<data-dir>/backups`.
pub fn backups_of(
    config: &Config,
    data_dir: &Path,
    sessions_path: &Path,
) -> crate::backup::Backups {
    crate::backup::Backups::new(
        config
            .backup
            .dir
            .clone()
            .unwrap_or_else(|| data_dir.join("backups")),
        sessions_path.to_owned(),
        config.backup.keep,
    )
}

/// The background sampler: each session's Chromium tree, every `SAMPLE_EVERY`, off any request.
async fn sample(app: App) {
    let mut closing = app.closing.subscribe();
    loop {
        let snapshots = app.snapshots().await;
        let sample = tokio::task::spawn_blocking(move || {
            snapshots
                .into_iter()
                .map(|s| {
                    let usage = crate::metrics::tree_usage(&s.profile_dir);
                    (s, usage)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        app.metrics.set_sample(sample);
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = closing.changed() => return,
        }
    }
}

async fn gateway_of(supervisor: &ActorRef<SupervisorMsg>) -> anyhow::Result<ActorRef<GatewayMsg>> {
    match supervisor
        .call(SupervisorMsg::Gateway, Some(Duration::from_secs(5)))
        .await?
    {
        ractor::rpc::CallResult::Success(gateway) => Ok(gateway),
        _ => anyhow::bail!("the supervisor did not name its gateway"),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    extra: Option<warp::filters::BoxedFilter<(Response,)>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let routes = routes(app);
    let routes = match extra {
        Some(extra) => routes.or(extra).unify().boxed(),
        None => routes,
    };
    warp::serve(routes.recover(rejection))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

pub fn routes(app: App) -> warp::filters::BoxedFilter<(Response,)> {
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    // GET /ws
    let ws = warp::path!("ws")
        .and(warp::get())
        .and(warp::ws())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("origin"))
        .and(with_app.clone())
        .map(
            |ws: warp::ws::Ws,
             query: String,
             authorization: Option<String>,
             origin: Option<String>,
             app: App| {
                let token = token_from(&query, authorization.as_deref());
                let identity = match app.jwt.verify(&token) {
                    Ok(identity) => identity,
                    Err(error) => return unauthorized(&error),
                };
                let allowed = &app.config.server.cors_origins;
                if !allowed.is_empty() && !origin.as_ref().is_some_and(|o| allowed.contains(o)) {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        ErrorCode::Unauthorized,
                        "origin not allowed",
                    );
                }
                let reply = ws
                    .max_message_size(1024 * 1024)
                    .on_upgrade(move |socket| connection(socket, app, identity));
                warp::reply::Reply::into_response(reply)
            },
        )
        .boxed();
    // GET /health
    let health = warp::path!("health")
        .and(warp::get())
        .and(with_app.clone())
        .then(|app: App| async move {
            let snapshots = app.snapshots().await;
            let ready = snapshots
                .iter()
                .filter(|s| s.status == Status::Ready)
                .count();
            json_reply(
                StatusCode::OK,
                json!({
                    "status": "ok",
                    "timestamp": crate::store::now(),
                    "sessions": { "active": snapshots.len(), "ready": ready },
                }),
            )
        })
        .boxed();
    // GET /api/whatsapp/accounts
    let accounts = warp::path!("api" / "whatsapp" / "accounts")
        .and(warp::get())
        .and(user(with_app.clone()))
        .then(|(app, identity): (App, Identity)| async move {
            match app.store.by_user(&identity.user_id).await {
                Ok(accounts) => json_reply(StatusCode::OK, json!({ "accounts": accounts })),
                Err(e) => store_unavailable(&e),
            }
        })
        .boxed();
    // GET /api/whatsapp/sessions/{sessionId}/qr.png
    let qr = warp::path!("api" / "whatsapp" / "sessions" / String / "qr.png")
        .and(warp::get())
        .and(user(with_app.clone()))
        .then(
            |session: String, (app, identity): (App, Identity)| async move {
                let Some(actor) = owned_session(&app, &session, &identity).await else {
                    return json_error(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "no such session",
                    );
                };
                match actor
                    .call(SessionMsg::CurrentQr, Some(Duration::from_secs(5)))
                    .await
                {
                    Ok(ractor::rpc::CallResult::Success(Some(png))) => {
                        warp::http::Response::builder()
                            .header("content-type", "image/png")
                            .header("cache-control", "no-store")
                            .body(png.into())
                            .expect("static response")
                    }
                    _ => json_error(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "the session shows no QR code",
                    ),
                }
            },
        )
        .boxed();
    // POST /api/whatsapp/accounts
    let create = warp::path!("api" / "whatsapp" / "accounts")
        .and(warp::post())
        .and(user(with_app.clone()))
        .and(json_body())
        .then(
            |(app, identity): (App, Identity), body: serde_json::Value| async move {
                let name = match body.get("name") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(n)) if n.chars().count() <= 100 => {
                        Some(n.clone())
                    }
                    Some(_) => {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::BadRequest,
                            "name must be a string of at most 100 characters",
                        );
                    }
                };
                let max = app.config.sessions.max_per_user as usize;
                match crate::gateway::create_account(
                    &*app.store,
                    &identity,
                    name,
                    None,
                    None,
                    false,
                    max,
                )
                .await
                {
                    Ok(account) => {
                        let reply =
                            json!({ "accountId": account.id, "sessionId": account.session_id });
                        let _ = app.supervisor.cast(SupervisorMsg::Start {
                            account: Box::new(account),
                            settled: None,
                        });
                        json_reply(StatusCode::CREATED, reply)
                    }
                    Err((code, message)) => json_error(status_of(code), code, &message),
                }
            },
        )
        .boxed();
    // DELETE /api/whatsapp/accounts/{accountId}
    let delete = warp::path!("api" / "whatsapp" / "accounts" / String)
        .and(warp::delete())
        .and(user(with_app.clone()))
        .then(
            |account_id: String, (app, identity): (App, Identity)| async move {
                let account = match app.store.get(&account_id).await {
                    Ok(Some(a)) if a.user_id == identity.user_id => a,
                    Ok(_) => {
                        return json_error(
                            StatusCode::NOT_FOUND,
                            ErrorCode::NotFound,
                            "no such account",
                        );
                    }
                    Err(e) => {
                        return store_unavailable(&e);
                    }
                };
                let _ = app
                    .supervisor
                    .call(
                        |reply| SupervisorMsg::Stop {
                            session_id: account.session_id.clone(),
                            mode: StopMode::Destroy,
                            reply: Some(reply),
                        },
                        Some(Duration::from_secs(30)),
                    )
                    .await;
                let (backups, session_id) = (app.backups.clone(), account.session_id.clone());
                let _ = tokio::task::spawn_blocking(move || backups.erase(&session_id)).await;
                match app.store.delete(&account.id).await {
                    Ok(()) => warp::reply::Reply::into_response(StatusCode::NO_CONTENT),
                    Err(e) => store_unavailable(&e),
                }
            },
        )
        .boxed();
    // POST /api/whatsapp/sessions/{sessionId}/messages
    let message = warp::path!("api" / "whatsapp" / "sessions" / String / "messages")
        .and(warp::post())
        .and(user(with_app.clone()))
        .and(json_body())
        .then(|session: String, (app, identity): (App, Identity), body: serde_json::Value| async move {
            // The same checks as whatsapp:send.
            let frame = json!({ "event": "whatsapp:send", "data": { "sessionId": session, "to": body.get("to"), "body": body.get("body") } });
            let (to, text) = match protocol::parse_client_frame(&frame.to_string()) {
                Ok(protocol::ClientFrame { request: protocol::Request::Send { to, body, .. }, .. }) => (to, body),
                Ok(_) => unreachable!("a send frame parses as a send"),
                Err(refusal) => return json_error(StatusCode::BAD_REQUEST, refusal.code, &refusal.message),
            };
            let Some(actor) = owned_session(&app, &session, &identity).await else {
                return json_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such session");
            };
            match actor
                .call(|reply| SessionMsg::Send { to, body: text, reply }, Some(Duration::from_secs(30)))
                .await
            {
                Ok(ractor::rpc::CallResult::Success(Ok(sent))) => {
                    json_reply(StatusCode::CREATED, json!({ "id": sent.id, "timestamp": sent.timestamp }))
                }
                Ok(ractor::rpc::CallResult::Success(Err(error))) => {
                    json_error(status_of(error.code()), error.code(), &error.to_string())
                }
                _ => json_error(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotReady, "the session did not answer"),
            }
        })
        .boxed();
    // GET /metrics
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app.clone())
        .map(|app: App| {
            warp::http::Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(app.metrics.render().into())
                .expect("static response")
        })
        .boxed();
    // GET /admin/sessions
    let admin_list = warp::path!("admin" / "sessions")
        .and(warp::get())
        .and(admin(with_app.clone()))
        .then(|app: App| async move {
            let sessions: Vec<serde_json::Value> = app
                .sessions_with_usage()
                .await
                .into_iter()
                .map(|(s, u)| {
                    json!({
                        "session_id": s.session_id,
                        "user_id": s.user_id,
                        "status": s.status,
                        "since": s.since,
                        "restarts": s.restarts,
                        "reconnects": s.reconnects,
                        "chromium_pid": s.chromium_pid,
                        "pss_bytes": u.pss_bytes,
                        "cpu_seconds": u.cpu_seconds,
                        "last_heartbeat": s.last_heartbeat,
                    })
                })
                .collect();
            json_reply(StatusCode::OK, json!({ "sessions": sessions }))
        })
        .boxed();
    // POST /admin/sessions/{sessionId}/restart and /stop
    let admin_action = warp::path!("admin" / "sessions" / String / String)
        .and(warp::post())
        .and(admin(with_app.clone()))
        .then(|session: String, action: String, app: App| async move {
            let Ok(session_id) = SessionId::new(&session) else {
                return json_error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "no such session",
                );
            };
            let found = match action.as_str() {
                "restart" => {
                    app.supervisor
                        .call(
                            |reply| SupervisorMsg::Restart { session_id, reply },
                            Some(Duration::from_secs(30)),
                        )
                        .await
                }
                "stop" => {
                    app.supervisor
                        .call(
                            |reply| SupervisorMsg::Stop {
                                session_id,
                                mode: StopMode::Park,
                                reply: Some(reply),
                            },
                            Some(Duration::from_secs(30)),
                        )
                        .await
                }
                _ => {
                    return json_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route");
                }
            };
            match found {
                Ok(ractor::rpc::CallResult::Success(true)) => {
                    json_reply(StatusCode::OK, json!({ "ok": true }))
                }
                Ok(ractor::rpc::CallResult::Success(false)) => json_error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "no such running session",
                ),
                _ => json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "the supervisor did not answer",
                ),
            }
        })
        .boxed();
    // GET /, /dashboard.js, /dashboard.css: the dashboard, embedded in the binary.
    let asset = |path: &'static str, body: &'static str, kind: &'static str| {
        warp::path(path)
            .and(warp::path::end())
            .and(warp::get())
            .map(move || {
                warp::http::Response::builder()
                    .header("content-type", kind)
                    .header("cache-control", "no-cache")
                    .body(body.into())
                    .expect("static response")
            })
    };
    let index = warp::path::end()
        .and(warp::get())
        .map(|| {
            warp::http::Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                .header("cache-control", "no-cache")
                .body(DASHBOARD_HTML.into())
                .expect("static response")
        })
        .or(asset(
            "dashboard.js",
            DASHBOARD_JS,
            "text/javascript; charset=utf-8",
        ))
        .unify()
        .or(asset(
            "dashboard.css",
            DASHBOARD_CSS,
            "text/css; charset=utf-8",
        ))
        .unify()
        .boxed();
    // GET /api/demo (demo mode only): a token for the demo user.
    let demo = warp::path!("api" / "demo")
        .and(warp::get())
        .and(with_app.clone())
        .map(|app: App| {
            if !app.demo {
                return json_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route");
            }
            let user = crate::ids::UserId::new("demo").expect("a valid id");
            let token = app
                .jwt
                .mint(&user, None, Duration::from_secs(30 * 24 * 3600));
            json_reply(StatusCode::OK, json!({ "token": token, "user": "demo" }))
        })
        .boxed();
    ws.or(health)
        .unify()
        .or(accounts)
        .unify()
        .or(qr)
        .unify()
        .or(create)
        .unify()
        .or(delete)
        .unify()
        .or(message)
        .unify()
        .or(metrics)
        .unify()
        .or(admin_list)
        .unify()
        .or(admin_action)
        .unify()
        .or(demo)
        .unify()
        .or(index)
        .unify()
        .boxed()
}

async fn owned_session(
    app: &App,
    session: &str,
    identity: &Identity,
) -> Option<ActorRef<SessionMsg>> {
    let session_id = SessionId::new(session).ok()?;
    let user = identity.user_id.clone();
    match app
        .gateway
        .call(
            |reply| GatewayMsg::Lookup {
                session_id,
                user,
                reply,
            },
            Some(Duration::from_secs(5)),
        )
        .await
    {
        Ok(ractor::rpc::CallResult::Success(actor)) => actor,
        _ => None,
    }
}

/// The caller's identity from `Authorization: Bearer …`, or a 401 rejection.
fn user(
    with_app: impl Filter<Extract = (App,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = ((App, Identity),), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    with_app
        .and(warp::header::optional::<String>("authorization"))
        .and_then(|app: App, authorization: Option<String>| async move {
            let token = token_from("", authorization.as_deref());
            match app.jwt.verify(&token) {
                Ok(identity) => Ok((app, identity)),
                Err(error) => Err(warp::reject::custom(Unauthorized(error))),
            }
        })
}

/// The admin bearer token, compared in constant time; no token configured → 403.
fn admin(
    with_app: impl Filter<Extract = (App,), Error = Infallible> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (App,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    with_app
        .and(warp::header::optional::<String>("authorization"))
        .and_then(|app: App, authorization: Option<String>| async move {
            let Some(expected) = app.config.auth.admin_token.clone() else {
                return Err(warp::reject::custom(AdminDisabled));
            };
            let given = token_from("", authorization.as_deref());
            if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                Ok(app)
            } else {
                Err(warp::reject::custom(Unauthorized(AuthError::Invalid)))
            }
        })
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0 && !a.is_empty()
}

#[derive(Debug)]
struct AdminDisabled;
impl warp::reject::Reject for AdminDisabled {}

#[derive(Debug)]
struct Unauthorized(AuthError);
impl warp::reject::Reject for Unauthorized {}

/// The token of a request: `access_token` in the query, or a bearer header.
fn token_from(query: &str, authorization: Option<&str>) -> String {
    let from_query = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "access_token").then(|| percent_decode(value))
    });
    from_query
        .or_else(|| {
            authorization
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(|t| t.trim().to_owned())
        })
        .unwrap_or_default()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&value[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON object body of at most 64 KiB.
fn json_body()
-> impl Filter<Extract = (serde_json::Value,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    warp::body::content_length_limit(64 * 1024)
        .and(warp::body::bytes())
        .and_then(|bytes: warp::hyper::body::Bytes| async move {
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(value @ serde_json::Value::Object(_)) => Ok(value),
                _ => Err(warp::reject::custom(BadBody)),
            }
        })
}

#[derive(Debug)]
struct BadBody;
impl warp::reject::Reject for BadBody {}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::BadRequest | ErrorCode::UnknownEvent => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists | ErrorCode::NotReady => StatusCode::CONFLICT,
        ErrorCode::LimitReached | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Response {
    warp::reply::Reply::into_response(warp::reply::with_status(warp::reply::json(&value), status))
}

fn json_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    json_reply(status, json!({ "error": code, "message": message }))
}

fn unauthorized(error: &AuthError) -> Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        &error.to_string(),
    )
}

async fn rejection(rejection: warp::Rejection) -> Result<Response, Infallible> {
    Ok(if let Some(Unauthorized(error)) = rejection.find() {
        unauthorized(error)
    } else if rejection.find::<AdminDisabled>().is_some() {
        json_error(
            StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized,
            "the admin API is off: set auth.admin_token",
        )
    } else if rejection.find::<BadBody>().is_some() {
        json_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the body must be a JSON object",
        )
    } else if rejection.is_not_found() {
        json_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            "bodies are limited to 64 KiB",
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            "method not allowed",
        )
    } else {
        json_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "bad request",
        )
    })
}

/// One dashboard connection: frames in are checked here and routed through the gateway; frames
/// out come from the gateway through this connection's bounded queue.
async fn connection(socket: WebSocket, app: App, identity: Identity) {
    let conn: ConnId = app.next_conn.fetch_add(1, Ordering::Relaxed);
    let (outbound_tx, mut outbound) = mpsc::channel(OUTBOUND_QUEUE);
    if app
        .gateway
        .cast(GatewayMsg::Connect {
            conn,
            user: identity.user_id.clone(),
            outbound: outbound_tx,
        })
        .is_err()
    {
        return;
    }
    app.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    let mut closing = app.closing.subscribe();
    let (mut sink, mut inbound) = socket.split();
    let mut tokens = RATE_BURST;
    let mut refilled = Instant::now();
    let mut strikes = 0u32;
    let close = loop {
        if *closing.borrow() {
            break Some((1001, "server shutting down"));
        }
        tokio::select! {
            _ = closing.changed() => continue,
            out = outbound.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break None;
                    }
                }
                None => break Some((1008u16, "too slow: outbound queue overflowed")),
            },
            message = inbound.next() => {
                let Some(Ok(message)) = message else { break None };
                if message.is_close() {
                    break None;
                }
                if message.is_ping() || message.is_pong() {
                    continue;
                }
                tokens = (tokens + refilled.elapsed().as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
                refilled = Instant::now();
                let refusal = if tokens < 1.0 {
                    Some(protocol::Refusal {
                        code: ErrorCode::RateLimited,
                        message: "too many frames; slow down".into(),
                        reference: None,
                    })
                } else {
                    tokens -= 1.0;
                    match message.to_str() {
                        Ok(text) => match protocol::parse_client_frame(text) {
                            Ok(frame) => {
                                strikes = strikes.saturating_sub(1);
                                let _ = app.gateway.cast(GatewayMsg::Client {
                                    conn,
                                    identity: identity.clone(),
                                    frame,
                                });
                                None
                            }
                            Err(refusal) => Some(refusal),
                        },
                        Err(()) => Some(if message.as_bytes().len() > protocol::MAX_FRAME {
                            protocol::Refusal {
                                code: ErrorCode::FrameTooLarge,
                                message: format!("frames are limited to {} bytes", protocol::MAX_FRAME),
                                reference: None,
                            }
                        } else {
                            protocol::Refusal {
                                code: ErrorCode::BadRequest,
                                message: "frames are JSON text".into(),
                                reference: None,
                            }
                        }),
                    }
                };
                if let Some(refusal) = refusal {
                    strikes += 1;
                    if strikes > STRIKES {
                        break Some((1008, "too many bad or excessive frames"));
                    }
                    // Refusals go straight out: they must not queue behind a flood.
                    if sink.send(Message::text(refusal.frame().to_json())).await.is_err() {
                        break None;
                    }
                }
            }
        }
    };
    let _ = app.gateway.cast(GatewayMsg::Disconnect { conn });
    app.metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
    if let Some((code, reason)) = close {
        let _ = sink.send(Message::close_with(code, reason)).await;
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret-token", b"s3cret-token"));
        for other in [
            &b"s3cret-tokem"[..],
            b"s3cret-toke",
            b"s3cret-token!",
            b"",
            b"S3CRET-TOKEN",
        ] {
            assert!(!constant_time_eq(other, b"s3cret-token"), "{other:?}");
        }
    }

    #[test]
    fn tokens_come_from_the_query_or_a_bearer_header() {
        assert_eq!(token_from("access_token=abc.def", None), "abc.def");
        assert_eq!(token_from("x=1&access_token=a%2Eb", None), "a.b");
        assert_eq!(token_from("", Some("Bearer xyz")), "xyz");
        assert_eq!(token_from("access_token=q", Some("Bearer h")), "q");
        assert_eq!(token_from("", Some("Basic xyz")), "");
        assert_eq!(token_from("access_token=%zz", None), "%zz");
    }
}
