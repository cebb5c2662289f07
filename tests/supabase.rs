//! The `supabase` backend speaks PostgREST's HTTP API. No PostgREST server can run here, so
//! each request is checked against a local HTTP listener that records it (method, path,
//! filters, headers, body) and answers as PostgREST documents it; the answers are parsed back.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wa_supervisor::ids::{SessionId, UserId};
use wa_supervisor::session::policy::Status;
use wa_supervisor::store::supabase::SupabaseStore;
use wa_supervisor::store::{NewAccount, StatusUpdate, Store, StoreError};
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};

const KEY: &str = "service-role-key.abc";

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    /// The query string's pairs, decoded.
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<Value>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Listener {
    seen: Arc<Mutex<Vec<Recorded>>>,
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl Listener {
    async fn start() -> (Listener, SocketAddr) {
        let listener = Listener::default();
        let state = listener.clone();
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      body: warp::hyper::body::Bytes| {
                    let query = url_pairs(&query);
                    state.seen.lock().unwrap().push(Recorded {
                        method,
                        path: path.as_str().to_owned(),
                        query,
                        headers,
                        body: (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap()),
                    });
                    let (status, body) = state
                        .answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((500, "{}".into()));
                    warp::http::Response::builder()
                        .status(StatusCode::from_u16(status).unwrap())
                        .header("content-type", "application/json")
                        .body(body)
                        .unwrap()
                },
            );
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(tcp).run());
        (listener, addr)
    }

    fn answer(&self, status: u16, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .push_back((status, body.to_string()));
    }

    fn last(&self) -> Recorded {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A row as PostgREST renders it (timestamptz with microseconds and +00:00).
fn row(id: &str, user: &str, session: &str, status: &str) -> Value {
    json!({
        "id": id, "user_id": user, "session_id": session, "status": status,
        "phone_number": null, "profile_name": null, "name": "Tienda",
        "notify_email": "ana@example.com", "connected_at": null,
        "last_seen": "2026-12-04T10:00:01.5+00:00", "error_message": null,
        "created_at": "2026-12-04T10:00:00.123456+00:00",
        "updated_at": "2026-12-04T10:00:02+00:00"
    })
}

/// Every request carries the service-role key both ways PostgREST (behind Supabase's gateway)
/// wants it.
fn assert_authenticated(r: &Recorded) {
    assert_eq!(r.header("apikey"), Some(KEY), "{r:?}");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.path, "/rest/v1/whatsapp_accounts");
}

#[tokio::test]
async fn every_store_call_is_the_documented_postgrest_request() {
    let (pg, addr) = Listener::start().await;
    // A trailing slash on the project URL does not double the path.
    let store = SupabaseStore::new(&format!("http://{addr}/"), KEY).unwrap();
    let account_id = "5b0c1a8e-2f7d-4c55-9a61-3c1f0e7d9a10";

    // create: POST with the row, asking for it back
    pg.answer(201, json!([row(account_id, "u1", "s1", "initializing")]));
    let created = store
        .create(NewAccount {
            user_id: UserId::new("u1").unwrap(),
            session_id: SessionId::new("s1").unwrap(),
            name: Some("Tienda".into()),
            notify_email: Some("ana@example.com".into()),
        })
        .await
        .unwrap();
    let r = pg.last();
    assert_authenticated(&r);
    assert_eq!(r.method, Method::POST);
    assert!(r.query.is_empty());
    assert_eq!(r.header("prefer"), Some("return=representation"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.body.unwrap();
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        body,
        json!({ "id": body["id"], "user_id": "u1", "session_id": "s1", "status": "initializing",
                "name": "Tienda", "notify_email": "ana@example.com" })
    );
    assert_eq!(created.id, account_id);
    assert_eq!(created.status, Status::Initializing);
    assert_eq!(created.created_at, "2026-12-04T10:00:00.123Z");
    assert_eq!(created.updated_at, "2026-12-04T10:00:02.000Z");
    assert_eq!(
        created.last_seen.as_deref(),
        Some("2026-12-04T10:00:01.500Z")
    );

    // create of a taken session id: PostgREST answers 409 (unique violation)
    pg.answer(
        409,
        json!({ "code": "23505", "message": "duplicate key value violates unique constraint" }),
    );
    let dup = store
        .create(NewAccount {
            user_id: UserId::new("u2").unwrap(),
            session_id: SessionId::new("s1").unwrap(),
            name: None,
            notify_email: None,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists)), "{dup:?}");

    // get: one filter on id
    pg.answer(200, json!([row(account_id, "u1", "s1", "qr")]));
    let got = store.get(account_id).await.unwrap().unwrap();
    let r = pg.last();
    assert_authenticated(&r);
    assert_eq!(r.method, Method::GET);
    assert_eq!(
        r.query,
        pairs(&[("select", "*"), ("id", &format!("eq.{account_id}"))])
    );
    assert_eq!(got.status, Status::Qr);
    pg.answer(200, json!([]));
    assert!(store.get(account_id).await.unwrap().is_none());
    // an id that is no UUID cannot name an account: no request at all
    let before = pg.count();
    assert!(store.get("1 or 1=1").await.unwrap().is_none());
    store.delete("../x").await.unwrap();
    assert_eq!(pg.count(), before);

    // by_session, by_user, restorable: filters and order
    pg.answer(200, json!([row(account_id, "u1", "s1", "ready")]));
    store
        .by_session(&SessionId::new("s1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pg.last().query,
        pairs(&[("select", "*"), ("session_id", "eq.s1")])
    );

    pg.answer(
        200,
        json!([
            row(account_id, "u1", "s1", "ready"),
            row(
                "7e57d004-2b97-4e4e-9d3b-000000000002",
                "u1",
                "s2",
                "stopped"
            )
        ]),
    );
    let mine = store.by_user(&UserId::new("u1").unwrap()).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(
        pg.last().query,
        pairs(&[
            ("select", "*"),
            ("user_id", "eq.u1"),
            ("order", "created_at.asc,id.asc")
        ])
    );

    pg.answer(200, json!([row(account_id, "u1", "s1", "reconnecting")]));
    let restorable = store.restorable().await.unwrap();
    assert_eq!(restorable[0].status, Status::Reconnecting);
    assert_eq!(
        pg.last().query,
        pairs(&[
            ("select", "*"),
            ("status", "in.(ready,authenticated,reconnecting)"),
            ("order", "created_at.asc,id.asc")
        ])
    );

    // update_status: PATCH filtered by session id; identity fields only on ready
    pg.answer(204, json!(null));
    store
        .update_status(
            &SessionId::new("s1").unwrap(),
            StatusUpdate {
                at: wa_supervisor::store::now(),
                status: Status::Ready,
                error_message: None,
                identity: Some(("34600111222".into(), "Ana".into())),
            },
        )
        .await
        .unwrap();
    let r = pg.last();
    assert_authenticated(&r);
    assert_eq!(r.method, Method::PATCH);
    assert_eq!(r.query, pairs(&[("session_id", "eq.s1")]));
    assert_eq!(r.header("prefer"), Some("return=minimal"));
    let body = r.body.unwrap();
    assert!(humantime::parse_rfc3339(body["connected_at"].as_str().unwrap()).is_ok());
    assert_eq!(
        body,
        json!({ "status": "ready", "error_message": null, "phone_number": "34600111222",
                "profile_name": "Ana", "connected_at": body["connected_at"] })
    );
    pg.answer(204, json!(null));
    store
        .update_status(
            &SessionId::new("s1").unwrap(),
            StatusUpdate {
                at: wa_supervisor::store::now(),
                status: Status::Error,
                error_message: Some("LOGOUT".into()),
                identity: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        pg.last().body.unwrap(),
        json!({ "status": "error", "error_message": "LOGOUT" }),
        "identity is left alone when not given"
    );

    // touch: last_seen only
    pg.answer(204, json!(null));
    store.touch(&SessionId::new("s1").unwrap()).await.unwrap();
    let r = pg.last();
    assert_eq!(
        (r.method.clone(), r.query.clone()),
        (Method::PATCH, pairs(&[("session_id", "eq.s1")]))
    );
    let body = r.body.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert!(humantime::parse_rfc3339(body["last_seen"].as_str().unwrap()).is_ok());

    // delete
    pg.answer(204, json!(null));
    store.delete(account_id).await.unwrap();
    let r = pg.last();
    assert_authenticated(&r);
    assert_eq!(r.method, Method::DELETE);
    assert_eq!(r.query, pairs(&[("id", &format!("eq.{account_id}"))]));
}

#[tokio::test]
async fn postgrest_failures_are_store_errors_with_its_message() {
    let (pg, addr) = Listener::start().await;
    let store = SupabaseStore::new(&format!("http://{addr}"), KEY).unwrap();

    // A wrong key is a configuration error: not worth waiting for.
    pg.answer(401, json!({ "message": "Invalid API key" }));
    let error = store.restorable().await.unwrap_err();
    assert!(!error.is_transient());
    let error = error.to_string();
    assert!(
        error.contains("401") && error.contains("Invalid API key"),
        "{error}"
    );

    // A gateway that is down is: writes wait for it.
    pg.answer(503, json!({ "message": "upstream unavailable" }));
    let error = store
        .touch(&SessionId::new("s1").unwrap())
        .await
        .unwrap_err();
    assert!(error.is_transient());
    assert!(error.to_string().contains("503"), "{error}");

    // A row PostgREST should never send (an unknown status) is reported, not guessed at.
    pg.answer(
        200,
        json!([row(
            "5b0c1a8e-2f7d-4c55-9a61-3c1f0e7d9a10",
            "u1",
            "s1",
            "paired"
        )]),
    );
    assert!(matches!(
        store.by_user(&UserId::new("u1").unwrap()).await,
        Err(StoreError::Corrupt(_))
    ));

    // Nobody listening: an error, quickly.
    drop(pg);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let store = SupabaseStore::new(&format!("http://{dead}"), KEY).unwrap();
    let unreachable = store.restorable().await;
    assert!(
        matches!(&unreachable, Err(e @ StoreError::Unreachable(_)) if e.is_transient()),
        "{unreachable:?}"
    );

    for bad in ["not a url", "ftp://example.com"] {
        assert!(SupabaseStore::new(bad, KEY).is_err(), "{bad}");
    }
}
