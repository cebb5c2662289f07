//! The WhatsApp Web driver: one Chromium, one profile, one page — and the only code that speaks CDP.
//!
//! [`Driver::launch`] spawns Chromium for a profile directory (see [`process`] for the hygiene
//! that keeps it from outliving us), connects with chromiumoxide, opens the WhatsApp Web URL,
//! waits for the app to boot and injects `bridge.js`. From then on the page's events arrive as
//! [`DriverEvent`]s on a channel, and the calls below evaluate bridge functions with a timeout.

pub mod discover;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::inspector;
use chromiumoxide::cdp::browser_protocol::page::{EventFrameNavigated, NavigateParams};
use chromiumoxide::cdp::browser_protocol::target::{CloseTargetParams, GetTargetsParams};
use chromiumoxide::cdp::js_protocol::runtime::{
    AddBindingParams, EvaluateParams, EventBindingCalled,
};
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use discover::{Engine, find_chromium};
use process::{ChromiumProcess, ProfileLease};

/// The bridge injected into WhatsApp Web; it holds every module name the program uses.
pub const BRIDGE_JS: &str = include_str!("bridge.js");

/// Name of the CDP binding through which the bridge reports events.
const BINDING: &str = "__waSupervisorEmit";

/// How long the browser gets to close politely before its process group is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Errors at the browser boundary.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{0}")]
    NotFound(String),
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chromium exited during start-up ({status}): {stderr}")]
    Exited { status: String, stderr: String },
    #[error("chromium did not open its DevTools endpoint within {after:?}: {stderr}")]
    LaunchTimeout { after: Duration, stderr: String },
    #[error("profile {path} is in use{}", pid.map(|p| format!(" by process {p}")).unwrap_or_else(|| " by another session of this process".into()))]
    ProfileInUse { path: PathBuf, pid: Option<u32> },
    #[error("cannot prepare profile {path}: {source}")]
    Profile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("devtools protocol: {0}")]
    Cdp(String),
    #[error("whatsapp web did not boot within {0:?}")]
    BootTimeout(Duration),
    #[error("{call} got no answer within {after:?}")]
    Timeout { call: &'static str, after: Duration },
    #[error("whatsapp web is not ready for {call}")]
    NotReady { call: &'static str },
    #[error("{call} failed in the page: {message}")]
    Page { call: &'static str, message: String },
    #[error("the browser is gone")]
    Gone,
}

impl From<chromiumoxide::error::CdpError> for BrowserError {
    fn from(error: chromiumoxide::error::CdpError) -> Self {
        BrowserError::Cdp(error.to_string())
    }
}

/// Why WhatsApp Web dropped a session (`Socket.state` values, plus `LOGOUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    Conflict,
    Unpaired,
    UnpairedIdle,
    TosBlock,
    SmbTosBlock,
    Proxyblock,
    DeprecatedVersion,
    Timeout,
    Logout,
    Other(String),
}

impl DisconnectReason {
    pub fn parse(state: &str) -> DisconnectReason {
        match state {
            "CONFLICT" => DisconnectReason::Conflict,
            "UNPAIRED" => DisconnectReason::Unpaired,
            "UNPAIRED_IDLE" => DisconnectReason::UnpairedIdle,
            "TOS_BLOCK" => DisconnectReason::TosBlock,
            "SMB_TOS_BLOCK" => DisconnectReason::SmbTosBlock,
            "PROXYBLOCK" => DisconnectReason::Proxyblock,
            "DEPRECATED_VERSION" => DisconnectReason::DeprecatedVersion,
            "TIMEOUT" => DisconnectReason::Timeout,
            "LOGOUT" => DisconnectReason::Logout,
            other => DisconnectReason::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DisconnectReason::Conflict => "CONFLICT",
            DisconnectReason::Unpaired => "UNPAIRED",
            DisconnectReason::UnpairedIdle => "UNPAIRED_IDLE",
            DisconnectReason::TosBlock => "TOS_BLOCK",
            DisconnectReason::SmbTosBlock => "SMB_TOS_BLOCK",
            DisconnectReason::Proxyblock => "PROXYBLOCK",
            DisconnectReason::DeprecatedVersion => "DEPRECATED_VERSION",
            DisconnectReason::Timeout => "TIMEOUT",
            DisconnectReason::Logout => "LOGOUT",
            DisconnectReason::Other(s) => s,
        }
    }

    /// Permanent reasons end a session (`error`, `requiresReconnect`); the rest are retried.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DisconnectReason::Logout
                | DisconnectReason::Unpaired
                | DisconnectReason::Conflict
                | DisconnectReason::TosBlock
                | DisconnectReason::SmbTosBlock
        )
    }

    /// The phone's credentials are gone with these: the profile is worthless.
    pub fn clears_credentials(&self) -> bool {
        matches!(self, DisconnectReason::Logout | DisconnectReason::Unpaired)
    }
}

/// An incoming message (not our own).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IncomingMessage {
    pub id: String,
    pub from: String,
    pub body: String,
    pub timestamp: i64,
}

/// What the page and the browser report.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// A QR code to show; the exact string WhatsApp Web produced. Sent for every rotation.
    Qr(String),
    /// A pairing code obtained with [`Driver::request_pairing_code`].
    PairingCode(String),
    /// Sync progress between authenticated and ready, 0–100.
    Loading(u8),
    Authenticated,
    Ready {
        phone_number: String,
        push_name: String,
    },
    Message(IncomingMessage),
    /// Every `Socket.state` change.
    StateChanged(String),
    Disconnected(DisconnectReason),
    /// The main frame navigated (a reload, or a navigation by WhatsApp Web); the bridge is re-injected.
    PageNavigated(String),
    /// Chromium exited, its CDP connection closed, or the page's renderer crashed.
    BrowserCrashed(String),
}

/// The bridge's events, as the page sends them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BridgeEvent {
    Qr {
        qr: String,
    },
    Loading {
        percent: f64,
    },
    Authenticated,
    Ready {
        phone: Option<String>,
        pushname: Option<String>,
    },
    Message(IncomingMessage),
    State {
        state: String,
    },
    Disconnected {
        reason: String,
    },
}

impl From<BridgeEvent> for DriverEvent {
    fn from(event: BridgeEvent) -> Self {
        match event {
            BridgeEvent::Qr { qr } => DriverEvent::Qr(qr),
            BridgeEvent::Loading { percent } => {
                DriverEvent::Loading(percent.clamp(0.0, 100.0) as u8)
            }
            BridgeEvent::Authenticated => DriverEvent::Authenticated,
            BridgeEvent::Ready { phone, pushname } => DriverEvent::Ready {
                phone_number: phone.unwrap_or_default(),
                push_name: pushname.unwrap_or_default(),
            },
            BridgeEvent::Message(message) => DriverEvent::Message(message),
            BridgeEvent::State { state } => DriverEvent::StateChanged(state),
            BridgeEvent::Disconnected { reason } => {
                DriverEvent::Disconnected(DisconnectReason::parse(&reason))
            }
        }
    }
}

/// Everything one launch needs.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub executable: PathBuf,
    /// `<sessions.path>/session-<sessionId>`.
    pub profile_dir: PathBuf,
    /// `chromium.args`.
    pub args: Vec<String>,
    /// Switches of simulator mode only (see `sim::chromium_args`); empty in production.
    pub simulator_args: Vec<String>,
    pub headless: bool,
    pub user_agent: String,
    pub url: String,
    /// How long WhatsApp Web may take to boot (`whatsapp.auth_timeout`).
    pub boot_timeout: Duration,
    /// Longest wait for one call into the page (`keepalive.call_timeout`).
    pub call_timeout: Duration,
}

impl LaunchOptions {
    /// The full command line after the executable.
    pub fn command_line(&self) -> Vec<String> {
        let mut args = self.args.clone();
        args.extend(self.simulator_args.iter().cloned());
        if self.headless && Engine::of(&self.executable) == Engine::Chromium {
            args.push("--headless".into());
        }
        args.push(format!("--user-data-dir={}", self.profile_dir.display()));
        args.push("--remote-debugging-port=0".into());
        args.push("--remote-debugging-address=127.0.0.1".into());
        args.push(format!("--user-agent={}", self.user_agent));
        args.push("about:blank".into());
        args
    }
}

/// Reply of a sent text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    pub id: String,
    pub timestamp: i64,
}

/// One running WhatsApp Web session in its own Chromium.
pub struct Driver {
    browser: Browser,
    page: Page,
    process: ChromiumProcess,
    lease: ProfileLease,
    closing: Arc<AtomicBool>,
    _tasks: TaskGuard,
    call_timeout: Duration,
    events: mpsc::UnboundedSender<DriverEvent>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // No crash event for a browser we are taking down; the process group dies with `process`.
        self.closing.store(true, Ordering::SeqCst);
    }
}

/// Aborts the driver's background tasks when dropped.
struct TaskGuard(Vec<JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Driver {
    /// Launches Chromium on the profile, opens WhatsApp Web and injects the bridge.
    /// Events arrive on the returned receiver until the driver is closed or dropped.
    pub async fn launch(
        options: &LaunchOptions,
    ) -> Result<(Driver, mpsc::UnboundedReceiver<DriverEvent>), BrowserError> {
        let lease = ProfileLease::acquire(&options.profile_dir)?;
        let mut options = options.clone();
        options.profile_dir = lease.path().to_owned();
        let (process, ws_url) = ChromiumProcess::spawn(
            &options.executable,
            &options.command_line(),
            options.boot_timeout,
        )
        .await?;
        let pid = process.pid();
        let config = HandlerConfig {
            // Our own timeouts (call_timeout) fire first; this one only catches stragglers.
            request_timeout: options.call_timeout + Duration::from_secs(5),
            ignore_https_errors: !options.simulator_args.is_empty(),
            ..HandlerConfig::default()
        };
        let (browser, mut handler) = tokio::time::timeout(
            options.call_timeout,
            Browser::connect_with_config(ws_url, config),
        )
        .await
        .map_err(|_| BrowserError::Timeout {
            call: "connect",
            after: options.call_timeout,
        })??;
        let (events, receiver) = mpsc::unbounded_channel();
        let closing = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();

        // The handler must be polled for the whole life of the browser; its end means CDP is gone.
        let crash_tx = events.clone();
        let crash_closing = closing.clone();
        tasks.push(tokio::spawn(async move {
            while handler.next().await.is_some() {}
            if !crash_closing.swap(true, Ordering::SeqCst) {
                let _ = crash_tx.send(DriverEvent::BrowserCrashed(
                    "devtools connection closed".into(),
                ));
            }
        }));
        let crash_tx = events.clone();
        let crash_closing = closing.clone();
        let exited = process.exited();
        tasks.push(tokio::spawn(async move {
            let status = exited.await;
            if !crash_closing.swap(true, Ordering::SeqCst) {
                let _ = crash_tx.send(DriverEvent::BrowserCrashed(format!(
                    "chromium exited ({status})"
                )));
            }
        }));

        let mut guard = TaskGuard(tasks);
        let page = match open_page(&browser, &options, &events, &closing).await {
            Ok((page, pump)) => {
                guard.0.push(pump);
                page
            }
            Err(error) => {
                tracing::warn!(pid, %error, "launch failed");
                closing.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        tracing::info!(pid, profile = %lease.path().display(), "whatsapp web launched");
        Ok((
            Driver {
                browser,
                page,
                process,
                lease,
                closing,
                _tasks: guard,
                call_timeout: options.call_timeout,
                events,
            },
            receiver,
        ))
    }

    /// Pid of the Chromium main process (the leader of its process group).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The profile directory this driver holds.
    pub fn profile_dir(&self) -> &Path {
        self.lease.path()
    }

    /// `Socket.state` — the heartbeat.
    pub async fn state(&self) -> Result<String, BrowserError> {
        self.call("state", "window.__waBridge.state()".into()).await
    }

    /// Sends a text to `to` (digits, or `<digits>@c.us`); returns the message id.
    pub async fn send_text(&self, to: &str, body: &str) -> Result<SentMessage, BrowserError> {
        let expression = format!(
            "window.__waBridge.sendText({}, {})",
            js_string(to),
            js_string(body)
        );
        self.call("send text", expression).await
    }

    /// Asks WhatsApp Web for a pairing code for `phone` (international digits, no `+`).
    pub async fn request_pairing_code(&self, phone: &str) -> Result<String, BrowserError> {
        let expression = format!("window.__waBridge.pairingCode({})", js_string(phone));
        let code: String = self.call("request pairing code", expression).await?;
        let _ = self.events.send(DriverEvent::PairingCode(code.clone()));
        Ok(code)
    }

    /// Asks the page for a fresh QR code (`Cmd.refreshQR()`).
    pub async fn refresh_qr(&self) -> Result<(), BrowserError> {
        self.call::<bool>("refresh qr", "window.__waBridge.refreshQr()".into())
            .await
            .map(drop)
    }

    /// Marks presence available, so that WhatsApp Web does not idle out.
    pub async fn mark_available(&self) -> Result<(), BrowserError> {
        self.call::<bool>("mark presence", "window.__waBridge.markAvailable()".into())
            .await
            .map(drop)
    }

    /// Logs the device out (`Socket.logout()`), closes the browser and deletes the profile.
    pub async fn logout(self) -> Result<(), BrowserError> {
        let result = self
            .call::<bool>("logout", "window.__waBridge.logout()".into())
            .await;
        let profile = self.lease.path().to_owned();
        self.close().await;
        if let Err(error) = tokio::fs::remove_dir_all(&profile).await {
            tracing::warn!(%error, profile = %profile.display(), "cannot delete the profile after logout");
        }
        result.map(drop)
    }

    /// Kills the process group now, without a crash event; for a browser that is already gone
    /// or must go while someone else still holds the driver.
    pub fn kill(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.process.kill();
    }

    /// Closes the browser: politely, then by killing its process group. Emits no crash event.
    pub async fn close(mut self) {
        self.closing.store(true, Ordering::SeqCst);
        let pid = self.process.pid();
        if self.process.exit_status().is_some() {
            // Already gone (crashed or killed): nothing to be polite to; reap what is left.
            self.process.kill();
            return;
        }
        let polite = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = self.browser.close().await;
            self.process.exited().await
        })
        .await;
        if polite.is_err() {
            tracing::warn!(pid, "chromium did not close in time; killing it");
        }
        self.process.kill();
        let _ = tokio::time::timeout(CLOSE_GRACE, self.process.exited()).await;
        tracing::debug!(pid, "chromium closed");
    }

    async fn call<T: DeserializeOwned>(
        &self,
        call: &'static str,
        expression: String,
    ) -> Result<T, BrowserError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(BrowserError::Gone);
        }
        evaluate(&self.page, call, expression, self.call_timeout).await
    }
}

/// A JSON string literal is a valid JavaScript string literal.
fn js_string(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

/// `Runtime.evaluate` with `awaitPromise` and `returnByValue`, bounded by `timeout`.
async fn evaluate<T: DeserializeOwned>(
    page: &Page,
    call: &'static str,
    expression: String,
    timeout: Duration,
) -> Result<T, BrowserError> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(BrowserError::Cdp)?;
    let response = tokio::time::timeout(timeout, page.execute(params))
        .await
        .map_err(|_| BrowserError::Timeout {
            call,
            after: timeout,
        })??;
    if let Some(exception) = response.result.exception_details {
        let message = exception
            .exception
            .and_then(|e| e.description)
            .unwrap_or(exception.text);
        if message.contains("__waBridge") {
            return Err(BrowserError::NotReady { call });
        }
        return Err(BrowserError::Page { call, message });
    }
    let value = response
        .result
        .result
        .value
        .unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value).map_err(|e| BrowserError::Page {
        call,
        message: format!("unexpected reply: {e}"),
    })
}

/// Opens our page, closes every other page target, wires the events, loads WhatsApp Web.
async fn open_page(
    browser: &Browser,
    options: &LaunchOptions,
    events: &mpsc::UnboundedSender<DriverEvent>,
    closing: &Arc<AtomicBool>,
) -> Result<(Page, JoinHandle<()>), BrowserError> {
    let step = options.call_timeout;
    let timed = |call: &'static str| BrowserError::Timeout { call, after: step };
    let page = tokio::time::timeout(step, browser.new_page("about:blank"))
        .await
        .map_err(|_| timed("new page"))??;
    // The initial tab (and new headless's new-tab page) cost memory and are never used.
    let targets = tokio::time::timeout(step, browser.execute(GetTargetsParams::default()))
        .await
        .map_err(|_| timed("list targets"))??;
    for target in targets.result.target_infos {
        if target.r#type == "page" && &target.target_id != page.target_id() {
            let _ = browser
                .execute(CloseTargetParams::new(target.target_id))
                .await;
        }
    }
    page.execute(AddBindingParams::new(BINDING)).await?;
    page.execute(inspector::EnableParams::default()).await?;
    let bindings = page.event_listener::<EventBindingCalled>().await?;
    let navigations = page.event_listener::<EventFrameNavigated>().await?;
    let crashes = page
        .event_listener::<inspector::EventTargetCrashed>()
        .await?;
    let pump = tokio::spawn(pump_page_events(
        page.clone(),
        bindings,
        navigations,
        crashes,
        events.clone(),
        closing.clone(),
        options.boot_timeout,
        options.call_timeout,
    ));
    let navigated = tokio::time::timeout(
        options.boot_timeout,
        page.execute(NavigateParams::new(options.url.clone())),
    )
    .await;
    let result = match navigated {
        Err(_) => Err(BrowserError::BootTimeout(options.boot_timeout)),
        Ok(Err(error)) => Err(error.into()),
        Ok(Ok(response)) => match response.result.error_text {
            Some(error) => Err(BrowserError::Cdp(format!(
                "cannot open {}: {error}",
                options.url
            ))),
            None => wait_and_inject(&page, options.boot_timeout, options.call_timeout).await,
        },
    };
    match result {
        Ok(()) => Ok((page, pump)),
        Err(error) => {
            pump.abort();
            Err(error)
        }
    }
}

/// Polls for `window.Debug.VERSION` (every 200 ms, up to `boot_timeout`), then injects the bridge.
async fn wait_and_inject(
    page: &Page,
    boot_timeout: Duration,
    call_timeout: Duration,
) -> Result<(), BrowserError> {
    let deadline = tokio::time::Instant::now() + boot_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(BrowserError::BootTimeout(boot_timeout));
        }
        let booted = evaluate::<bool>(
            page,
            "boot check",
            "Boolean(window.Debug && window.Debug.VERSION)".into(),
            left.min(call_timeout),
        )
        .await;
        if let Ok(true) = booted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200).min(left)).await;
    }
    let outcome: String = evaluate(page, "inject bridge", BRIDGE_JS.into(), call_timeout).await?;
    tracing::debug!(%outcome, "bridge");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn pump_page_events(
    page: Page,
    mut bindings: chromiumoxide::listeners::EventStream<EventBindingCalled>,
    mut navigations: chromiumoxide::listeners::EventStream<EventFrameNavigated>,
    mut crashes: chromiumoxide::listeners::EventStream<inspector::EventTargetCrashed>,
    events: mpsc::UnboundedSender<DriverEvent>,
    closing: Arc<AtomicBool>,
    boot_timeout: Duration,
    call_timeout: Duration,
) {
    let mut first_load = true;
    let mut logout_reported = false;
    let mut injector: Option<JoinHandle<()>> = None;
    loop {
        tokio::select! {
            Some(call) = bindings.next() => {
                if call.name != BINDING {
                    continue;
                }
                match serde_json::from_str::<BridgeEvent>(&call.payload) {
                    Ok(event) => {
                        let event = DriverEvent::from(event);
                        if event == DriverEvent::Disconnected(DisconnectReason::Logout)
                            && std::mem::replace(&mut logout_reported, true)
                        {
                            continue;
                        }
                        let _ = events.send(event);
                    }
                    Err(error) => tracing::warn!(%error, payload = %call.payload, "unreadable bridge event"),
                }
            }
            Some(navigated) = navigations.next() => {
                let frame = &navigated.frame;
                if frame.parent_id.is_some() || !frame.url.starts_with("http") {
                    continue;
                }
                if std::mem::take(&mut first_load) {
                    continue; // launch injects into the first load itself
                }
                let url = format!("{}{}", frame.url, frame.url_fragment.clone().unwrap_or_default());
                let _ = events.send(DriverEvent::PageNavigated(url.clone()));
                if url.contains("post_logout=1") && !std::mem::replace(&mut logout_reported, true) {
                    let _ = events.send(DriverEvent::Disconnected(DisconnectReason::Logout));
                }
                if let Some(task) = injector.take() {
                    task.abort();
                }
                let page = page.clone();
                injector = Some(tokio::spawn(async move {
                    if let Err(error) = wait_and_inject(&page, boot_timeout, call_timeout).await {
                        tracing::warn!(%error, "cannot re-inject the bridge after a navigation");
                    }
                }));
            }
            Some(_) = crashes.next() => {
                if !closing.swap(true, Ordering::SeqCst) {
                    let _ = events.send(DriverEvent::BrowserCrashed("the page crashed".into()));
                }
            }
            else => break,
        }
    }
    if let Some(task) = injector {
        task.abort();
    }
}
