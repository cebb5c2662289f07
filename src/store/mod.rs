//! The accounts table (SPEC §8) behind one trait; backends: embedded SQLite (default).

pub mod sqlite;
pub mod writes;

use futures::future::BoxFuture;
use serde::Serialize;

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
    /// Set on `ready`: phone number and profile name, and `connected_at` = now.
    pub identity: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with that session id already exists")]
    AlreadyExists,
    #[error("database: {0}")]
    Database(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
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

/// Now, as the store writes timestamps (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
