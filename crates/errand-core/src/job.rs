//! The job model.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::retry::RetryPolicy;

/// A job's identifier, unique within one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its lifecycle. See `docs/LIFECYCLE.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at`, which is in the future.
    Scheduled,
    /// Ready to be claimed by a worker.
    Available,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Failed, and waiting for its backoff before it becomes available again.
    Retryable,
    /// Finished successfully. Final.
    Completed,
    /// Dead: out of attempts, or failed permanently. Final unless retried by an operator.
    Discarded,
    /// Cancelled before or while running. Final unless retried by an operator.
    Cancelled,
    /// Its `expires_at` passed before it started. Final unless retried by an operator.
    Expired,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
        JobState::Expired,
    ];

    /// The states a job can still leave without an operator: not finished.
    pub const UNFINISHED: [JobState; 4] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
    ];

    /// The states of a job waiting to run: what clearing a queue deletes.
    pub const WAITING: [JobState; 3] = [JobState::Scheduled, JobState::Available, JobState::Retryable];

    /// The finished states.
    pub const FINISHED: [JobState; 4] = [
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
        JobState::Expired,
    ];

    /// The lower-case name used in storage, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
        }
    }

    /// Parses a state name; the inverse of [`JobState::as_str`].
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for completed, discarded, cancelled and expired.
    pub fn is_finished(self) -> bool {
        JobState::FINISHED.contains(&self)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::parse(s).ok_or_else(|| {
            let names: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown state {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// How a unique key deduplicates enqueues (always scoped by tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum UniqueMode {
    /// A duplicate is any job with the same key that has not finished.
    WhileUnfinished,
    /// A duplicate is any job with the same key created less than `period` ago, whatever its state.
    Period {
        /// How long after a job's creation its key stays taken.
        #[serde(with = "duration_ms")]
        period: Duration,
    },
}

/// A job's progress as reported by its running handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0 to 100.
    pub percent: f32,
    /// A short human message ("row 400 of 1000").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One failed attempt, kept in the job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The attempt that failed (1-based).
    pub attempt: i32,
    /// When it failed.
    pub at: Timestamp,
    /// What went wrong.
    pub message: String,
    /// The worker that ran it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// A worker's claim on a running job. The token is a fencing token: each claim
/// of a job gets a larger one, and writes carrying an older token are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker holding the lease.
    pub owner: String,
    /// The fencing token.
    pub token: i64,
    /// When the lease lapses unless extended by a heartbeat.
    pub expires_at: Timestamp,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its identifier.
    pub id: JobId,
    /// The tenant it belongs to, if any.
    pub tenant: Option<String>,
    /// The queue it waits in.
    pub queue: String,
    /// What kind of work it is: selects the handler.
    pub kind: String,
    /// Its arguments, as JSON text.
    pub args: String,
    /// Lower runs first within a queue.
    pub priority: i32,
    /// Its lifecycle state.
    pub state: JobState,
    /// Attempts started so far (the running attempt included).
    pub attempt: i32,
    /// Attempts allowed before it is discarded.
    pub max_attempts: i32,
    /// When it becomes (or became) available.
    pub run_at: Timestamp,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When its latest attempt started.
    pub attempted_at: Option<Timestamp>,
    /// When it reached a finished state.
    pub finished_at: Option<Timestamp>,
    /// After this instant it is never started.
    pub expires_at: Option<Timestamp>,
    /// Its deduplication key, if any.
    pub unique_key: Option<String>,
    /// How long one attempt may run.
    #[serde(with = "opt_duration_ms")]
    pub timeout: Option<Duration>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Free-form metadata, a JSON object as text.
    pub meta: String,
    /// The job's own retry policy, overriding the kind's and the queue's.
    pub retry: Option<RetryPolicy>,
    /// The latest progress report.
    pub progress: Option<Progress>,
    /// The handler's result (JSON text), once completed.
    pub result: Option<String>,
    /// Every failed attempt, oldest first.
    pub errors: Vec<ErrorRecord>,
    /// The current lease, while running.
    pub lease: Option<Lease>,
    /// An operator asked to cancel it while it was running.
    pub cancel_requested: bool,
}

/// A job to enqueue, before validation. Build it with [`NewJob::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// What kind of work it is.
    pub kind: String,
    /// Arguments as JSON text.
    pub args: String,
    /// The queue; `default` when unset.
    pub queue: Option<String>,
    /// Lower runs first; 100 when unset.
    pub priority: Option<i32>,
    /// Run no earlier than this.
    pub run_at: Option<Timestamp>,
    /// Run no earlier than this long after enqueue (ignored if `run_at` is set).
    #[serde(with = "opt_duration_ms")]
    pub delay: Option<Duration>,
    /// Never start after this instant.
    pub expires_at: Option<Timestamp>,
    /// Never start later than this long after enqueue (ignored if `expires_at` is set).
    #[serde(with = "opt_duration_ms")]
    pub expires_in: Option<Duration>,
    /// Attempts allowed; 25 when unset.
    pub max_attempts: Option<i32>,
    /// The tenant it belongs to.
    pub tenant: Option<String>,
    /// A deduplication key and how it deduplicates.
    pub unique: Option<(String, UniqueMode)>,
    /// How long one attempt may run.
    #[serde(with = "opt_duration_ms")]
    pub timeout: Option<Duration>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Free-form metadata: a JSON object as text.
    pub meta: Option<String>,
    /// The job's own retry policy.
    pub retry: Option<RetryPolicy>,
}

impl NewJob {
    /// A job of `kind` with `args` (JSON text), everything else at its default.
    pub fn new(kind: impl Into<String>, args: impl Into<String>) -> Self {
        NewJob {
            kind: kind.into(),
            args: args.into(),
            queue: None,
            priority: None,
            run_at: None,
            delay: None,
            expires_at: None,
            expires_in: None,
            max_attempts: None,
            tenant: None,
            unique: None,
            timeout: None,
            tags: Vec::new(),
            meta: None,
            retry: None,
        }
    }

    /// A job whose args are `args` serialized to JSON.
    pub fn from_args<T: Serialize>(kind: impl Into<String>, args: &T) -> serde_json::Result<Self> {
        Ok(NewJob::new(kind, serde_json::to_string(args)?))
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Sets the priority (lower runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Runs no earlier than `at`.
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Runs no earlier than `delay` after enqueue.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Never starts after `at`.
    pub fn expires_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// Never starts later than `d` after enqueue.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.expires_in = Some(d);
        self
    }
    /// Allows `n` attempts.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Belongs to `tenant`.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Deduplicates on `key` while a job with it is unfinished.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique = Some((key.into(), UniqueMode::WhileUnfinished));
        self
    }
    /// Deduplicates on `key` for `period` after the first job's creation.
    pub fn unique_for(mut self, key: impl Into<String>, period: Duration) -> Self {
        self.unique = Some((key.into(), UniqueMode::Period { period }));
        self
    }
    /// Limits one attempt to `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Sets metadata (a JSON object as text).
    pub fn meta(mut self, meta: impl Into<String>) -> Self {
        self.meta = Some(meta.into());
        self
    }
    /// Sets the job's own retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

/// What a handler answers for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success, with an optional small JSON result (text).
    Completed {
        /// The result, JSON text.
        result: Option<String>,
    },
    /// A failure worth retrying (if attempts remain).
    Retryable {
        /// What went wrong.
        error: String,
    },
    /// A failure that no retry will fix: discard now.
    Permanent {
        /// What went wrong.
        error: String,
    },
    /// Run again after `delay` without spending an attempt.
    Snooze {
        /// How long to wait.
        delay: Duration,
    },
    /// Stop: the job is cancelled.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// The attempt ran past its timeout (a retryable failure).
    TimedOut {
        /// The timeout that was exceeded.
        after: Duration,
    },
}

/// The store write that records how an attempt ended. Produced by
/// [`crate::lifecycle::resolve`] from an [`Outcome`], or by the engine for
/// expiry and shutdown.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// running -> completed.
    Complete {
        /// The result, JSON text.
        result: Option<String>,
    },
    /// running -> retryable, available again at `at`.
    Retry {
        /// When to try again.
        at: Timestamp,
        /// The failure, appended to the history.
        error: ErrorRecord,
    },
    /// running -> discarded.
    Discard {
        /// The failure, appended to the history.
        error: ErrorRecord,
    },
    /// running -> scheduled at `at`; the attempt is given back.
    Snooze {
        /// When to run again.
        at: Timestamp,
    },
    /// running -> scheduled at `at`, the attempt given back, with `note`
    /// appended to the history: the attempt was not made (a worker with no
    /// executor for the job's kind put it back for one that has one).
    Defer {
        /// When to look again.
        at: Timestamp,
        /// Why it was not run, appended to the history.
        note: ErrorRecord,
    },
    /// running -> cancelled.
    Cancel {
        /// Why, appended to the history.
        error: ErrorRecord,
    },
    /// running -> expired: it was claimed but its `expires_at` passed before it started.
    Expire,
    /// running -> available; the attempt is given back (graceful shutdown).
    HandBack,
    /// running -> completed, and the job is deleted in the same write: its
    /// queue keeps no completed jobs (as Sidekiq does, or BullMQ with
    /// `removeOnComplete`). It counts toward the queue's completed total like
    /// [`Finish::Complete`]; a result is not stored.
    CompleteAndDelete,
}

impl Finish {
    /// The state this write leaves the job in.
    pub fn target_state(&self) -> JobState {
        match self {
            Finish::Complete { .. } | Finish::CompleteAndDelete => JobState::Completed,
            Finish::Retry { .. } => JobState::Retryable,
            Finish::Discard { .. } => JobState::Discarded,
            Finish::Snooze { .. } | Finish::Defer { .. } => JobState::Scheduled,
            Finish::Cancel { .. } => JobState::Cancelled,
            Finish::Expire => JobState::Expired,
            Finish::HandBack => JobState::Available,
        }
    }
}

/// One finished attempt, fenced by the lease it was claimed with.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The job.
    pub id: JobId,
    /// The lease token from the claim.
    pub lease_token: i64,
    /// The write to make.
    pub finish: Finish,
}

pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod opt_duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis().min(u64::MAX as u128) as u64)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!(
            "done"
                .parse::<JobState>()
                .unwrap_err()
                .contains("expected one of")
        );
    }

    #[test]
    fn finished_and_unfinished_partition_the_states() {
        for s in JobState::ALL {
            assert_ne!(JobState::UNFINISHED.contains(&s), JobState::FINISHED.contains(&s));
            assert_eq!(s.is_finished(), JobState::FINISHED.contains(&s));
        }
    }
}
