//! The whole product over its WebSocket: real server, actors, SQLite, Chromium, simulator.

mod common;

use std::time::Duration;

use common::server::{Server, config, decode_qr, ready_session};
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test]
async fn a_user_links_a_number_chats_and_disconnects_while_another_sees_nothing() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let mut a = server.connect("user-a").await;
    let mut b = server.connect("user-b").await;

    a.send("whatsapp:create", json!({ "name": "Tienda" }), "c1")
        .await;
    let created = a.expect("whatsapp:created", WAIT).await;
    assert_eq!(created["ref"], "c1");
    let session_id = created["data"]["sessionId"].as_str().unwrap().to_owned();
    let account_id = created["data"]["accountId"].as_str().unwrap().to_owned();

    let qr = a.expect("whatsapp:qr", WAIT).await;
    assert_eq!(qr["data"]["sessionId"], session_id.as_str());
    assert_eq!(qr["data"]["attempt"], 1);
    let shown = env.shown_qr().await;
    assert_eq!(
        decode_qr(qr["data"]["qr"].as_str().unwrap()),
        shown,
        "the PNG encodes the simulator's QR"
    );

    env.scan(&shown).await;
    a.expect("whatsapp:authenticated", WAIT).await;
    let ready = a.expect("whatsapp:ready", WAIT).await;
    assert_eq!(ready["data"]["phoneNumber"], PHONE);
    assert_eq!(ready["data"]["profileName"], PUSHNAME);

    let (status, _) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "¿abren hoy?" }),
        )
        .await;
    assert_eq!(status, 200);
    let message = a.expect("whatsapp:message", WAIT).await;
    assert_eq!(message["data"]["from"], "34699000111@c.us");
    assert_eq!(message["data"]["body"], "¿abren hoy?");

    a.send(
        "whatsapp:send",
        json!({ "sessionId": session_id, "to": "34699000111", "body": "sí, hasta las 20" }),
        "s1",
    )
    .await;
    let sent = a.expect("whatsapp:sent", WAIT).await;
    assert_eq!(sent["ref"], "s1");
    assert_eq!(sent["data"]["to"], "34699000111@c.us");
    let listed = env.sent().await;
    assert!(
        listed.iter().any(|m| m["body"] == "sí, hasta las 20"),
        "{listed:?}"
    );

    // B sees none of it, and A's ids are NOT_FOUND for B.
    b.send(
        "whatsapp:send",
        json!({ "sessionId": session_id, "to": "34699000111", "body": "x" }),
        "b1",
    )
    .await;
    let refused = b.expect("whatsapp:error", WAIT).await;
    assert_eq!(
        (refused["data"]["error"].as_str(), refused["ref"].as_str()),
        (Some("NOT_FOUND"), Some("b1"))
    );
    b.send("whatsapp:destroy", json!({ "sessionId": session_id }), "b2")
        .await;
    assert_eq!(
        b.expect("whatsapp:error", WAIT).await["data"]["error"],
        "NOT_FOUND"
    );
    b.send(
        "whatsapp:create",
        json!({ "accountId": account_id, "sessionId": session_id }),
        "b3",
    )
    .await;
    assert_eq!(
        b.expect("whatsapp:error", WAIT).await["data"]["error"],
        "NOT_FOUND"
    );
    b.send("whatsapp:status", json!({}), "b4").await;
    let status = b.expect("whatsapp:status", WAIT).await;
    assert_eq!(status["data"]["accounts"], json!([]));
    assert!(
        b.seen.iter().all(|f| f["ref"].is_string()),
        "B got only replies to its own frames: {:#?}",
        b.seen
    );

    let mine = stored(&mut a, "ready").await;
    assert_eq!(mine["status"], "ready");
    assert_eq!(mine["phone_number"], PHONE);
    assert_eq!(mine["notify_email"], "user-a@example.com");

    a.send("whatsapp:destroy", json!({ "sessionId": session_id }), "d1")
        .await;
    let gone = a.expect("whatsapp:disconnected", WAIT).await;
    assert_eq!(gone["data"]["reason"], "manual");
    assert_eq!(gone["data"]["requiresReconnect"], true);
    assert!(
        a.seen
            .iter()
            .any(|f| f["event"] == "whatsapp:state" && f["data"]["status"] == "stopped")
    );
    assert!(
        env.devices().await.iter().all(|d| d["linked"] == false),
        "destroy logs the device out"
    );

    server.stop().await;
    env.assert_no_chromium_left().await;
}

/// The first account's row as `whatsapp:status` shows it once its status is `status`: store
/// writes trail the events by a moment (they are applied in order, off the session's path).
async fn stored(client: &mut common::server::Client, status: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        client.send("whatsapp:status", json!({}), "st").await;
        let reply = client.expect("whatsapp:status", WAIT).await;
        let row = reply["data"]["accounts"][0].clone();
        if row["status"] == status || tokio::time::Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_qr_rotation_reaches_the_owner_until_qr_timeout() {
    let env = Env::with_timing(Duration::from_millis(1500), Duration::from_millis(1500)).await;
    let mut config = config();
    config.whatsapp.qr_max_retries = 3;
    let server = Server::start(&env, config).await;
    let mut a = server.connect("user-a").await;
    a.send("whatsapp:create", json!({}), "c").await;
    let mut seen = Vec::new();
    for attempt in 1..=3 {
        let qr = a.expect("whatsapp:qr", WAIT).await;
        assert_eq!(qr["data"]["attempt"], attempt);
        let text = decode_qr(qr["data"]["qr"].as_str().unwrap());
        assert!(!seen.contains(&text), "each rotation is a new code");
        seen.push(text);
    }
    let error = a.expect("whatsapp:error", WAIT).await;
    assert_eq!(error["data"]["error"], "QR_TIMEOUT");
    let gone = a.expect("whatsapp:disconnected", WAIT).await;
    assert_eq!(gone["data"]["requiresReconnect"], true);
    assert!(
        a.seen
            .iter()
            .any(|f| f["event"] == "whatsapp:state" && f["data"]["status"] == "error")
    );
    let row = stored(&mut a, "error").await;
    assert_eq!(row["status"], "error");
    assert_eq!(row["error_message"], "QR_TIMEOUT");
    env.assert_no_chromium_left().await;
    server.stop().await;
}

#[tokio::test]
async fn an_outage_reconnects_without_a_qr_and_delivers_what_was_sent_meanwhile() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let mut a = server.connect("user-a").await;
    let session_id = ready_session(&env, &mut a, "c").await;
    let (status, _) = env.post("/outage", json!({ "ms": 2000 })).await;
    assert_eq!(status, 200);
    let reconnecting = a.expect("whatsapp:state", WAIT).await;
    assert_eq!(reconnecting["data"]["status"], "reconnecting");
    let (status, posted) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "while you were away" }),
        )
        .await;
    assert_eq!((status, posted["queued"].as_u64()), (200, Some(1)));
    let back = a.expect("whatsapp:state", WAIT).await;
    assert_eq!(back["data"]["status"], "ready");
    let message = a.expect("whatsapp:message", WAIT).await;
    assert_eq!(message["data"]["body"], "while you were away");
    assert_eq!(message["data"]["sessionId"], session_id.as_str());
    assert!(
        a.seen
            .iter()
            .filter(|f| f["event"] == "whatsapp:qr")
            .count()
            == 1,
        "no new QR"
    );
    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn conflict_and_logout_end_in_error_with_requires_reconnect() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let mut a = server.connect("user-a").await;
    for (reference, state) in [("c1", "CONFLICT"), ("c2", "LOGOUT")] {
        let session_id = ready_session(&env, &mut a, reference).await;
        let (status, body) = env
            .post(&format!("/phones/{PHONE}/state"), json!({ "state": state }))
            .await;
        assert_eq!(status, 200, "{body}");
        let gone = a.expect("whatsapp:disconnected", WAIT).await;
        assert_eq!(gone["data"]["sessionId"], session_id.as_str());
        assert_eq!(gone["data"]["reason"], state);
        assert_eq!(gone["data"]["requiresReconnect"], true);
        let errored = a
            .seen
            .iter()
            .rev()
            .find(|f| f["event"] == "whatsapp:state")
            .unwrap();
        assert_eq!(errored["data"]["status"], "error");
        if state == "LOGOUT" {
            let profile = env.dir.path().join(format!("session-{session_id}"));
            assert!(
                !profile.exists(),
                "the credentials are gone, so is the profile"
            );
        }
    }
    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn a_restarted_server_restores_every_ready_session_without_a_qr() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let mut a = server.connect("user-a").await;
    let mut sessions = Vec::new();
    for i in 0..3 {
        sessions.push(ready_session(&env, &mut a, &format!("c{i}")).await);
    }
    server.stop().await;
    env.assert_no_chromium_left().await;

    let server = Server::start(&env, config()).await;
    let mut a = server.connect("user-a").await;
    let started = std::time::Instant::now();
    let restored = server.app.restore().await;
    assert_eq!(restored, 3);
    let mut ready = Vec::new();
    while ready.len() < 3 {
        let frame = a.expect("whatsapp:ready", WAIT).await;
        ready.push(frame["data"]["sessionId"].as_str().unwrap().to_owned());
    }
    eprintln!("restored 3 sessions in {:?}", started.elapsed());
    ready.sort();
    sessions.sort();
    assert_eq!(ready, sessions);
    assert!(
        a.seen.iter().all(|f| f["event"] != "whatsapp:qr"),
        "restored without a QR"
    );
    assert_eq!(
        env.devices()
            .await
            .iter()
            .map(|d| d["conflicts"].as_u64().unwrap())
            .sum::<u64>(),
        0
    );
    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn a_panicking_session_actor_is_restarted_within_its_budget_then_parked() {
    let env = Env::new().await;
    let mut config = config();
    config.supervisor.max_restarts = 1;
    let server = Server::start(&env, config).await;
    let mut a = server.connect("user-a").await;
    let session_id = ready_session(&env, &mut a, "c").await;
    let lookup = |server: &Server, session: &str| {
        let gateway = server.app.gateway.clone();
        let session_id = wa_supervisor::ids::SessionId::new(session).unwrap();
        async move {
            gateway
                .call(
                    |reply| wa_supervisor::gateway::GatewayMsg::Lookup {
                        session_id,
                        user: wa_supervisor::ids::UserId::new("user-a").unwrap(),
                        reply,
                    },
                    Some(Duration::from_secs(5)),
                )
                .await
                .unwrap()
                .unwrap()
                .expect("the session actor is routed")
        }
    };
    let first = lookup(&server, &session_id).await;
    first
        .cast(wa_supervisor::session::actor::SessionMsg::Panic)
        .unwrap();
    // Restarted from the same profile: ready again, no QR.
    let ready = a.expect("whatsapp:ready", WAIT).await;
    assert_eq!(ready["data"]["sessionId"], session_id.as_str());
    assert_eq!(
        a.seen
            .iter()
            .filter(|f| f["event"] == "whatsapp:qr")
            .count(),
        1
    );
    let second = lookup(&server, &session_id).await;
    assert_ne!(
        first.get_id(),
        second.get_id(),
        "the gateway routes to the new actor"
    );

    second
        .cast(wa_supervisor::session::actor::SessionMsg::Panic)
        .unwrap();
    let parked = a.expect("whatsapp:disconnected", WAIT).await;
    assert_eq!(parked["data"]["reason"], "restart budget exhausted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        server.app.snapshots().await.is_empty(),
        "no further restarts"
    );
    env.assert_no_chromium_left().await;
    assert_eq!(stored(&mut a, "error").await["status"], "error");
    server.stop().await;
}

#[tokio::test]
async fn a_killed_chromium_or_a_stalled_page_recovers_by_itself_without_a_qr() {
    let env = Env::new().await;
    let mut config = config();
    config.keepalive.heartbeat_interval = Duration::from_millis(500);
    config.keepalive.call_timeout = Duration::from_secs(1);
    config.keepalive.watchdog_timeout = Duration::from_secs(3);
    let server = Server::start(&env, config).await;
    let mut a = server.connect("user-a").await;
    let session_id = ready_session(&env, &mut a, "c").await;

    // Chromium killed: relaunched from the profile.
    let pid = server.app.snapshots().await[0]
        .chromium_pid
        .expect("a chromium pid");
    // SAFETY: SIGKILL to the Chromium this test's server started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let state = a.expect("whatsapp:state", WAIT).await;
    assert_eq!(state["data"]["status"], "reconnecting");
    let (status, posted) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "sent while chromium was down" }),
        )
        .await;
    assert_eq!(status, 200, "{posted}");
    let ready = a.expect("whatsapp:ready", WAIT).await;
    assert_eq!(ready["data"]["sessionId"], session_id.as_str());
    let message = a.expect("whatsapp:message", WAIT).await;
    assert_eq!(message["data"]["body"], "sent while chromium was down");
    let new_pid = server.app.snapshots().await[0].chromium_pid.unwrap();
    assert_ne!(pid, new_pid);

    // The page stops answering: the watchdog notices and relaunches.
    let (status, _) = env
        .post(&format!("/phones/{PHONE}/stall"), json!({ "ms": 4000 }))
        .await;
    assert_eq!(status, 200);
    let state = a.expect("whatsapp:state", WAIT).await;
    assert_eq!(state["data"]["status"], "reconnecting");
    a.expect("whatsapp:ready", WAIT).await;
    assert_eq!(
        a.seen
            .iter()
            .filter(|f| f["event"] == "whatsapp:qr")
            .count(),
        1,
        "never a new QR"
    );
    assert_eq!(server.app.snapshots().await[0].reconnects, 2);
    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn four_of_ten_chromiums_killed_at_once_all_come_back_ready() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let mut a = server.connect("user-a").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(ready_session(&env, &mut a, &format!("c{i}")).await);
    }
    let snapshots = server.app.snapshots().await;
    let victims: Vec<u32> = snapshots
        .iter()
        .take(4)
        .map(|s| s.chromium_pid.unwrap())
        .collect();
    for pid in &victims {
        // SAFETY: SIGKILL to Chromium processes this test's server started.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let snapshots = server.app.snapshots().await;
        let ready = snapshots
            .iter()
            .filter(|s| s.status.as_str() == "ready")
            .count();
        let relaunched = snapshots
            .iter()
            .all(|s| !victims.contains(&s.chromium_pid.unwrap_or(0)));
        if ready == 10 && relaunched {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "all 10 ready again within 90 s: {snapshots:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        a.seen
            .iter()
            .filter(|f| f["event"] == "whatsapp:qr")
            .count(),
        10,
        "no new QR"
    );
    server.stop().await;
    env.assert_no_chromium_left().await;
}
