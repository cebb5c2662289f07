//! The embedded SQLite backend: one file, schema created at open.

use std::path::Path;

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};

use super::{Account, NewAccount, StatusUpdate, Store, StoreError, StoreResult, now};
use crate::ids::{SessionId, UserId};
use crate::session::policy::Status;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS whatsapp_accounts (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    phone_number TEXT,
    profile_name TEXT,
    name TEXT,
    notify_email TEXT,
    connected_at TEXT,
    last_seen TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS whatsapp_accounts_user_id ON whatsapp_accounts (user_id);
CREATE INDEX IF NOT EXISTS whatsapp_accounts_status ON whatsapp_accounts (status);
";

/// `SELECT <every column> FROM whatsapp_accounts` followed by the given clause, as a static string.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, session_id, status, phone_number, profile_name, name, notify_email, \
             connected_at, last_seen, error_message, created_at, updated_at FROM whatsapp_accounts ",
            $rest
        )
    };
}

pub struct SqliteStore {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> StoreError {
    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes: another writer holds
    // the file for longer than the busy timeout; worth waiting for, like a pool timeout.
    let busy = match &e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    };
    if busy {
        StoreError::Unreachable(e.to_string())
    } else {
        StoreError::Database(e.to_string())
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database file and its schema.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(e.to_string()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db)?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(db)?;
        Ok(SqliteStore { pool })
    }

    async fn one(&self, sql: &'static str, arg: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query(sql)
            .bind(arg)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| account(&r)).transpose()
    }
}

fn account(row: &SqliteRow) -> StoreResult<Account> {
    super::account_from_columns(
        |name| row.try_get(name).map_err(db),
        |name| row.try_get(name).map_err(db),
    )
}

impl Store for SqliteStore {
    fn create(&self, new: NewAccount) -> BoxFuture<'_, StoreResult<Account>> {
        Box::pin(async move {
            let at = now();
            let account = Account {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: new.user_id,
                session_id: new.session_id,
                status: Status::Initializing,
                phone_number: None,
                profile_name: None,
                name: new.name,
                notify_email: new.notify_email,
                connected_at: None,
                last_seen: None,
                error_message: None,
                created_at: at.clone(),
                updated_at: at,
            };
            let result = sqlx::query(
                "INSERT INTO whatsapp_accounts (id, user_id, session_id, status, name, notify_email, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&account.id)
            .bind(account.user_id.as_str())
            .bind(account.session_id.as_str())
            .bind(account.status.as_str())
            .bind(&account.name)
            .bind(&account.notify_email)
            .bind(&account.created_at)
            .bind(&account.updated_at)
            .execute(&self.pool)
            .await;
            match result {
                Ok(_) => Ok(account),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::AlreadyExists)
                }
                Err(e) => Err(db(e)),
            }
        })
    }

    fn get(&self, account_id: &str) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        let id = account_id.to_owned();
        Box::pin(async move { self.one(select!("WHERE id = ?"), &id).await })
    }

    fn by_session(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        let id = session_id.as_str().to_owned();
        Box::pin(async move { self.one(select!("WHERE session_id = ?"), &id).await })
    }

    fn by_user(&self, user_id: &UserId) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        let id = user_id.as_str().to_owned();
        Box::pin(async move {
            let rows = sqlx::query(select!("WHERE user_id = ? ORDER BY created_at, id"))
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            rows.iter().map(account).collect()
        })
    }

    fn update_status(
        &self,
        session_id: &SessionId,
        update: StatusUpdate,
    ) -> BoxFuture<'_, StoreResult<()>> {
        let id = session_id.as_str().to_owned();
        Box::pin(async move {
            let at = now();
            let (phone, profile, connected) = match update.identity {
                Some((phone, profile)) => (Some(phone), Some(profile), Some(update.at.clone())),
                None => (None, None, None),
            };
            sqlx::query(
                "UPDATE whatsapp_accounts SET status = ?, error_message = ?, \
                 phone_number = COALESCE(?, phone_number), profile_name = COALESCE(?, profile_name), \
                 connected_at = COALESCE(?, connected_at), updated_at = ? WHERE session_id = ?",
            )
            .bind(update.status.as_str())
            .bind(update.error_message)
            .bind(phone)
            .bind(profile)
            .bind(connected)
            .bind(&at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn touch(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<()>> {
        let id = session_id.as_str().to_owned();
        Box::pin(async move {
            let at = now();
            sqlx::query(
                "UPDATE whatsapp_accounts SET last_seen = ?, updated_at = ? WHERE session_id = ?",
            )
            .bind(&at)
            .bind(&at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn delete(&self, account_id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = account_id.to_owned();
        Box::pin(async move {
            sqlx::query("DELETE FROM whatsapp_accounts WHERE id = ?")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(())
        })
    }

    fn restorable(&self) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        Box::pin(async move {
            let rows = sqlx::query(select!(
                "WHERE status IN ('ready', 'authenticated', 'reconnecting') ORDER BY created_at, id"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(account).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(user: &str, session: &str) -> NewAccount {
        NewAccount {
            user_id: UserId::new(user).unwrap(),
            session_id: SessionId::new(session).unwrap(),
            name: Some("Tienda".into()),
            notify_email: Some("ana@example.com".into()),
        }
    }

    #[tokio::test]
    async fn accounts_round_trip_through_a_real_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db/wa.db"))
            .await
            .unwrap();
        let a = store.create(new("u1", "s1")).await.unwrap();
        assert_eq!(a.status, Status::Initializing);
        assert!(matches!(
            store.create(new("u2", "s1")).await,
            Err(StoreError::AlreadyExists)
        ));
        store.create(new("u2", "s2")).await.unwrap();

        store
            .update_status(
                &a.session_id,
                StatusUpdate {
                    at: now(),
                    status: Status::Ready,
                    error_message: None,
                    identity: Some(("34600111222".into(), "Ana".into())),
                },
            )
            .await
            .unwrap();
        store
            .update_status(
                &a.session_id,
                StatusUpdate {
                    at: now(),
                    status: Status::Reconnecting,
                    error_message: None,
                    identity: None,
                },
            )
            .await
            .unwrap();
        store.touch(&a.session_id).await.unwrap();
        let row = store.get(&a.id).await.unwrap().unwrap();
        assert_eq!(row.status, Status::Reconnecting);
        assert_eq!(
            row.phone_number.as_deref(),
            Some("34600111222"),
            "identity survives later updates"
        );
        assert!(row.connected_at.is_some() && row.last_seen.is_some());

        let mine = store.by_user(&UserId::new("u1").unwrap()).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(store.restorable().await.unwrap().len(), 1);
        assert_eq!(
            store
                .by_session(&SessionId::new("s2").unwrap())
                .await
                .unwrap()
                .unwrap()
                .user_id
                .as_str(),
            "u2"
        );

        store.delete(&a.id).await.unwrap();
        assert!(store.get(&a.id).await.unwrap().is_none());
        drop(store);
        // The file persists across opens.
        let again = SqliteStore::open(&dir.path().join("db/wa.db"))
            .await
            .unwrap();
        assert_eq!(
            again
                .by_user(&UserId::new("u2").unwrap())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
