//! The supervisor's speed, each figure next to a baseline measured in the same run:
//! - `whatsapp:create` → `whatsapp:qr` at a WebSocket client, next to driver launch → first QR;
//! - wall time to restore 10 ready sessions at start-up, next to restoring 1.
//!
//! Run: `cargo bench --bench supervisor` (needs Chromium).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wa_supervisor::auth::{Jwt, jwt_secret};
use wa_supervisor::browser::{Driver, DriverEvent, LaunchOptions, find_chromium};
use wa_supervisor::config::Config;
use wa_supervisor::ids::UserId;
use wa_supervisor::server::{App, AppParts};
use wa_supervisor::sim::{QrTiming, SimHandle, Simulator};
use wa_supervisor::store::sqlite::SqliteStore;

const RUNS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

struct Running {
    app: App,
    addr: std::net::SocketAddr,
    token: String,
    task: tokio::task::JoinHandle<()>,
}

async fn start(sim: &SimHandle, data: &std::path::Path) -> Running {
    let config = Config::from_env(None).expect("configuration");
    let store = SqliteStore::open(&data.join("wa-supervisor.db"))
        .await
        .unwrap();
    let secret = jwt_secret(None, data).unwrap();
    let app = App::start(AppParts {
        config,
        store: Arc::new(store),
        jwt_secret: secret.clone(),
        executable: find_chromium(None).unwrap(),
        sessions_path: data.join("sessions"),
        data_dir: data.to_owned(),
        simulator_args: sim.chromium_args(),
        demo: false,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(wa_supervisor::server::run(
        listener,
        app.clone(),
        None,
        std::future::pending(),
    ));
    let token = Jwt::new(&secret).mint(
        &UserId::new("bench").unwrap(),
        None,
        Duration::from_secs(3600),
    );
    Running {
        app,
        addr,
        token,
        task,
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Ws, event: &str) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["event"] == event {
                return frame;
            }
        }
    }
}

/// Creates `n` sessions and links each one through the simulator.
async fn link(running: &Running, sim: &SimHandle, n: usize) -> Vec<Duration> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws?access_token={}",
        running.addr, running.token
    ))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let mut to_qr = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        ws.send(Message::text(
            json!({"event": "whatsapp:create", "data": {}, "ref": i.to_string()}).to_string(),
        ))
        .await
        .unwrap();
        let created = next(&mut ws, "whatsapp:created").await;
        next(&mut ws, "whatsapp:qr").await;
        to_qr.push(started.elapsed());
        let session = created["data"]["sessionId"].as_str().unwrap().to_owned();
        let devices: Value = http
            .get(format!("{}/devices", sim.control_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let qr = devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|d| d["qr"].as_str())
            .unwrap()
            .to_owned();
        http.post(format!("{}/scan", sim.control_url()))
            .json(&json!({"qr": qr, "phone": format!("3460000{i:04}"), "pushname": "Bench"}))
            .send()
            .await
            .unwrap();
        loop {
            let ready = next(&mut ws, "whatsapp:ready").await;
            if ready["data"]["sessionId"] == session.as_str() {
                break;
            }
        }
    }
    to_qr
}

async fn restore_time(sim: &SimHandle, n: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let running = start(sim, dir.path()).await;
    link(&running, sim, n).await;
    running.app.shutdown().await;
    running.task.abort();
    let running = start(sim, dir.path()).await;
    let started = Instant::now();
    let restored = running.app.restore().await;
    let elapsed = started.elapsed();
    assert_eq!(restored, n);
    let ready = running
        .app
        .snapshots()
        .await
        .iter()
        .filter(|s| s.status.as_str() == "ready")
        .count();
    assert_eq!(ready, n, "every restored session is ready");
    running.app.shutdown().await;
    running.task.abort();
    elapsed
}

#[tokio::main]
async fn main() {
    // RUST_LOG=wa_supervisor=info shows each launch and status change with its time.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let sim = Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        QrTiming {
            first: Duration::from_secs(60),
            rotate: Duration::from_secs(20),
        },
    )
    .await
    .unwrap();
    let config = Config::from_env(None).expect("configuration");

    // Baseline: the driver alone, launch → first QR.
    let dir = tempfile::tempdir().unwrap();
    let mut driver_qr = Vec::new();
    for run in 0..RUNS {
        let options = LaunchOptions {
            executable: find_chromium(None).unwrap(),
            profile_dir: dir.path().join(format!("session-d{run}")),
            args: config.chromium.args.clone(),
            simulator_args: sim.chromium_args(),
            headless: true,
            user_agent: config.whatsapp.user_agent.clone(),
            url: config.whatsapp.url.clone(),
            boot_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
        };
        let started = Instant::now();
        let (driver, mut events) = Driver::launch(&options).await.unwrap();
        while let Some(event) = events.recv().await {
            if matches!(event, DriverEvent::Qr(_)) {
                break;
            }
        }
        driver_qr.push(started.elapsed());
        driver.close().await;
    }
    let driver_ms = median(driver_qr).as_secs_f64() * 1000.0;

    // Through the whole product: whatsapp:create → whatsapp:qr at the client.
    let data = tempfile::tempdir().unwrap();
    let running = start(&sim, data.path()).await;
    let client_ms = median(link(&running, &sim, RUNS).await).as_secs_f64() * 1000.0;

    // Recovery after a SIGKILL of a ready session's Chromium, until it is ready again.
    let mut recovery = Vec::new();
    for i in 0..RUNS {
        let before = running.app.snapshots().await;
        let victim = &before[i];
        let pid = victim.chromium_pid.unwrap();
        let killed = Instant::now();
        // SAFETY: SIGKILL to a Chromium this benchmark started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        loop {
            let now = running.app.snapshots().await;
            let back = now
                .iter()
                .find(|s| s.session_id == victim.session_id)
                .unwrap();
            if back.chromium_pid.is_some_and(|p| p != pid) && back.status.as_str() == "ready" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recovery.push(killed.elapsed());
    }
    let recovery_ms = median(recovery).as_secs_f64() * 1000.0;
    running.app.shutdown().await;
    running.task.abort();
    println!("driver launch → first QR,              median of {RUNS}: {driver_ms:.0} ms");
    println!(
        "whatsapp:create → whatsapp:qr (client), median of {RUNS}: {client_ms:.0} ms (ratio {:.2})",
        client_ms / driver_ms
    );

    let one = restore_time(&sim, 1).await.as_secs_f64();
    println!(
        "recovery after SIGKILL of Chromium,   median of {RUNS}: {recovery_ms:.0} ms (reconnect.base_delay {:?} ±20 % of it), next to a restored session's cold start to ready: {:.0} ms (ratio {:.2})",
        config.reconnect.base_delay,
        one * 1000.0,
        recovery_ms / (one * 1000.0)
    );
    let ten = restore_time(&sim, 10).await.as_secs_f64();
    println!("restore 1 ready session:   {one:.2} s");
    println!(
        "restore 10 ready sessions: {ten:.2} s (ratio {:.2}; restore_concurrency {}, launch_concurrency {})",
        ten / one,
        config.sessions.restore_concurrency,
        config.sessions.launch_concurrency
    );
}
