//! Mail over encrypted SMTP against a real server (aiosmtpd) with a certificate from a CA made
//! here: `smtp://` upgrades with STARTTLS (the server refuses anything before it), `smtps://`
//! speaks TLS from the first byte. The CA is trusted the way an operator trusts an internal
//! relay's CA: through the system store (`SSL_CERT_FILE`), which this file sets for its own
//! process — hence a test binary of its own.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wa_supervisor::config::{Config, MailTransport};
use wa_supervisor::ids::{SessionId, UserId};
use wa_supervisor::mail::{MailKind, Mailer, Notice};
use wa_supervisor::metrics::Metrics;
use wa_supervisor::store::sqlite::SqliteStore;
use wa_supervisor::store::{NewAccount, Store};

use common::smtp::{SmtpServer, free_port};

/// A CA and a certificate it signed for `localhost`, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wa-supervisor test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn mail_goes_out_over_starttls_and_over_tls() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    // SAFETY: set before anything in this process reads the environment from another thread
    // (this binary holds this one test, on a current-thread runtime).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&data.path().join("wa.db")).await.unwrap());
    let session = store
        .create(NewAccount {
            user_id: UserId::new("secure").unwrap(),
            session_id: SessionId::new("secure-1").unwrap(),
            name: Some("Notaría".into()),
            notify_email: Some("notaria@example.com".into()),
        })
        .await
        .unwrap()
        .session_id;

    for (mode, url) in [
        ("starttls", "smtp://wa:secret@localhost:{port}"),
        ("tls", "smtps://wa:secret@localhost:{port}"),
    ] {
        let port = free_port();
        let smtp = SmtpServer::start_with(port, &[mode, cert, key]).await;
        let mut mail = Config::default().mail;
        mail.transport = MailTransport::Smtp;
        mail.smtp_url = Some(url.replace("{port}", &port.to_string()));
        let metrics = Arc::new(Metrics::default());
        let mailer = Mailer::start(&mail, data.path(), store.clone(), metrics.clone()).unwrap();
        mailer.notify(Notice {
            session_id: session.clone(),
            at: wa_supervisor::store::now(),
            kind: MailKind::Connected,
            phone_number: Some("34600111222".into()),
            reason: None,
        });
        let mails = smtp.wait_mails(1, Duration::from_secs(20)).await;
        assert_eq!(smtp.auth_attempts(), 1, "{mode}: one login");
        assert_eq!(mails[0]["tls"], true, "{mode}: the mail came over TLS");
        assert_eq!(mails[0]["login"], "wa", "{mode}: authenticated");
        assert_eq!(mails[0]["to"], "notaria@example.com");
        assert_eq!(
            mails[0]["subject"],
            "WhatsApp conectado: Notaría (34600111222)"
        );
        smtp.stop().await;
    }

    // `smtp://` never falls back to plain text: a server without STARTTLS gets nothing, not
    // even the password.
    let port = free_port();
    let plain = SmtpServer::start(port).await;
    let mut mail = Config::default().mail;
    mail.transport = MailTransport::Smtp;
    mail.smtp_url = Some(format!("smtp://wa:secret@localhost:{port}"));
    let metrics = Arc::new(Metrics::default());
    let mailer = Mailer::start(&mail, data.path(), store.clone(), metrics.clone()).unwrap();
    mailer.notify(Notice {
        session_id: session.clone(),
        at: wa_supervisor::store::now(),
        kind: MailKind::Disconnected,
        phone_number: None,
        reason: Some("LOGOUT".into()),
    });
    // Given up at once (no STARTTLS will not appear by retrying)…
    common::eventually(Duration::from_secs(20), "the mail is given up", || async {
        metrics
            .mails_failed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    // …without a mail, and without a login attempt: the password never went out in clear.
    assert!(plain.mails().is_empty(), "nothing sent without TLS");
    assert_eq!(plain.auth_attempts(), 0, "no AUTH without TLS");
    plain.stop().await;
}
