//! Launch speed and memory of one session, each printed next to a baseline measured in the same run.
//!
//! - launch → first QR through the driver, next to bare Chromium launch → the same page loaded;
//! - PSS of one session's Chromium tree with the Node backend's flag set, next to this project's
//!   default (lean) flag set, and next to chromium-headless-shell.
//!
//! Run: `cargo bench --bench driver` (needs Chromium and chromium-headless-shell).

use std::path::Path;
use std::time::{Duration, Instant};

use chromiumoxide::Browser;
use futures::StreamExt;
use wa_supervisor::browser::process::{self, ChromiumProcess};
use wa_supervisor::browser::{Driver, DriverEvent, LaunchOptions, find_chromium};
use wa_supervisor::config::Config;
use wa_supervisor::sim::{QrTiming, Simulator};

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

    // Memory of one session showing its QR, per flag set and engine.
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
            while let Some(event) = events.recv().await {
                if matches!(event, DriverEvent::Qr(_)) {
                    break;
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
}
