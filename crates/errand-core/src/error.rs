//! The errors a [`Store`](crate::Store) returns.

use crate::job::JobId;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The job does not exist, was pruned, or is outside the caller's tenant scope.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The operation is not allowed in the job's current state.
    #[error("job {id} is {state}: {action} is not allowed")]
    InvalidState {
        /// The job.
        id: JobId,
        /// Its state when the operation was tried.
        state: crate::JobState,
        /// What was tried ("retry", "cancel", …).
        action: &'static str,
    },
    /// No queue has this name.
    #[error("queue {0:?} not found")]
    QueueNotFound(String),
    /// The queue still holds unfinished jobs, so it cannot be removed.
    #[error("queue {queue:?} holds {jobs} unfinished jobs: clear it (or wait for them) first")]
    QueueNotEmpty {
        /// The queue.
        queue: String,
        /// How many scheduled, available, running or retryable jobs it holds.
        jobs: u64,
    },
    /// The caller's lease is gone: another attempt owns the job now, or it finished.
    #[error("job {id}: lease {token} is no longer held")]
    LeaseLost {
        /// The job.
        id: JobId,
        /// The lease token the caller held.
        token: i64,
    },
    /// The database was written by a newer errand than this one.
    #[error(
        "the database schema is version {found}, newer than this errand understands ({supported}); upgrade errand"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The store could not be reached or opened (path, credentials, network).
    #[error("cannot connect to the store: {0}")]
    Connect(String),
    /// The store's settings are malformed (a database URL, a schema name):
    /// nothing was tried. The message names the setting and the rule.
    #[error("{0}")]
    InvalidConfig(String),
    /// The backend failed; the message is for operators, not end users.
    #[error("store backend error: {0}")]
    Backend(String),
    /// The store is shutting down and accepts no more work.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps a backend error's text.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }
}
