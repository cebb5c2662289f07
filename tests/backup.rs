//! Profile backups: the drill (a ready session backed up, its profile deleted, the server
//! restarted → ready without a QR, with the newest archive corrupt so an older one is used),
//! verification and retention on real files, the CLI, and the schedule.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use wa_supervisor::backup::{BackupError, Backups, SUBSET, verify};
use wa_supervisor::ids::SessionId;

use common::Env;
use common::server::{Server, config, ready_session};

const WAIT: Duration = Duration::from_secs(40);

/// Runs the real binary with this data directory (profiles directly in it, as the test
/// server keeps them).
fn cli(data: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("WA__SESSIONS__PATH", data)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Flips bytes in the middle of a file (what a bad disk sector does to an archive).
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_lost_profile_comes_back_from_its_backup_without_a_qr_skipping_a_corrupt_archive() {
    let env = Env::new().await;
    let data = env.dir.path().to_owned();
    let server = Server::start(&env, config()).await;
    let mut client = server.connect("owner").await;
    let session_id = ready_session(&env, &mut client, "c1").await;
    let profile = data.join(format!("session-{session_id}"));

    // A running session's profile is not overwritten.
    let (ok, text) = cli(&data, &["backup", "restore", &session_id]);
    assert!(
        !ok && text.contains("in use by a running Chromium"),
        "{text}"
    );

    let (ok, text) = cli(&data, &["backup", "now"]);
    assert!(
        ok && text.contains(&format!("ok    {session_id} ")) && text.contains("verified"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (ok, text) = cli(&data, &["backup", "now", &session_id]);
    assert!(ok, "{text}");
    let (ok, listing) = cli(&data, &["backup", "list", &session_id]);
    assert!(ok, "{listing}");
    let archives: Vec<PathBuf> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(PathBuf::from))
        .collect();
    assert_eq!(archives.len(), 2, "{listing}");
    eprintln!("archives of a ready session:\n{listing}");
    for archive in &archives {
        let name = archive.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("{session_id}-")) && name.ends_with(".tar.gz"),
            "{name}"
        );
        let manifest = verify(archive).unwrap();
        assert!(
            manifest
                .files
                .keys()
                .any(|f| f.starts_with("Default/IndexedDB/"))
                && manifest
                    .files
                    .keys()
                    .any(|f| f.starts_with("Default/Local Storage/")),
            "both credential stores are in the archive: {:?}",
            manifest.files.keys()
        );
    }

    server.stop().await;
    env.assert_no_chromium_left().await;

    // The newest archive rots; the disk with the profile is lost.
    corrupt(&archives[0]);
    assert!(matches!(
        verify(&archives[0]),
        Err(BackupError::Corrupt { .. })
    ));
    std::fs::remove_dir_all(&profile).unwrap();

    let server = Server::start(&env, config()).await;
    let mut client = server.connect("owner").await;
    assert_eq!(server.app.restore().await, 1);
    let ready = client.expect("whatsapp:ready", WAIT).await;
    assert_eq!(ready["data"]["sessionId"], session_id.as_str());
    assert!(
        client.seen.iter().all(|f| f["event"] != "whatsapp:qr"),
        "restored from the older archive, without a QR: {:#?}",
        client.seen
    );
    assert!(profile.join("Default/IndexedDB").is_dir());
    assert!(
        archives[0].exists() && archives[1].exists(),
        "restoring removes no archive"
    );

    // An operator stops the session (profile kept), then its owner destroys it: with no
    // browser to log out with, its credentials — profile and backups — are deleted.
    let parked = server
        .app
        .supervisor
        .call(
            |reply| wa_supervisor::supervisor::SupervisorMsg::Stop {
                session_id: SessionId::new(&session_id).unwrap(),
                mode: wa_supervisor::session::actor::StopMode::Park,
                reply: Some(reply),
            },
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert!(matches!(parked, ractor::rpc::CallResult::Success(true)));
    assert!(profile.exists(), "parking keeps the profile");
    client
        .send(
            "whatsapp:destroy",
            serde_json::json!({ "sessionId": session_id }),
            "d1",
        )
        .await;
    client.expect("whatsapp:disconnected", WAIT).await;
    common::eventually(
        Duration::from_secs(10),
        "profile and backups deleted",
        || async { !archives.iter().any(|a| a.exists()) && !profile.exists() },
    )
    .await;
    server.stop().await;
    env.assert_no_chromium_left().await;
}

/// A profile-like tree with the subset and something outside it.
fn fake_profile(sessions: &Path, session: &str, version: &str) -> PathBuf {
    let profile = sessions.join(format!("session-{session}"));
    for (file, body) in [
        (
            "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log",
            version,
        ),
        (
            "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/CURRENT",
            "MANIFEST-000001\n",
        ),
        ("Default/Local Storage/leveldb/000005.ldb", version),
        ("Default/Cache/Cache_Data/data_0", "cache, not backed up"),
    ] {
        let path = profile.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{body} {}", "x".repeat(4096))).unwrap();
    }
    profile
}

fn read(profile: &Path, file: &str) -> String {
    std::fs::read_to_string(profile.join(file)).unwrap()
}

const LOG: &str = "Default/IndexedDB/https_web.whatsapp.com_0.indexeddb.leveldb/000003.log";

#[test]
fn archives_are_verified_pruned_and_restored_newest_good_first() {
    let root = tempfile::tempdir().unwrap();
    let sessions = root.path().join("sessions");
    let backups = Backups::new(root.path().join("backups"), sessions.clone(), 3);
    let id = SessionId::new("shop-1").unwrap();
    assert!(matches!(
        backups.backup(&id),
        Err(BackupError::NothingToBackUp(_))
    ));
    assert!(matches!(
        backups.restore(&id),
        Err(BackupError::NoBackup(_))
    ));

    let profile = fake_profile(&sessions, "shop-1", "v1");
    fake_profile(&sessions, "shop-2", "other");
    let first = backups.backup(&id).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&backups.dir), 0o700, "credentials: owner only");
        assert_eq!(mode(&first.path), 0o600, "credentials: owner only");
    }
    let manifest = verify(&first.path).unwrap();
    assert_eq!(manifest.session_id, "shop-1");
    assert_eq!(
        manifest.files.len(),
        3,
        "the subset only: {:?}",
        manifest.files
    );
    assert!(
        manifest
            .files
            .keys()
            .all(|f| SUBSET.iter().any(|d| f.starts_with(d)))
    );
    assert_eq!(
        manifest.files[LOG],
        std::fs::metadata(profile.join(LOG)).unwrap().len()
    );

    std::thread::sleep(Duration::from_millis(5));
    fake_profile(&sessions, "shop-1", "v2");
    let second = backups.backup(&id).unwrap();
    assert_eq!(
        backups.list(Some(&id)),
        vec![second.clone(), first.clone()],
        "newest first"
    );

    // The newest is corrupt: restore skips it and uses the older one.
    corrupt(&second.path);
    std::fs::remove_dir_all(&profile).unwrap();
    assert_eq!(backups.restore_if_missing(&id), Some(first.clone()));
    assert!(read(&profile, LOG).starts_with("v1 "));
    assert!(
        !profile.join("Default/Cache").exists(),
        "only the subset comes back"
    );
    // A profile that exists is left alone.
    assert_eq!(backups.restore_if_missing(&id), None);
    let (used, skipped) = backups.restore(&id).unwrap();
    assert_eq!(used, first);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, second);

    // A truncated archive is caught too; with nothing good left, restore says so.
    let bytes = std::fs::read(&first.path).unwrap();
    std::fs::write(&first.path, &bytes[..bytes.len() - 40]).unwrap();
    assert!(verify(&first.path).is_err());
    assert!(matches!(
        backups.restore(&id),
        Err(BackupError::NoneVerifies { tried: 2, .. })
    ));
    assert!(
        read(&profile, LOG).starts_with("v1 "),
        "a failed restore changes nothing"
    );

    // Retention: the newest `keep` per session; other sessions untouched.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(5));
        backups.backup(&id).unwrap();
    }
    let kept = backups.list(Some(&id));
    assert_eq!(kept.len(), 3);
    assert!(
        kept.iter().all(|a| verify(&a.path).is_ok()),
        "the corrupt ones aged out"
    );
    let all = backups.backup_all();
    assert_eq!(
        all.iter()
            .map(|(s, r)| (s.as_str(), r.is_ok()))
            .collect::<Vec<_>>(),
        vec![("shop-1", true), ("shop-2", true)]
    );
    assert_eq!(backups.list(None).len(), 4);
}

#[tokio::test]
async fn scheduled_backups_run_on_the_cron_schedule_and_keep_the_newest() {
    let env = Env::new().await;
    let data = env.dir.path().to_owned();
    fake_profile(&data, "nightly", "v1");
    let mut config = config();
    config.backup.schedule = "* * * * * *".into(); // every second
    config.backup.keep = 2;
    let server = Server::start(&env, config).await;
    let (backups, metrics) = (server.app.backups.clone(), server.app.metrics.clone());
    let id = SessionId::new("nightly").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The first two runs: two archives.
    let first_two = loop {
        let archives = backups.list(Some(&id));
        let (ok, text) = cli(&data, &["backup", "list"]);
        assert!(ok, "{text}");
        if archives.len() == 2 && text.lines().count() == 2 {
            break archives;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled backups: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // More runs, then the schedule stops with the server (a run under way finishes).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.stop().await;
    // A run already under way finishes (it is blocking work); wait until nothing changes.
    let later = stable_listing(&backups, &id).await;
    assert_eq!(later.len(), 2, "keep = 2");
    assert_ne!(later, first_two, "newer runs replaced the oldest");
    assert!(later.iter().all(|a| verify(&a.path).is_ok()));
    let rendered = metrics.render();
    let written: u64 = rendered
        .lines()
        .find_map(|l| l.strip_prefix("wa_backups_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(written >= 3, "{rendered}");
    assert!(
        rendered.contains("\nwa_backup_failures_total 0\n"),
        "{rendered}"
    );
    // Stopped means stopped: no run after shutdown.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(backups.list(Some(&id)), later);
    env.assert_no_chromium_left().await;
}

/// The archives of `id` once they have not changed for 1.5 s (20 s at most).
async fn stable_listing(backups: &Backups, id: &SessionId) -> Vec<wa_supervisor::backup::Archive> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = backups.list(Some(id));
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = backups.list(Some(id));
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= Duration::from_millis(1500) {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backups keep changing"
        );
    }
}

/// Writes `<dir>/<session>-<stamp>.tar.gz` with the given entries (name, kind, data) and a
/// manifest that lists the regular ones, as a tampered or foreign archive would look.
fn craft(
    dir: &Path,
    session: &str,
    stamp: &str,
    manifest_session: &str,
    entries: &[(&str, tar::EntryType, &[u8])],
) -> PathBuf {
    let path = dir.join(format!("{session}-{stamp}.tar.gz"));
    let file = std::fs::File::create(&path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::default(),
    ));
    let mut files = serde_json::Map::new();
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(0o600);
        if *kind == tar::EntryType::Symlink {
            header.set_size(0);
            tar.append_link(&mut header, name, "/etc/passwd").unwrap();
        } else if *kind == tar::EntryType::Link {
            header.set_size(0);
            tar.append_link(&mut header, name, LOG).unwrap();
        } else {
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, name, *data).unwrap();
            files.insert(name.to_string(), serde_json::json!(data.len()));
        }
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "session_id": manifest_session, "created_at": "2026-12-04T03:00:00.000Z", "files": files
    }))
    .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o600);
    tar.append_data(&mut header, "wa-backup.json", &manifest[..])
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    path
}

#[test]
fn tampered_and_foreign_archives_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let sessions = root.path().join("sessions");
    let dir = root.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let backups = Backups::new(dir.clone(), sessions.clone(), 5);
    let id = SessionId::new("shop").unwrap();
    let regular = tar::EntryType::Regular;
    let good = craft(
        &dir,
        "shop",
        "20261201T030000000Z",
        "shop",
        &[(LOG, regular, b"good")],
    );
    assert!(verify(&good).is_ok(), "a well-formed archive verifies");
    let link = craft(
        &dir,
        "shop",
        "20261202T030000000Z",
        "shop",
        &[
            (LOG, regular, b"x"),
            ("Default/IndexedDB/evil", tar::EntryType::Symlink, b""),
        ],
    );
    let outside = craft(
        &dir,
        "shop",
        "20261203T030000000Z",
        "shop",
        &[
            (LOG, regular, b"x"),
            ("Default/Cookies", regular, b"not credentials"),
        ],
    );
    let hard = craft(
        &dir,
        "shop",
        "20261202T040000000Z",
        "shop",
        &[
            (LOG, regular, b"x"),
            ("Default/IndexedDB/hard", tar::EntryType::Link, b""),
        ],
    );
    let escape = dir.join("shop-20261202T050000000Z.tar.gz");
    {
        // A name with `..`, written into the header by hand (tar's builder refuses it).
        let file = std::fs::File::create(&escape).unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ));
        let mut header = tar::Header::new_old();
        let name = b"Default/IndexedDB/../../../evil";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(4);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, &b"evil"[..]).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    // Another session's archive renamed to this one's.
    let foreign = craft(
        &dir,
        "shop",
        "20261204T030000000Z",
        "rival",
        &[(LOG, regular, b"theirs")],
    );
    for bad in [&link, &outside, &hard, &escape] {
        assert!(
            matches!(verify(bad), Err(BackupError::Corrupt { .. })),
            "{}",
            bad.display()
        );
    }
    // A half-written archive of a session whose id starts like this one's is not ours to clean.
    let partial = dir.join(".shop-2-20261204T030000000Z.tar.gz.partial");
    std::fs::write(&partial, b"being written").unwrap();

    let (used, skipped) = backups.restore(&id).unwrap();
    assert_eq!(used.path, good, "the newest three are refused");
    let skipped: Vec<_> = skipped.iter().map(|(a, _)| a.path.clone()).collect();
    assert_eq!(skipped, vec![foreign, outside, escape, hard, link]);
    assert!(!root.path().join("evil").exists() && !sessions.join("evil").exists());
    let profile = sessions.join("session-shop");
    assert_eq!(read(&profile, LOG), "good");
    assert!(!profile.join("Default/IndexedDB/evil").exists());
    assert!(!profile.join("Default/Cookies").exists());

    fake_profile(&sessions, "shop", "v3");
    backups.backup(&id).unwrap();
    assert!(partial.exists());
    backups.delete_all(&id);
    assert!(backups.list(Some(&id)).is_empty());
    assert!(partial.exists(), "shop-2's file is not shop's");
}
