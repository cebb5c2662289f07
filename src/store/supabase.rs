//! The Supabase backend: PostgREST's HTTP API (`/rest/v1/whatsapp_accounts`) with the
//! service-role key, which bypasses row-level security. The table comes from `migrations/`
//! (applied once to the project's database).

use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Account, NewAccount, StatusUpdate, Store, StoreError, StoreResult, now};
use crate::ids::{SessionId, UserId};
use crate::session::policy::Status;

pub struct SupabaseStore {
    http: reqwest::Client,
    table: String,
    key: String,
}

/// A row as PostgREST returns it.
#[derive(Deserialize)]
struct Row {
    id: String,
    user_id: String,
    session_id: String,
    status: String,
    phone_number: Option<String>,
    profile_name: Option<String>,
    name: Option<String>,
    notify_email: Option<String>,
    connected_at: Option<String>,
    last_seen: Option<String>,
    error_message: Option<String>,
    created_at: String,
    updated_at: String,
}

const ORDER: (&str, &str) = ("order", "created_at.asc,id.asc");

impl SupabaseStore {
    /// `url` is the project URL (`https://<ref>.supabase.co`), `key` the service-role key.
    pub fn new(url: &str, key: &str) -> StoreResult<SupabaseStore> {
        let base = reqwest::Url::parse(url)
            .map_err(|e| StoreError::Database(format!("store.supabase_url: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(StoreError::Database(
                "store.supabase_url: must be an http(s) URL".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SupabaseStore {
            http,
            table: format!("{}/rest/v1/whatsapp_accounts", url.trim_end_matches('/')),
            key: key.to_owned(),
        })
    }

    fn request(&self, method: Method) -> RequestBuilder {
        self.http
            .request(method, &self.table)
            .header("apikey", &self.key)
            .bearer_auth(&self.key)
            .header("accept", "application/json")
    }

    async fn send(&self, request: RequestBuilder) -> StoreResult<(StatusCode, String)> {
        let response = request.send().await.map_err(|e| {
            // A request that cannot even be built (a key with a newline) will not get better.
            if e.is_builder() {
                StoreError::Database(format!("PostgREST request: {e}"))
            } else {
                StoreError::Unreachable(format!("PostgREST: {e}"))
            }
        })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| StoreError::Unreachable(format!("PostgREST: {e}")))?;
        Ok((status, body))
    }

    /// Sends; a non-2xx answer becomes an error carrying PostgREST's message.
    async fn expect_ok(&self, request: RequestBuilder) -> StoreResult<String> {
        let (status, body) = self.send(request).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(postgrest_error(status, &body))
        }
    }

    async fn rows(&self, request: RequestBuilder) -> StoreResult<Vec<Account>> {
        let body = self.expect_ok(request).await?;
        let rows: Vec<Row> = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("PostgREST answer: {e}")))?;
        rows.into_iter().map(account).collect()
    }
}

fn postgrest_error(status: StatusCode, body: &str) -> StoreError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or(body);
    let error = format!("PostgREST {status}: {message}");
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        StoreError::Unreachable(error)
    } else {
        StoreError::Database(error)
    }
}

fn account(row: Row) -> StoreResult<Account> {
    Ok(Account {
        id: row.id,
        user_id: UserId::new(&row.user_id).map_err(|e| StoreError::Corrupt(e.0))?,
        session_id: SessionId::new(&row.session_id).map_err(|e| StoreError::Corrupt(e.0))?,
        status: row.status.parse::<Status>().map_err(StoreError::Corrupt)?,
        phone_number: row.phone_number,
        profile_name: row.profile_name,
        name: row.name,
        notify_email: row.notify_email,
        connected_at: row.connected_at.as_deref().map(timestamp),
        last_seen: row.last_seen.as_deref().map(timestamp),
        error_message: row.error_message,
        created_at: timestamp(&row.created_at),
        updated_at: timestamp(&row.updated_at),
    })
}

/// PostgREST renders timestamptz as `2026-12-04T23:17:19.123456+00:00`; the other backends
/// write `2026-12-04T23:17:19.123Z`. UTC values are brought to the latter; others are kept.
pub fn timestamp(value: &str) -> String {
    let Some(local) = value
        .strip_suffix("+00:00")
        .or_else(|| value.strip_suffix('Z'))
    else {
        return value.to_owned();
    };
    let (seconds, fraction) = local.split_once('.').unwrap_or((local, ""));
    let mut millis: String = fraction.chars().take(3).collect();
    while millis.len() < 3 {
        millis.push('0');
    }
    format!("{seconds}.{millis}Z")
}

fn eq(value: &str) -> String {
    format!("eq.{value}")
}

impl Store for SupabaseStore {
    fn create(&self, new: NewAccount) -> BoxFuture<'_, StoreResult<Account>> {
        Box::pin(async move {
            let body = json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "user_id": new.user_id.as_str(),
                "session_id": new.session_id.as_str(),
                "status": Status::Initializing.as_str(),
                "name": new.name,
                "notify_email": new.notify_email,
            });
            let request = self
                .request(Method::POST)
                .header("prefer", "return=representation")
                .json(&body);
            let (status, text) = self.send(request).await?;
            if status == StatusCode::CONFLICT {
                return Err(StoreError::AlreadyExists);
            }
            if !status.is_success() {
                return Err(postgrest_error(status, &text));
            }
            let rows: Vec<Row> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("PostgREST answer: {e}")))?;
            let row = rows
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Corrupt("PostgREST returned no row".into()))?;
            account(row)
        })
    }

    fn get(&self, account_id: &str) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        let id = uuid::Uuid::parse_str(account_id).ok();
        Box::pin(async move {
            let Some(id) = id else { return Ok(None) };
            let request = self
                .request(Method::GET)
                .query(&[("select", "*"), ("id", &eq(&id.to_string()))]);
            Ok(self.rows(request).await?.into_iter().next())
        })
    }

    fn by_session(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<Option<Account>>> {
        let filter = eq(session_id.as_str());
        Box::pin(async move {
            let request = self
                .request(Method::GET)
                .query(&[("select", "*"), ("session_id", &filter)]);
            Ok(self.rows(request).await?.into_iter().next())
        })
    }

    fn by_user(&self, user_id: &UserId) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        let filter = eq(user_id.as_str());
        Box::pin(async move {
            let request = self.request(Method::GET).query(&[
                ("select", "*"),
                ("user_id", &filter),
                (ORDER.0, ORDER.1),
            ]);
            self.rows(request).await
        })
    }

    fn update_status(
        &self,
        session_id: &SessionId,
        update: StatusUpdate,
    ) -> BoxFuture<'_, StoreResult<()>> {
        let filter = eq(session_id.as_str());
        Box::pin(async move {
            let mut body = json!({
                "status": update.status.as_str(),
                "error_message": update.error_message,
            });
            if let Some((phone, profile)) = update.identity {
                body["phone_number"] = json!(phone);
                body["profile_name"] = json!(profile);
                body["connected_at"] = json!(update.at);
            }
            let request = self
                .request(Method::PATCH)
                .query(&[("session_id", &filter)])
                .header("prefer", "return=minimal")
                .json(&body);
            self.expect_ok(request).await.map(drop)
        })
    }

    fn touch(&self, session_id: &SessionId) -> BoxFuture<'_, StoreResult<()>> {
        let filter = eq(session_id.as_str());
        Box::pin(async move {
            let request = self
                .request(Method::PATCH)
                .query(&[("session_id", &filter)])
                .header("prefer", "return=minimal")
                .json(&json!({ "last_seen": now() }));
            self.expect_ok(request).await.map(drop)
        })
    }

    fn delete(&self, account_id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = uuid::Uuid::parse_str(account_id).ok();
        Box::pin(async move {
            let Some(id) = id else { return Ok(()) };
            let request = self
                .request(Method::DELETE)
                .query(&[("id", &eq(&id.to_string()))])
                .header("prefer", "return=minimal");
            self.expect_ok(request).await.map(drop)
        })
    }

    fn restorable(&self) -> BoxFuture<'_, StoreResult<Vec<Account>>> {
        Box::pin(async move {
            let request = self.request(Method::GET).query(&[
                ("select", "*"),
                ("status", "in.(ready,authenticated,reconnecting)"),
                (ORDER.0, ORDER.1),
            ]);
            self.rows(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn postgrest_timestamps_read_like_the_other_backends() {
        let table = [
            (
                "2026-12-04T23:17:19.123456+00:00",
                "2026-12-04T23:17:19.123Z",
            ),
            ("2026-12-04T23:17:19+00:00", "2026-12-04T23:17:19.000Z"),
            ("2026-12-04T23:17:19.1Z", "2026-12-04T23:17:19.100Z"),
            ("2026-12-04T23:17:19.123Z", "2026-12-04T23:17:19.123Z"),
            (
                "2026-12-05T00:17:19.123+01:00",
                "2026-12-05T00:17:19.123+01:00",
            ),
        ];
        for (given, expected) in table {
            assert_eq!(timestamp(given), expected, "{given}");
        }
    }
}
