//! The binary as an operator runs it.

mod common;

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
    assert!(
        text.contains(&format!(
            "ok    backups: {} is writable, 0 archives, schedule \"0 0 3 * * *\"",
            dir.path().join("backups").display()
        )),
        "{text}"
    );

    let out = wa()
        .args(["check", "--data-dir"])
        .arg(dir.path())
        .env("CHROMIUM_PATH", "/nowhere/chromium")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("apt-get install -y chromium"));
}

#[test]
fn serve_with_sim_answers_health_and_the_simulator_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let http = port(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let sim = port(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let mut child = wa()
        .args([
            "serve",
            "--sim",
            "--listen",
            &format!("127.0.0.1:{http}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("WA__SIM__LISTEN", format!("127.0.0.1:{sim}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let health = loop {
        if let Some(text) = get("/health") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve answers within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let devices = get("/__sim/devices").unwrap();
    assert!(
        devices.contains("\"devices\":[]"),
        "the simulator's control API is mounted: {devices}"
    );
    // SAFETY: SIGTERM to the server this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
    assert!(dir.path().join("wa-supervisor.db").exists());
    assert!(dir.path().join("jwt-secret").exists());
}

/// `check` logs in to the SMTP server as the mailer would: a real server (aiosmtpd) takes the
/// right password, refuses a wrong one; a closed port fails.
#[tokio::test]
async fn check_logs_in_to_the_smtp_server_when_one_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = common::smtp::SmtpServer::start(common::smtp::free_port()).await;
    let check = |url: String| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"));
        command
            .args(["check", "--data-dir"])
            .arg(dir.path())
            .env("WA__MAIL__TRANSPORT", "smtp")
            .env("WA__MAIL__SMTP_URL", url);
        async move {
            let out = command.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let port = smtp.port;
    let (ok, text) = check(format!("smtp://wa:secret@127.0.0.1:{port}?tls=none")).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "ok    smtp: 127.0.0.1:{port} accepts the mailer (no TLS, as configured, credentials accepted)"
        )),
        "{text}"
    );
    assert!(
        !text.contains("secret"),
        "the password is not printed: {text}"
    );
    assert!(text.contains("ok    store: sqlite"), "{text}");

    let (ok, text) = check(format!("smtp://wa:wrong@127.0.0.1:{port}?tls=none")).await;
    assert!(!ok && text.contains("FAIL  smtp: 127.0.0.1"), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password is not printed: {text}"
    );
    // STARTTLS is required by default, and this server has none.
    let (ok, text) = check(format!("smtp://wa:secret@127.0.0.1:{port}")).await;
    assert!(!ok && text.contains("FAIL  smtp"), "{text}");
    smtp.stop().await;

    let closed = common::smtp::free_port();
    let (ok, text) = check(format!("smtp://127.0.0.1:{closed}?tls=none")).await;
    assert!(!ok && text.contains("FAIL  smtp"), "{text}");
}
