//! Notification mails through a real SMTP server (aiosmtpd in a child process, AUTH required):
//! recipient, subject and body of both mails in both locales, the per-interval limit, and an
//! SMTP server that is down while a session becomes ready.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wa_supervisor::config::{Config, Locale, MailTransport};
use wa_supervisor::ids::{SessionId, UserId};
use wa_supervisor::mail::{MailKind, Mailer, Notice};
use wa_supervisor::store::sqlite::SqliteStore;
use wa_supervisor::store::{NewAccount, Store};

use common::server::{Server, config, ready_session};
use common::smtp::{SmtpServer, free_port};
use common::{Env, PHONE};

const WAIT: Duration = Duration::from_secs(40);

fn smtp_url(port: u16) -> String {
    // AUTH over a plain connection on loopback; `tls=none` says so explicitly.
    format!("smtp://wa:secret@127.0.0.1:{port}?tls=none")
}

fn mail_config(port: u16, locale: Locale) -> Config {
    let mut config = config();
    config.mail.transport = MailTransport::Smtp;
    config.mail.smtp_url = Some(smtp_url(port));
    config.mail.from = "Avisos <avisos@example.com>".into();
    config.mail.locale = locale;
    config
}

fn assert_envelope(mail: &Value, to: &str) {
    assert_eq!(mail["rcpt_tos"], json!([to]), "{mail:#}");
    assert_eq!(mail["to"], to, "{mail:#}");
    assert_eq!(mail["from"], "Avisos <avisos@example.com>");
    assert_eq!(mail["mail_from"], "avisos@example.com");
    assert_eq!(mail["login"], "wa", "the URL's credentials were used");
    assert_eq!(mail["content_type"], "text/plain");
    assert_eq!(mail["tls"], false, "?tls=none, as asked");
}

#[tokio::test]
async fn spanish_mails_on_ready_and_on_a_permanent_disconnection() {
    let env = Env::new().await;
    let smtp = SmtpServer::start(free_port()).await;
    let server = Server::start(&env, mail_config(smtp.port, Locale::Es)).await;
    let mut client = server.connect("ana").await;
    let session_id = ready_session(&env, &mut client, "c1").await;

    let mails = smtp.wait_mails(1, WAIT).await;
    let connected = &mails[0];
    assert_envelope(connected, "ana@example.com");
    assert_eq!(
        connected["subject"],
        format!("WhatsApp conectado: {session_id} ({PHONE})")
    );
    let body = connected["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("Tu número de WhatsApp {PHONE} está conectado")),
        "{body}"
    );
    assert!(body.contains(&format!("Sesión: {session_id}")), "{body}");

    let (status, _) = env
        .post(
            &format!("/phones/{PHONE}/state"),
            json!({ "state": "CONFLICT" }),
        )
        .await;
    assert_eq!(status, 200);
    client.expect("whatsapp:disconnected", WAIT).await;
    let mails = smtp.wait_mails(2, WAIT).await;
    let disconnected = &mails[1];
    assert_envelope(disconnected, "ana@example.com");
    assert_eq!(
        disconnected["subject"],
        format!("WhatsApp desconectado: {session_id}")
    );
    let body = disconnected["body"].as_str().unwrap();
    assert!(body.contains("Motivo: CONFLICT"), "{body}");
    assert!(
        body.contains(&format!("({PHONE}) se ha desconectado")),
        "{body}"
    );

    // The error is parked; nothing more is mailed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.mails().len(), 2);
    let metrics = server.app.metrics.render();
    assert!(metrics.contains("\nwa_mails_sent_total 2\n"), "{metrics}");
    assert!(metrics.contains("\nwa_mails_failed_total 0\n"), "{metrics}");
    server.stop().await;
    env.assert_no_chromium_left().await;
    smtp.stop().await;
}

#[tokio::test]
async fn with_the_smtp_server_down_the_session_is_ready_and_english_mail_goes_out_later() {
    let env = Env::new().await;
    let port = free_port();
    let server = Server::start(&env, mail_config(port, Locale::En)).await;
    let mut client = server.connect("bob").await;
    // Nothing listens on the SMTP port: the session must not care.
    let session_id = ready_session(&env, &mut client, "c1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let smtp = SmtpServer::start(port).await;
    let mails = smtp.wait_mails(1, WAIT).await;
    assert_eq!(mails.len(), 1, "sent once, however many attempts failed");
    let connected = &mails[0];
    assert_envelope(connected, "bob@example.com");
    assert_eq!(
        connected["subject"],
        format!("WhatsApp connected: {session_id} ({PHONE})")
    );
    let body = connected["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("Your WhatsApp number {PHONE} is connected")),
        "{body}"
    );

    let (status, _) = env
        .post(
            &format!("/phones/{PHONE}/state"),
            json!({ "state": "LOGOUT" }),
        )
        .await;
    assert_eq!(status, 200);
    client.expect("whatsapp:disconnected", WAIT).await;
    let mails = smtp.wait_mails(2, WAIT).await;
    assert_eq!(
        mails[1]["subject"],
        format!("WhatsApp disconnected: {session_id}")
    );
    let body = mails[1]["body"].as_str().unwrap();
    assert!(body.contains("Reason: LOGOUT"), "{body}");

    server.stop().await;
    env.assert_no_chromium_left().await;
    smtp.stop().await;
}

async fn account(store: &SqliteStore, session: &str, name: &str) -> SessionId {
    store
        .create(NewAccount {
            user_id: UserId::new("clinic").unwrap(),
            session_id: SessionId::new(session).unwrap(),
            name: Some(name.into()),
            notify_email: Some("recepcion@example.com".into()),
        })
        .await
        .unwrap()
        .session_id
}

fn notice(session_id: &SessionId, kind: MailKind) -> Notice {
    Notice {
        session_id: session_id.clone(),
        at: wa_supervisor::store::now(),
        kind,
        phone_number: Some(PHONE.into()),
        reason: (kind == MailKind::Disconnected).then(|| "TOS_BLOCK".into()),
    }
}

#[tokio::test]
async fn a_flapping_session_gets_one_mail_per_kind_per_interval() {
    let smtp = SmtpServer::start(free_port()).await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&data.path().join("wa.db")).await.unwrap());
    let flappy = account(&store, "flappy", "Clínica Norte").await;
    let calm = account(&store, "calm", "Clínica Sur").await;
    let mut mail = mail_config(smtp.port, Locale::Es).mail;
    mail.min_interval = Duration::from_secs(3);
    let mailer = Mailer::start(&mail, data.path(), store.clone(), Arc::default()).unwrap();

    for _ in 0..4 {
        mailer.notify(notice(&flappy, MailKind::Connected));
        mailer.notify(notice(&flappy, MailKind::Disconnected));
    }
    mailer.notify(notice(&calm, MailKind::Connected));
    let mails = smtp.wait_mails(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let subjects: Vec<String> = smtp
        .mails()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        subjects,
        [
            format!("WhatsApp conectado: Clínica Norte ({PHONE})"),
            "WhatsApp desconectado: Clínica Norte".to_owned(),
            format!("WhatsApp conectado: Clínica Sur ({PHONE})"),
        ],
        "one mail per kind for the flapping session, in order"
    );
    assert!(
        mails[1]["body"]
            .as_str()
            .unwrap()
            .contains("Motivo: TOS_BLOCK")
    );

    // Once the interval has passed, the next change is mailed again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    mailer.notify(notice(&flappy, MailKind::Connected));
    let mails = smtp.wait_mails(4, WAIT).await;
    assert_eq!(
        mails[3]["subject"],
        format!("WhatsApp conectado: Clínica Norte ({PHONE})")
    );
    smtp.stop().await;
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_mail() {
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&data.path().join("wa.db")).await.unwrap());
    let session = account(&store, "front-desk", "Recepción").await;
    let mut mail = Config::default().mail;
    mail.transport = MailTransport::File;
    mail.locale = Locale::En;
    let mailer = Mailer::start(&mail, data.path(), store.clone(), Arc::default()).unwrap();
    mailer.notify(notice(&session, MailKind::Disconnected));

    let dir = data.path().join("mail");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let files = loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if !files.is_empty() || tokio::time::Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "eml");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("To: recepcion@example.com"), "{eml}");
    assert!(eml.contains("Subject: WhatsApp disconnected:"), "{eml}");
}

#[tokio::test]
async fn a_permanent_smtp_refusal_is_not_retried_for_an_hour() {
    let smtp = SmtpServer::start(free_port()).await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&data.path().join("wa.db")).await.unwrap());
    let session = account(&store, "refused", "Óptica").await;
    let mut mail = mail_config(smtp.port, Locale::Es).mail;
    mail.smtp_url = Some(format!(
        "smtp://wa:wrong-password@127.0.0.1:{}?tls=none",
        smtp.port
    ));
    let metrics = Arc::new(wa_supervisor::metrics::Metrics::default());
    let mailer = Mailer::start(&mail, data.path(), store.clone(), metrics.clone()).unwrap();
    mailer.notify(notice(&session, MailKind::Connected));
    common::eventually(
        Duration::from_secs(10),
        "a 535 (bad credentials) is given up at once",
        || async {
            metrics
                .mails_failed
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        },
    )
    .await;
    assert!(smtp.mails().is_empty());
    assert_eq!(
        metrics
            .mails_sent
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    smtp.stop().await;
}

#[tokio::test]
async fn an_operators_templates_replace_the_built_in_ones() {
    let smtp = SmtpServer::start(free_port()).await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&data.path().join("wa.db")).await.unwrap());
    let session = account(&store, "custom", "Farmacia").await;
    let templates = data.path().join("templates");
    std::fs::create_dir_all(templates.join("es")).unwrap();
    std::fs::write(
        templates.join("es/connected.txt"),
        "Subject: [Farmacias Unidas] {{name}} en línea\n\nNúmero {{phone_number}} activo.\n",
    )
    .unwrap();
    let mut mail = mail_config(smtp.port, Locale::Es).mail;
    mail.templates_dir = Some(templates.clone());
    let mailer = Mailer::start(&mail, data.path(), store.clone(), Arc::default()).unwrap();
    mailer.notify(notice(&session, MailKind::Connected));
    mailer.notify(notice(&session, MailKind::Disconnected));
    let mails = smtp.wait_mails(2, WAIT).await;
    assert_eq!(mails[0]["subject"], "[Farmacias Unidas] Farmacia en línea");
    assert_eq!(
        mails[0]["body"].as_str().unwrap().trim_end(),
        format!("Número {PHONE} activo.")
    );
    assert_eq!(
        mails[1]["subject"], "WhatsApp desconectado: Farmacia",
        "a template missing from the directory falls back to the built-in one"
    );
    smtp.stop().await;

    // A broken template stops start-up, naming the key and the file.
    std::fs::write(templates.join("es/disconnected.txt"), "no subject here").unwrap();
    let error = Mailer::start(&mail, data.path(), store.clone(), Arc::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("mail.templates_dir") && error.contains("disconnected.txt"),
        "{error}"
    );
    mail.templates_dir = Some(data.path().join("nowhere"));
    assert!(Mailer::start(&mail, data.path(), store.clone(), Arc::default()).is_err());
    // A directory without the configured locale's templates is a mistake, not a fallback.
    mail.templates_dir = Some(templates.clone());
    mail.locale = Locale::En;
    let error = Mailer::start(&mail, data.path(), store, Arc::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("mail.locale"), "{error}");
}
