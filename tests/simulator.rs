//! The simulator seen from outside: its page over HTTPS, and its control API on bad input.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_page_is_served_over_tls_for_web_whatsapp_com() {
    let env = Env::new().await;
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("web.whatsapp.com", env.sim.addr)
        .build()
        .unwrap();
    let page = client
        .get(format!("https://web.whatsapp.com:{}/", env.sim.addr.port()))
        .send()
        .await
        .expect("https answers");
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("window.Debug = { VERSION }"),
        "the page boots WhatsApp Web's globals"
    );
    assert!(html.contains("window.require = function"));
}

#[tokio::test]
async fn malformed_control_requests_get_400_with_a_json_error_and_change_nothing() {
    let env = Env::new().await;
    let messages = format!("/phones/{PHONE}/messages");
    let state = format!("/phones/{PHONE}/state");
    let stall = format!("/phones/{PHONE}/stall");
    let cases: Vec<(&str, String, u16)> = vec![
        ("/scan", "not json".into(), 400),
        ("/scan", "[1, 2]".into(), 400),
        ("/scan", json!({ "phone": PHONE }).to_string(), 400),
        ("/scan", json!({ "qr": 5, "phone": PHONE }).to_string(), 400),
        (
            "/scan",
            json!({ "qr": "2@x", "phone": "abc" }).to_string(),
            400,
        ),
        (
            "/scan",
            json!({ "qr": "2@x", "phone": PHONE, "extra": 1 }).to_string(),
            400,
        ),
        (
            "/scan",
            json!({ "qr": "2@unknown", "phone": PHONE }).to_string(),
            404,
        ),
        (
            "/pairing-code",
            json!({ "code": "ABCDEFGH" }).to_string(),
            400,
        ),
        (
            "/pairing-code",
            json!({ "code": "ABCDEFGH", "phone": PHONE }).to_string(),
            404,
        ),
        (
            "/phones/123/messages",
            json!({ "from": "34699000111", "body": "x" }).to_string(),
            400,
        ),
        (&messages, json!({ "from": "34699000111" }).to_string(), 400),
        (
            &messages,
            json!({ "from": "x", "body": "x" }).to_string(),
            400,
        ),
        (
            &messages,
            json!({ "from": "34699000111", "body": "x" }).to_string(),
            404,
        ),
        (&state, json!({ "state": "EXPLODE" }).to_string(), 400),
        (&state, json!({ "state": 1 }).to_string(), 400),
        (&stall, json!({ "ms": -5 }).to_string(), 400),
        (&stall, json!({ "ms": 0 }).to_string(), 400),
        (
            "/devices/nope/state",
            json!({ "state": "CONFLICT" }).to_string(),
            404,
        ),
        ("/outage", json!({ "ms": "soon" }).to_string(), 400),
        ("/outage", json!({ "ms": 99_999_999 }).to_string(), 400),
        ("/nowhere", "{}".into(), 404),
        ("/scan", "x".repeat(70 * 1024), 413),
    ];
    for (path, body, status) in cases {
        let (got, reply) = env.post_raw(path, body.clone()).await;
        assert_eq!(
            got,
            status,
            "POST {path} {}: {reply}",
            &body[..body.len().min(60)]
        );
        assert!(
            reply["error"].is_string(),
            "POST {path}: a JSON error: {reply}"
        );
        assert!(
            reply["message"].is_string(),
            "POST {path}: a message: {reply}"
        );
    }
    let (status, reply) = env.get("/scan").await;
    assert_eq!(status, 405, "{reply}");
    let (status, reply) = env.get("/phones/123/sent").await;
    assert_eq!(status, 400, "{reply}");

    // Nothing was created, and the simulator still serves.
    assert!(env.devices().await.is_empty());
    let (status, _) = env.get(&format!("/phones/{PHONE}/sent")).await;
    assert_eq!(status, 404, "no phone was created by bad requests");
}
