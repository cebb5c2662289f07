//! Unit tests of the session and supervisor logic on paused tokio time, with a fake browser and an
//! in-memory store (the integration tests run real Chromium and SQLite).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorRef};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::actor::SessionMsg;
use super::browser::{Launched, Launcher, SessionBrowser};
use super::policy::Status;
use crate::browser::{BrowserError, DriverEvent, LaunchOptions, SentMessage};
use crate::config::Config;
use crate::gateway::{GatewayMsg, Outbound};
use crate::ids::{SessionId, UserId};
use crate::store::{Account, NewAccount, StatusUpdate, Store, StoreResult};
use crate::supervisor::{RootSupervisor, SessionContextSeed, SupervisorArgs, SupervisorMsg};

#[derive(Default)]
struct FakePage {
    state_calls: AtomicU32,
    presence_calls: AtomicU32,
    /// Page calls time out (a stalled page).
    stalled: AtomicBool,
}

struct FakeBrowser {
    page: Arc<FakePage>,
    call_timeout: Duration,
}

impl SessionBrowser for FakeBrowser {
    fn pid(&self) -> u32 {
        4242
    }
    fn state(&self) -> BoxFuture<'_, Result<String, BrowserError>> {
        Box::pin(async move {
            self.page.state_calls.fetch_add(1, Ordering::SeqCst);
            if self.page.stalled.load(Ordering::SeqCst) {
                tokio::time::sleep(self.call_timeout).await;
                return Err(BrowserError::Timeout {
                    call: "state",
                    after: self.call_timeout,
                });
            }
            Ok("CONNECTED".into())
        })
    }
    fn send_text<'a>(
        &'a self,
        to: &'a str,
        _body: &'a str,
    ) -> BoxFuture<'a, Result<SentMessage, BrowserError>> {
        Box::pin(async move {
            Ok(SentMessage {
                id: format!("true_{to}_3EB0FAKE"),
                timestamp: 1,
            })
        })
    }
    fn request_pairing_code<'a>(
        &'a self,
        _phone: &'a str,
    ) -> BoxFuture<'a, Result<String, BrowserError>> {
        Box::pin(async { Ok("ABCD1234".into()) })
    }
    fn mark_available(&self) -> BoxFuture<'_, Result<(), BrowserError>> {
        self.page.presence_calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn kill(&self) {}
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BrowserError>> {
        Box::pin(async { Ok(()) })
    }
}

/// One launch the fake launcher made: when, the page's counters, and the event feed.
struct FakeLaunch {
    at: Instant,
    page: Arc<FakePage>,
    events: mpsc::UnboundedSender<DriverEvent>,
}

struct FakeLauncher {
    launches: mpsc::UnboundedSender<FakeLaunch>,
}

impl Launcher for FakeLauncher {
    fn launch(&self, options: LaunchOptions) -> BoxFuture<'static, Result<Launched, BrowserError>> {
        let launches = self.launches.clone();
        Box::pin(async move {
            let page = Arc::new(FakePage::default());
            let (events, receiver) = mpsc::unbounded_channel();
            let _ = launches.send(FakeLaunch {
                at: Instant::now(),
                page: page.clone(),
                events,
            });
            Ok((
                Box::new(FakeBrowser {
                    page,
                    call_timeout: options.call_timeout,
                }) as Box<dyn SessionBrowser>,
                receiver,
            ))
        })
    }
}

#[derive(Default)]
struct MemoryStore {
    statuses: Mutex<HashMap<SessionId, Vec<Status>>>,
}

impl Store for MemoryStore {
    fn create(&self, _: NewAccount) -> BoxFuture<'_, StoreResult<Account>> {
        unimplemented!("not used by these tests")
    }
    fn get(&self, _: &str) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        Box::pin(async { Ok(None) })
    }
    fn by_session(&self, _: &SessionId) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        Box::pin(async { Ok(None) })
    }
    fn by_user(&self, _: &UserId) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn update_status(
        &self,
        session: &SessionId,
        update: StatusUpdate,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.statuses
            .lock()
            .unwrap()
            .entry(session.clone())
            .or_default()
            .push(update.status);
        Box::pin(async { Ok(()) })
    }
    fn touch(&self, _: &SessionId) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }
    fn delete(&self, _: &str) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }
    fn restorable(&self) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

struct Harness {
    supervisor: ActorRef<SupervisorMsg>,
    gateway: ActorRef<GatewayMsg>,
    launches: mpsc::UnboundedReceiver<FakeLaunch>,
    owner: mpsc::Receiver<Outbound>,
    store: Arc<MemoryStore>,
    session_id: SessionId,
}

impl Harness {
    async fn start(config: Config) -> Harness {
        let (launches_tx, launches) = mpsc::unbounded_channel();
        let store = Arc::new(MemoryStore::default());
        let (supervisor, _) = Actor::spawn(
            None,
            RootSupervisor,
            SupervisorArgs {
                context: SessionContextSeed {
                    config: Arc::new(config),
                    store: store.clone(),
                    launcher: Arc::new(FakeLauncher {
                        launches: launches_tx,
                    }),
                    metrics: Arc::default(),
                    executable: "/nonexistent/chromium".into(),
                    sessions_path: std::env::temp_dir().join("wa-supervisor-unit"),
                    simulator_args: Vec::new(),
                    mailer: crate::mail::Mailer::start(
                        &Config::default().mail,
                        &std::env::temp_dir(),
                        store.clone(),
                        Arc::default(),
                    )
                    .unwrap(),
                    backups: Arc::new(crate::backup::Backups::new(
                        std::env::temp_dir().join("wa-supervisor-unit-backups"),
                        std::env::temp_dir().join("wa-supervisor-unit"),
                        1,
                    )),
                },
            },
        )
        .await
        .unwrap();
        let gateway = match supervisor.call(SupervisorMsg::Gateway, None).await.unwrap() {
            ractor::rpc::CallResult::Success(g) => g,
            _ => unreachable!(),
        };
        let user = UserId::new("owner").unwrap();
        let (owner_tx, owner) = mpsc::channel(1024);
        gateway
            .cast(GatewayMsg::Connect {
                conn: 1,
                user: user.clone(),
                outbound: owner_tx,
            })
            .unwrap();
        let session_id = SessionId::new("s1").unwrap();
        let account = Account {
            id: "a1".into(),
            user_id: user,
            session_id: session_id.clone(),
            status: Status::Initializing,
            phone_number: None,
            profile_name: None,
            name: None,
            notify_email: None,
            connected_at: None,
            last_seen: None,
            error_message: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        supervisor
            .cast(SupervisorMsg::Start {
                account: Box::new(account),
                settled: None,
            })
            .unwrap();
        Harness {
            supervisor,
            gateway,
            launches,
            owner,
            store,
            session_id,
        }
    }

    async fn next_launch(&mut self) -> FakeLaunch {
        tokio::time::timeout(Duration::from_secs(3600), self.launches.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// The next owner frame named `event`.
    async fn owner_event(&mut self, event: &str) -> Value {
        loop {
            let Outbound::Text(text) =
                tokio::time::timeout(Duration::from_secs(3600), self.owner.recv())
                    .await
                    .unwrap()
                    .unwrap();
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["event"] == event {
                return frame;
            }
        }
    }

    async fn make_ready(&mut self, launch: &FakeLaunch) {
        launch
            .events
            .send(DriverEvent::Ready {
                phone_number: "34600111222".into(),
                push_name: "Ana".into(),
            })
            .unwrap();
        self.owner_event("whatsapp:ready").await;
    }

    async fn session(&self) -> ActorRef<SessionMsg> {
        let (user, session_id) = (UserId::new("owner").unwrap(), self.session_id.clone());
        match self
            .gateway
            .call(
                |reply| GatewayMsg::Lookup {
                    session_id,
                    user,
                    reply,
                },
                None,
            )
            .await
            .unwrap()
        {
            ractor::rpc::CallResult::Success(Some(actor)) => actor,
            _ => panic!("the session is routed"),
        }
    }

    fn statuses(&self) -> Vec<Status> {
        self.store
            .statuses
            .lock()
            .unwrap()
            .get(&self.session_id)
            .cloned()
            .unwrap_or_default()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn keepalive_reads_the_socket_every_heartbeat_and_marks_presence_every_activity_interval() {
    let config = Config::default(); // heartbeat 30 s, activity 4 min
    let mut h = Harness::start(config).await;
    let launch = h.next_launch().await;
    h.make_ready(&launch).await;
    tokio::time::sleep(secs(95.0)).await;
    assert_eq!(
        launch.page.state_calls.load(Ordering::SeqCst),
        3,
        "heartbeats at 30, 60 and 90 s"
    );
    assert_eq!(launch.page.presence_calls.load(Ordering::SeqCst), 0);
    tokio::time::sleep(secs(150.0)).await;
    assert_eq!(
        launch.page.presence_calls.load(Ordering::SeqCst),
        1,
        "presence at 4 min"
    );
    assert_eq!(launch.page.state_calls.load(Ordering::SeqCst), 8);
    h.supervisor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn relaunches_back_off_exponentially_with_jitter_then_give_up() {
    let config = Config::default(); // base 5 s, ×2, 3 relaunches
    let mut h = Harness::start(config).await;
    let mut launch = h.next_launch().await;
    h.make_ready(&launch).await;
    for (attempt, nominal) in [(1, 5.0), (2, 10.0), (3, 20.0)] {
        let crashed = Instant::now();
        launch
            .events
            .send(DriverEvent::BrowserCrashed("killed".into()))
            .unwrap();
        launch = h.next_launch().await;
        let waited = launch.at.duration_since(crashed);
        assert!(
            waited >= secs(nominal * 0.8) && waited <= secs(nominal * 1.2 + 0.1),
            "relaunch {attempt} after {waited:?}, nominal {nominal} s ±20 %"
        );
    }
    launch
        .events
        .send(DriverEvent::BrowserCrashed("killed".into()))
        .unwrap();
    let gone = h.owner_event("whatsapp:disconnected").await;
    assert_eq!(gone["data"]["requiresReconnect"], true);
    assert!(
        tokio::time::timeout(Duration::from_secs(600), h.launches.recv())
            .await
            .is_err(),
        "no relaunch after the last attempt"
    );
    assert_eq!(h.statuses().last(), Some(&Status::Error));
    h.supervisor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_page_call_that_times_out_trips_the_watchdog() {
    let config = Config::default(); // heartbeat 30 s, call timeout 10 s
    let mut h = Harness::start(config).await;
    let launch = h.next_launch().await;
    h.make_ready(&launch).await;
    let stalled_at = Instant::now();
    launch.page.stalled.store(true, Ordering::SeqCst);
    let relaunch = h.next_launch().await;
    let waited = relaunch.at.duration_since(stalled_at);
    // First heartbeat at 30 s, its call gives up at 40 s, relaunch 5 s ±20 % later.
    assert!(
        waited >= secs(44.0) && waited <= secs(46.1),
        "relaunched after {waited:?}"
    );
    let statuses = h.statuses();
    assert_eq!(&statuses[statuses.len() - 1..], &[Status::Reconnecting]);
    h.make_ready(&relaunch).await;
    assert_eq!(h.statuses().last(), Some(&Status::Ready));
    h.supervisor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn the_restart_budget_counts_panics_within_its_window() {
    let mut config = Config::default();
    config.supervisor.max_restarts = 2;
    config.supervisor.restart_window = Duration::from_secs(60);
    let mut h = Harness::start(config).await;
    h.next_launch().await;

    h.session().await.cast(SessionMsg::Panic).unwrap();
    h.next_launch().await; // restart 1
    tokio::time::sleep(secs(61.0)).await; // restart 1 leaves the window
    h.session().await.cast(SessionMsg::Panic).unwrap();
    h.next_launch().await; // restart 2 (1 in the window)
    h.session().await.cast(SessionMsg::Panic).unwrap();
    h.next_launch().await; // restart 3 (2 in the window)
    h.session().await.cast(SessionMsg::Panic).unwrap();
    let parked = h.owner_event("whatsapp:disconnected").await;
    assert_eq!(parked["data"]["reason"], "restart budget exhausted");
    assert!(
        tokio::time::timeout(Duration::from_secs(600), h.launches.recv())
            .await
            .is_err(),
        "parked: no further restarts"
    );
    h.supervisor.stop(None);
}
