//! What a running job knows about itself.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use errand_core::{JobId, Progress, Store, StoreError};

/// The context of one running attempt: identity, progress reporting,
/// cancellation, and the result to store on success.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    id: JobId,
    attempt: i32,
    max_attempts: i32,
    tenant: Option<String>,
    queue: String,
    kind: String,
    created_at: Timestamp,
    lease_token: i64,
    worker: Arc<str>,
    store: Arc<dyn Store>,
    cancel: CancellationToken,
    result: Mutex<Option<String>>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("kind", &self.inner.kind)
            .field("attempt", &self.inner.attempt)
            .finish()
    }
}

/// The fields a context is built from.
pub(crate) struct ContextParts {
    pub(crate) id: JobId,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) tenant: Option<String>,
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) created_at: Timestamp,
    pub(crate) lease_token: i64,
    pub(crate) worker: Arc<str>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cancel: CancellationToken,
}

impl JobContext {
    pub(crate) fn new(p: ContextParts) -> Self {
        JobContext {
            inner: Arc::new(Inner {
                id: p.id,
                attempt: p.attempt,
                max_attempts: p.max_attempts,
                tenant: p.tenant,
                queue: p.queue,
                kind: p.kind,
                created_at: p.created_at,
                lease_token: p.lease_token,
                worker: p.worker,
                store: p.store,
                cancel: p.cancel,
                result: Mutex::new(None),
            }),
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.inner.id
    }
    /// This attempt's number (1-based).
    pub fn attempt(&self) -> i32 {
        self.inner.attempt
    }
    /// Attempts allowed.
    pub fn max_attempts(&self) -> i32 {
        self.inner.max_attempts
    }
    /// The job's tenant.
    pub fn tenant(&self) -> Option<&str> {
        self.inner.tenant.as_deref()
    }
    /// The job's queue.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }
    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.inner.kind
    }
    /// When the job was enqueued.
    pub fn created_at(&self) -> Timestamp {
        self.inner.created_at
    }
    /// The worker running it.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker
    }

    /// Reports progress (0–100 and a short message), visible to operators.
    pub async fn progress(&self, percent: f32, message: impl Into<Option<String>>) -> Result<(), StoreError> {
        let percent = if percent.is_finite() {
            percent.clamp(0.0, 100.0)
        } else {
            0.0
        };
        self.inner
            .store
            .report_progress(
                self.inner.id,
                self.inner.lease_token,
                Progress {
                    percent,
                    message: message.into(),
                },
            )
            .await
    }

    /// Whether the job was asked to stop (operator cancel, lost lease, shutdown).
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Resolves when the job is asked to stop.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    /// Sets the result stored when the attempt succeeds.
    pub fn set_result<T: Serialize>(&self, result: &T) -> Result<(), serde_json::Error> {
        let text = serde_json::to_string(result)?;
        *self.inner.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        Ok(())
    }

    /// Takes the result set by [`JobContext::set_result`].
    pub fn take_result(&self) -> Option<String> {
        self.inner.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
