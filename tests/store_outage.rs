//! The database goes away and comes back: the machine's real PostgreSQL cluster is stopped
//! and started by these tests (so they run one at a time, and `cargo test` runs this file
//! alone, as it runs every test binary one after the other). The cluster is started again
//! whatever happens.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use wa_supervisor::store::Store;
use wa_supervisor::store::postgres::PostgresStore;

use common::pg::TestDb;
use common::server::{Server, config, ready_session};
use common::{Env, PHONE};

const WAIT: Duration = Duration::from_secs(40);

/// One test at a time may stop the cluster.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Controls the local cluster (Debian's pg_ctlcluster); started again on drop.
struct Cluster {
    version: String,
}

impl Cluster {
    fn local() -> Cluster {
        let url = reqwest::Url::parse(&common::pg::server_url()).unwrap();
        assert!(
            matches!(url.host_str(), Some("127.0.0.1" | "localhost"))
                && url.port().unwrap_or(5432) == 5432,
            "the outage tests stop and start the local cluster at 127.0.0.1:5432; \
             WA_TEST_DATABASE_URL points elsewhere ({url})"
        );
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .expect(
                "a local PostgreSQL cluster under /etc/postgresql (Debian's postgresql package)",
            );
        Cluster { version }
    }

    fn ctl(&self, action: &str) {
        let mut command = std::process::Command::new("pg_ctlcluster");
        command.args(["--skip-systemctl-redirect", &self.version, "main", action]);
        if action == "stop" {
            command.args(["--", "-m", "fast"]);
        }
        let out = command.output().expect("pg_ctlcluster runs");
        assert!(
            out.status.success() || action == "start" && is_up(),
            "pg_ctlcluster {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        self.ctl("stop");
        assert!(!is_up(), "PostgreSQL is down");
    }

    fn start(&self) {
        self.ctl("start");
        for _ in 0..100 {
            if is_up() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("PostgreSQL did not come back");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !is_up() {
            self.start();
        }
    }
}

fn is_up() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Every status write, in the order the database applied it (a trigger the test adds).
async fn history(db: &TestDb) -> Vec<(String, Option<String>)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT status, error_message FROM status_history ORDER BY n")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn while_postgres_is_down_sessions_run_and_status_writes_land_in_order_when_it_returns() {
    let _one = CLUSTER.lock().await;
    let db = TestDb::create().await;
    // Declared after the database so that, on a failure, the cluster is started again before
    // the database is dropped.
    let cluster = Cluster::local();
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let mut conn = db.connect().await;
    sqlx::raw_sql(
        "CREATE TABLE status_history (n bigserial PRIMARY KEY, status text, error_message text); \
         CREATE FUNCTION record_status() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO status_history (status, error_message) VALUES (NEW.status, NEW.error_message); \
         RETURN NEW; END $$; \
         CREATE TRIGGER record_status AFTER UPDATE OF status ON whatsapp_accounts \
         FOR EACH ROW EXECUTE FUNCTION record_status();",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let env = Env::new().await;
    let server = Server::start_with_store(&env, config(), store).await;
    let mut client = server.connect("outage-user").await;
    let session_id = ready_session(&env, &mut client, "c1").await;
    common::eventually(Duration::from_secs(10), "ready stored", || async {
        history(&db).await.last().map(|h| h.0.as_str()) == Some("ready")
    })
    .await;

    cluster.stop();
    // The session carries on: WhatsApp's own outage and return, messages both ways…
    let (status, _) = env.post("/outage", json!({ "ms": 1500 })).await;
    assert_eq!(status, 200);
    let state = client.expect("whatsapp:state", WAIT).await;
    assert_eq!(state["data"]["status"], "reconnecting");
    let state = client.expect("whatsapp:state", WAIT).await;
    assert_eq!(state["data"]["status"], "ready");
    client
        .send(
            "whatsapp:send",
            json!({ "sessionId": session_id, "to": "34699000111", "body": "sin base de datos" }),
            "s1",
        )
        .await;
    client.expect("whatsapp:sent", WAIT).await;
    let (status, _) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "¿me oyes?" }),
        )
        .await;
    assert_eq!(status, 200);
    client.expect("whatsapp:message", WAIT).await;
    // …creating an account needs the store: a clear error, and nothing started.
    client.send("whatsapp:create", json!({}), "c2").await;
    let refused = client.expect("whatsapp:error", WAIT).await;
    assert_eq!(refused["ref"], "c2");
    assert_eq!(refused["data"]["error"], "INTERNAL", "{refused}");
    assert_eq!(
        refused["data"]["message"],
        wa_supervisor::store::UNAVAILABLE
    );
    let listed = reqwest::Client::new()
        .get(format!("http://{}/api/whatsapp/accounts", server.addr))
        .bearer_auth(server.token("outage-user"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 503);
    let body: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(body["message"], wa_supervisor::store::UNAVAILABLE, "{body}");
    // …and the phone ends it for good, still while the database is down.
    let (status, _) = env
        .post(
            &format!("/phones/{PHONE}/state"),
            json!({ "state": "CONFLICT" }),
        )
        .await;
    assert_eq!(status, 200);
    client.expect("whatsapp:disconnected", WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start();

    // Every status the owner saw since ready lands, in the order it happened.
    let seen: Vec<String> = client
        .seen
        .iter()
        .filter(|f| f["event"] == "whatsapp:state" && f["data"]["sessionId"] == session_id.as_str())
        .map(|f| f["data"]["status"].as_str().unwrap().to_owned())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let applied = loop {
        let applied: Vec<String> = history(&db).await.into_iter().map(|h| h.0).collect();
        if applied.len() >= seen.len() || tokio::time::Instant::now() > deadline {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(applied, seen, "no status lost or reordered");
    assert_eq!(
        &applied[applied.len() - 3..],
        ["reconnecting", "ready", "error"],
        "{applied:?}"
    );
    let last = history(&db).await.pop().unwrap();
    assert_eq!(last, ("error".to_owned(), Some("CONFLICT".to_owned())));
    let row = server
        .app
        .store
        .by_session(&wa_supervisor::ids::SessionId::new(&session_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status.as_str(), "error");
    assert_eq!(row.phone_number.as_deref(), Some(PHONE));
    let retries = server
        .app
        .metrics
        .store_write_retries
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        retries > 0,
        "the outage shows in wa_store_write_retries_total"
    );

    server.stop().await;
    env.assert_no_chromium_left().await;
}

#[tokio::test]
async fn serve_waits_for_the_database_with_backoff_and_says_so() {
    let _one = CLUSTER.lock().await;
    let db = TestDb::create().await;
    // Declared after the database so that, on a failure, the cluster is started again before
    // the database is dropped.
    let cluster = Cluster::local();
    let data = tempfile::tempdir().unwrap();
    cluster.stop();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("WA__STORE__KIND", "postgres")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut waited = 0;
    let started = tokio::time::Instant::now();
    let url = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the server logs")
            .unwrap()
            .expect("the server runs");
        if line.contains("waiting for the store") {
            waited += 1;
            if waited == 2 {
                // Told twice (with a growing delay): now bring the database up.
                assert!(line.contains("delay"), "{line}");
                cluster.start();
            }
        }
        if line.contains("listening") {
            break line
                .split("url=")
                .nth(1)
                .expect("the URL is logged")
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
        }
    };
    assert!(waited >= 2, "the wait was logged");
    eprintln!("serve waited {:?} for the database", started.elapsed());
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status(), 200);

    let pid = child.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    common::assert_no_chromium_under(data.path()).await;
}
