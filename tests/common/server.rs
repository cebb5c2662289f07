//! A real wa-supervisor server in-process (actors, SQLite, warp) against the simulator, and a
//! real WebSocket client.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wa_supervisor::auth::{Jwt, jwt_secret};
use wa_supervisor::config::Config;
use wa_supervisor::ids::UserId;
use wa_supervisor::server::{App, AppParts};
use wa_supervisor::store::Store;
use wa_supervisor::store::sqlite::SqliteStore;

use super::Env;

pub struct Server {
    pub app: App,
    pub addr: std::net::SocketAddr,
    pub jwt: Jwt,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts a server whose data lives in `env.dir` (so a second start finds the first's data).
    pub async fn start(env: &Env, config: Config) -> Server {
        Server::start_with(env, config, false, 0, None).await
    }

    /// Same, with accounts in the given store instead of `env.dir`'s SQLite file.
    pub async fn start_with_store(env: &Env, config: Config, store: Arc<dyn Store>) -> Server {
        Server::start_with(env, config, false, 0, Some(store)).await
    }

    /// Demo mode (`serve --sim`): the simulator's control API on the same port, a demo user.
    pub async fn start_demo(env: &Env, config: Config, port: u16) -> Server {
        Server::start_with(env, config, true, port, None).await
    }

    async fn start_with(
        env: &Env,
        config: Config,
        demo: bool,
        port: u16,
        store: Option<Arc<dyn Store>>,
    ) -> Server {
        let data = env.dir.path();
        let store = match store {
            Some(store) => store,
            None => Arc::new(
                SqliteStore::open(&data.join("wa-supervisor.db"))
                    .await
                    .unwrap(),
            ),
        };
        let secret = jwt_secret(None, data).unwrap();
        let app = App::start(AppParts {
            config,
            store,
            jwt_secret: secret.clone(),
            executable: wa_supervisor::browser::find_chromium(None).unwrap(),
            sessions_path: data.to_owned(),
            data_dir: data.to_owned(),
            simulator_args: env.sim.chromium_args(),
            demo,
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let extra = demo.then(|| {
            use warp::Filter;
            env.sim.simulator.control_routes().boxed()
        });
        let task = tokio::spawn(wa_supervisor::server::run(
            listener,
            app.clone(),
            extra,
            std::future::pending(),
        ));
        Server {
            app,
            addr,
            jwt: Jwt::new(&secret),
            task,
        }
    }

    pub fn token(&self, user: &str) -> String {
        self.jwt.mint(
            &UserId::new(user).unwrap(),
            Some(&format!("{user}@example.com")),
            Duration::from_secs(3600),
        )
    }

    pub async fn connect(&self, user: &str) -> Client {
        let url = format!("ws://{}/ws?access_token={}", self.addr, self.token(user));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client {
            ws,
            seen: Vec::new(),
        }
    }

    /// Closes every browser (statuses kept) and stops serving.
    pub async fn stop(self) {
        self.app.shutdown().await;
        self.task.abort();
    }
}

/// Test configuration: quick relaunches, real timing otherwise.
pub fn config() -> Config {
    let mut config = Config::default();
    config.reconnect.base_delay = Duration::from_millis(300);
    config.reconnect.max_delay = Duration::from_secs(2);
    config
}

pub struct Client {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Every event received so far, in order.
    pub seen: Vec<Value>,
}

impl Client {
    pub async fn send(&mut self, event: &str, data: Value, reference: &str) {
        let frame = json!({ "event": event, "data": data, "ref": reference });
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next frame named `event` (others are kept in `seen`); fails after `within`.
    pub async fn expect(&mut self, event: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            match next {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    self.seen.push(frame.clone());
                    if frame["event"] == event {
                        return frame;
                    }
                }
                Ok(Some(Ok(Message::Close(close)))) => {
                    panic!("closed while waiting for {event}: {close:?}")
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("connection ended while waiting for {event}: {other:?}"),
                Err(_) => panic!("no {event} within {within:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Frames that arrive within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<Value> {
        let mut got = Vec::new();
        while let Ok(Some(Ok(message))) = tokio::time::timeout(within, self.ws.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap();
                self.seen.push(frame.clone());
                got.push(frame);
            }
        }
        got
    }
}

/// Creates a session over `client`, scans its first QR through the simulator, and waits for it
/// to be ready; returns its session id.
pub async fn ready_session(env: &Env, client: &mut Client, reference: &str) -> String {
    let wait = Duration::from_secs(40);
    client.send("whatsapp:create", json!({}), reference).await;
    let created = client.expect("whatsapp:created", wait).await;
    let session_id = created["data"]["sessionId"].as_str().unwrap().to_owned();
    let qr = client.expect("whatsapp:qr", wait).await;
    env.scan(&decode_qr(qr["data"]["qr"].as_str().unwrap()))
        .await;
    loop {
        let ready = client.expect("whatsapp:ready", wait).await;
        if ready["data"]["sessionId"] == session_id.as_str() {
            return session_id;
        }
    }
}

/// The string a `data:image/png;base64,…` QR encodes.
pub fn decode_qr(data_url: &str) -> String {
    use base64::Engine;
    let b64 = data_url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}
