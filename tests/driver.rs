//! The driver against real Chromium and the simulator.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use wa_supervisor::browser::{BrowserError, DisconnectReason, Driver, DriverEvent};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn fresh_profile_shows_rotating_qr_then_scan_makes_it_ready() {
    let env = Env::with_timing(Duration::from_secs(3), Duration::from_secs(3)).await;
    let (driver, mut events) = Driver::launch(&env.options("fresh")).await.expect("launch");

    let first = next_qr(&mut events).await;
    assert_eq!(
        first,
        env.shown_qr().await,
        "the driver's QR is the simulator's"
    );
    assert_eq!(
        first.split(',').count(),
        5,
        "ref,noise,identity,adv,platform: {first}"
    );

    let second = next_qr(&mut events).await;
    assert_ne!(first, second, "a rotation gives a new QR");
    assert_eq!(second, env.shown_qr().await);

    env.scan(&second).await;
    wait_for(&mut events, WAIT, "authenticated", |e| {
        *e == DriverEvent::Authenticated
    })
    .await;
    let (phone, name) = ready(&mut events).await;
    assert_eq!((phone.as_str(), name.as_str()), (PHONE, PUSHNAME));
    assert_eq!(driver.state().await.unwrap(), "CONNECTED");

    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn messages_flow_both_ways() {
    let env = Env::new().await;
    let (driver, mut events) = Driver::launch(&env.options("msgs")).await.expect("launch");
    let qr = next_qr(&mut events).await;
    env.scan(&qr).await;
    ready(&mut events).await;

    let (status, posted) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "¿Tienen horario el sábado?" }),
        )
        .await;
    assert_eq!(status, 200, "{posted}");
    let DriverEvent::Message(message) = wait_for(&mut events, WAIT, "message", |e| {
        matches!(e, DriverEvent::Message(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(message.from, "34699000111@c.us");
    assert_eq!(message.body, "¿Tienen horario el sábado?");
    assert_eq!(message.id, posted["serialized"].as_str().unwrap());
    assert!(message.timestamp > 1_700_000_000);

    let sent = driver
        .send_text("34699000111", "Sí, de 9 a 14 h")
        .await
        .expect("send");
    assert!(
        sent.id.starts_with("true_34699000111@c.us_3EB0"),
        "{}",
        sent.id
    );
    let listed = env.sent().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["to"], "34699000111@c.us");
    assert_eq!(listed[0]["body"], "Sí, de 9 a 14 h");
    assert_eq!(
        format!(
            "true_{}_{}",
            listed[0]["to"].as_str().unwrap(),
            listed[0]["id"].as_str().unwrap()
        ),
        sent.id
    );

    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn relaunch_restores_without_qr_and_logout_unlinks() {
    let env = Env::new().await;
    let (driver, mut events) = Driver::launch(&env.options("restore"))
        .await
        .expect("launch");
    let qr = next_qr(&mut events).await;
    env.scan(&qr).await;
    ready(&mut events).await;
    driver.close().await;
    env.assert_no_chromium_left().await;

    let (driver, mut events) = Driver::launch(&env.options("restore"))
        .await
        .expect("relaunch");
    let first = wait_for(&mut events, WAIT, "qr or ready", |e| {
        matches!(e, DriverEvent::Qr(_) | DriverEvent::Ready { .. })
    })
    .await;
    assert!(
        matches!(first, DriverEvent::Ready { .. }),
        "restored without a QR: {first:?}"
    );
    let devices = env.devices().await;
    assert_eq!(devices.len(), 1, "the same device came back: {devices:?}");
    assert_eq!(devices[0]["conflicts"], 0);

    driver.logout().await.expect("logout");
    assert!(
        !env.profile("restore").exists(),
        "logout deletes the profile"
    );
    let devices = env.devices().await;
    assert!(
        devices.iter().all(|d| d["linked"] == false),
        "the simulator shows the device unlinked: {devices:?}"
    );
    env.assert_no_chromium_left().await;

    let (driver, mut events) = Driver::launch(&env.options("restore"))
        .await
        .expect("launch after logout");
    let qr = next_qr(&mut events).await;
    assert_eq!(qr, env.shown_qr().await);
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn pushed_states_disconnect_or_refresh_the_qr() {
    let env = Env::new().await;
    // CONFLICT and TOS_BLOCK end a ready session with that reason.
    for (session, state, reason) in [
        ("conflict", "CONFLICT", DisconnectReason::Conflict),
        ("tos", "TOS_BLOCK", DisconnectReason::TosBlock),
    ] {
        let (driver, mut events) = Driver::launch(&env.options(session)).await.expect("launch");
        let qr = next_qr(&mut events).await;
        env.scan(&qr).await;
        ready(&mut events).await;
        let (status, body) = env
            .post(&format!("/phones/{PHONE}/state"), json!({ "state": state }))
            .await;
        assert_eq!(status, 200, "{body}");
        let event = wait_for(&mut events, WAIT, "disconnected", |e| {
            matches!(e, DriverEvent::Disconnected(_))
        })
        .await;
        assert_eq!(event, DriverEvent::Disconnected(reason.clone()));
        assert!(reason.is_permanent());
        driver.close().await;
    }

    // UNPAIRED_IDLE while showing a QR: the driver asks for a fresh one.
    let (driver, mut events) = Driver::launch(&env.options("idle")).await.expect("launch");
    let before = next_qr(&mut events).await;
    let device = env
        .devices()
        .await
        .into_iter()
        .find(|d| d["qr"] == before.as_str())
        .unwrap();
    let (status, body) = env
        .post(
            &format!("/devices/{}/state", device["id"].as_str().unwrap()),
            json!({ "state": "UNPAIRED_IDLE" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = next_qr(&mut events).await;
    assert_ne!(before, after, "a fresh QR after UNPAIRED_IDLE");
    assert_eq!(after, env.shown_qr().await);
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn pairing_code_links_the_phone() {
    let env = Env::new().await;
    let (driver, mut events) = Driver::launch(&env.options("pairing"))
        .await
        .expect("launch");
    next_qr(&mut events).await;
    let code = driver
        .request_pairing_code(PHONE)
        .await
        .expect("pairing code");
    assert_eq!(code.len(), 8, "{code}");
    assert_eq!(
        wait_for(&mut events, WAIT, "pairing code event", |e| matches!(
            e,
            DriverEvent::PairingCode(_)
        ))
        .await,
        DriverEvent::PairingCode(code.clone())
    );
    let (status, body) = env
        .post(
            "/pairing-code",
            json!({ "code": code, "phone": "34600999999", "pushname": "x" }),
        )
        .await;
    assert_eq!(status, 409, "another phone cannot use the code: {body}");
    let (status, body) = env
        .post(
            "/pairing-code",
            json!({ "code": code, "phone": PHONE, "pushname": PUSHNAME }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (phone, _) = ready(&mut events).await;
    assert_eq!(phone, PHONE);
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn killing_chromium_is_reported_as_a_crash_within_two_seconds() {
    let env = Env::new().await;
    let (driver, mut events) = Driver::launch(&env.options("crash")).await.expect("launch");
    next_qr(&mut events).await;
    let killed_at = tokio::time::Instant::now();
    // SAFETY: SIGKILL to the Chromium main process this test started.
    unsafe { libc::kill(driver.pid() as i32, libc::SIGKILL) };
    wait_for(
        &mut events,
        Duration::from_secs(2),
        "browser crashed",
        |e| matches!(e, DriverEvent::BrowserCrashed(_)),
    )
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(2));
    assert!(matches!(driver.state().await, Err(BrowserError::Gone)));
    drop(driver);
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn a_profile_held_by_a_live_driver_is_refused() {
    let env = Env::new().await;
    let (driver, _events) = Driver::launch(&env.options("held")).await.expect("launch");
    let second = Driver::launch(&env.options("held")).await;
    match second {
        Err(BrowserError::ProfileInUse { .. }) => {}
        Err(other) => panic!("expected ProfileInUse, got {other}"),
        Ok(_) => panic!("a second driver opened a held profile"),
    }
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn headless_shell_engine_runs_the_fresh_profile_flow() {
    let env = Env::new().await;
    let options = env.options_with(
        "shell",
        Some(std::path::Path::new("chromium-headless-shell")),
    );
    assert!(
        options.executable.ends_with("chromium-headless-shell"),
        "{:?}",
        options.executable
    );
    let (driver, mut events) = Driver::launch(&options)
        .await
        .expect("launch headless shell");
    let qr = next_qr(&mut events).await;
    assert_eq!(qr, env.shown_qr().await);
    env.scan(&qr).await;
    wait_for(&mut events, WAIT, "authenticated", |e| {
        *e == DriverEvent::Authenticated
    })
    .await;
    let (phone, name) = ready(&mut events).await;
    assert_eq!((phone.as_str(), name.as_str()), (PHONE, PUSHNAME));
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn logout_from_the_phone_is_reported_once_and_the_page_shows_a_qr_again() {
    let env = Env::new().await;
    let (driver, mut events) = Driver::launch(&env.options("phone-logout"))
        .await
        .expect("launch");
    let qr = next_qr(&mut events).await;
    env.scan(&qr).await;
    ready(&mut events).await;
    let (status, body) = env
        .post(
            &format!("/phones/{PHONE}/state"),
            json!({ "state": "LOGOUT" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        wait_for(&mut events, WAIT, "disconnected", |e| matches!(
            e,
            DriverEvent::Disconnected(_)
        ))
        .await,
        DriverEvent::Disconnected(DisconnectReason::Logout)
    );
    let navigated = wait_for(&mut events, WAIT, "navigation", |e| {
        matches!(e, DriverEvent::PageNavigated(_))
    })
    .await;
    assert!(
        matches!(&navigated, DriverEvent::PageNavigated(url) if url.contains("post_logout=1")),
        "{navigated:?}"
    );
    // The bridge is injected again into the logged-out page, which asks for a new login.
    let fresh = wait_for(&mut events, WAIT, "qr or second logout", |e| {
        matches!(e, DriverEvent::Qr(_) | DriverEvent::Disconnected(_))
    })
    .await;
    assert!(
        matches!(fresh, DriverEvent::Qr(_)),
        "LOGOUT is reported once: {fresh:?}"
    );
    assert!(env.devices().await.iter().all(|d| d["linked"] == false));
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn a_stalled_page_times_out_calls_and_answers_again_afterwards() {
    let env = Env::new().await;
    let mut options = env.options("stall");
    options.call_timeout = Duration::from_secs(1);
    let (driver, mut events) = Driver::launch(&options).await.expect("launch");
    let qr = next_qr(&mut events).await;
    env.scan(&qr).await;
    ready(&mut events).await;
    let (status, body) = env
        .post(&format!("/phones/{PHONE}/stall"), json!({ "ms": 3000 }))
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    match driver.state().await {
        Err(BrowserError::Timeout { call: "state", .. }) => {}
        other => panic!("a stalled page must time out, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        driver.state().await.expect("answers after the stall"),
        "CONNECTED"
    );
    driver.close().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn an_outage_is_transient_and_queued_messages_arrive_afterwards() {
    let env = Env::new().await;
    let (driver, mut events) = Driver::launch(&env.options("outage"))
        .await
        .expect("launch");
    let qr = next_qr(&mut events).await;
    env.scan(&qr).await;
    ready(&mut events).await;
    let (status, body) = env.post("/outage", json!({ "ms": 1500 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        wait_for(&mut events, WAIT, "state change", |e| matches!(
            e,
            DriverEvent::StateChanged(_)
        ))
        .await,
        DriverEvent::StateChanged("OPENING".into())
    );
    let (status, posted) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "during the outage" }),
        )
        .await;
    assert_eq!(
        (status, posted["queued"].as_u64()),
        (200, Some(1)),
        "{posted}"
    );
    let back = wait_for(&mut events, WAIT, "reconnected or disconnected", |e| {
        matches!(e, DriverEvent::StateChanged(s) if s == "CONNECTED")
            || matches!(e, DriverEvent::Disconnected(_))
    })
    .await;
    assert_eq!(back, DriverEvent::StateChanged("CONNECTED".into()));
    let DriverEvent::Message(message) = wait_for(&mut events, WAIT, "queued message", |e| {
        matches!(e, DriverEvent::Message(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(message.body, "during the outage");
    driver.close().await;
    env.assert_no_chromium_left().await;
}
