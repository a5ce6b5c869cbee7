//! errand's core: everything about jobs that needs no I/O.
//!
//! - [`job`]: the job model ([`Job`], [`NewJob`], [`JobState`]) and what a
//!   handler may answer ([`Outcome`]).
//! - [`lifecycle`]: the state machine as a pure function, and the
//!   resolution of an outcome into the store write that records it.
//! - [`retry`]: retry policies (fixed, linear, exponential with jitter and a cap).
//! - [`validate`]: input validation with errors that name the field and the rule.
//! - [`code`]: the stable machine-readable [`ErrorCode`] of every error errand reports.
//! - [`error`]: the store's errors ([`StoreError`]), with their sources and transience.
//! - [`store`]: the store port every backend implements, by role: the hot
//!   path ([`JobQueue`]), maintenance primitives ([`Housekeeping`]), the
//!   tenant-scoped operator model ([`Operator`]), [`Leadership`] and
//!   [`Schedules`]; [`Store`] is all five.
//! - [`clock`]: an injectable clock, so tests never sleep.
//! - [`url`]: database URLs: which backend one names, and its secrets hidden.
//! - `testkit` (feature `testkit`): the conformance suite every backend runs.
//!
//! The crate knows no database, no HTTP and no CLI.

pub mod clock;
pub mod code;
pub mod error;
pub mod job;
pub mod lifecycle;
pub mod retry;
pub mod schedule;
pub mod store;
pub mod url;
pub mod validate;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use clock::{Clock, ManualClock, SystemClock};
pub use code::ErrorCode;
pub use error::{BackendError, DbCode, StoreError};
pub use job::{
    Completion, ErrorRecord, Finish, Job, JobId, JobState, Lease, NewJob, Outcome, Progress, UniqueMode,
};
pub use retry::{Backoff, RetryPolicies, RetryPolicy};
pub use store::{
    ClaimRequest, CompletionResult, Housekeeping, Inserted, JobFilter, JobPage, JobQueue, LapsedLease,
    Leadership, LeaseReport, Operator, PruneRequest, QueueStats, ScheduleOutcome, ScheduleRegistration,
    ScheduleState, ScheduleTick, Schedules, Scope, Store, TickResult,
};

/// The store's role traits, to call a concrete store's methods:
/// `use errand_core::prelude::*;`.
pub mod prelude {
    pub use crate::store::{Housekeeping, JobQueue, Leadership, Operator, Schedules, Store};
}
pub use validate::{Limits, ValidJob, ValidationError};

/// A point in time, with microsecond precision once stored.
pub use jiff::Timestamp;
