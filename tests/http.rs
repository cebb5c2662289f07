//! The user routes of SPEC §5 over real HTTP, against real Chromium and the simulator.

mod common;

use std::time::Duration;

use common::server::{Server, config};
use common::*;
use serde_json::{Value, json};

async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    user: &str,
    body: Option<String>,
) -> (u16, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{}{path}", server.addr))
        .bearer_auth(server.token(user));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

#[tokio::test]
async fn accounts_qr_png_messages_and_delete_over_http() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/api/whatsapp/accounts",
        "user-a",
        Some(json!({"name": "Clínica"}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let created = json_of(&body);
    let session_id = created["sessionId"].as_str().unwrap().to_owned();
    let account_id = created["accountId"].as_str().unwrap().to_owned();

    // qr.png once the page shows a QR: the PNG encodes the simulator's string.
    let qr_path = format!("/api/whatsapp/sessions/{session_id}/qr.png");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let png = loop {
        let (status, body) = call(&server, reqwest::Method::GET, &qr_path, "user-a", None).await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 404);
        assert!(tokio::time::Instant::now() < deadline, "a QR within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let decoded = prepared.detect_grids()[0].decode().unwrap().1;
    assert_eq!(decoded, env.shown_qr().await);
    let (status, _) = call(&server, reqwest::Method::GET, &qr_path, "user-b", None).await;
    assert_eq!(status, 404, "another user's QR is not found");

    env.scan(&decoded).await;
    let messages = format!("/api/whatsapp/sessions/{session_id}/messages");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let sent = loop {
        let (status, body) = call(
            &server,
            reqwest::Method::POST,
            &messages,
            "user-a",
            Some(json!({"to": "34699000111", "body": "cita confirmada"}).to_string()),
        )
        .await;
        if status == 201 {
            break json_of(&body);
        }
        assert_eq!(
            status,
            409,
            "NOT_READY until ready: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(tokio::time::Instant::now() < deadline, "ready within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        sent["id"]
            .as_str()
            .unwrap()
            .starts_with("true_34699000111@c.us_")
    );
    assert!(
        env.sent()
            .await
            .iter()
            .any(|m| m["body"] == "cita confirmada")
    );

    // Bad bodies change nothing.
    for (body, code) in [
        ("not json".to_string(), 400),
        (json!({"to": "x", "body": "y"}).to_string(), 400),
        (
            json!({"to": "34699000111", "body": "x".repeat(70 * 1024)}).to_string(),
            413,
        ),
    ] {
        let (status, reply) = call(
            &server,
            reqwest::Method::POST,
            &messages,
            "user-a",
            Some(body),
        )
        .await;
        assert_eq!(status, code, "{}", String::from_utf8_lossy(&reply));
        assert!(json_of(&reply)["error"].is_string());
    }
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        &messages,
        "user-b",
        Some(json!({"to": "34699000111", "body": "x"}).to_string()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/whatsapp/accounts/{account_id}"),
        "user-b",
        None,
    )
    .await;
    assert_eq!(status, 404, "another user's account cannot be deleted");

    // The stored row follows the events by a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = call(
            &server,
            reqwest::Method::GET,
            "/api/whatsapp/accounts",
            "user-a",
            None,
        )
        .await;
        assert_eq!(status, 200);
        if json_of(&body)["accounts"][0]["status"] == "ready" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the row shows ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/whatsapp/accounts/{account_id}"),
        "user-a",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/whatsapp/accounts",
        "user-a",
        None,
    )
    .await;
    assert_eq!(json_of(&body)["accounts"], json!([]));
    assert!(
        env.devices().await.iter().all(|d| d["linked"] == false),
        "deleting logs out"
    );
    assert!(
        !env.dir
            .path()
            .join(format!("session-{session_id}"))
            .exists()
    );
    server.stop().await;
    env.assert_no_chromium_left().await;
}
