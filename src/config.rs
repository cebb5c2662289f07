//! Configuration: `config/default.toml` (compiled in) < `--config FILE` < environment.
//!
//! Environment overrides are `WA__SECTION__KEY` (e.g. `WA__KEEPALIVE__HEARTBEAT_INTERVAL=10s`)
//! plus the Node backend's variable names (see [`SEED_ENV`]).
//! Every invalid value stops start-up with an error that names its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The defaults, with a comment on every key.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment names of the Node backend, and the key each one sets.
pub const SEED_ENV: &[(&str, &str)] = &[
    ("SESSIONS_PATH", "sessions.path"),
    ("PUPPETEER_EXECUTABLE_PATH", "chromium.path"),
    ("CHROMIUM_PATH", "chromium.path"),
    ("SUPABASE_URL", "store.supabase_url"),
    ("SUPABASE_SERVICE_ROLE_KEY", "store.supabase_key"),
    ("SUPABASE_JWT_SECRET", "auth.jwt_secret"),
    ("DATABASE_URL", "store.postgres_url"),
    ("CORS_ORIGIN", "server.cors_origins"),
    ("PORT", "server.bind"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration value for `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("unknown configuration key `{key}`")]
    UnknownKey { key: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub sessions: SessionsConfig,
    pub whatsapp: WhatsappConfig,
    pub chromium: ChromiumConfig,
    pub keepalive: KeepaliveConfig,
    pub reconnect: ReconnectConfig,
    pub supervisor: SupervisorConfig,
    pub store: StoreConfig,
    pub mail: MailConfig,
    pub backup: BackupConfig,
    pub sim: SimConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(deserialize_with = "optional_string")]
    pub jwt_secret: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    #[serde(deserialize_with = "optional_path")]
    pub path: Option<PathBuf>,
    #[serde(deserialize_with = "positive")]
    pub max_per_user: u32,
    #[serde(deserialize_with = "positive")]
    pub restore_concurrency: u32,
    #[serde(deserialize_with = "positive")]
    pub launch_concurrency: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    pub url: String,
    #[serde(deserialize_with = "positive")]
    pub qr_max_retries: u32,
    #[serde(deserialize_with = "duration")]
    pub auth_timeout: Duration,
    pub user_agent: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChromiumConfig {
    #[serde(deserialize_with = "optional_path")]
    pub path: Option<PathBuf>,
    pub args: Vec<String>,
    pub headless: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveConfig {
    #[serde(deserialize_with = "duration")]
    pub heartbeat_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub watchdog_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub call_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub activity_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    pub max_retries: u32,
    #[serde(deserialize_with = "duration")]
    pub base_delay: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_delay: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    pub max_restarts: u32,
    #[serde(deserialize_with = "duration")]
    pub restart_window: Duration,
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Postgres,
    Supabase,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    #[serde(deserialize_with = "optional_path")]
    pub sqlite_path: Option<PathBuf>,
    #[serde(deserialize_with = "optional_string")]
    pub postgres_url: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    pub supabase_url: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    pub supabase_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    Log,
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Es,
    En,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    #[serde(deserialize_with = "optional_string")]
    pub smtp_url: Option<String>,
    pub from: String,
    #[serde(deserialize_with = "optional_path")]
    pub file_dir: Option<PathBuf>,
    pub locale: Locale,
    #[serde(deserialize_with = "duration")]
    pub min_interval: Duration,
    #[serde(deserialize_with = "optional_path")]
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    pub enabled: bool,
    pub schedule: String,
    #[serde(deserialize_with = "optional_path")]
    pub dir: Option<PathBuf>,
    #[serde(deserialize_with = "positive")]
    pub keep: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    #[serde(deserialize_with = "duration")]
    pub first_qr: Duration,
    #[serde(deserialize_with = "duration")]
    pub qr_rotate: Duration,
    pub listen: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        Config::load(None, std::iter::empty()).expect("config/default.toml is valid")
    }
}

impl Config {
    /// Layers `file` (when given) and the `env` variables over the defaults.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut root: toml::Table = DEFAULT_TOML.parse().expect("config/default.toml is valid");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let overlay: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::Syntax {
                        path: path.to_owned(),
                        message: e.message().to_owned(),
                    })?;
            merge(&mut root, overlay, "")?;
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        // Seed names first, so that WA__ names win over them.
        for (name, key) in SEED_ENV {
            if let Some((_, value)) = env.iter().find(|(n, _)| n == name) {
                let value = match *name {
                    "PORT" => format!("0.0.0.0:{value}"),
                    _ => value.clone(),
                };
                set_key(&mut root, key, &value)?;
            }
        }
        for (name, value) in &env {
            if let Some(rest) = name.strip_prefix("WA__") {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                set_key(&mut root, &key, value)?;
            }
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads from the process environment.
    pub fn from_env(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, std::env::vars())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        if !self.whatsapp.url.starts_with("https://") && !self.whatsapp.url.starts_with("http://") {
            return invalid("whatsapp.url", "must be an http(s) URL");
        }
        if self.reconnect.base_delay > self.reconnect.max_delay {
            return invalid(
                "reconnect.base_delay",
                "must not exceed reconnect.max_delay",
            );
        }
        if self.keepalive.heartbeat_interval.is_zero() {
            return invalid("keepalive.heartbeat_interval", "must be above zero");
        }
        if self.keepalive.watchdog_timeout <= self.keepalive.heartbeat_interval {
            return invalid(
                "keepalive.watchdog_timeout",
                "must be longer than keepalive.heartbeat_interval",
            );
        }
        if self.sim.qr_rotate.is_zero() || self.sim.first_qr.is_zero() {
            return invalid("sim.qr_rotate", "QR lifetimes must be above zero");
        }
        if self.store.kind == StoreKind::Postgres && self.store.postgres_url.is_none() {
            return invalid(
                "store.postgres_url",
                "required when store.kind = \"postgres\"",
            );
        }
        if self.store.kind == StoreKind::Supabase
            && (self.store.supabase_url.is_none() || self.store.supabase_key.is_none())
        {
            return invalid(
                "store.supabase_url",
                "store.supabase_url and store.supabase_key are required when store.kind = \"supabase\"",
            );
        }
        if self.mail.transport == MailTransport::Smtp && self.mail.smtp_url.is_none() {
            return invalid("mail.smtp_url", "required when mail.transport = \"smtp\"");
        }
        if let Err(error) = crate::backup::next_run(&self.backup.schedule) {
            return invalid(
                "backup.schedule",
                &format!(
                    "{error} (a cron expression with seconds: sec min hour day month weekday)"
                ),
            );
        }
        if let Err(error) = self.mail.from.parse::<lettre::message::Mailbox>() {
            return invalid("mail.from", &format!("not a mail address: {error}"));
        }
        if let Some(url) = &self.mail.smtp_url
            && let Err(error) = crate::mail::smtp_builder(url)
        {
            return invalid("mail.smtp_url", &error);
        }
        if let Some(arg) = self.chromium.args.iter().find(|a| !a.starts_with("--")) {
            return invalid(
                "chromium.args",
                &format!("`{arg}` is not a switch (switches start with --)"),
            );
        }
        Ok(())
    }
}

/// Copies `overlay` into `base`, refusing keys that the defaults do not have.
fn merge(base: &mut toml::Table, overlay: toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (key, value) in overlay {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &path)?,
            (Some(slot), value) => *slot = value,
            (None, _) => return Err(ConfigError::UnknownKey { key: path }),
        }
    }
    Ok(())
}

/// Sets `section.key` from an environment string, typed like the default it replaces.
fn set_key(root: &mut toml::Table, key: &str, raw: &str) -> Result<(), ConfigError> {
    let unknown = || ConfigError::UnknownKey {
        key: key.to_owned(),
    };
    let (section, name) = key.split_once('.').ok_or_else(unknown)?;
    let table = root
        .get_mut(section)
        .and_then(|v| v.as_table_mut())
        .ok_or_else(unknown)?;
    let slot = table.get_mut(name).ok_or_else(unknown)?;
    let invalid = |message: &str| ConfigError::Invalid {
        key: key.to_owned(),
        message: message.to_owned(),
    };
    *slot = match slot {
        toml::Value::String(_) => toml::Value::String(raw.to_owned()),
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| invalid(&format!("`{raw}` is not an integer")))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| invalid(&format!("`{raw}` is not true or false")))?,
        ),
        toml::Value::Array(_) => {
            // A TOML array literal, or a comma-separated list.
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                let parsed: toml::Table = format!("v = {trimmed}")
                    .parse()
                    .map_err(|_| invalid("not a TOML array"))?;
                parsed["v"].clone()
            } else {
                toml::Value::Array(
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                )
            }
        }
        _ => return Err(invalid("cannot be set from the environment")),
    };
    Ok(())
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e})")))
}

fn optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    Ok(Some(text).filter(|s| !s.trim().is_empty()))
}

fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(optional_string(d)?.map(PathBuf::from))
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = load(&[]).unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.whatsapp.qr_max_retries, 5);
        assert_eq!(c.keepalive.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.keepalive.watchdog_timeout, Duration::from_secs(90));
        assert_eq!(c.keepalive.activity_interval, Duration::from_secs(240));
        assert_eq!(c.reconnect.base_delay, Duration::from_secs(5));
        assert_eq!(c.reconnect.max_retries, 3);
        assert_eq!(c.mail.min_interval, Duration::from_secs(900));
        assert_eq!(c.store.kind, StoreKind::Sqlite);
        assert_eq!(c.sim.first_qr, Duration::from_secs(60));
        assert_eq!(c.sim.qr_rotate, Duration::from_secs(20));
        assert!(c.auth.jwt_secret.is_none());
        assert!(c.auth.admin_token.is_none());
    }

    #[test]
    fn environment_overrides_typed_values() {
        let c = load(&[
            ("WA__KEEPALIVE__HEARTBEAT_INTERVAL", "10s"),
            ("WA__SESSIONS__MAX_PER_USER", "3"),
            ("WA__CHROMIUM__HEADLESS", "false"),
            (
                "WA__SERVER__CORS_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("CHROMIUM_PATH", "/opt/chromium"),
            ("PORT", "9000"),
            ("SUPABASE_JWT_SECRET", "s3cret"),
        ])
        .unwrap();
        assert_eq!(c.keepalive.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.sessions.max_per_user, 3);
        assert!(!c.chromium.headless);
        assert_eq!(
            c.server.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(c.chromium.path.as_deref(), Some(Path::new("/opt/chromium")));
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.auth.jwt_secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn wa_names_win_over_seed_names() {
        let c = load(&[
            ("CHROMIUM_PATH", "/seed"),
            ("WA__CHROMIUM__PATH", "/explicit"),
        ])
        .unwrap();
        assert_eq!(c.chromium.path.as_deref(), Some(Path::new("/explicit")));
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("WA__KEEPALIVE__HEARTBEAT_INTERVAL", "often")],
                "keepalive.heartbeat_interval",
            ),
            (
                &[("WA__SESSIONS__MAX_PER_USER", "many")],
                "sessions.max_per_user",
            ),
            (
                &[("WA__SESSIONS__MAX_PER_USER", "0")],
                "sessions.max_per_user",
            ),
            (&[("WA__STORE__KIND", "mongodb")], "store.kind"),
            (&[("WA__MAIL__LOCALE", "fr")], "mail.locale"),
            (&[("WA__SERVER__BIND", "nowhere")], "server.bind"),
            (&[("WA__STORE__KIND", "postgres")], "store.postgres_url"),
            (&[("WA__CHROMIUM__ARGS", "no-sandbox")], "chromium.args"),
            (
                &[("WA__BACKUP__SCHEDULE", "every night")],
                "backup.schedule",
            ),
            (
                &[("WA__BACKUP__SCHEDULE", "0 61 3 * * *")],
                "backup.schedule",
            ),
            (&[("WA__MAIL__FROM", "not an address")], "mail.from"),
            (
                &[("WA__MAIL__SMTP_URL", "smtps://mail.example.com?tls=none")],
                "mail.smtp_url",
            ),
            (
                &[("WA__MAIL__SMTP_URL", "mail.example.com")],
                "mail.smtp_url",
            ),
            (&[("WA__NOPE__KEY", "1")], "nope.key"),
        ];
        for (env, key) in cases {
            let err = load(env).expect_err(key).to_string();
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn config_file_layers_over_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[sim]\nqr_rotate = \"2s\"\n").unwrap();
        let c = Config::load(Some(&file), std::iter::empty()).unwrap();
        assert_eq!(c.sim.qr_rotate, Duration::from_secs(2));
        assert_eq!(c.sim.first_qr, Duration::from_secs(60));

        std::fs::write(&file, "[sim]\nqr_rotation = \"2s\"\n").unwrap();
        let err = Config::load(Some(&file), std::iter::empty()).unwrap_err();
        assert!(err.to_string().contains("sim.qr_rotation"), "{err}");
    }
}
