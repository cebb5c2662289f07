//! The WhatsApp Web simulator: a local stand-in for `https://web.whatsapp.com` and for the phones.
//!
//! One port serves three things: the page (HTTPS with a self-signed certificate for
//! `web.whatsapp.com`, generated at start), the page's WebSocket (`/ws/chat`), and the control
//! API (`/__sim/...`). A connection that opens with a TLS handshake gets TLS; any other gets plain
//! HTTP, so `curl http://127.0.0.1:<port>/__sim/devices` works as well as the browser does.
//! Chromium reaches the page through [`SimHandle::chromium_args`].

mod control;
pub mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use warp::Filter;
use warp::filters::ws::{Message, WebSocket};
use warp::reply::Response;

use state::{ConnId, FromPage};
pub use state::{QrTiming, SimState};

/// The page WhatsApp Web would serve, with the in-page surface of WA-CONTRACT.md.
const PAGE_HTML: &str = include_str!("page.html");

/// The host name the page is served as.
pub const WEB_HOST: &str = "web.whatsapp.com";

/// Shared simulator state; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
    timing: QrTiming,
    shutdown: watch::Receiver<bool>,
}

/// A running simulator. Dropping it stops the server and closes every page connection.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub simulator: Simulator,
    shutdown: watch::Sender<bool>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl SimHandle {
    /// The switches that point a Chromium at this simulator (simulator mode only).
    pub fn chromium_args(&self) -> Vec<String> {
        chromium_args(self.addr)
    }

    /// Base URL of the control API over plain HTTP, e.g. `http://127.0.0.1:4321/__sim`.
    pub fn control_url(&self) -> String {
        format!("http://{}/__sim", self.addr)
    }
}

/// The switches that point a Chromium at a simulator listening on `addr`.
pub fn chromium_args(addr: SocketAddr) -> Vec<String> {
    vec![
        format!("--host-resolver-rules=MAP {WEB_HOST} {addr}"),
        "--ignore-certificate-errors".to_owned(),
    ]
}

impl Simulator {
    /// Binds `listen` and serves the simulator until the handle is dropped.
    pub async fn start(listen: SocketAddr, timing: QrTiming) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let simulator = Simulator {
            state: Arc::new(Mutex::new(SimState::default())),
            timing,
            shutdown: shutdown_rx,
        };
        let tls = TlsAcceptor::from(Arc::new(tls_config()?));
        tokio::spawn(accept_loop(listener, tls, simulator.clone()));
        tracing::info!(%addr, "simulator listening");
        Ok(SimHandle {
            addr,
            simulator,
            shutdown: shutdown_tx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock would be a bug in plain bookkeeping code; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The control API alone (`/__sim/...`), for mounting on another server.
    pub fn control_routes(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
    {
        control::routes(self.clone())
    }

    /// Everything the simulator serves: page, page socket and control API.
    fn routes(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
    {
        let page = warp::path::end()
            .and(warp::get())
            .map(|| {
                warp::http::Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .header("cache-control", "no-store")
                    .body(PAGE_HTML.into())
                    .expect("static response")
            })
            .boxed();
        let sim = self.clone();
        let socket = warp::path!("ws" / "chat")
            .and(warp::ws())
            .map(move |ws: warp::ws::Ws| {
                let sim = sim.clone();
                let reply = ws
                    .max_message_size(256 * 1024)
                    .on_upgrade(move |socket| sim.page_socket(socket));
                warp::reply::Reply::into_response(reply)
            })
            .boxed();
        page.or(socket)
            .unify()
            .or(control::routes_without_recover(self.clone()))
            .unify()
            .recover(control::rejection)
            .unify()
    }

    /// One page's WebSocket: the page's `Socket`, as WhatsApp's servers see it.
    async fn page_socket(self, socket: WebSocket) {
        let (tx, mut outbound) = mpsc::unbounded_channel();
        let (mut sink, mut inbound) = socket.split();
        let Some(conn) = self.lock().open(tx) else {
            let _ = sink
                .send(Message::close_with(1013u16, "service unavailable"))
                .await;
            return;
        };
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                frame = outbound.recv() => {
                    let Some(frame) = frame else { break };
                    let text = serde_json::to_string(&frame).expect("frames serialize");
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                message = inbound.next() => {
                    let Some(Ok(message)) = message else { break };
                    if message.is_close() {
                        break;
                    }
                    let Ok(text) = message.to_str() else { continue };
                    match serde_json::from_str::<FromPage>(text) {
                        Ok(frame) => {
                            let epoch = self.lock().handle(conn, frame);
                            if let Some(epoch) = epoch {
                                tokio::spawn(self.clone().rotate_qr(conn, epoch));
                            }
                        }
                        Err(error) => tracing::debug!(%error, "simulator: unreadable page frame"),
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        self.lock().close(conn);
        let _ = sink.close().await;
    }

    /// Rotates a connection's QR ref on WhatsApp's schedule until it is linked or gone.
    async fn rotate_qr(self, conn: ConnId, epoch: u64) {
        let mut wait = self.timing.first;
        loop {
            tokio::time::sleep(wait).await;
            if !self.lock().tick(conn, epoch) {
                return;
            }
            wait = self.timing.rotate;
        }
    }
}

async fn accept_loop(listener: TcpListener, tls: TlsAcceptor, simulator: Simulator) {
    let mut shutdown = simulator.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "simulator: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let tls = tls.clone();
        let routes = simulator.routes();
        let mut shutdown = simulator.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = serve_connection(stream, tls, routes) => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve_connection<F>(stream: TcpStream, tls: TlsAcceptor, routes: F)
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
    let service = hyper_util::service::TowerToHyperService::new(warp::service(routes));
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let result = if is_tls {
        match tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
            Ok(Ok(stream)) => {
                builder
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .await
            }
            _ => return,
        }
    } else {
        builder
            .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
            .await
    };
    if let Err(error) = result {
        tracing::debug!(%error, "simulator: connection ended");
    }
}

/// A self-signed certificate for `web.whatsapp.com` (Chromium runs with --ignore-certificate-errors).
fn tls_config() -> std::io::Result<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec![WEB_HOST.to_owned()])
        .map_err(std::io::Error::other)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
