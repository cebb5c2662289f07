//! Bad input over the real WebSocket and HTTP: a clear error, nothing changed, nobody else hurt.

mod common;

use std::time::Duration;

use base64::Engine;
use common::server::{Server, config};
use common::*;
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

async fn http_status(server: &Server, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(format!("http://{}{path}", server.addr));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn tokens_are_checked_before_the_upgrade() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "user-a", "exp": 9_999_999_999u64}))
    );
    let other = wa_supervisor::auth::Jwt::new("another secret").mint(
        &wa_supervisor::ids::UserId::new("user-a").unwrap(),
        None,
        Duration::from_secs(60),
    );
    for token in ["", "garbage", none.as_str(), other.as_str()] {
        let url = format!("ws://{}/ws?access_token={token}", server.addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "token {token:?}");
                let body: serde_json::Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["error"], "UNAUTHORIZED");
            }
            other => panic!("token {token:?} must be refused with 401, got {other:?}"),
        }
        let (status, body) = http_status(&server, "/api/whatsapp/accounts", Some(token)).await;
        assert_eq!(status, 401, "{body}");
    }
    // A bearer header works for both.
    let token = server.token("user-a");
    let (status, body) = http_status(&server, "/api/whatsapp/accounts", Some(&token)).await;
    assert_eq!((status, body["accounts"].clone()), (200, json!([])));
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_and_others_carry_on() {
    let env = Env::new().await;
    let mut config = config();
    config.sessions.max_per_user = 1;
    let server = Server::start(&env, config).await;
    let mut a = server.connect("user-a").await;
    let mut other = server.connect("user-b").await;

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "BAD_REQUEST"),
        ("[1,2,3]".into(), "BAD_REQUEST"),
        (json!({"event": "whatsapp:explode", "ref": "r"}).to_string(), "UNKNOWN_EVENT"),
        (json!({"event": "whatsapp:send", "data": {"sessionId": "s1"}}).to_string(), "BAD_REQUEST"),
        (json!({"event": "whatsapp:send", "data": {"sessionId": 5, "to": "1234567", "body": "x"}}).to_string(), "BAD_REQUEST"),
        (json!({"event": "whatsapp:destroy", "data": {"sessionId": "../../etc/passwd"}}).to_string(), "BAD_REQUEST"),
        (json!({"event": "whatsapp:destroy", "data": {"sessionId": "nobody-has-this"}}).to_string(), "NOT_FOUND"),
        (json!({"event": "ping", "data": {"x": "a".repeat(70 * 1024)}}).to_string(), "FRAME_TOO_LARGE"),
    ];
    for (frame, code) in cases {
        a.send_raw(frame.clone()).await;
        let error = a.expect("whatsapp:error", WAIT).await;
        assert_eq!(
            error["data"]["error"],
            code,
            "{}",
            &frame[..frame.len().min(80)]
        );
        assert!(
            error["data"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // The connection is still usable, and so is everybody else's.
    a.send("ping", json!({}), "p").await;
    assert_eq!(a.expect("pong", WAIT).await["ref"], "p");
    other.send("ping", json!({}), "q").await;
    assert_eq!(other.expect("pong", WAIT).await["ref"], "q");

    // More sessions than sessions.max_per_user.
    a.send("whatsapp:create", json!({}), "c1").await;
    a.expect("whatsapp:created", WAIT).await;
    a.send("whatsapp:create", json!({}), "c2").await;
    let limit = a.expect("whatsapp:error", WAIT).await;
    assert_eq!(
        (limit["data"]["error"].as_str(), limit["ref"].as_str()),
        (Some("LIMIT_REACHED"), Some("c2"))
    );
    a.send("whatsapp:status", json!({}), "s").await;
    assert_eq!(
        a.expect("whatsapp:status", WAIT).await["data"]["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_without_touching_other_connections() {
    let env = Env::new().await;
    let server = Server::start(&env, config()).await;
    let mut flooder = server.connect("user-a").await;
    let mut calm = server.connect("user-a").await;
    for i in 0..200 {
        flooder.send("ping", json!({}), &format!("f{i}")).await;
    }
    let mut limited = 0;
    let mut closed = false;
    while let Ok(Some(message)) = tokio::time::timeout(WAIT, flooder.ws.next()).await {
        match message {
            Ok(Message::Text(text)) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                if frame["data"]["error"] == "RATE_LIMITED" {
                    limited += 1;
                }
            }
            Ok(Message::Close(close)) => {
                assert_eq!(u16::from(close.unwrap().code), 1008);
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(limited > 0, "the flood got RATE_LIMITED replies");
    assert!(
        closed,
        "a connection that keeps flooding is closed with a code and reason"
    );
    calm.send("ping", json!({}), "calm").await;
    assert_eq!(calm.expect("pong", WAIT).await["ref"], "calm");
    server.stop().await;
}

#[tokio::test]
async fn expired_tokens_and_foreign_origins_are_refused() {
    let env = Env::new().await;
    let mut config = config();
    config.server.cors_origins = vec!["https://dash.example".into()];
    let server = Server::start(&env, config).await;
    let secret = wa_supervisor::auth::jwt_secret(None, env.dir.path()).unwrap();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "user-a", "exp": 1_600_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    let request = |token: &str, origin: Option<&str>| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/ws", server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        request
    };
    let status_of = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => 101,
        Err(other) => panic!("{other}"),
    };
    let good = server.token("user-a");
    let cases = [
        (expired.as_str(), Some("https://dash.example"), 401),
        (good.as_str(), None, 403),
        (good.as_str(), Some("https://evil.example"), 403),
        (good.as_str(), Some("https://dash.example"), 101),
    ];
    for (token, origin, expected) in cases {
        let got = status_of(
            tokio_tungstenite::connect_async(request(token, origin))
                .await
                .map(|_| ()),
        );
        assert_eq!(got, expected, "origin {origin:?}");
    }
    server.stop().await;
}
