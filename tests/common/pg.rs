//! A throw-away database on the machine's real PostgreSQL server, dropped at the end.
//! The server is `WA_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! `scripts/test` starts it when it is not running.
#![allow(dead_code)]

use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub fn server_url() -> String {
    std::env::var("WA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin = server_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not answering at {admin} ({e}); start it (scripts/test does) \
                 or point WA_TEST_DATABASE_URL at one"
            )
        });
        let name = format!("wa_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the throw-away database");
        let _ = conn.close().await;
        let mut url = reqwest::Url::parse(&admin).expect("WA_TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        TestDb { name, url }
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropping happens inside a runtime; do the work on a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                // The server may be restarting (the outage tests); try for a few seconds.
                for _ in 0..25 {
                    if let Ok(mut conn) = PgConnection::connect(&server_url()).await {
                        let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                        if dropped.is_ok() {
                            return;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                eprintln!("could not drop the throw-away database {name}");
            })
        })
        .join();
    }
}
