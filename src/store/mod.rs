//! The accounts table (SPEC §8) behind one trait; backends: embedded SQLite (default), direct
//! PostgreSQL, and Supabase through PostgREST.

pub mod postgres;
pub mod sqlite;
pub mod supabase;
pub mod writes;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use futures::future::BoxFuture;
use serde::Serialize;

use crate::config::Config;
use crate::ids::{SessionId, UserId};
use crate::session::policy::Status;

/// One row of `whatsapp_accounts`; field names are the column names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub id: String,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub status: Status,
    pub phone_number: Option<String>,
    pub profile_name: Option<String>,
    pub name: Option<String>,
    pub notify_email: Option<String>,
    pub connected_at: Option<String>,
    pub last_seen: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a new account starts with.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub name: Option<String>,
    pub notify_email: Option<String>,
}

/// A status change, with what it brings along.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: Status,
    pub error_message: Option<String>,
    /// Set on `ready`: phone number and profile name, and `connected_at` = `at`.
    pub identity: Option<(String, String)>,
    /// When the change happened (RFC 3339): a write that lands late still records it.
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with that session id already exists")]
    AlreadyExists,
    #[error("database: {0}")]
    Database(String),
    /// The store cannot be reached (connection refused, timed out, 5xx): worth waiting for.
    #[error("the store is unreachable: {0}")]
    Unreachable(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// What clients are told when the store fails them (the details are logged, not sent).
pub const UNAVAILABLE: &str = "the account store is not answering; try again shortly";

impl StoreError {
    /// Whether trying again later may succeed; other errors are configuration or data errors.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unreachable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The accounts store. Every method is one round trip; callers own ordering and retries.
pub trait Store: Send + Sync + 'static {
    fn create(&self, account: NewAccount) -> BoxFuture<'_, StoreResult<Account>>;
    fn get(&self, account_id: &str) -> BoxFuture<'_, StoreResult<Option<Account>>>;
    fn by_session(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<Option<Account>>>;
    fn by_user(&self, user_id: &UserId) -> BoxFuture<'_, StoreResult<Vec<Account>>>;
    fn update_status(
        &self,
        session_id: &SessionId,
        update: StatusUpdate,
    ) -> BoxFuture<'_, StoreResult<()>>;
    fn touch(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<()>>;
    fn delete(&self, account_id: &str) -> BoxFuture<'_, StoreResult<()>>;
    /// Accounts whose status is `ready`, `authenticated` or `reconnecting`.
    fn restorable(&self) -> BoxFuture<'_, StoreResult<Vec<Account>>>;
}

/// An account from a row's columns read by name (the SQL backends share this).
pub(crate) fn account_from_columns(
    text: impl Fn(&str) -> StoreResult<String>,
    maybe: impl Fn(&str) -> StoreResult<Option<String>>,
) -> StoreResult<Account> {
    Ok(Account {
        id: text("id")?,
        user_id: UserId::new(&text("user_id")?).map_err(|e| StoreError::Corrupt(e.0))?,
        session_id: SessionId::new(&text("session_id")?).map_err(|e| StoreError::Corrupt(e.0))?,
        status: text("status")?
            .parse::<Status>()
            .map_err(StoreError::Corrupt)?,
        phone_number: maybe("phone_number")?,
        profile_name: maybe("profile_name")?,
        name: maybe("name")?,
        notify_email: maybe("notify_email")?,
        connected_at: maybe("connected_at")?,
        last_seen: maybe("last_seen")?,
        error_message: maybe("error_message")?,
        created_at: text("created_at")?,
        updated_at: text("updated_at")?,
    })
}

/// Now, as the store writes timestamps (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Opens the configured backend once (no waiting): what `check` reports.
pub async fn open_once(config: &Config, data_dir: &Path) -> StoreResult<Arc<dyn Store>> {
    use crate::config::StoreKind;
    let missing = |key: &str| StoreError::Database(format!("{key} is not set"));
    Ok(match config.store.kind {
        StoreKind::Sqlite => {
            Arc::new(sqlite::SqliteStore::open(&sqlite_path(config, data_dir)).await?)
        }
        StoreKind::Postgres => {
            let url = config
                .store
                .postgres_url
                .as_deref()
                .ok_or_else(|| missing("store.postgres_url"))?;
            Arc::new(postgres::PostgresStore::open(url).await?)
        }
        StoreKind::Supabase => {
            let url = config.store.supabase_url.as_deref();
            let key = config.store.supabase_key.as_deref();
            let store = supabase::SupabaseStore::new(
                url.ok_or_else(|| missing("store.supabase_url"))?,
                key.ok_or_else(|| missing("store.supabase_key"))?,
            )?;
            // One cheap read proves the URL, the key and the table.
            store
                .by_session(&SessionId::new("probe").expect("a valid id"))
                .await?;
            Arc::new(store)
        }
    })
}

/// Opens the configured backend, waiting with backoff (logged) while it cannot be reached:
/// a database that starts after the supervisor only delays it. Any other failure (a bad
/// password, a missing table, an unwritable file) is returned at once.
pub async fn open(config: &Config, data_dir: &Path) -> StoreResult<Arc<dyn Store>> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times();
    (|| open_once(config, data_dir))
        .retry(backoff)
        .when(StoreError::is_transient)
        .notify(|error, delay| {
            tracing::warn!(store = ?config.store.kind, %error, ?delay, "waiting for the store");
        })
        .await
}

/// Where the SQLite file lives: `store.sqlite_path`, or `<data-dir>/wa-supervisor.db`.
pub fn sqlite_path(config: &Config, data_dir: &Path) -> std::path::PathBuf {
    config
        .store
        .sqlite_path
        .clone()
        .unwrap_or_else(|| data_dir.join("wa-supervisor.db"))
}
