//! Executors: what runs a job of a given kind.
//!
//! A worker maps each job kind to an [`Executor`]. Library users register
//! typed Rust handlers ([`Handler`] for [`JobArgs`]); `errand serve`/`work`
//! register the [`command::CommandExecutor`] for `command` jobs.

pub mod command;
pub(crate) mod context;
mod handler;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use errand_core::validate::ValidationError;
use errand_core::{Outcome, RetryPolicy};

pub use context::JobContext;
pub use handler::{Handler, JobArgs, Typed};

/// Runs jobs of one kind. Implementations should observe
/// [`JobContext::cancelled`] and return promptly when it fires.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs one attempt with the job's `args` (JSON text).
    async fn execute(&self, ctx: &JobContext, args: &str) -> Outcome;

    /// The longest an attempt may run when the job sets no timeout.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// The retry policy for this kind when the job sets none.
    fn retry_policy(&self) -> Option<&RetryPolicy> {
        None
    }

    /// Checks a job's args (JSON text) before it is stored, so that bad
    /// args are refused at enqueue (naming the field) instead of failing
    /// when the job runs. Registered with the process's [`Errand`](crate::Errand)
    /// when a worker registers the executor; [`Client`](crate::Client)
    /// enqueues (and every face built on it) run it. Default: any args.
    fn check_args(&self, args: &str) -> Result<(), ValidationError> {
        let _ = args;
        Ok(())
    }
}

/// The executors of the kinds errand knows out of the box (`command`),
/// whose args every enqueue checks.
pub(crate) fn builtin() -> Vec<(&'static str, Arc<dyn Executor>)> {
    vec![(command::KIND, Arc::new(command::CommandExecutor::default()))]
}

/// Checks `args` against the built-in kinds' rules (a `command` job's
/// argv, env…), as every [`Client`](crate::Client) enqueue does; other
/// kinds pass. For faces that check input before opening a store.
pub fn check_builtin_args(kind: &str, args: &str) -> Result<(), ValidationError> {
    match builtin().into_iter().find(|(k, _)| *k == kind) {
        Some((_, executor)) => executor.check_args(args),
        None => Ok(()),
    }
}

/// How a handler's attempt failed, or what it asks for instead of success.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Worth retrying (if attempts remain). Any `std::error::Error` converts to this with `?`.
    Retryable(String),
    /// No retry will help: discard the job now.
    Permanent(String),
    /// Run again after this delay without spending an attempt.
    Snooze(Duration),
    /// Stop: cancel the job.
    Cancel(String),
}

impl JobError {
    /// A retryable failure.
    pub fn retryable(message: impl std::fmt::Display) -> Self {
        JobError::Retryable(message.to_string())
    }

    /// A permanent failure.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        JobError::Permanent(message.to_string())
    }

    /// Run again after `delay`, without spending an attempt.
    pub fn snooze(delay: Duration) -> Self {
        JobError::Snooze(delay)
    }

    /// Cancel the job.
    pub fn cancel(reason: impl std::fmt::Display) -> Self {
        JobError::Cancel(reason.to_string())
    }

    /// The outcome this error records.
    pub fn into_outcome(self) -> Outcome {
        match self {
            JobError::Retryable(error) => Outcome::Retryable { error },
            JobError::Permanent(error) => Outcome::Permanent { error },
            JobError::Snooze(delay) => Outcome::Snooze { delay },
            JobError::Cancel(reason) => Outcome::Cancelled { reason },
        }
    }
}

impl<E: std::error::Error> From<E> for JobError {
    /// Any error is retryable; its chain of sources is kept in the message.
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        JobError::Retryable(message)
    }
}
