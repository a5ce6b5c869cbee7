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
    /// An operator's retry would revive a job whose unique key another
    /// unfinished job now holds: two unfinished jobs would share one key.
    #[error(
        "job {id} cannot be retried: its unique key is held by unfinished job {holder}; operate on that job instead"
    )]
    UniqueKeyHeld {
        /// The job that was to be retried.
        id: JobId,
        /// The unfinished job holding the key.
        holder: JobId,
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
    /// The store exists but cannot be used as it is, and retrying will not
    /// change that: its file is damaged (corrupt pages, not a database) or
    /// cannot be written (read-only file or directory, permissions). An
    /// operator has to act; see [`StoreError::is_permanent`].
    #[error("the store is unusable: {0}")]
    Unusable(String),
    /// The store has not been created: the SQLite file is missing or holds no
    /// errand schema, or the PostgreSQL schema or its tables are absent.
    /// Commands that only read or add jobs refuse to create it; the message
    /// names what is missing and says to run `errand migrate`.
    #[error("{0}")]
    Uninitialized(String),
    /// The backend failed; the message is for operators, not end users.
    #[error("store backend error: {0}")]
    Backend(String),
    /// The caller's scope does not allow the action (a tenant-scoped caller
    /// acting on something every tenant shares). The message names the action.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The store is shutting down and accepts no more work.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps a backend error's text.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }

    /// Whether retrying the same call cannot help: the store is damaged,
    /// read-only, missing, too new, or misconfigured, or the job's (or the
    /// queue's) state forbids the call. Connection failures, lock timeouts, a full disk and
    /// other backend errors are transient: a worker waits them out.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::Unusable(_)
                | StoreError::Uninitialized(_)
                | StoreError::SchemaTooNew { .. }
                | StoreError::InvalidConfig(_)
                | StoreError::NotFound(_)
                | StoreError::InvalidState { .. }
                | StoreError::QueueNotFound(_)
                | StoreError::QueueNotEmpty { .. }
                | StoreError::UniqueKeyHeld { .. }
                | StoreError::LeaseLost { .. }
                | StoreError::Forbidden(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_and_transient_faults() {
        for e in [
            StoreError::Unusable("damaged".into()),
            StoreError::Uninitialized("missing".into()),
            StoreError::SchemaTooNew {
                found: 9,
                supported: 2,
            },
            StoreError::InvalidConfig("bad".into()),
        ] {
            assert!(e.is_permanent(), "{e}");
        }
        for e in [
            StoreError::Connect("refused".into()),
            StoreError::Backend("database or disk is full".into()),
            StoreError::Closed,
        ] {
            assert!(!e.is_permanent(), "{e}");
        }
    }
}
