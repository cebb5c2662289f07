//! The unmodified whatsapp-web.js 1.34.7 client against the simulator: the simulator's fidelity check.
//!
//! Needs Node.js and npm; `npm ci` runs in tests/wwebjs when its node_modules are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wwebjs")
}

async fn install_client() {
    let dir = project_dir();
    if dir
        .join("node_modules/whatsapp-web.js/package.json")
        .exists()
    {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .env("PUPPETEER_SKIP_DOWNLOAD", "1")
        .status()
        .await
        .expect("npm is installed (apt-get install -y nodejs npm)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// Runs tests/wwebjs/run.js in `mode`; returns its step lines.
async fn run_client(env: &Env, data_path: &Path, mode: &str) -> Vec<Value> {
    let chromium = wa_supervisor::browser::find_chromium(None).expect("chromium");
    let mut child = tokio::process::Command::new("node")
        .arg("run.js")
        .current_dir(project_dir())
        .env("SIM_ADDR", env.sim.addr.to_string())
        .env("CONTROL_URL", env.sim.control_url())
        .env("CHROMIUM", &chromium)
        .env("DATA_PATH", data_path)
        .env("PHONE", PHONE)
        .env("PUSHNAME", PUSHNAME)
        .env("MODE", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let mut stdout = child.stdout.take().unwrap();
    let output = tokio::time::timeout(Duration::from_secs(120), async {
        use tokio::io::AsyncReadExt;
        let mut text = String::new();
        stdout.read_to_string(&mut text).await.unwrap();
        (child.wait().await.unwrap(), text)
    })
    .await
    .expect("the client finishes within 2 minutes");
    let (status, text) = output;
    let steps: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        status.success(),
        "whatsapp-web.js run ({mode}) failed: {text}"
    );
    steps
}

fn names(steps: &[Value]) -> Vec<&str> {
    steps.iter().filter_map(|s| s["step"].as_str()).collect()
}

#[tokio::test]
async fn whatsapp_web_js_runs_the_whole_flow_and_restores_from_its_profile() {
    install_client().await;
    let env = Env::new().await;
    let data = env.dir.path().join("wwebjs");

    let mut fresh = run_client(&env, &data, "fresh").await;
    // Like the real page, the simulator clears Conn.ref after pairing; the client turns that
    // change:ref into one more "qr" event starting with "null,".
    let cleared = fresh
        .iter()
        .filter(|s| s["qr"].as_str().is_some_and(|q| q.starts_with("null,")))
        .count();
    assert_eq!(cleared, 1, "{fresh:?}");
    fresh.retain(|s| !s["qr"].as_str().is_some_and(|q| q.starts_with("null,")));
    assert_eq!(
        names(&fresh),
        [
            "qr",
            "authenticated",
            "ready",
            "message",
            "sent",
            "state",
            "destroyed"
        ],
        "{fresh:?}"
    );
    assert!(fresh[0]["qr"].as_str().unwrap().starts_with("2@"));
    assert_eq!(fresh[2]["user"], PHONE);
    assert_eq!(fresh[4]["listed"], true);
    assert_eq!(fresh[5]["state"], "CONNECTED");
    assert!(data.join("session").is_dir(), "LocalAuth keeps its profile");
    assert_no_chromium_under(&data).await;

    let restored = run_client(&env, &data, "restore").await;
    assert_eq!(
        names(&restored),
        ["authenticated", "ready", "state", "logged_out"],
        "restored without a QR: {restored:?}"
    );
    assert_eq!(restored[3]["linked"], 0);
    assert!(
        !data.join("session").exists(),
        "logout deletes the LocalAuth profile"
    );
    assert_no_chromium_under(&data).await;
}
