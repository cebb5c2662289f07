//! Ordered store writes: one queue per session, shared by every actor that ever serves that
//! session (restarts included) and by the supervisor, so the latest status always lands last.
//! A failed write is retried with backoff until it succeeds; nothing waits for it but `flush`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{mpsc, oneshot};

use super::{StatusUpdate, Store};
use crate::ids::SessionId;

pub enum Write {
    Status(StatusUpdate),
    Touch,
    /// Answers once everything queued before it is applied.
    Flush(oneshot::Sender<()>),
}

pub struct StoreWrites {
    store: Arc<dyn Store>,
    metrics: Arc<crate::metrics::Metrics>,
    queues: Mutex<HashMap<SessionId, mpsc::UnboundedSender<Write>>>,
}

impl StoreWrites {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<crate::metrics::Metrics>) -> StoreWrites {
        StoreWrites {
            store,
            metrics,
            queues: Mutex::new(HashMap::new()),
        }
    }

    pub fn send(&self, session_id: &SessionId, write: Write) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = queues
            .entry(session_id.clone())
            .or_insert_with(|| self.spawn_writer(session_id));
        if let Err(mpsc::error::SendError(write)) = queue.send(write) {
            // The writer is gone (its runtime ended); start another.
            let tx = self.spawn_writer(session_id);
            let _ = tx.send(write);
            *queue = tx;
        }
    }

    /// A writer task for one session; its queue's sending half.
    fn spawn_writer(&self, session_id: &SessionId) -> mpsc::UnboundedSender<Write> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(apply_in_order(
            self.store.clone(),
            self.metrics.clone(),
            session_id.clone(),
            rx,
        ));
        tx
    }

    pub fn status(&self, session_id: &SessionId, update: StatusUpdate) {
        self.send(session_id, Write::Status(update));
    }

    /// Waits (up to `within`) until this session's queued writes are applied.
    pub async fn flush(&self, session_id: &SessionId, within: Duration) -> bool {
        let (done, applied) = oneshot::channel();
        self.send(session_id, Write::Flush(done));
        matches!(tokio::time::timeout(within, applied).await, Ok(Ok(())))
    }
}

async fn apply_in_order(
    store: Arc<dyn Store>,
    metrics: Arc<crate::metrics::Metrics>,
    session_id: SessionId,
    mut queue: mpsc::UnboundedReceiver<Write>,
) {
    // While the store is unreachable a write is retried without limit: the latest status must
    // land, however long the store is away; delays stay under 10 s (5 s plus up to as much
    // jitter) so a store that returns is written to within seconds. Any other error (a bug, a
    // refused row) is retried a few times, then logged and dropped so the queue moves on.
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let mut other_failures = 0;
    while let Some(write) = queue.recv().await {
        let apply = || async {
            match &write {
                Write::Status(update) => store.update_status(&session_id, update.clone()).await,
                Write::Touch => store.touch(&session_id).await,
                Write::Flush(_) => Ok(()),
            }
        };
        let applied = apply
            .retry(backoff)
            .when(|error: &crate::store::StoreError| {
                if error.is_transient() {
                    return true;
                }
                other_failures += 1;
                other_failures <= 3
            })
            .notify(|error, delay| {
                crate::metrics::Metrics::count(&metrics.store_write_retries);
                tracing::warn!(%session_id, %error, ?delay, "store write failed; retrying");
            })
            .await;
        other_failures = 0;
        if let Err(error) = applied {
            tracing::error!(%session_id, %error, "store write dropped after retries");
        }
        if let Write::Flush(done) = write {
            let _ = done.send(());
        }
    }
}
