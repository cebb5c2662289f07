//! One WhatsApp session: owns its driver (and so its Chromium) exclusively, its keepalive timers
//! and its reconnect state machine. It knows its owner, and tells the gateway every event for
//! them; it must not know about connections, HTTP or other sessions.
//!
//! Slow work (launching Chromium, calls into the page) runs in spawned tasks that reply with a
//! message, so the mailbox never waits behind a CDP call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use super::browser::{Launched, Launcher, SessionBrowser};
use super::policy::{Status, retry_delay, with_jitter};
use crate::browser::{BrowserError, DisconnectReason, DriverEvent, LaunchOptions, SentMessage};
use crate::config::Config;
use crate::gateway::GatewayMsg;
use crate::ids::{SessionId, UserId};
use crate::protocol::{ErrorCode, ServerEvent, ServerFrame};
use crate::store::{StatusUpdate, Store};

/// Inputs of a session actor.
pub enum SessionMsg {
    /// Launch Chromium (first start, or a relaunch after a temporary disconnection).
    Launch,
    Launched {
        generation: u64,
        result: Box<LaunchResult>,
    },
    Event {
        generation: u64,
        event: DriverEvent,
    },
    Heartbeat,
    HeartbeatDone {
        generation: u64,
        result: Result<String, BrowserError>,
    },
    Activity,
    Send {
        to: String,
        body: String,
        reply: RpcReplyPort<Result<SentMessage, SessionError>>,
    },
    PairingCode {
        phone: String,
        reply: RpcReplyPort<Result<String, SessionError>>,
    },
    /// The current QR code as PNG, if the session shows one.
    CurrentQr(RpcReplyPort<Option<Vec<u8>>>),
    Snapshot(RpcReplyPort<SessionSnapshot>),
    Stop {
        mode: StopMode,
        reply: Option<RpcReplyPort<()>>,
    },
    /// Panics inside the handler: a drill of supervision (tests and operators' fire drills).
    Panic,
}

pub type LaunchResult = Result<Launched, BrowserError>;

/// The session's browser; shared only while one page call runs in a spawned task.
type Browser = Arc<Box<dyn SessionBrowser>>;

/// How a session stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// The user disconnects the number: log out, delete the profile, status `stopped`.
    Destroy,
    /// An operator stops it: close Chromium, keep the profile, status `stopped`.
    Park,
    /// The process shuts down: close Chromium, keep the profile and the stored status.
    Shutdown,
}

/// Why a request to a session failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("the session is not ready")]
    NotReady,
    #[error("{0}")]
    Browser(String),
}

impl SessionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::NotReady => ErrorCode::NotReady,
            SessionError::Browser(_) => ErrorCode::BrowserError,
        }
    }
}

/// What an operator (and a test) sees of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSnapshot {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub status: Status,
    /// When the current status began (RFC 3339).
    pub since: String,
    /// Restarts of this session's actor (filled in by the supervisor).
    pub restarts: u32,
    pub reconnects: u32,
    pub chromium_pid: Option<u32>,
    /// The last successful heartbeat (RFC 3339).
    pub last_heartbeat: Option<String>,
    pub profile_dir: PathBuf,
}

/// What every session shares.
#[derive(Clone)]
pub struct SessionContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub gateway: ActorRef<GatewayMsg>,
    pub launches: Arc<Semaphore>,
    pub launcher: Arc<dyn Launcher>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub writes: Arc<crate::store::writes::StoreWrites>,
    pub executable: PathBuf,
    pub sessions_path: PathBuf,
    /// Switches pointing Chromium at the simulator; empty in production.
    pub simulator_args: Vec<String>,
    pub mailer: Arc<crate::mail::Mailer>,
    pub backups: Arc<crate::backup::Backups>,
}

pub struct SessionArgs {
    pub context: SessionContext,
    pub session_id: SessionId,
    pub user_id: UserId,
    /// Fired once, when the session first settles (`ready`, `qr`, `error` or `stopped`).
    pub settled: Option<oneshot::Sender<Status>>,
}

pub struct SessionState {
    context: SessionContext,
    session_id: SessionId,
    user_id: UserId,
    status: Status,
    since_wall: std::time::SystemTime,
    last_heartbeat_wall: Option<std::time::SystemTime>,
    driver: Option<Browser>,
    /// Bumped at every launch; messages of older drivers are ignored.
    generation: u64,
    pump: Option<JoinHandle<()>>,
    /// Relaunch attempts since the session was last ready.
    attempt: u32,
    reconnects: u32,
    qr_count: u32,
    qr_png: Option<Vec<u8>>,
    heartbeat: Option<JoinHandle<()>>,
    activity: Option<JoinHandle<()>>,
    retry: Option<JoinHandle<()>>,
    last_heartbeat: Option<Instant>,
    /// The number this session last reported ready with (for the "disconnected" mail).
    phone_number: Option<String>,
    /// A heartbeat call is running; the next tick does not start another.
    heartbeat_in_flight: bool,
    last_touch: Option<Instant>,
    /// The page's own socket dropped (OPENING/TIMEOUT) while Chromium lives.
    socket_down_since: Option<Instant>,
    settled: Option<oneshot::Sender<Status>>,
}

pub struct SessionActor;

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        Ok(SessionState {
            context: args.context,
            session_id: args.session_id,
            user_id: args.user_id,
            status: Status::Initializing,
            since_wall: std::time::SystemTime::now(),
            last_heartbeat_wall: None,
            driver: None,
            generation: 0,
            pump: None,
            attempt: 0,
            reconnects: 0,
            qr_count: 0,
            qr_png: None,
            heartbeat: None,
            activity: None,
            retry: None,
            last_heartbeat: None,
            phone_number: None,
            heartbeat_in_flight: false,
            last_touch: None,
            socket_down_since: None,
            settled: args.settled,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state.set_status(Status::Initializing, None, None);
        let _ = myself.cast(SessionMsg::Launch);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_timers();
        if let Some(driver) = state.driver.take() {
            close_driver(driver).await;
        }
        // Let queued store writes land before the actor is gone.
        state
            .context
            .writes
            .flush(&state.session_id, Duration::from_secs(5))
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        message: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SessionMsg::Launch => state.launch(&myself),
            SessionMsg::Launched { generation, result } => {
                state.launched(&myself, generation, *result).await
            }
            SessionMsg::Event { generation, event } => {
                if generation == state.generation {
                    state.on_event(&myself, event).await;
                }
            }
            SessionMsg::Heartbeat => state.heartbeat(&myself).await,
            SessionMsg::HeartbeatDone { generation, result } => {
                if generation == state.generation {
                    state.heartbeat_done(&myself, result).await;
                }
            }
            SessionMsg::Activity => state.activity(),
            SessionMsg::Send { to, body, reply } => state.send(to, body, reply),
            SessionMsg::PairingCode { phone, reply } => state.pairing_code(phone, reply),
            SessionMsg::CurrentQr(reply) => {
                let _ = reply.send(state.qr_png.clone().filter(|_| state.status == Status::Qr));
            }
            SessionMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            SessionMsg::Stop { mode, reply } => {
                state.stop(mode).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                myself.stop(Some("stopped".into()));
            }
            SessionMsg::Panic => {
                panic!("test-only panic requested for session {}", state.session_id)
            }
        }
        Ok(())
    }
}

impl SessionState {
    /// The credentials are gone: the profile and its backups go too.
    async fn erase_credentials(&self) {
        let backups = self.context.backups.clone();
        let session_id = self.session_id.clone();
        let _ = tokio::task::spawn_blocking(move || backups.erase(&session_id)).await;
    }

    fn profile_dir(&self) -> PathBuf {
        self.context
            .sessions_path
            .join(self.session_id.profile_dir_name())
    }

    fn launch_options(&self) -> LaunchOptions {
        let config = &self.context.config;
        LaunchOptions {
            executable: self.context.executable.clone(),
            profile_dir: self.profile_dir(),
            args: config.chromium.args.clone(),
            simulator_args: self.context.simulator_args.clone(),
            headless: config.chromium.headless,
            user_agent: config.whatsapp.user_agent.clone(),
            url: config.whatsapp.url.clone(),
            boot_timeout: config.whatsapp.auth_timeout,
            call_timeout: config.keepalive.call_timeout,
        }
    }

    fn send_owner(&self, event: ServerEvent) {
        let _ = self.context.gateway.cast(GatewayMsg::Deliver {
            user: self.user_id.clone(),
            frame: ServerFrame {
                event,
                reference: None,
            },
        });
    }

    /// Records a status change: store (in order), owner, and the settled signal.
    fn set_status(
        &mut self,
        status: Status,
        detail: Option<String>,
        identity: Option<(String, String)>,
    ) {
        if status != self.status || status == Status::Initializing {
            self.since_wall = std::time::SystemTime::now();
        }
        self.status = status;
        if let Some((phone, _)) = &identity {
            self.phone_number = Some(phone.clone());
        }
        let identity_phone = self.phone_number.clone();
        let error_message = if status == Status::Error {
            detail.clone()
        } else {
            None
        };
        self.context.writes.status(
            &self.session_id,
            StatusUpdate {
                at: crate::store::now(),
                status,
                error_message,
                identity,
            },
        );
        let mail = match status {
            Status::Ready => Some((crate::mail::MailKind::Connected, None)),
            Status::Error => Some((crate::mail::MailKind::Disconnected, detail.clone())),
            _ => None,
        };
        if let Some((kind, reason)) = mail {
            self.context.mailer.notify(crate::mail::Notice {
                session_id: self.session_id.clone(),
                at: crate::store::now(),
                kind,
                phone_number: identity_phone.clone(),
                reason,
            });
        }
        self.send_owner(ServerEvent::State {
            session_id: self.session_id.clone(),
            status,
            detail,
        });
        if matches!(
            status,
            Status::Ready | Status::Qr | Status::Error | Status::Stopped
        ) && let Some(settled) = self.settled.take()
        {
            let _ = settled.send(status);
        }
        tracing::info!(session_id = %self.session_id, user_id = %self.user_id, status = %status, "session status");
    }

    fn launch(&mut self, myself: &ActorRef<SessionMsg>) {
        self.retry = None;
        self.heartbeat_in_flight = false;
        self.generation += 1;
        let generation = self.generation;
        let options = self.launch_options();
        let launches = self.context.launches.clone();
        let launcher = self.context.launcher.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = match launches.acquire_owned().await {
                Ok(_permit) => launcher.launch(options).await,
                Err(_) => Err(BrowserError::Gone),
            };
            let launched = SessionMsg::Launched {
                generation,
                result: Box::new(result),
            };
            if let Err(ractor::MessagingErr::SendErr(SessionMsg::Launched { result, .. })) =
                myself.cast(launched)
                && let Ok((driver, _)) = *result
            {
                // The session stopped meanwhile: nobody will own this browser.
                driver.close().await;
            }
        });
    }

    async fn launched(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        generation: u64,
        result: LaunchResult,
    ) {
        if generation != self.generation {
            if let Ok((driver, _)) = result {
                driver.close().await;
            }
            return;
        }
        match result {
            Ok((driver, mut events)) => {
                tracing::info!(session_id = %self.session_id, pid = driver.pid(), "chromium launched");
                self.driver = Some(Arc::new(driver));
                let myself = myself.clone();
                self.pump = Some(tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        if myself
                            .cast(SessionMsg::Event { generation, event })
                            .is_err()
                        {
                            break;
                        }
                    }
                }));
            }
            Err(error) => {
                tracing::warn!(session_id = %self.session_id, %error, attempt = self.attempt, "launch failed");
                self.temporary_loss(myself, format!("launch failed: {error}"))
                    .await;
            }
        }
    }

    async fn on_event(&mut self, myself: &ActorRef<SessionMsg>, event: DriverEvent) {
        let session_id = self.session_id.clone();
        match event {
            DriverEvent::Qr(qr) => {
                self.qr_count += 1;
                crate::metrics::Metrics::count(&self.context.metrics.qr_codes);
                let max = self.context.config.whatsapp.qr_max_retries;
                if self.qr_count > max {
                    self.permanent_loss("QR_TIMEOUT", ErrorCode::QrTimeout, false)
                        .await;
                    return;
                }
                let png = crate::qr::png(&qr);
                self.send_owner(ServerEvent::Qr {
                    session_id,
                    qr: crate::qr::data_url(&png),
                    text: qr,
                    attempt: self.qr_count,
                    timestamp: unix_millis(),
                });
                self.qr_png = Some(png);
                if self.status != Status::Qr {
                    self.set_status(Status::Qr, None, None);
                }
            }
            DriverEvent::PairingCode(_) => {}
            DriverEvent::Loading(percent) => self.send_owner(ServerEvent::Loading {
                session_id,
                percent,
            }),
            DriverEvent::Authenticated => {
                self.qr_png = None;
                self.send_owner(ServerEvent::Authenticated { session_id });
                self.set_status(Status::Authenticated, None, None);
            }
            DriverEvent::Ready {
                phone_number,
                push_name,
            } => {
                self.attempt = 0;
                self.qr_count = 0;
                self.socket_down_since = None;
                self.last_heartbeat = Some(Instant::now());
                self.set_status(
                    Status::Ready,
                    None,
                    Some((phone_number.clone(), push_name.clone())),
                );
                self.send_owner(ServerEvent::Ready {
                    session_id,
                    phone_number,
                    profile_name: push_name,
                });
                self.start_keepalive(myself);
            }
            DriverEvent::Message(message) => {
                crate::metrics::Metrics::count(&self.context.metrics.messages_in);
                self.send_owner(ServerEvent::Message {
                    session_id,
                    id: message.id,
                    from: message.from,
                    body: message.body,
                    timestamp: message.timestamp,
                })
            }
            DriverEvent::StateChanged(state) => match state.as_str() {
                "OPENING" | "TIMEOUT" | "PAIRING"
                    if matches!(self.status, Status::Ready | Status::Reconnecting)
                        && self.socket_down_since.is_none() =>
                {
                    self.socket_down_since = Some(Instant::now());
                    self.reconnects += 1;
                    crate::metrics::Metrics::count(&self.context.metrics.reconnects);
                    self.set_status(Status::Reconnecting, Some(format!("socket {state}")), None);
                }
                "CONNECTED" if self.socket_down_since.is_some() => {
                    self.socket_down_since = None;
                    self.set_status(Status::Ready, None, None);
                }
                _ => {}
            },
            DriverEvent::Disconnected(reason) => {
                if reason.is_permanent() {
                    let clears = reason.clears_credentials();
                    self.permanent_loss(reason.as_str(), ErrorCode::AuthFailure, clears)
                        .await;
                } else if reason != DisconnectReason::UnpairedIdle {
                    self.temporary_loss(myself, reason.as_str().to_owned())
                        .await;
                }
            }
            DriverEvent::PageNavigated(url) => {
                tracing::info!(session_id = %self.session_id, %url, "page navigated");
            }
            DriverEvent::BrowserCrashed(why) => {
                tracing::warn!(session_id = %self.session_id, %why, "browser gone");
                self.temporary_loss(myself, why).await;
            }
        }
    }

    /// Permanent: `error`, `requiresReconnect`, Chromium closed (the profile deleted when the
    /// phone's credentials are gone). The actor stays, parked, so the owner can still see it.
    async fn permanent_loss(&mut self, reason: &str, code: ErrorCode, delete_profile: bool) {
        self.stop_timers();
        if let Some(driver) = self.driver.take() {
            close_driver(driver).await;
        }
        self.generation += 1;
        if delete_profile {
            self.erase_credentials().await;
        }
        self.set_status(Status::Error, Some(reason.to_owned()), None);
        if code != ErrorCode::AuthFailure {
            self.send_owner(ServerEvent::Error {
                session_id: Some(self.session_id.clone()),
                error: code,
                message: reason.to_owned(),
            });
        }
        self.send_owner(ServerEvent::Disconnected {
            session_id: self.session_id.clone(),
            reason: reason.to_owned(),
            requires_reconnect: true,
        });
    }

    /// Temporary: `reconnecting`, then a relaunch from the profile after a backoff with jitter;
    /// `error` once `reconnect.max_retries` relaunches have failed.
    async fn temporary_loss(&mut self, myself: &ActorRef<SessionMsg>, why: String) {
        self.stop_timers();
        if let Some(driver) = self.driver.take() {
            close_driver(driver).await;
        }
        self.generation += 1;
        self.attempt += 1;
        let reconnect = &self.context.config.reconnect;
        if self.attempt > reconnect.max_retries {
            self.permanent_loss(
                &format!("gave up after {} relaunches: {why}", reconnect.max_retries),
                ErrorCode::BrowserError,
                false,
            )
            .await;
            return;
        }
        self.reconnects += 1;
        crate::metrics::Metrics::count(&self.context.metrics.reconnects);
        let delay = with_jitter(
            retry_delay(self.attempt, reconnect.base_delay, reconnect.max_delay),
            rand::random::<f64>(),
        );
        tracing::warn!(session_id = %self.session_id, attempt = self.attempt, ?delay, %why, "relaunching");
        self.set_status(Status::Reconnecting, Some(why), None);
        let myself = myself.clone();
        self.retry = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = myself.cast(SessionMsg::Launch);
        }));
    }

    fn start_keepalive(&mut self, myself: &ActorRef<SessionMsg>) {
        self.stop_keepalive();
        let keepalive = &self.context.config.keepalive;
        self.heartbeat = Some(ractor::time::send_interval(
            keepalive.heartbeat_interval,
            myself.get_cell(),
            || SessionMsg::Heartbeat,
        ));
        self.activity = Some(ractor::time::send_interval(
            keepalive.activity_interval,
            myself.get_cell(),
            || SessionMsg::Activity,
        ));
    }

    fn stop_keepalive(&mut self) {
        for timer in [self.heartbeat.take(), self.activity.take()]
            .into_iter()
            .flatten()
        {
            timer.abort();
        }
    }

    fn stop_timers(&mut self) {
        self.stop_keepalive();
        if let Some(retry) = self.retry.take() {
            retry.abort();
        }
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
    }

    /// Heartbeat tick: the watchdog checks the last success, then one `Socket.state` read.
    async fn heartbeat(&mut self, myself: &ActorRef<SessionMsg>) {
        let Some(driver) = self.driver.clone() else {
            return;
        };
        let watchdog = self.context.config.keepalive.watchdog_timeout;
        let silent = self.last_heartbeat.is_some_and(|t| t.elapsed() > watchdog);
        let socket_stuck = self
            .socket_down_since
            .is_some_and(|t| t.elapsed() > watchdog);
        if silent || socket_stuck {
            self.temporary_loss(myself, "watchdog: the page stopped answering".into())
                .await;
            return;
        }
        if std::mem::replace(&mut self.heartbeat_in_flight, true) {
            return;
        }
        let generation = self.generation;
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = driver.state().await;
            let _ = myself.cast(SessionMsg::HeartbeatDone { generation, result });
        });
    }

    async fn heartbeat_done(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        result: Result<String, BrowserError>,
    ) {
        self.heartbeat_in_flight = false;
        match result {
            Ok(_) => {
                self.last_heartbeat = Some(Instant::now());
                self.last_heartbeat_wall = Some(std::time::SystemTime::now());
                if self
                    .last_touch
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_touch = Some(Instant::now());
                    self.context
                        .writes
                        .send(&self.session_id, crate::store::writes::Write::Touch);
                }
            }
            Err(BrowserError::Timeout { .. }) => {
                self.temporary_loss(myself, "watchdog: a page call timed out".into())
                    .await
            }
            Err(error) => {
                tracing::debug!(session_id = %self.session_id, %error, "heartbeat failed");
            }
        }
    }

    fn activity(&self) {
        if let Some(driver) = self.driver.clone() {
            tokio::spawn(async move {
                let _ = driver.mark_available().await;
            });
        }
    }

    fn send(
        &self,
        to: String,
        body: String,
        reply: RpcReplyPort<Result<SentMessage, SessionError>>,
    ) {
        let driver = match (&self.driver, self.status) {
            (Some(driver), Status::Ready) => driver.clone(),
            _ => {
                let _ = reply.send(Err(SessionError::NotReady));
                return;
            }
        };
        let metrics = self.context.metrics.clone();
        tokio::spawn(async move {
            let result = driver
                .send_text(&to, &body)
                .await
                .map_err(|e| SessionError::Browser(e.to_string()));
            if result.is_ok() {
                crate::metrics::Metrics::count(&metrics.messages_out);
            }
            let _ = reply.send(result);
        });
    }

    fn pairing_code(&self, phone: String, reply: RpcReplyPort<Result<String, SessionError>>) {
        let driver = match (&self.driver, self.status) {
            (Some(driver), Status::Qr | Status::Initializing) => driver.clone(),
            _ => {
                let _ = reply.send(Err(SessionError::NotReady));
                return;
            }
        };
        tokio::spawn(async move {
            let result = driver
                .request_pairing_code(&phone)
                .await
                .map_err(|e| SessionError::Browser(e.to_string()));
            let _ = reply.send(result);
        });
    }

    async fn stop(&mut self, mode: StopMode) {
        self.stop_timers();
        self.generation += 1;
        let driver = self.driver.take();
        match mode {
            StopMode::Destroy => {
                match driver.map(Arc::try_unwrap) {
                    Some(Ok(driver)) => {
                        if let Err(error) = driver.logout().await {
                            tracing::warn!(session_id = %self.session_id, %error, "logout failed");
                        }
                    }
                    Some(Err(shared)) => drop(shared),
                    None => {}
                }
                self.erase_credentials().await;
                self.set_status(Status::Stopped, Some("manual".into()), None);
                self.send_owner(ServerEvent::Disconnected {
                    session_id: self.session_id.clone(),
                    reason: "manual".into(),
                    requires_reconnect: true,
                });
            }
            StopMode::Park => {
                if let Some(driver) = driver {
                    close_driver(driver).await;
                }
                self.set_status(Status::Stopped, Some("stopped by an operator".into()), None);
            }
            StopMode::Shutdown => {
                if let Some(driver) = driver {
                    close_driver(driver).await;
                }
            }
        }
    }

    fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            session_id: self.session_id.clone(),
            user_id: self.user_id.clone(),
            status: self.status,
            since: rfc3339(self.since_wall),
            restarts: 0,
            reconnects: self.reconnects,
            chromium_pid: self.driver.as_ref().map(|d| d.pid()),
            last_heartbeat: self.last_heartbeat_wall.map(rfc3339),
            profile_dir: self.profile_dir(),
        }
    }
}

/// Closes a driver politely when nobody else holds it; otherwise kills its browser now (the
/// other holder, a page call, then fails at once and lets go).
async fn close_driver(driver: Browser) {
    match Arc::try_unwrap(driver) {
        Ok(driver) => driver.close().await,
        Err(shared) => shared.kill(),
    }
}

fn rfc3339(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
