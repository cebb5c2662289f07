//! One conformance suite for the accounts store, run against the embedded SQLite file and the
//! machine's real PostgreSQL (a throw-away database per test); PostgreSQL's migrations,
//! trigger and row-level security; and a whole session run against the `postgres` backend.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::Row;
use wa_supervisor::ids::{SessionId, UserId};
use wa_supervisor::session::policy::Status;
use wa_supervisor::store::postgres::PostgresStore;
use wa_supervisor::store::sqlite::SqliteStore;
use wa_supervisor::store::{Account, NewAccount, StatusUpdate, Store, StoreError};

use common::pg::TestDb;
use common::server::{Server, config, ready_session};
use common::{Env, PHONE, PUSHNAME};

fn user(n: &str) -> UserId {
    UserId::new(n).unwrap()
}

fn session(n: &str) -> SessionId {
    SessionId::new(n).unwrap()
}

fn new(user_id: &str, session_id: &str, name: &str) -> NewAccount {
    NewAccount {
        user_id: user(user_id),
        session_id: session(session_id),
        name: Some(name.into()),
        notify_email: Some(format!("{user_id}@example.com")),
    }
}

fn update(status: Status, error: Option<&str>, identity: Option<(&str, &str)>) -> StatusUpdate {
    StatusUpdate {
        at: wa_supervisor::store::now(),
        status,
        error_message: error.map(str::to_owned),
        identity: identity.map(|(a, b)| (a.to_owned(), b.to_owned())),
    }
}

/// RFC 3339, UTC, milliseconds: what every backend returns.
fn assert_timestamp(value: &str) {
    let parsed = humantime::parse_rfc3339(value);
    assert!(
        parsed.is_ok() && value.len() == 24 && value.ends_with('Z'),
        "timestamp {value:?}"
    );
}

/// What every backend must do, as the supervisor, the gateway and the HTTP API rely on it.
async fn conformance(store: &dyn Store) {
    // create
    let a = store
        .create(new("u1", "s-one", "Peluquería Ñandú 💈"))
        .await
        .unwrap();
    assert!(
        uuid::Uuid::parse_str(&a.id).is_ok(),
        "id is a UUID: {}",
        a.id
    );
    assert_eq!(a.status, Status::Initializing);
    assert_eq!(a.user_id, user("u1"));
    assert_eq!(a.session_id, session("s-one"));
    assert_eq!(a.name.as_deref(), Some("Peluquería Ñandú 💈"));
    assert_eq!(a.notify_email.as_deref(), Some("u1@example.com"));
    assert_eq!(
        (
            &a.phone_number,
            &a.profile_name,
            &a.connected_at,
            &a.last_seen,
            &a.error_message
        ),
        (&None, &None, &None, &None, &None)
    );
    assert_timestamp(&a.created_at);
    assert_timestamp(&a.updated_at);
    assert_eq!(
        store.get(&a.id).await.unwrap().as_ref(),
        Some(&a),
        "get returns what create did"
    );

    // a second account with the same session id is refused and changes nothing
    assert!(matches!(
        store.create(new("u2", "s-one", "other")).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(store.by_user(&user("u2")).await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = store.create(new("u1", "s-two", "Clínica")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = store.create(new("u2", "s-three", "Agencia")).await.unwrap();

    // reads
    let ids = |rows: Vec<Account>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.by_user(&user("u1")).await.unwrap()),
        vec![a.id.clone(), b.id.clone()],
        "a user's accounts, oldest first"
    );
    assert_eq!(
        ids(store.by_user(&user("u2")).await.unwrap()),
        vec![c.id.clone()]
    );
    assert!(store.by_user(&user("nobody")).await.unwrap().is_empty());
    assert_eq!(
        store
            .by_session(&session("s-two"))
            .await
            .unwrap()
            .map(|r| r.id),
        Some(b.id.clone())
    );
    assert!(
        store
            .by_session(&session("s-none"))
            .await
            .unwrap()
            .is_none()
    );
    for unknown in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        String::new(),
        "' OR 1=1 --".to_owned(),
    ] {
        assert!(store.get(&unknown).await.unwrap().is_none(), "{unknown:?}");
    }

    // status updates
    tokio::time::sleep(Duration::from_millis(5)).await;
    // A write that lands late still records when the session connected.
    let mut connected = update(Status::Ready, None, Some((PHONE, "Ana ✨")));
    connected.at = "2026-12-04T10:00:00.123Z".into();
    store.update_status(&a.session_id, connected).await.unwrap();
    let ready = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(
        ready.connected_at.as_deref(),
        Some("2026-12-04T10:00:00.123Z")
    );
    assert_eq!(ready.status, Status::Ready);
    assert_eq!(ready.phone_number.as_deref(), Some(PHONE));
    assert_eq!(ready.profile_name.as_deref(), Some("Ana ✨"));
    assert_timestamp(
        ready
            .connected_at
            .as_deref()
            .expect("connected_at set on ready"),
    );
    assert!(
        ready.updated_at > a.updated_at,
        "updated_at moves on update"
    );
    assert_eq!(ready.created_at, a.created_at, "created_at never moves");

    store
        .update_status(
            &a.session_id,
            update(Status::Error, Some("CONFLICT: «otro» dispositivo"), None),
        )
        .await
        .unwrap();
    let failed = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Error);
    assert_eq!(
        failed.error_message.as_deref(),
        Some("CONFLICT: «otro» dispositivo")
    );
    assert_eq!(
        (failed.phone_number.as_deref(), &failed.connected_at),
        (Some(PHONE), &ready.connected_at),
        "identity survives later updates"
    );
    store
        .update_status(&a.session_id, update(Status::Reconnecting, None, None))
        .await
        .unwrap();
    let back = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (back.status, back.error_message),
        (Status::Reconnecting, None)
    );

    // an update of an unknown session touches nothing
    store
        .update_status(&session("s-none"), update(Status::Ready, None, None))
        .await
        .unwrap();
    assert_eq!(
        store.get(&b.id).await.unwrap().unwrap().status,
        Status::Initializing
    );

    // touch
    store.touch(&b.session_id).await.unwrap();
    let touched = store.get(&b.id).await.unwrap().unwrap();
    assert_timestamp(
        touched
            .last_seen
            .as_deref()
            .expect("last_seen set by touch"),
    );
    assert_eq!(touched.status, Status::Initializing);

    // restorable: exactly ready, authenticated and reconnecting, oldest first
    for (sid, status) in [
        ("s-two", Status::Authenticated),
        ("s-three", Status::Stopped),
    ] {
        store
            .update_status(&session(sid), update(status, None, None))
            .await
            .unwrap();
    }
    assert_eq!(
        ids(store.restorable().await.unwrap()),
        vec![a.id.clone(), b.id.clone()]
    );
    for status in Status::ALL {
        store
            .update_status(&c.session_id, update(status, None, None))
            .await
            .unwrap();
        let listed = ids(store.restorable().await.unwrap()).contains(&c.id);
        let restorable = matches!(
            status,
            Status::Ready | Status::Authenticated | Status::Reconnecting
        );
        assert_eq!(listed, restorable, "{status}");
    }

    // delete: that account only; unknown ids are no error
    store.delete(&a.id).await.unwrap();
    assert!(store.get(&a.id).await.unwrap().is_none());
    assert!(store.by_session(&a.session_id).await.unwrap().is_none());
    store.delete(&a.id).await.unwrap();
    store.delete("not-a-uuid").await.unwrap();
    assert_eq!(
        ids(store.by_user(&user("u1")).await.unwrap()),
        vec![b.id.clone()]
    );
    assert_eq!(
        ids(store.by_user(&user("u2")).await.unwrap()),
        vec![c.id.clone()]
    );

    // the session id is free again
    let again = store.create(new("u3", "s-one", "again")).await.unwrap();
    assert_ne!(again.id, a.id);
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("wa.db")).await.unwrap();
    conformance(&store).await;
}

#[tokio::test]
async fn postgres_store_conforms_and_migrates_once() {
    let db = TestDb::create().await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    conformance(&store).await;
    drop(store);

    // A second open finds the schema current and changes nothing.
    let again = PostgresStore::open(&db.url).await.unwrap();
    assert_eq!(again.by_user(&user("u2")).await.unwrap().len(), 1);
    let mut conn = db.connect().await;
    let applied: Vec<(i32, String)> =
        sqlx::query_as("SELECT version, name FROM wa_supervisor_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(applied, vec![(1, "0001_whatsapp_accounts".to_owned())]);

    // The schema as SPEC §8 gives it.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_name = 'whatsapp_accounts' ORDER BY ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expected = [
        ("id", "uuid", "NO"),
        ("user_id", "text", "NO"),
        ("session_id", "text", "NO"),
        ("status", "text", "NO"),
        ("phone_number", "text", "YES"),
        ("profile_name", "text", "YES"),
        ("name", "text", "YES"),
        ("notify_email", "text", "YES"),
        ("connected_at", "timestamp with time zone", "YES"),
        ("last_seen", "timestamp with time zone", "YES"),
        ("error_message", "text", "YES"),
        ("created_at", "timestamp with time zone", "NO"),
        ("updated_at", "timestamp with time zone", "NO"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(columns, expected);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'whatsapp_accounts' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for index in [
        "whatsapp_accounts_pkey",
        "whatsapp_accounts_session_id_key",
        "whatsapp_accounts_status",
        "whatsapp_accounts_user_id",
    ] {
        assert!(
            indexes.contains(&index.to_owned()),
            "{index} in {indexes:?}"
        );
    }

    // The trigger moves updated_at for any writer, not only the supervisor.
    let before: String = sqlx::query_scalar(
        "SELECT updated_at::text FROM whatsapp_accounts WHERE session_id = 's-two'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("UPDATE whatsapp_accounts SET name = 'renamed' WHERE session_id = 's-two'")
        .execute(&mut conn)
        .await
        .unwrap();
    let after: String = sqlx::query_scalar(
        "SELECT updated_at::text FROM whatsapp_accounts WHERE session_id = 's-two'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(after > before, "{before} → {after}");

    // Bad rows are refused by the schema itself.
    let bad = sqlx::query(
        "INSERT INTO whatsapp_accounts (id, user_id, session_id, status) \
         VALUES (gen_random_uuid(), 'u9', 's-bad', 'connected')",
    )
    .execute(&mut conn)
    .await;
    assert!(bad.is_err(), "an unknown status is refused");
}

/// With Supabase's `auth.uid()` and `authenticated` role present (recreated here as Supabase
/// defines them), the migration's policies let a signed-in dashboard read its own rows only.
#[tokio::test]
async fn row_level_security_shows_a_dashboard_user_only_their_rows() {
    let db = TestDb::create().await;
    let mut conn = db.connect().await;
    sqlx::raw_sql(
        "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
         DO $$ BEGIN CREATE ROLE anon NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
         CREATE SCHEMA auth; \
         CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$ \
           SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true), \
             (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')), '')::uuid $f$; \
         GRANT USAGE ON SCHEMA auth TO authenticated, anon; \
         GRANT EXECUTE ON FUNCTION auth.uid() TO authenticated, anon;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let store = PostgresStore::open(&db.url).await.unwrap();
    // Supabase grants every table of `public` to its API roles; row-level security is what
    // stands between one dashboard user and another's rows.
    sqlx::raw_sql("GRANT ALL ON whatsapp_accounts TO anon, authenticated")
        .execute(&mut conn)
        .await
        .unwrap();
    let alice = uuid::Uuid::new_v4().to_string();
    let bob = uuid::Uuid::new_v4().to_string();
    store.create(new(&alice, "alice-1", "a1")).await.unwrap();
    store.create(new(&alice, "alice-2", "a2")).await.unwrap();
    store.create(new(&bob, "bob-1", "b1")).await.unwrap();

    async fn visible(conn: &mut sqlx::PgConnection, role: &str, sub: Option<&str>) -> Vec<String> {
        let mut tx = sqlx::Connection::begin(conn).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
            .execute(&mut *tx)
            .await
            .unwrap();
        if let Some(sub) = sub {
            sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
                .bind(json!({ "sub": sub, "role": role }).to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let rows = sqlx::query("SELECT session_id FROM whatsapp_accounts ORDER BY session_id")
            .fetch_all(&mut *tx)
            .await
            .map(|rows| rows.iter().map(|r| r.get::<String, _>(0)).collect())
            .unwrap_or_else(|e| vec![format!("denied: {e}")]);
        tx.rollback().await.unwrap();
        rows
    }

    assert_eq!(
        visible(&mut conn, "authenticated", Some(&alice)).await,
        ["alice-1", "alice-2"]
    );
    assert_eq!(
        visible(&mut conn, "authenticated", Some(&bob)).await,
        ["bob-1"]
    );
    let stranger = uuid::Uuid::new_v4().to_string();
    assert!(
        visible(&mut conn, "authenticated", Some(&stranger))
            .await
            .is_empty()
    );
    assert!(visible(&mut conn, "authenticated", None).await.is_empty());
    assert!(
        visible(&mut conn, "anon", None).await.is_empty(),
        "anon reads nothing"
    );

    // A dashboard cannot write, not even its own rows: no policy lets it.
    let alice_claims = json!({ "sub": alice }).to_string();
    for (sql, refused) in [
        ("UPDATE whatsapp_accounts SET status = 'ready'", false),
        ("DELETE FROM whatsapp_accounts", false),
        (
            "INSERT INTO whatsapp_accounts (id, user_id, session_id, status) \
             VALUES (gen_random_uuid(), auth.uid()::text, 'forged', 'ready')",
            true,
        ),
    ] {
        let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
        sqlx::raw_sql("SET LOCAL ROLE authenticated")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
            .bind(&alice_claims)
            .execute(&mut *tx)
            .await
            .unwrap();
        let result = sqlx::raw_sql(sql).execute(&mut *tx).await;
        if refused {
            assert!(result.is_err(), "{sql}: refused by row-level security");
        } else {
            assert_eq!(result.unwrap().rows_affected(), 0, "{sql}: no row to touch");
        }
        tx.rollback().await.ok();
    }
    assert_eq!(store.by_user(&user(&alice)).await.unwrap().len(), 2);
    assert!(
        store
            .by_session(&session("forged"))
            .await
            .unwrap()
            .is_none()
    );
}

/// create → scan → ready → message both ways → destroy, against the `postgres` backend; the
/// rows checked with SQL.
#[tokio::test]
async fn a_whole_session_run_leaves_the_expected_rows_in_postgres() {
    let db = TestDb::create().await;
    let env = Env::new().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let server = Server::start_with_store(&env, config(), store).await;
    let mut client = server.connect("pg-user").await;
    let session_id = ready_session(&env, &mut client, "c1").await;
    let wait = Duration::from_secs(30);

    let (status, _) = env
        .post(
            &format!("/phones/{PHONE}/messages"),
            json!({ "from": "34699000111", "body": "hola" }),
        )
        .await;
    assert_eq!(status, 200);
    client.expect("whatsapp:message", wait).await;
    client
        .send(
            "whatsapp:send",
            json!({ "sessionId": session_id, "to": "34699000111", "body": "buenas" }),
            "s1",
        )
        .await;
    client.expect("whatsapp:sent", wait).await;

    let mut conn = db.connect().await;
    let row_sql = "SELECT user_id, status, phone_number, profile_name, notify_email, \
                   connected_at IS NOT NULL AS connected, error_message, \
                   updated_at >= created_at AS ordered \
                   FROM whatsapp_accounts WHERE session_id = $1";
    wait_for_status(&mut conn, &session_id, "ready").await;
    let row = sqlx::query(row_sql)
        .bind(&session_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("user_id"), "pg-user");
    assert_eq!(row.get::<String, _>("status"), "ready");
    assert_eq!(
        row.get::<Option<String>, _>("phone_number").as_deref(),
        Some(PHONE)
    );
    assert_eq!(
        row.get::<Option<String>, _>("profile_name").as_deref(),
        Some(PUSHNAME)
    );
    assert_eq!(
        row.get::<Option<String>, _>("notify_email").as_deref(),
        Some("pg-user@example.com")
    );
    assert!(row.get::<bool, _>("connected"));
    assert!(row.get::<bool, _>("ordered"));
    assert_eq!(row.get::<Option<String>, _>("error_message"), None);

    client
        .send("whatsapp:destroy", json!({ "sessionId": session_id }), "d1")
        .await;
    client.expect("whatsapp:disconnected", wait).await;
    wait_for_status(&mut conn, &session_id, "stopped").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM whatsapp_accounts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 1, "destroy keeps the row, as stopped");

    server.stop().await;
    env.assert_no_chromium_left().await;
}

/// Store writes trail the events; waits (10 s at most) for the row to reach `status`.
async fn wait_for_status(conn: &mut sqlx::PgConnection, session_id: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now: Option<String> =
            sqlx::query_scalar("SELECT status FROM whatsapp_accounts WHERE session_id = $1")
                .bind(session_id)
                .fetch_optional(&mut *conn)
                .await
                .unwrap();
        if now.as_deref() == Some(status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "row of {session_id} is {now:?}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `wa-supervisor check` opens the configured store and says whether it answers.
#[tokio::test]
async fn check_reports_whether_the_postgres_store_answers() {
    let db = TestDb::create().await;
    let data = tempfile::tempdir().unwrap();
    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    for (url, expected_ok) in [
        (db.url.clone(), true),
        (format!("postgres://postgres@127.0.0.1:{closed}/x"), false),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
            .args(["check", "--data-dir"])
            .arg(data.path())
            .env("WA__STORE__KIND", "postgres")
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = if expected_ok {
            "ok    store: postgres"
        } else {
            "FAIL  store: postgres"
        };
        assert!(text.contains(line), "{url}: {text}");
        assert_eq!(out.status.success(), expected_ok, "{text}");
    }
    // The check migrated the throw-away database like serve would.
    let mut conn = db.connect().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'whatsapp_accounts'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 1);
}

/// A store that answers with a refusal (here: no such database) is a configuration error:
/// `serve` stops at once and says why, rather than waiting for it.
#[tokio::test]
async fn serve_stops_at_once_when_the_database_refuses() {
    let data = tempfile::tempdir().unwrap();
    let mut url = reqwest::Url::parse(&common::pg::server_url()).unwrap();
    url.set_path("/wa_no_such_database");
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("WA__STORE__KIND", "postgres")
            .env("DATABASE_URL", url.as_str())
            .env("RUST_LOG", "error")
            .output(),
    )
    .await
    .expect("serve gives up instead of waiting")
    .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("cannot open the store") && text.contains("wa_no_such_database"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    common::assert_no_chromium_under(data.path()).await;
}

/// A database that already holds the Node backend's table (no `notify_email`) is brought up to
/// date; the rows it wrote stay readable and restorable.
#[tokio::test]
async fn the_node_backends_table_is_upgraded_in_place() {
    let db = TestDb::create().await;
    let mut conn = db.connect().await;
    sqlx::raw_sql(
        "CREATE TABLE whatsapp_accounts (id uuid PRIMARY KEY, user_id text NOT NULL, \
         session_id text NOT NULL UNIQUE, status text NOT NULL, phone_number text, \
         profile_name text, name text, connected_at timestamptz, last_seen timestamptz, \
         error_message text, created_at timestamptz NOT NULL DEFAULT now(), \
         updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO whatsapp_accounts (id, user_id, session_id, status, phone_number, name) \
         VALUES ('0b7c1a8e-2f7d-4c55-9a61-3c1f0e7d9a10', 'u1', 'legacy', 'ready', '34600111222', 'Tienda');",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let store = PostgresStore::open(&db.url).await.unwrap();
    let legacy = store.by_session(&session("legacy")).await.unwrap().unwrap();
    assert_eq!(legacy.status, Status::Ready);
    assert_eq!(legacy.notify_email, None);
    assert_eq!(legacy.phone_number.as_deref(), Some("34600111222"));
    assert_eq!(store.restorable().await.unwrap().len(), 1);
    let created = store.create(new("u2", "fresh", "Nueva")).await.unwrap();
    assert_eq!(created.notify_email.as_deref(), Some("u2@example.com"));
}
