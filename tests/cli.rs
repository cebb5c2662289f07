//! The binary as an operator runs it.

use std::process::Command;

use wa_supervisor::auth::{Jwt, jwt_secret};

fn wa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
}

#[test]
fn token_signs_with_the_secret_kept_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = |user: &str| {
        wa().args([
            "token",
            "--user",
            user,
            "--email",
            "ana@example.com",
            "--ttl",
            "1h",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("SUPABASE_JWT_SECRET")
        .env_remove("WA__AUTH__JWT_SECRET")
        .output()
        .unwrap()
    };
    let first = run("user-a");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run("user-b");
    assert!(second.status.success());
    let secret = jwt_secret(None, dir.path()).unwrap();
    let jwt = Jwt::new(&secret);
    let a = jwt
        .verify(String::from_utf8_lossy(&first.stdout).trim())
        .unwrap();
    let b = jwt
        .verify(String::from_utf8_lossy(&second.stdout).trim())
        .unwrap();
    assert_eq!(
        (a.user_id.as_str(), b.user_id.as_str()),
        ("user-a", "user-b")
    );
    assert_eq!(a.email.as_deref(), Some("ana@example.com"));

    let bad = run("");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("user id"));
}

#[test]
fn an_invalid_setting_stops_start_up_naming_its_key() {
    let out = wa()
        .args(["check"])
        .env("WA__KEEPALIVE__HEARTBEAT_INTERVAL", "often")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive.heartbeat_interval"), "{text}");
}

#[test]
fn check_finds_chromium_and_a_writable_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = wa()
        .args(["check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok    chromium") && text.contains("Chromium 1"),
        "{text}"
    );
    assert!(text.contains("is writable"), "{text}");

    let out = wa()
        .args(["check", "--data-dir"])
        .arg(dir.path())
        .env("CHROMIUM_PATH", "/nowhere/chromium")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("apt-get install -y chromium"));
}
