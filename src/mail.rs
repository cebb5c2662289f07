//! Notification e-mails (SPEC §9): "connected" when a session becomes ready, "disconnected"
//! when it is lost for good or ends in error. Session actors hand a [`Notice`] to the
//! [`Mailer`] and go on: the mail is rendered and sent by the mailer's own task, retried with
//! backoff while the SMTP server fails, so nothing a mail server does can block a session.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{Locale, MailConfig, MailTransport};
use crate::ids::SessionId;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    Connected,
    Disconnected,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Connected => "connected",
            MailKind::Disconnected => "disconnected",
        }
    }
}

/// What a session tells the mailer; the recipient and the account's name come from the store.
#[derive(Debug, Clone)]
pub struct Notice {
    pub session_id: SessionId,
    /// When it happened (RFC 3339); the mail says this time, not when it was sent.
    pub at: String,
    pub kind: MailKind,
    pub phone_number: Option<String>,
    pub reason: Option<String>,
}

/// One rendered mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

const TEMPLATES: [(Locale, MailKind, &str); 4] = [
    (
        Locale::Es,
        MailKind::Connected,
        include_str!("../config/templates/es/connected.txt"),
    ),
    (
        Locale::Es,
        MailKind::Disconnected,
        include_str!("../config/templates/es/disconnected.txt"),
    ),
    (
        Locale::En,
        MailKind::Connected,
        include_str!("../config/templates/en/connected.txt"),
    ),
    (
        Locale::En,
        MailKind::Disconnected,
        include_str!("../config/templates/en/disconnected.txt"),
    ),
];

/// One template: `Subject: …`, a blank line, the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    subject: String,
    body: String,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text
            .split_once("\n\n")
            .ok_or("no blank line between the subject and the body")?;
        let subject = head
            .strip_prefix("Subject:")
            .ok_or("the first line must be `Subject: …`")?
            .trim();
        if subject.is_empty() || subject.contains('\n') {
            return Err("the subject must be one non-empty line".into());
        }
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or("a `{{` without its `}}`")?;
            let key = &after[..end];
            if !PLACEHOLDERS.contains(&key) {
                return Err(format!(
                    "unknown placeholder {{{{{key}}}}} (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            rest = &after[end + 2..];
        }
        Ok(Template {
            subject: subject.to_owned(),
            body: body.to_owned(),
        })
    }

    /// Fills `{{key}}` placeholders in one pass (a value that looks like a placeholder stays
    /// as it is). Values come from users (an account's name): control characters become
    /// spaces, so nothing can add a header line or end the subject.
    pub fn render(&self, values: &[(&str, &str)]) -> Rendered {
        let fill = |text: &str| {
            let mut out = String::with_capacity(text.len());
            let mut rest = text;
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find("}}") {
                    Some(end) => {
                        let key = &after[..end];
                        match values.iter().find(|(k, _)| *k == key) {
                            Some((_, value)) => out.extend(
                                value.chars().map(|c| if c.is_control() { ' ' } else { c }),
                            ),
                            None => out.push_str(&rest[start..start + 2 + end + 2]),
                        }
                        rest = &after[end + 2..];
                    }
                    None => {
                        out.push_str(&rest[start..]);
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            out
        };
        Rendered {
            subject: fill(&self.subject),
            body: fill(&self.body),
        }
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 5] = ["name", "phone_number", "reason", "session_id", "time"];

/// The templates in `config/templates/`, built in.
pub fn builtin(locale: Locale, kind: MailKind) -> Template {
    let text = TEMPLATES
        .iter()
        .find(|(l, k, _)| *l == locale && *k == kind)
        .map(|(_, _, t)| *t)
        .expect("every locale has every template");
    Template::parse(text).expect("the built-in templates parse")
}

/// The templates of `locale`: `<dir>/<locale>/<kind>.txt` where present (`mail.templates_dir`),
/// the built-in ones otherwise.
pub fn load_templates(
    dir: Option<&Path>,
    locale: Locale,
) -> Result<HashMap<MailKind, Template>, String> {
    let locale_dir = |d: &Path| {
        d.join(match locale {
            Locale::Es => "es",
            Locale::En => "en",
        })
    };
    if let Some(dir) = dir
        && !locale_dir(dir).is_dir()
    {
        return Err(format!(
            "{} has no {} directory for mail.locale",
            dir.display(),
            locale_dir(dir).display()
        ));
    }
    let mut templates = HashMap::new();
    for kind in [MailKind::Connected, MailKind::Disconnected] {
        let custom = dir.map(|d| locale_dir(d).join(format!("{}.txt", kind.as_str())));
        let template = match custom.filter(|p| p.exists()) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Template::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => builtin(locale, kind),
        };
        templates.insert(kind, template);
    }
    Ok(templates)
}

/// Which mails may go: no two mails of one kind for one session within `min_interval`, and no
/// "connected" for a session already reported connected (nor "disconnected" twice in a row).
#[derive(Debug)]
pub struct Gate {
    min_interval: Duration,
    sent: HashMap<(SessionId, MailKind), Instant>,
    last: HashMap<SessionId, MailKind>,
}

impl Gate {
    pub fn new(min_interval: Duration) -> Gate {
        Gate {
            min_interval,
            sent: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// The latest kind is recorded even when its mail is held back, so the next real change
    /// (say, a disconnection hours later) is mailed.
    pub fn admit(&mut self, session_id: &SessionId, kind: MailKind, now: Instant) -> bool {
        let previous = self.last.insert(session_id.clone(), kind);
        if previous == Some(kind) {
            return false;
        }
        let key = (session_id.clone(), kind);
        if let Some(at) = self.sent.get(&key)
            && now.duration_since(*at) < self.min_interval
        {
            return false;
        }
        self.sent.insert(key, now);
        true
    }

    /// Records a state the owner already knows (a session restored at start-up was connected).
    pub fn assume(&mut self, session_id: &SessionId, kind: MailKind) {
        self.last.insert(session_id.clone(), kind);
    }
}

enum Transport {
    Log,
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// `smtp://` means STARTTLS required (lettre's plain `smtp://` would send in clear);
/// `?tls=opportunistic` and `smtps://` (TLS from the first byte) pass through; `?tls=none` is
/// the explicit, unencrypted choice (a relay on loopback).
pub fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    smtp_builder(url).map(|builder| builder.build())
}

/// The transport `url` describes, not yet built (nothing connects, nothing is spawned).
pub fn smtp_builder(url: &str) -> Result<AsyncSmtpTransportBuilder, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if parsed.host_str().unwrap_or_default().is_empty() {
        return Err("no host".into());
    }
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let rest: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tls = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required")) => Some("required"),
        ("smtp", Some("opportunistic")) => Some("opportunistic"),
        ("smtp", Some("none")) => None,
        ("smtps", None) => None,
        (scheme, tls) => {
            return Err(format!(
                "scheme {scheme} with tls={} (use smtp:// [tls=required|opportunistic|none] or smtps://)",
                tls.unwrap_or("")
            ));
        }
    };
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (k, v) in &rest {
            query.append_pair(k, v);
        }
        if let Some(tls) = tls {
            query.append_pair("tls", tls);
        }
    }
    let mut url = parsed.to_string();
    if url.ends_with('?') {
        url.pop();
    }
    let builder =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&url).map_err(|e| e.to_string())?;
    Ok(builder.timeout(Some(Duration::from_secs(20))))
}

pub struct Mailer {
    gate: Mutex<Gate>,
    queue: mpsc::UnboundedSender<Notice>,
}

impl Mailer {
    /// Builds the configured transport and starts the sending task.
    pub fn start(
        config: &MailConfig,
        data_dir: &Path,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Mailer>> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from: {e}"))?;
        let transport = match config.transport {
            MailTransport::Log => Transport::Log,
            MailTransport::File => {
                let dir = config
                    .file_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("mail"));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("mail.file_dir {}: {e}", dir.display()))?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            MailTransport::Smtp => {
                let url = config.smtp_url.as_deref().unwrap_or_default();
                Transport::Smtp(
                    smtp_transport(url).map_err(|e| anyhow::anyhow!("mail.smtp_url: {e}"))?,
                )
            }
        };
        if let Some(dir) = &config.templates_dir
            && !dir.is_dir()
        {
            anyhow::bail!("mail.templates_dir: {} is not a directory", dir.display());
        }
        let templates = load_templates(config.templates_dir.as_deref(), config.locale)
            .map_err(|e| anyhow::anyhow!("mail.templates_dir: {e}"))?;
        let (queue, notices) = mpsc::unbounded_channel();
        tokio::spawn(send_all(
            notices,
            Sender {
                transport,
                from,
                templates,
                store,
                metrics,
            },
        ));
        Ok(Arc::new(Mailer {
            gate: Mutex::new(Gate::new(config.min_interval)),
            queue,
        }))
    }

    /// Queues a mail unless the gate holds it back; never waits.
    pub fn notify(&self, notice: Notice) {
        let admitted = self.gate.lock().unwrap_or_else(|e| e.into_inner()).admit(
            &notice.session_id,
            notice.kind,
            Instant::now(),
        );
        if admitted {
            let _ = self.queue.send(notice);
        } else {
            tracing::debug!(session_id = %notice.session_id, kind = notice.kind.as_str(), "mail held back");
        }
    }

    pub fn assume(&self, session_id: &SessionId, kind: MailKind) {
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .assume(session_id, kind);
    }
}

#[derive(Debug)]
struct SendError {
    permanent: bool,
    message: String,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

struct Sender {
    transport: Transport,
    from: Mailbox,
    templates: HashMap<MailKind, Template>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

/// One mail after the other (so a session's mails arrive in order), each retried while it fails.
async fn send_all(mut notices: mpsc::UnboundedReceiver<Notice>, sender: Sender) {
    while let Some(notice) = notices.recv().await {
        sender.deliver(&notice).await;
    }
}

fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        // ~ an hour of trying before the mail is given up (and logged as such).
        .with_max_times(130)
}

impl Sender {
    async fn deliver(&self, notice: &Notice) {
        let session_id = &notice.session_id;
        let kind = notice.kind.as_str();
        let account = (|| self.store.by_session(session_id))
            .retry(backoff())
            .when(crate::store::StoreError::is_transient)
            .notify(|error, delay| {
                tracing::warn!(%session_id, %error, ?delay, "mail waits for the store");
            })
            .await;
        let account = match account {
            Ok(Some(account)) => account,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%session_id, %error, kind, "mail dropped: the store never answered");
                return;
            }
        };
        let Some(to) = account.notify_email.as_deref() else {
            tracing::debug!(%session_id, kind, "no notify_email; no mail");
            return;
        };
        let to: Mailbox = match to.parse() {
            Ok(to) => to,
            Err(error) => {
                tracing::warn!(%session_id, %error, to, "notify_email is not an address; no mail");
                return;
            }
        };
        let name = account
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| session_id.to_string());
        let phone = notice
            .phone_number
            .clone()
            .or(account.phone_number.clone())
            .unwrap_or_else(|| "—".into());
        let rendered = self.templates[&notice.kind].render(&[
            ("name", &name),
            ("phone_number", &phone),
            ("reason", notice.reason.as_deref().unwrap_or("—")),
            ("session_id", session_id.as_str()),
            ("time", &notice.at),
        ]);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(&rendered.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(rendered.body.clone());
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%session_id, %error, "mail could not be built");
                return;
            }
        };
        let sent = (|| self.send(&message, &rendered))
            .retry(backoff())
            .when(|error: &SendError| !error.permanent)
            .notify(|error, delay| {
                tracing::warn!(%session_id, %error, ?delay, kind, "mail not sent; retrying");
            })
            .await;
        match sent {
            Ok(()) => {
                Metrics::count(&self.metrics.mails_sent);
                tracing::info!(%session_id, kind, to = %to.email, subject = %rendered.subject, "mail sent")
            }
            Err(error) => {
                Metrics::count(&self.metrics.mails_failed);
                tracing::error!(%session_id, %error, kind, "mail given up after retries")
            }
        }
    }

    async fn send(&self, message: &Message, rendered: &Rendered) -> Result<(), SendError> {
        match &self.transport {
            Transport::Log => {
                let to = message
                    .envelope()
                    .to()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                tracing::info!(to, subject = %rendered.subject, body = %rendered.body, "mail (log transport)");
                Ok(())
            }
            Transport::File(file) => {
                file.send(message.clone())
                    .await
                    .map(drop)
                    .map_err(|e| SendError {
                        permanent: false,
                        message: e.to_string(),
                    })
            }
            // A 5xx answer (bad recipient, refused credentials), a server that does not offer
            // the TLS asked for, or a certificate that does not verify will not change by
            // retrying; a refused connection or a timeout may.
            Transport::Smtp(smtp) => {
                smtp.send(message.clone())
                    .await
                    .map(drop)
                    .map_err(|e| SendError {
                        permanent: e.is_permanent() || e.is_client() || e.is_tls(),
                        message: e.to_string(),
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }

    #[test]
    fn every_template_renders_with_subject_and_no_placeholder_left() {
        for (locale, kind, _) in TEMPLATES {
            let r = builtin(locale, kind).render(&[
                ("name", "Tienda"),
                ("phone_number", "34600111222"),
                ("reason", "CONFLICT"),
                ("session_id", "s1"),
                ("time", "2026-12-04T10:00:00.000Z"),
            ]);
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{r:?}");
            assert!(r.subject.contains("Tienda"), "{r:?}");
            assert!(!r.subject.contains("{{") && !r.body.contains("{{"), "{r:?}");
            assert!(
                r.body.contains("s1") && r.body.contains("34600111222"),
                "{r:?}"
            );
            if kind == MailKind::Disconnected {
                assert!(r.body.contains("CONFLICT"), "{r:?}");
            }
        }
        let es = builtin(Locale::Es, MailKind::Connected).render(&[("name", "x")]);
        let en = builtin(Locale::En, MailKind::Connected).render(&[("name", "x")]);
        assert!(es.subject.starts_with("WhatsApp conectado"), "{es:?}");
        assert!(en.subject.starts_with("WhatsApp connected"), "{en:?}");
    }

    #[test]
    fn templates_need_a_subject_line_and_values_cannot_add_lines() {
        for (bad, why) in [
            ("Hola {{name}}", "blank line"),
            ("Asunto: x\n\nbody", "Subject"),
            ("Subject:   \n\nbody", "one non-empty line"),
        ] {
            let error = Template::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        let error = Template::parse("Subject: x\n\nHola {{nmae}}").unwrap_err();
        assert!(error.contains("unknown placeholder {{nmae}}"), "{error}");
        assert!(Template::parse("Subject: x\n\nHola {{name").is_err());
        let template = Template::parse("Subject: {{name}}\n\n{{reason}}").unwrap();
        let r = template.render(&[("name", "{{reason}}"), ("reason", "CONFLICT")]);
        assert_eq!(r.subject, "{{reason}}", "a value is never expanded again");
        let template = Template::parse("Subject: Hola {{name}}\r\n\r\nPara {{name}}.\n").unwrap();
        let r = template.render(&[("name", "Ana\r\nBcc: spy@example.com")]);
        assert_eq!(r.subject, "Hola Ana  Bcc: spy@example.com");
        assert_eq!(r.body, "Para Ana  Bcc: spy@example.com.\n");
    }

    #[test]
    fn the_gate_sends_one_mail_per_session_and_kind_per_interval() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut gate = Gate::new(Duration::from_secs(900));
        let (a, b) = (sid("a"), sid("b"));
        use MailKind::*;
        // (session, kind, seconds after start, admitted)
        let table = [
            (&a, Connected, 0, true),
            (&a, Connected, 1, false), // already connected
            (&b, Connected, 2, true),  // another session is another mailbox count
            (&a, Disconnected, 10, true),
            (&a, Connected, 20, false), // flapping: connected again within 15 min
            (&a, Disconnected, 30, false), // and disconnected again
            (&a, Connected, 901, true), // 15 min after the first connected mail
            (&a, Disconnected, 911, true),
            (&a, Disconnected, 2000, false), // never twice in a row
            (&a, Connected, 2001, true),
            (&a, Disconnected, 2010, true),
            (&a, Connected, 2020, false), // flapping again: held back…
            (&a, Disconnected, 2030, false), // …both ways…
            (&a, Connected, 2040, false), // …but the latest state is remembered,
            (&a, Disconnected, 9000, true), // so a real disconnection later is mailed
        ];
        for (session, kind, s, admitted) in table {
            assert_eq!(
                gate.admit(session, kind, at(s)),
                admitted,
                "{session} {kind:?} at {s}s"
            );
        }
        let mut gate = Gate::new(Duration::from_secs(900));
        gate.assume(&a, Connected);
        assert!(
            !gate.admit(&a, Connected, at(0)),
            "a restored session is already connected"
        );
        assert!(gate.admit(&a, Disconnected, at(1)));
    }

    #[test]
    fn smtp_urls_default_to_starttls() {
        for good in [
            "smtp://user:pass@mail.example.com:587",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://127.0.0.1:2525?tls=none",
            "smtps://user:p%40ss@mail.example.com:465",
        ] {
            assert!(smtp_builder(good).is_ok(), "{good}");
        }
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtps://mail.example.com?tls=none",
            "smtp://mail.example.com?tls=sometimes",
        ] {
            assert!(smtp_builder(bad).is_err(), "{bad}");
        }
    }
}
