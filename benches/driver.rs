//! Launch speed and memory of one session, each printed next to a baseline measured in the same run.
//!
//! - launch → first QR through the driver, next to bare Chromium launch → the same page loaded;
//! - PSS of one ready session's Chromium tree with the Node backend's flag set, next to this
//!   project's default (lean) flag set, and next to chromium-headless-shell;
//! - the Node backend itself (unmodified whatsapp-web.js with the Node flag set) for both, when
//!   tests/wwebjs has its node_modules.
//!
//! Run: `cargo bench --bench driver` (needs Chromium and chromium-headless-shell).

use std::path::Path;
use std::time::{Duration, Instant};

use chromiumoxide::Browser;
use futures::StreamExt;
use wa_supervisor::browser::process::{self, ChromiumProcess};
use wa_supervisor::browser::{Driver, DriverEvent, LaunchOptions, find_chromium};
use wa_supervisor::config::Config;
use wa_supervisor::sim::{QrTiming, SimHandle, Simulator};

const RUNS: usize = 5;

/// The Node backend's flags (SPEC §6), plus what a machine without a network needs.
const NODE_FLAGS: &[&str] = &[
    "--no-sandbox",
    "--disable-setuid-sandbox",
    "--disable-dev-shm-usage",
    "--disable-accelerated-2d-canvas",
    "--disable-gpu",
    "--disable-software-rasterizer",
    "--no-first-run",
    "--no-zygote",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-breakpad",
    "--disable-component-extensions-with-background-pages",
    "--disable-features=TranslateUI,BlinkGenPropertyTrees",
    "--disable-ipc-flooding-protection",
    "--disable-renderer-backgrounding",
    "--disable-hang-monitor",
    "--disable-prompt-on-repost",
    "--disable-sync",
    "--metrics-recording-only",
    "--mute-audio",
    "--safebrowsing-disable-auto-update",
    "--js-flags=--max-old-space-size=256",
    "--disable-component-update",
];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The Node backend itself: unmodified whatsapp-web.js 1.34.7 with the Node flag set, against the
/// same simulator. Returns (spawn → first QR, PSS of its Chromium tree, PSS of the node process),
/// medians of 3, or None when tests/wwebjs has no node_modules (run scripts/test once).
async fn node_backend(sim: &SimHandle, chromium: &Path) -> Option<(Duration, u64, u64)> {
    use tokio::io::AsyncBufReadExt;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wwebjs");
    if !dir.join("node_modules/whatsapp-web.js").exists() {
        return None;
    }
    let (mut to_qr, mut tree, mut node) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..3 {
        let data = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let mut child = tokio::process::Command::new("node")
            .arg("run.js")
            .current_dir(&dir)
            .env("SIM_ADDR", sim.addr.to_string())
            .env("CONTROL_URL", sim.control_url())
            .env("CHROMIUM", chromium)
            .env("DATA_PATH", data.path())
            .env("PHONE", format!("3460077700{run}"))
            .env("PUSHNAME", "Bench")
            .env("MODE", "hold")
            .env("CHROMIUM_ARGS", serde_json::to_string(NODE_FLAGS).unwrap())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("\"step\":\"qr\"") && to_qr.len() == run {
                to_qr.push(started.elapsed());
            }
            if line.contains("\"step\":\"holding\"") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        tree.push(process::pss_bytes(&process::processes_under(data.path())));
        node.push(process::pss_bytes(&[child.id().unwrap() as i32]));
        let _ = child.kill().await;
        // Its Chromium does not die with node: clean up as the Node backend never did.
        for pid in process::processes_under(data.path()) {
            process::kill_group(pid);
        }
    }
    tree.sort();
    node.sort();
    Some((median(to_qr), tree[1], node[1]))
}

#[tokio::main]
async fn main() {
    let config = Config::default();
    let sim = Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        QrTiming {
            first: Duration::from_secs(60),
            rotate: Duration::from_secs(20),
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chromium = find_chromium(None).expect("chromium");
    let options = |name: &str, executable: &Path, args: Vec<String>| LaunchOptions {
        executable: executable.to_owned(),
        profile_dir: dir.path().join(format!("session-{name}")),
        args,
        simulator_args: sim.chromium_args(),
        headless: true,
        user_agent: config.whatsapp.user_agent.clone(),
        url: config.whatsapp.url.clone(),
        boot_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(10),
    };
    let lean: Vec<String> = config.chromium.args.clone();
    let node: Vec<String> = NODE_FLAGS.iter().map(|s| s.to_string()).collect();

    // Baseline: bare Chromium, same flags, launch → the same page loaded.
    let mut bare = Vec::new();
    for run in 0..RUNS {
        let o = options(&format!("bare-{run}"), &chromium, lean.clone());
        let started = Instant::now();
        let (proc_, url) = ChromiumProcess::spawn(&o.executable, &o.command_line(), o.boot_timeout)
            .await
            .unwrap();
        let (browser, mut handler) = Browser::connect(url).await.unwrap();
        let pump = tokio::spawn(async move { while handler.next().await.is_some() {} });
        let page = browser.new_page(o.url.as_str()).await.unwrap();
        page.wait_for_navigation().await.unwrap();
        bare.push(started.elapsed());
        drop(browser);
        pump.abort();
        proc_.kill();
    }

    // The driver: launch → first QR event.
    let mut driver_qr = Vec::new();
    for run in 0..RUNS {
        let o = options(&format!("qr-{run}"), &chromium, lean.clone());
        let started = Instant::now();
        let (driver, mut events) = Driver::launch(&o).await.unwrap();
        while let Some(event) = events.recv().await {
            if matches!(event, DriverEvent::Qr(_)) {
                break;
            }
        }
        driver_qr.push(started.elapsed());
        driver.close().await;
    }
    let bare_ms = median(bare).as_secs_f64() * 1000.0;
    let qr_ms = median(driver_qr).as_secs_f64() * 1000.0;
    println!("launch → page loaded (bare chromium), median of {RUNS}: {bare_ms:.0} ms");
    println!(
        "launch → first QR (driver),          median of {RUNS}: {qr_ms:.0} ms  (ratio {:.2})",
        qr_ms / bare_ms
    );
    let node_baseline = node_backend(&sim, &chromium).await;
    if let Some((node_qr, _, _)) = node_baseline {
        let node_ms = node_qr.as_secs_f64() * 1000.0;
        println!(
            "start → first QR (whatsapp-web.js, Node flag set), median of 3: {node_ms:.0} ms (the driver is {:.2}× faster)",
            node_ms / qr_ms
        );
    }

    // Memory of one ready session, per flag set and engine.
    let shell = find_chromium(Some(Path::new("chromium-headless-shell"))).ok();
    let mut sets = vec![
        ("node flag set", chromium.clone(), node),
        ("lean flag set", chromium.clone(), lean.clone()),
    ];
    // Try more switches without editing: WA_BENCH_EXTRA_FLAGS="--a --b" adds a set on top of the lean one.
    if let Ok(extra) = std::env::var("WA_BENCH_EXTRA_FLAGS") {
        let mut more = lean.clone();
        more.extend(extra.split_whitespace().map(str::to_owned));
        sets.push(("lean + extra", chromium.clone(), more));
    }
    if let Some(shell) = shell {
        sets.push(("headless-shell, lean", shell, lean.clone()));
    }
    let mut baseline = None;
    for (label, executable, args) in sets {
        let mut samples = Vec::new();
        for run in 0..3 {
            let o = options(
                &format!("pss-{}-{run}", label.replace([' ', ','], "")),
                &executable,
                args.clone(),
            );
            let (driver, mut events) = Driver::launch(&o).await.unwrap();
            // Linked and ready, as a session spends its life.
            while let Some(event) = events.recv().await {
                match event {
                    DriverEvent::Qr(qr) => {
                        reqwest::Client::new()
                            .post(format!("{}/scan", sim.control_url()))
                            .json(&serde_json::json!({ "qr": qr, "phone": format!("346009{run}{}", samples.len() + 10_000), "pushname": "Bench" }))
                            .send()
                            .await
                            .unwrap();
                    }
                    DriverEvent::Ready { .. } => break,
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            samples.push(process::pss_bytes(&process::processes_under(
                driver.profile_dir(),
            )));
            driver.close().await;
        }
        samples.sort();
        let mb = samples[1] as f64 / 1_048_576.0;
        let base = *baseline.get_or_insert(mb);
        println!(
            "PSS of one session's tree, {label:<22} median of 3: {mb:6.1} MiB (ratio {:.2})",
            mb / base
        );
    }
    if let Some((_, tree, node)) = node_baseline {
        let mb = |b: u64| b as f64 / 1_048_576.0;
        println!(
            "PSS of one ready whatsapp-web.js session: Chromium {:.1} MiB + node {:.1} MiB = {:.1} MiB",
            mb(tree),
            mb(node),
            mb(tree + node)
        );
    }
}
