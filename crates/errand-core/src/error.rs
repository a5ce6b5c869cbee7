//! The errors a [`Store`](crate::Store) returns.
//!
//! A [`StoreError`] is either a domain refusal (no such job, a state that
//! forbids the call, a lost lease) or a failure of the store itself. The
//! latter carry a [`BackendError`]: an operator-readable message, the
//! database's own code where known ([`DbCode`]: PostgreSQL's SQLSTATE,
//! SQLite's extended result code), the driver's error as
//! [`source`](std::error::Error::source), and whether the failure is
//! transient. Every error has a stable [`ErrorCode`].
//!
//! The message of a store error is complete: it already says, in one line,
//! what its source said, so a log line with `%error` needs nothing more.
//! The source is there for programs (downcast it to the driver's error
//! type). Messages never hold secrets: database URLs are shown without
//! their passwords.

use std::error::Error;
use std::fmt;

use crate::code::ErrorCode;
use crate::job::JobId;

/// The database's own code for a failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbCode {
    /// A PostgreSQL SQLSTATE, five characters (`40001`: serialization failure).
    SqlState(String),
    /// An SQLite extended result code (`2067`: `SQLITE_CONSTRAINT_UNIQUE`).
    Sqlite(i32),
}

impl fmt::Display for DbCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbCode::SqlState(s) => write!(f, "SQLSTATE {s}"),
            DbCode::Sqlite(c) => write!(f, "SQLite result code {c}"),
        }
    }
}

/// A failure of the database behind a store: what happened (for
/// operators), whether trying again may help, the database's code and the
/// driver's error.
///
/// The store decides transience from what the database said (see
/// [`BackendError::transient`] and [`BackendError::permanent`]); callers
/// ask [`StoreError::is_transient`].
#[derive(Debug)]
pub struct BackendError {
    message: String,
    transient: bool,
    db_code: Option<DbCode>,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl BackendError {
    /// A failure that may pass: the connection was lost, a serialization
    /// failure or deadlock, a lock or pool timeout, a full disk, a server
    /// shutting down. Trying again later may succeed.
    pub fn transient(message: impl Into<String>) -> Self {
        BackendError {
            message: message.into(),
            transient: true,
            db_code: None,
            source: None,
        }
    }

    /// A failure that trying again will not fix: a constraint violation,
    /// a syntax error or missing table, a value the database refuses, a
    /// damaged file.
    pub fn permanent(message: impl Into<String>) -> Self {
        BackendError {
            transient: false,
            ..BackendError::transient(message)
        }
    }

    /// The same failure, with the driver's error that caused it.
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The same failure, with the database's code for it.
    pub fn with_db_code(mut self, code: DbCode) -> Self {
        self.db_code = Some(code);
        self
    }

    /// What happened, in one line for operators.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The database's code, where the driver gave one.
    pub fn db_code(&self) -> Option<&DbCode> {
        self.db_code.as_ref()
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for BackendError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Why a store operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The job does not exist, was pruned, or is outside the caller's tenant scope.
    NotFound(JobId),
    /// The operation is not allowed in the job's current state.
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
    UniqueKeyHeld {
        /// The job that was to be retried.
        id: JobId,
        /// The unfinished job holding the key.
        holder: JobId,
    },
    /// No queue has this name.
    QueueNotFound(String),
    /// The queue still holds unfinished jobs, so it cannot be removed.
    QueueNotEmpty {
        /// The queue.
        queue: String,
        /// How many scheduled, available, running or retryable jobs it holds.
        jobs: u64,
    },
    /// The caller's lease is gone: another attempt owns the job now, or it finished.
    LeaseLost {
        /// The job.
        id: JobId,
        /// The lease token the caller held.
        token: i64,
    },
    /// The database was written by a newer errand than this one.
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The store could not be reached or opened (path, credentials,
    /// network), or the connection to it was lost. Always transient: a
    /// server may come back, a file may appear.
    Connect(BackendError),
    /// The store's settings are malformed (a database URL, a schema name):
    /// nothing was tried. The message names the setting and the rule.
    InvalidConfig(String),
    /// The store exists but cannot be used as it is, and retrying will not
    /// change that: its file is damaged (corrupt pages, not a database) or
    /// cannot be written (read-only file or directory, permissions). An
    /// operator has to act. Always permanent.
    Unusable(BackendError),
    /// The store has not been created: the SQLite file is missing or holds no
    /// errand schema, or the PostgreSQL schema or its tables are absent.
    /// Commands that only read or add jobs refuse to create it; the message
    /// names what is missing and says to run `errand migrate`.
    Uninitialized(String),
    /// The backend failed otherwise; transient or permanent as the
    /// [`BackendError`] says. The message is for operators, not end users.
    Backend(BackendError),
    /// The caller's scope does not allow the action (a tenant-scoped caller
    /// acting on something every tenant shares). The message names the action.
    Forbidden(String),
    /// The store is shutting down and accepts no more work.
    Closed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(id) => write!(f, "job {id} not found"),
            StoreError::InvalidState { id, state, action } => {
                write!(f, "job {id} is {state}: {action} is not allowed")
            }
            StoreError::UniqueKeyHeld { id, holder } => write!(
                f,
                "job {id} cannot be retried: its unique key is held by unfinished job {holder}; operate on that job instead"
            ),
            StoreError::QueueNotFound(q) => write!(f, "queue {q:?} not found"),
            StoreError::QueueNotEmpty { queue, jobs } => write!(
                f,
                "queue {queue:?} holds {jobs} unfinished jobs: clear it (or wait for them) first"
            ),
            StoreError::LeaseLost { id, token } => write!(f, "job {id}: lease {token} is no longer held"),
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "the database schema is version {found}, newer than this errand understands ({supported}); upgrade errand"
            ),
            StoreError::Connect(e) => write!(f, "cannot connect to the store: {e}"),
            StoreError::InvalidConfig(m) | StoreError::Uninitialized(m) => f.write_str(m),
            StoreError::Unusable(e) => write!(f, "the store is unusable: {e}"),
            StoreError::Backend(e) => write!(f, "store backend error: {e}"),
            StoreError::Closed => f.write_str("the store is closed"),
            StoreError::Forbidden(m) => write!(f, "forbidden: {m}"),
        }
    }
}

impl Error for StoreError {
    /// The driver's error behind a backend failure (the [`BackendError`]'s
    /// own source: its message is already this error's).
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.backend_error().and_then(Error::source)
    }
}

impl From<BackendError> for StoreError {
    /// An otherwise unclassified backend failure ([`StoreError::Backend`]).
    fn from(e: BackendError) -> Self {
        StoreError::Backend(e)
    }
}

impl StoreError {
    /// A permanent backend failure caused by `e` (a value that cannot be
    /// serialized, a task that panicked); its text is the message.
    pub fn backend(e: impl Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(BackendError::permanent(e.to_string()).with_source(e))
    }

    /// The store cannot be reached or opened: `message` says why.
    pub fn connect(message: impl Into<String>) -> Self {
        StoreError::Connect(BackendError::transient(message))
    }

    /// The store cannot be used as it is: `message` says why and what to do.
    pub fn unusable(message: impl Into<String>) -> Self {
        StoreError::Unusable(BackendError::permanent(message))
    }

    /// The failure's details, for the variants that carry a [`BackendError`].
    pub fn backend_error(&self) -> Option<&BackendError> {
        match self {
            StoreError::Connect(e) | StoreError::Unusable(e) | StoreError::Backend(e) => Some(e),
            _ => None,
        }
    }

    /// The database's own code for the failure, where known.
    pub fn db_code(&self) -> Option<&DbCode> {
        self.backend_error().and_then(BackendError::db_code)
    }

    /// The stable code callers and users see.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) | StoreError::QueueNotFound(_) => ErrorCode::NotFound,
            StoreError::InvalidState { .. } | StoreError::QueueNotEmpty { .. } => ErrorCode::InvalidState,
            StoreError::UniqueKeyHeld { .. } => ErrorCode::UniqueKeyHeld,
            StoreError::LeaseLost { .. } => ErrorCode::LeaseLost,
            StoreError::SchemaTooNew { .. } | StoreError::Connect(_) | StoreError::Closed => {
                ErrorCode::StoreUnavailable
            }
            StoreError::InvalidConfig(_) => ErrorCode::ConfigInvalid,
            StoreError::Unusable(_) => ErrorCode::StoreUnusable,
            StoreError::Uninitialized(_) => ErrorCode::StoreUninitialized,
            StoreError::Backend(_) => ErrorCode::StoreError,
            StoreError::Forbidden(_) => ErrorCode::Forbidden,
        }
    }

    /// Whether the same call may succeed if tried again later: the store
    /// could not be reached ([`StoreError::Connect`]), is closing
    /// ([`StoreError::Closed`]), or failed in a way its [`BackendError`]
    /// calls transient (a serialization failure, a deadlock, a lock or pool
    /// timeout, a full disk). Every other error is permanent: domain
    /// refusals, bad settings, a missing, damaged or too new store, and
    /// backend failures such as a constraint violation.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect(_) | StoreError::Closed => true,
            StoreError::Backend(e) => e.is_transient(),
            _ => false,
        }
    }

    /// Whether retrying the same call cannot help: exactly when it is not
    /// [`transient`](StoreError::is_transient).
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_and_transient_faults() {
        for e in [
            StoreError::unusable("damaged"),
            StoreError::Uninitialized("missing".into()),
            StoreError::SchemaTooNew {
                found: 9,
                supported: 2,
            },
            StoreError::InvalidConfig("bad".into()),
            StoreError::NotFound(JobId(1)),
            StoreError::LeaseLost {
                id: JobId(1),
                token: 2,
            },
            BackendError::permanent("duplicate key").into(),
            StoreError::backend(std::io::Error::other("cannot serialize")),
        ] {
            assert!(e.is_permanent(), "{e}");
            assert!(!e.is_transient(), "{e}");
        }
        for e in [
            StoreError::connect("refused"),
            BackendError::transient("database or disk is full").into(),
            StoreError::Closed,
        ] {
            assert!(e.is_transient(), "{e}");
            assert!(!e.is_permanent(), "{e}");
        }
    }

    #[test]
    fn backend_failures_keep_their_source_and_code_without_repeating_it() {
        let io = std::io::Error::other("disk on fire");
        let e: StoreError = BackendError::transient("writing failed: disk on fire")
            .with_db_code(DbCode::Sqlite(13))
            .with_source(io)
            .into();
        assert_eq!(e.to_string(), "store backend error: writing failed: disk on fire");
        assert_eq!(e.db_code(), Some(&DbCode::Sqlite(13)));
        // The chain skips the BackendError itself: its message is the store error's.
        let source = e.source().expect("a source");
        assert_eq!(source.to_string(), "disk on fire");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(e.code(), ErrorCode::StoreError);
        assert_eq!(DbCode::SqlState("40001".into()).to_string(), "SQLSTATE 40001");
    }

    #[test]
    fn every_variant_has_its_code() {
        use crate::JobState;
        let cases = [
            (StoreError::NotFound(JobId(1)), ErrorCode::NotFound),
            (StoreError::QueueNotFound("q".into()), ErrorCode::NotFound),
            (
                StoreError::InvalidState {
                    id: JobId(1),
                    state: JobState::Running,
                    action: "retry",
                },
                ErrorCode::InvalidState,
            ),
            (
                StoreError::QueueNotEmpty {
                    queue: "q".into(),
                    jobs: 1,
                },
                ErrorCode::InvalidState,
            ),
            (
                StoreError::UniqueKeyHeld {
                    id: JobId(1),
                    holder: JobId(2),
                },
                ErrorCode::UniqueKeyHeld,
            ),
            (
                StoreError::LeaseLost {
                    id: JobId(1),
                    token: 1,
                },
                ErrorCode::LeaseLost,
            ),
            (
                StoreError::SchemaTooNew {
                    found: 3,
                    supported: 2,
                },
                ErrorCode::StoreUnavailable,
            ),
            (StoreError::connect("down"), ErrorCode::StoreUnavailable),
            (StoreError::Closed, ErrorCode::StoreUnavailable),
            (StoreError::InvalidConfig("bad".into()), ErrorCode::ConfigInvalid),
            (StoreError::unusable("damaged"), ErrorCode::StoreUnusable),
            (
                StoreError::Uninitialized("none".into()),
                ErrorCode::StoreUninitialized,
            ),
            (BackendError::transient("x").into(), ErrorCode::StoreError),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
        }
    }
}
