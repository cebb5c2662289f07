//! Operating the supervisor: admin API, metrics, restarts, and the process-level drills
//! (SIGKILL of the supervisor, SIGTERM), with real Chromium and the simulator.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, config, decode_qr, ready_session};
use common::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);
const ADMIN: &str = "adm-7f3k-secret";

async fn admin(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("http://{}{path}", server.addr));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// PSS of the processes whose --user-data-dir is `profile`, read here from /proc independently.
fn pss_from_proc(profile: &std::path::Path) -> u64 {
    let flag = format!(
        "--user-data-dir={}",
        profile.canonicalize().unwrap().display()
    );
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        if !cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes()) {
            continue;
        }
        let Ok(rollup) = std::fs::read_to_string(path.join("smaps_rollup")) else {
            continue;
        };
        let kb: u64 = rollup
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        total += kb * 1024;
    }
    total
}

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let (status, body) = admin(
        &server,
        reqwest::Method::GET,
        "/admin/sessions",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 403, "no admin token configured: {body}");
    server.stop().await;

    let mut config = config();
    config.auth.admin_token = Some(ADMIN.into());
    let server = Server::start(&env, config).await;
    for token in [
        None,
        Some("wrong"),
        Some("adm-7f3k-secreT"),
        Some("adm-7f3k-secre"),
        Some("adm-7f3k-secret2"),
        Some(""),
    ] {
        let (status, body) = admin(&server, reqwest::Method::GET, "/admin/sessions", token).await;
        assert_eq!(status, 401, "token {token:?}: {body}");
        let (status, _) = admin(
            &server,
            reqwest::Method::POST,
            "/admin/sessions/any/restart",
            token,
        )
        .await;
        assert_eq!(status, 401, "token {token:?}");
    }
    let user = server.token("user-a");
    let (status, _) = admin(
        &server,
        reqwest::Method::GET,
        "/admin/sessions",
        Some(&user),
    )
    .await;
    assert_eq!(status, 401, "a user's JWT is not the admin token");
    let (status, body) = admin(
        &server,
        reqwest::Method::GET,
        "/admin/sessions",
        Some(ADMIN),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "sessions": [] })));
    let (status, _) = admin(
        &server,
        reqwest::Method::POST,
        "/admin/sessions/nobody/restart",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn metrics_parse_and_report_each_sessions_pss_like_proc_does() {
    let env = Env::new().await;
    let mut config = config();
    config.auth.admin_token = Some(ADMIN.into());
    let server = Server::start(&env, config).await;
    let mut a = server.connect("user-a").await;
    let session_id = ready_session(&env, &mut a, "c").await;
    let profile = env.dir.path().join(format!("session-{session_id}"));

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("http://{}/metrics", server.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("valid exposition");
        let value = |metric: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v))
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
        };
        let reported = value(
            "wa_session_chromium_pss_bytes",
            Some(("session_id", &session_id)),
        )
        .unwrap_or(0.0);
        let measured = pss_from_proc(&profile) as f64;
        if reported > 0.0 && (reported - measured).abs() <= 0.10 * measured {
            assert_eq!(value("wa_sessions", Some(("status", "ready"))), Some(1.0));
            assert!(value("wa_qr_codes_total", None).unwrap() >= 1.0);
            assert_eq!(value("wa_ws_connections", None), Some(1.0));
            assert!(
                value(
                    "wa_session_chromium_cpu_seconds",
                    Some(("session_id", &session_id))
                )
                .unwrap()
                    > 0.0
            );
            eprintln!("pss reported {reported} measured {measured}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PSS reported {reported} vs {measured} read from /proc"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = admin(
        &server,
        reqwest::Method::GET,
        "/admin/sessions",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200);
    let row = &body["sessions"][0];
    assert_eq!(row["session_id"], session_id.as_str());
    assert_eq!(row["user_id"], "user-a");
    assert_eq!(row["status"], "ready");
    assert!(row["chromium_pid"].as_u64().unwrap() > 1);
    assert!(row["pss_bytes"].as_u64().unwrap() > 10_000_000, "{row}");
    for key in [
        "since",
        "restarts",
        "reconnects",
        "cpu_seconds",
        "last_heartbeat",
    ] {
        assert!(row.get(key).is_some(), "{key} in {row}");
    }
    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn an_admin_restart_touches_only_its_session_and_stop_keeps_the_profile() {
    let env = Env::new().await;
    let mut config = config();
    config.auth.admin_token = Some(ADMIN.into());
    let server = Server::start(&env, config).await;
    let mut a = server.connect("user-a").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(ready_session(&env, &mut a, &format!("c{i}")).await);
    }
    let pids = |snapshots: Vec<wa_supervisor::session::actor::SessionSnapshot>| {
        snapshots
            .into_iter()
            .map(|s| (s.session_id.to_string(), s.chromium_pid))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let before = pids(server.app.snapshots().await);
    let seen_before = a.seen.len();

    let (status, body) = admin(
        &server,
        reqwest::Method::POST,
        &format!("/admin/sessions/{}/restart", ids[0]),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ready = a.expect("whatsapp:ready", WAIT).await;
    assert_eq!(ready["data"]["sessionId"], ids[0].as_str());
    let after = pids(server.app.snapshots().await);
    assert_ne!(
        before[&ids[0]], after[&ids[0]],
        "the restarted session has a new chromium"
    );
    for other in &ids[1..] {
        assert_eq!(before[other], after[other], "{other} kept its chromium");
    }
    let touched: Vec<&Value> = a.seen[seen_before..]
        .iter()
        .filter(|f| f["data"]["sessionId"] != ids[0].as_str())
        .collect();
    assert!(
        touched.is_empty(),
        "the others never left ready: {touched:?}"
    );
    assert!(
        a.seen
            .iter()
            .filter(|f| f["event"] == "whatsapp:qr")
            .count()
            == 3,
        "no new QR"
    );

    let (status, _) = admin(
        &server,
        reqwest::Method::POST,
        &format!("/admin/sessions/{}/stop", ids[1]),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, 200);
    let stopped = a.expect("whatsapp:state", WAIT).await;
    assert_eq!(
        (
            stopped["data"]["sessionId"].as_str(),
            stopped["data"]["status"].as_str()
        ),
        (Some(ids[1].as_str()), Some("stopped"))
    );
    let profile = env.dir.path().join(format!("session-{}", ids[1]));
    assert!(profile.is_dir(), "an admin stop keeps the profile");
    common::assert_no_chromium_under(&profile).await;
    assert_eq!(server.app.snapshots().await.len(), 2);
    server.stop().await;
    env.assert_no_chromium_left().await;
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data: &std::path::Path, port: u16, sim_port: u16) -> Proc {
    let mut args = wa_supervisor::config::Config::default().chromium.args;
    args.extend(wa_supervisor::sim::chromium_args(
        format!("127.0.0.1:{sim_port}").parse().unwrap(),
    ));
    Proc(
        Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env("WA__CHROMIUM__ARGS", serde_json::to_string(&args).unwrap())
            .env("WA__RECONNECT__BASE_DELAY", "300ms")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "serve answers within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(port: u16, data: &std::path::Path) -> common::server::Client {
    let secret = wa_supervisor::auth::jwt_secret(None, data).unwrap();
    let token = wa_supervisor::auth::Jwt::new(&secret).mint(
        &wa_supervisor::ids::UserId::new("user-a").unwrap(),
        None,
        Duration::from_secs(600),
    );
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws?access_token={token}"))
            .await
            .unwrap();
    common::server::Client {
        ws,
        seen: Vec::new(),
    }
}

#[tokio::test]
async fn sigkill_leaves_no_chromium_and_a_restart_restores_then_sigterm_exits_cleanly() {
    let sim_port = free_port();
    let _sim = Proc(
        Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
            .args(["sim", "--listen", &format!("127.0.0.1:{sim_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let control = format!("http://127.0.0.1:{sim_port}/__sim");
    let http = reqwest::Client::new();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();

    let mut first = serve(data.path(), port, sim_port);
    wait_healthy(port).await;
    let mut a = connect(port, data.path()).await;
    for i in 0..3 {
        a.send("whatsapp:create", json!({}), &format!("c{i}")).await;
        let qr = a.expect("whatsapp:qr", WAIT).await;
        let scanned = http
            .post(format!("{control}/scan"))
            .json(&json!({ "qr": decode_qr(qr["data"]["qr"].as_str().unwrap()), "phone": format!("3460011122{i}"), "pushname": "Ana" }))
            .send()
            .await
            .unwrap();
        assert_eq!(scanned.status().as_u16(), 200);
        a.expect("whatsapp:ready", WAIT).await;
    }
    let sessions = data.path().join("sessions");
    assert!(wa_supervisor::browser::process::processes_under(&sessions).len() >= 3);

    // SIGKILL: nothing may survive the supervisor.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let left = wa_supervisor::browser::process::processes_under(&sessions);
    assert!(left.is_empty(), "5 s after SIGKILL these remain: {left:?}");

    // Started again: all three come back ready without a QR.
    let second = serve(data.path(), port, sim_port);
    wait_healthy(port).await;
    let mut a = connect(port, data.path()).await;
    for _ in 0..3 {
        a.expect("whatsapp:ready", WAIT).await;
    }
    assert!(
        a.seen.iter().all(|f| f["event"] != "whatsapp:qr"),
        "restored without a QR"
    );

    // SIGTERM: out within the shutdown timeout, no Chromium left, sessions restorable.
    let terminated = Instant::now();
    // SAFETY: SIGTERM to the server this test started.
    unsafe { libc::kill(second.0.id() as i32, libc::SIGTERM) };
    let mut second = second;
    let status = second.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        terminated.elapsed() < Duration::from_secs(10),
        "exited in {:?}",
        terminated.elapsed()
    );
    let close =
        tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut a.ws)).await;
    assert!(
        matches!(close, Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(ref f))))) if u16::from(f.code) == 1001),
        "the dashboard's socket was closed with 1001: {close:?}"
    );
    common::assert_no_chromium_under(&sessions).await;
    let store =
        wa_supervisor::store::sqlite::SqliteStore::open(&data.path().join("wa-supervisor.db"))
            .await
            .unwrap();
    use wa_supervisor::store::Store;
    assert_eq!(
        store.restorable().await.unwrap().len(),
        3,
        "every session is restorable"
    );
}
