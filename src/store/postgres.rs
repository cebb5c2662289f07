//! The direct PostgreSQL backend (also Supabase's database URL). The schema comes from the
//! SQL files in `migrations/`, applied in order at open and recorded in
//! `wa_supervisor_migrations`, under an advisory lock so two supervisors never race.

use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use super::{Account, NewAccount, StatusUpdate, Store, StoreError, StoreResult};
use crate::ids::{SessionId, UserId};
use crate::session::policy::Status;

/// The migrations shipped in `migrations/`, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "0001_whatsapp_accounts",
    include_str!("../../migrations/0001_whatsapp_accounts.sql"),
)];

/// `SELECT <every column as text> FROM whatsapp_accounts` followed by the given clause.
/// Timestamps are rendered as the SQLite backend writes them (RFC 3339, UTC, milliseconds).
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id::text AS id, user_id, session_id, status, phone_number, profile_name, name, \
             notify_email, ",
            ts!("connected_at"),
            ", ",
            ts!("last_seen"),
            ", error_message, ",
            ts!("created_at"),
            ", ",
            ts!("updated_at"),
            " FROM whatsapp_accounts ",
            $rest
        )
    };
}

macro_rules! ts {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS ",
            $column
        )
    };
}

pub struct PostgresStore {
    pool: PgPool,
}

fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unreachable(e.to_string()),
        // Connection exceptions (08…), the server shutting down or starting up (57P01–57P03),
        // too many connections (53300); not a dropped database (57P04).
        sqlx::Error::Database(ref d)
            if d.code().is_some_and(|c| {
                c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
            }) =>
        {
            StoreError::Unreachable(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

impl PostgresStore {
    /// Connects and brings the schema up to date. Fails fast when the server is not there;
    /// the caller decides whether to wait.
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A store that is down must fail a write quickly (it is queued and retried), not
            // hold it for the default 30 s.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await
            .map_err(db)?;
        migrate(&pool).await?;
        Ok(PostgresStore { pool })
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

/// Applies every migration not yet recorded, each in its own transaction.
async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS wa_supervisor_migrations (\
         version integer PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await
    .map_err(db)?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(db)?;
        // One supervisor at a time migrates (the key is arbitrary but fixed).
        sqlx::query("SELECT pg_advisory_xact_lock(7310491)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let done: Option<i32> =
            sqlx::query_scalar("SELECT version FROM wa_supervisor_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if done.is_none() {
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
            sqlx::query("INSERT INTO wa_supervisor_migrations (version, name) VALUES ($1, $2)")
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tracing::info!(migration = name, "database migrated");
        }
        tx.commit().await.map_err(db)?;
    }
    Ok(())
}

fn account(row: &PgRow) -> StoreResult<Account> {
    super::account_from_columns(
        |name| row.try_get(name).map_err(db),
        |name| row.try_get(name).map_err(db),
    )
}

/// Account ids are UUIDs; anything else names no account (rather than a cast error).
fn account_uuid(account_id: &str) -> Option<String> {
    uuid::Uuid::parse_str(account_id)
        .ok()
        .map(|u| u.to_string())
}

impl Store for PostgresStore {
    fn create(&self, new: NewAccount) -> BoxFuture<'_, StoreResult<Account>> {
        Box::pin(async move {
            let inserted = sqlx::query(concat!(
                "WITH inserted AS (INSERT INTO whatsapp_accounts \
                 (id, user_id, session_id, status, name, notify_email) \
                 VALUES ($1::uuid, $2, $3, $4, $5, $6) RETURNING *) ",
                "SELECT id::text AS id, user_id, session_id, status, phone_number, profile_name, \
                 name, notify_email, ",
                ts!("connected_at"),
                ", ",
                ts!("last_seen"),
                ", error_message, ",
                ts!("created_at"),
                ", ",
                ts!("updated_at"),
                " FROM inserted"
            ))
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(new.user_id.as_str())
            .bind(new.session_id.as_str())
            .bind(Status::Initializing.as_str())
            .bind(&new.name)
            .bind(&new.notify_email)
            .fetch_one(&self.pool)
            .await;
            match inserted {
                Ok(row) => account(&row),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::AlreadyExists)
                }
                Err(e) => Err(db(e)),
            }
        })
    }

    fn get(&self, account_id: &str) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        let id = account_uuid(account_id);
        Box::pin(async move {
            match id {
                Some(id) => self.one(select!("WHERE id = $1::uuid"), &id).await,
                None => Ok(None),
            }
        })
    }

    fn by_session(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        let id = session_id.as_str().to_owned();
        Box::pin(async move { self.one(select!("WHERE session_id = $1"), &id).await })
    }

    fn by_user(&self, user_id: &UserId) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        let id = user_id.as_str().to_owned();
        Box::pin(async move {
            let rows = sqlx::query(select!("WHERE user_id = $1 ORDER BY created_at, id"))
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
            let connected = update.identity.as_ref().map(|_| update.at.clone());
            let (phone, profile) = update.identity.unzip();
            sqlx::query(
                "UPDATE whatsapp_accounts SET status = $1, error_message = $2, \
                 phone_number = COALESCE($3, phone_number), \
                 profile_name = COALESCE($4, profile_name), \
                 connected_at = COALESCE($5::timestamptz, connected_at) \
                 WHERE session_id = $6",
            )
            .bind(update.status.as_str())
            .bind(update.error_message)
            .bind(phone)
            .bind(profile)
            .bind(connected)
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
            sqlx::query("UPDATE whatsapp_accounts SET last_seen = now() WHERE session_id = $1")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(())
        })
    }

    fn delete(&self, account_id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = account_uuid(account_id);
        Box::pin(async move {
            if let Some(id) = id {
                sqlx::query("DELETE FROM whatsapp_accounts WHERE id = $1::uuid")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
            }
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
