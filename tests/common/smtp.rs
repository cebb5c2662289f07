//! A real SMTP server (aiosmtpd, `tests/smtp/server.py`) in a child process, with AUTH.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct SmtpServer {
    child: tokio::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py")
}

impl SmtpServer {
    /// AUTH allowed without TLS (loopback).
    pub async fn start(port: u16) -> SmtpServer {
        SmtpServer::start_with(port, &[]).await
    }

    /// `mode`: `["starttls", cert, key]` or `["tls", cert, key]`.
    pub async fn start_with(port: u16, mode: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("python3")
            .args(["-W", "ignore"])
            .arg(script())
            .arg(port.to_string())
            .arg(dir.path())
            .args(mode)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs it and aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(
            matches!(&ready, Ok(Ok(Some(line))) if line == "ready"),
            "the SMTP server starts (is aiosmtpd installed? pip install aiosmtpd): {ready:?}"
        );
        SmtpServer { child, port, dir }
    }

    /// How many times a client tried to log in (whatever the outcome).
    pub fn auth_attempts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("auth.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The mails received so far, oldest first.
    pub fn mails(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    pub async fn wait_mails(&self, count: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} mails expected, got {mails:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server and checks that its process is gone.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap() as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        assert!(status.is_ok(), "the SMTP server exits on SIGTERM");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "no SMTP server process left"
        );
    }
}
