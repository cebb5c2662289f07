//! Shared helpers of the integration tests: a real simulator, real Chromium, process checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use wa_supervisor::browser::{self, DriverEvent, LaunchOptions};
use wa_supervisor::config::Config;
use wa_supervisor::sim::{QrTiming, SimHandle, Simulator};

pub mod pg;
pub mod server;
pub mod smtp;

pub const PHONE: &str = "34600111222";
pub const PUSHNAME: &str = "Ana Shop";

/// One simulator, one scratch directory for profiles, and an HTTP client for `/__sim`.
pub struct Env {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub config: Config,
}

impl Env {
    /// QR refs rotate after `first` and then every `rotate`.
    pub async fn with_timing(first: Duration, rotate: Duration) -> Env {
        let _ = tracing_subscriber_init();
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), QrTiming { first, rotate })
            .await
            .expect("simulator starts");
        Env {
            sim,
            dir: tempfile::tempdir().expect("tempdir"),
            http: reqwest::Client::new(),
            config: Config::default(),
        }
    }

    pub async fn new() -> Env {
        Env::with_timing(Duration::from_secs(20), Duration::from_secs(20)).await
    }

    pub fn profile(&self, session: &str) -> PathBuf {
        self.dir.path().join(format!("session-{session}"))
    }

    pub fn options(&self, session: &str) -> LaunchOptions {
        self.options_with(session, None)
    }

    pub fn options_with(&self, session: &str, executable: Option<&Path>) -> LaunchOptions {
        LaunchOptions {
            executable: browser::find_chromium(executable).expect("chromium is installed"),
            profile_dir: self.profile(session),
            args: self.config.chromium.args.clone(),
            simulator_args: self.sim.chromium_args(),
            headless: true,
            user_agent: self.config.whatsapp.user_agent.clone(),
            url: self.config.whatsapp.url.clone(),
            boot_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.sim.control_url()))
            .send()
            .await
            .expect("simulator answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn post_raw(&self, path: &str, body: String) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.sim.control_url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("simulator answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn devices(&self) -> Vec<Value> {
        let (status, body) = self.get("/devices").await;
        assert_eq!(status, 200, "{body}");
        body["devices"].as_array().cloned().unwrap_or_default()
    }

    /// The QR string the simulator shows for its only device that is waiting for a scan.
    pub async fn shown_qr(&self) -> String {
        let devices = self.devices().await;
        let showing: Vec<&Value> = devices.iter().filter(|d| d["qr"].is_string()).collect();
        assert_eq!(showing.len(), 1, "one device shows a QR: {devices:?}");
        showing[0]["qr"].as_str().unwrap().to_owned()
    }

    pub async fn scan(&self, qr: &str) {
        let (status, body) = self
            .post(
                "/scan",
                serde_json::json!({ "qr": qr, "phone": PHONE, "pushname": PUSHNAME }),
            )
            .await;
        assert_eq!(status, 200, "scan: {body}");
    }

    pub async fn sent(&self) -> Vec<Value> {
        let (status, body) = self.get(&format!("/phones/{PHONE}/sent")).await;
        assert_eq!(status, 200, "{body}");
        body["sent"].as_array().cloned().unwrap_or_default()
    }

    /// Fails the test unless no process of this environment's profiles is alive within 5 s.
    pub async fn assert_no_chromium_left(&self) {
        assert_no_chromium_under(self.dir.path()).await;
    }
}

pub async fn assert_no_chromium_under(dir: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = browser::process::processes_under(dir);
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "chromium processes left behind under {}: {left:?}",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 50 ms until it holds; fails naming `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next event matching `wanted`, skipping others; fails after `within`.
pub async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<DriverEvent>,
    within: Duration,
    what: &str,
    wanted: impl Fn(&DriverEvent) -> bool,
) -> DriverEvent {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if wanted(&event) => return event,
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("event channel closed while waiting for {what}; saw {seen:?}"),
            Err(_) => panic!("no {what} within {within:?}; saw {seen:?}"),
        }
    }
}

pub async fn next_qr(events: &mut mpsc::UnboundedReceiver<DriverEvent>) -> String {
    match wait_for(events, Duration::from_secs(30), "QR", |e| {
        matches!(e, DriverEvent::Qr(_))
    })
    .await
    {
        DriverEvent::Qr(qr) => qr,
        _ => unreachable!(),
    }
}

pub async fn ready(events: &mut mpsc::UnboundedReceiver<DriverEvent>) -> (String, String) {
    match wait_for(events, Duration::from_secs(30), "ready", |e| {
        matches!(e, DriverEvent::Ready { .. })
    })
    .await
    {
        DriverEvent::Ready {
            phone_number,
            push_name,
        } => (phone_number, push_name),
        _ => unreachable!(),
    }
}

fn tracing_subscriber_init() -> Result<(), ()> {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,chromiumoxide=off"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
    Ok(())
}
