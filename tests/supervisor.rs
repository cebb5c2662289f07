//! The whole product over its WebSocket: real server, actors, SQLite, Chromium, simulator.

mod common;

use std::time::Duration;

use common::server::{Server, config, decode_qr};
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

    a.send("whatsapp:status", json!({}), "st").await;
    let mine = a.expect("whatsapp:status", WAIT).await;
    assert_eq!(mine["data"]["accounts"][0]["status"], "ready");
    assert_eq!(mine["data"]["accounts"][0]["phone_number"], PHONE);
    assert_eq!(
        mine["data"]["accounts"][0]["notify_email"],
        "user-a@example.com"
    );

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
