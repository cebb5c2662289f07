//! The store backends and backups, each figure next to a baseline from the same run:
//! - one status write (`update_status`) and one dashboard read (`by_user`) on PostgreSQL,
//!   next to the embedded SQLite file;
//! - writing + verifying one backup archive, next to merely copying the same files.
//!
//! Run: `cargo bench --bench store` (needs PostgreSQL at `WA_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a throw-away database is made and dropped).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;
use wa_supervisor::backup::Backups;
use wa_supervisor::ids::{SessionId, UserId};
use wa_supervisor::session::policy::Status;
use wa_supervisor::store::postgres::PostgresStore;
use wa_supervisor::store::sqlite::SqliteStore;
use wa_supervisor::store::{NewAccount, StatusUpdate, Store};

const OPS: usize = 300;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn measure(store: &dyn Store) -> (Duration, Duration) {
    let user = UserId::new("bench").unwrap();
    for i in 0..20 {
        store
            .create(NewAccount {
                user_id: user.clone(),
                session_id: SessionId::new(&format!("s{i}")).unwrap(),
                name: Some(format!("account {i}")),
                notify_email: Some("bench@example.com".into()),
            })
            .await
            .unwrap();
    }
    let statuses = [Status::Ready, Status::Reconnecting];
    let mut writes = Vec::with_capacity(OPS);
    let mut reads = Vec::with_capacity(OPS);
    for i in 0..OPS {
        let session = SessionId::new(&format!("s{}", i % 20)).unwrap();
        let started = Instant::now();
        store
            .update_status(
                &session,
                StatusUpdate {
                    at: wa_supervisor::store::now(),
                    status: statuses[i % 2],
                    error_message: None,
                    identity: None,
                },
            )
            .await
            .unwrap();
        writes.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(store.by_user(&user).await.unwrap().len(), 20);
        reads.push(started.elapsed());
    }
    (median(writes), median(reads))
}

fn fake_profile(profile: &Path, files: usize, size: usize) {
    for i in 0..files {
        let dir = if i % 2 == 0 {
            "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb"
        } else {
            "Default/Local Storage/leveldb"
        };
        let path = profile.join(dir).join(format!("{i:06}.ldb"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Half compressible text, half noise, like leveldb tables of a real profile.
        let mut data = Vec::with_capacity(size);
        let mut x: u32 = 2_463_534_242 ^ i as u32;
        while data.len() < size {
            if data.len() % 2048 < 1024 {
                data.extend_from_slice(b"{\"key\":\"value\",\"id\":\"3EB0C767D26A1C8B\"}");
            } else {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                data.extend_from_slice(&x.to_le_bytes());
            }
        }
        std::fs::write(path, &data[..size]).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .unwrap();
    let (sqlite_write, sqlite_read) = measure(&sqlite).await;

    let admin = std::env::var("WA_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("wa_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = reqwest::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let postgres = Arc::new(PostgresStore::open(url.as_str()).await.unwrap());
    let (pg_write, pg_read) = measure(&*postgres).await;
    drop(postgres);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();

    println!("store, median of {OPS} (this machine, loopback PostgreSQL):");
    println!(
        "  update_status: postgres {pg_write:?}, sqlite {sqlite_write:?} (ratio {:.2})",
        pg_write.as_secs_f64() / sqlite_write.as_secs_f64()
    );
    println!(
        "  by_user (20 rows): postgres {pg_read:?}, sqlite {sqlite_read:?} (ratio {:.2})",
        pg_read.as_secs_f64() / sqlite_read.as_secs_f64()
    );

    // A profile subset the size of a linked WhatsApp Web profile's credential stores.
    let sessions = dir.path().join("sessions");
    let session = SessionId::new("bench").unwrap();
    let profile = sessions.join(session.profile_dir_name());
    fake_profile(&profile, 40, 64 * 1024);
    let backups = Backups::new(dir.path().join("backups"), sessions.clone(), 3);
    let mut archive_times = Vec::new();
    let mut copy_times = Vec::new();
    let mut bytes = 0;
    for i in 0..5 {
        let started = Instant::now();
        bytes = backups.backup(&session).unwrap().bytes;
        archive_times.push(started.elapsed());
        let target = dir.path().join(format!("copy{i}"));
        std::fs::create_dir_all(&target).unwrap();
        let started = Instant::now();
        copy_tree(&profile, &target);
        copy_times.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    let (archive, copy) = (median(archive_times), median(copy_times));
    println!(
        "backup of a 2.5 MiB subset (40 files): write + verify {archive:?} → {bytes} bytes; plain copy {copy:?} (ratio {:.1})",
        archive.as_secs_f64() / copy.as_secs_f64()
    );
}
