//! No Chromium outlives the process that launched it, even when that process is SIGKILLed.
//!
//! The test runs a driver in a child process — this same test binary, re-executed with
//! `WA_HYGIENE_CHILD` set, so the child runs the real driver code — then SIGKILLs the child.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use wa_supervisor::browser::{Driver, process};

const CHILD_ENV: &str = "WA_HYGIENE_CHILD";
const TEST_NAME: &str = "sigkill_of_the_driver_process_leaves_no_chromium_behind";

#[tokio::test]
async fn sigkill_of_the_driver_process_leaves_no_chromium_behind() {
    if let Ok(sim_addr) = std::env::var(CHILD_ENV) {
        return hold_a_session(&sim_addr).await;
    }
    let env = Env::new().await;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, env.sim.addr.to_string())
        .env("WA_HYGIENE_DIR", env.dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest may print its own text before ours on the same line.
            if let Some((_, pid)) = line.split_once("CHILD HOLDS CHROMIUM ") {
                return pid.trim().parse::<i32>().unwrap();
            }
        }
        panic!("the child ended without launching chromium");
    })
    .await
    .expect("the child launches chromium");
    assert!(
        process::processes_under(env.dir.path()).contains(&pid),
        "the child's chromium runs on the profile"
    );

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let left = process::processes_under(env.dir.path());
    assert!(left.is_empty(), "5 s after SIGKILL these remain: {left:?}");
}

/// The child: launch a driver on a profile under the parent's directory, report, and wait to die.
async fn hold_a_session(sim_addr: &str) {
    let dir = std::env::var("WA_HYGIENE_DIR").unwrap();
    let config = wa_supervisor::config::Config::default();
    let options = wa_supervisor::browser::LaunchOptions {
        executable: wa_supervisor::browser::find_chromium(None).unwrap(),
        profile_dir: std::path::Path::new(&dir).join("session-child"),
        args: config.chromium.args.clone(),
        simulator_args: wa_supervisor::sim::chromium_args(sim_addr.parse().unwrap()),
        headless: true,
        user_agent: config.whatsapp.user_agent.clone(),
        url: config.whatsapp.url.clone(),
        boot_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(10),
    };
    let (driver, mut events) = Driver::launch(&options).await.unwrap();
    next_qr(&mut events).await;
    println!("CHILD HOLDS CHROMIUM {}", driver.pid());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test]
async fn start_up_sweep_kills_leftover_chromium_under_the_sessions_path() {
    let env = Env::new().await;
    let chromium = wa_supervisor::browser::find_chromium(None).unwrap();
    let profile = env.profile("leftover");
    std::fs::create_dir_all(&profile).unwrap();
    // A Chromium from an earlier run: its own session, no parent-death signal, nobody's child.
    let mut leftover = std::process::Command::new("setsid")
        .arg(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while process::processes_under(env.dir.path()).len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leftover chromium starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let other = tempfile::tempdir().unwrap();
    assert!(
        process::sweep_leftovers(other.path()).is_empty(),
        "other paths are left alone"
    );

    let killed = process::sweep_leftovers(env.dir.path());
    assert!(!killed.is_empty());
    let _ = leftover.wait();
    env.assert_no_chromium_left().await;
}
