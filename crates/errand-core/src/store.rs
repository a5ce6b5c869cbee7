//! The storage port. Every backend (SQLite, PostgreSQL, …) implements
//! [`Store`] and passes the one conformance suite in `testkit`.
//!
//! Methods are named after the domain verb and what they guard. Each write
//! that changes a job's state is one [`Event`](crate::lifecycle::Event) of the
//! lifecycle, guarded by the same source states as
//! [`transition`](crate::lifecycle::transition). Times are passed in (`now`),
//! never read from the system clock, so tests can drive them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::error::StoreError;
use crate::job::{Completion, Job, JobId, JobState, Progress};
use crate::validate::ValidJob;

/// Which tenants' jobs a caller may see and touch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every job (operators, single-tenant deployments).
    #[default]
    All,
    /// Only jobs whose tenant is this one; other jobs look as if they did not exist.
    Tenant(String),
}

impl Scope {
    /// Whether a job with `tenant` is visible in this scope.
    pub fn allows(&self, tenant: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(t) => tenant == Some(t.as_str()),
        }
    }

    /// Refuses an action on something every tenant shares (a whole queue)
    /// unless the caller may act for every tenant: with a tenant scope it is
    /// [`StoreError::Forbidden`], naming `action`.
    pub fn require_all(&self, action: &str) -> Result<(), StoreError> {
        match self {
            Scope::All => Ok(()),
            Scope::Tenant(t) => Err(StoreError::Forbidden(format!(
                "{action} acts for every tenant; a caller scoped to tenant {t:?} may not"
            ))),
        }
    }
}

/// The result of inserting one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inserted {
    /// The new job's id, or the existing job's id for a duplicate.
    pub id: JobId,
    /// True when a job with the same unique key already existed; nothing was written.
    pub duplicate: bool,
    /// The state of the job `id` names.
    pub state: JobState,
}

/// A request to claim available jobs from one queue.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The queue.
    pub queue: String,
    /// The most jobs to claim.
    pub limit: usize,
    /// The claiming worker's id, recorded as the lease owner.
    pub owner: String,
    /// How long the lease lasts unless extended.
    pub lease_for: Duration,
    /// The current time.
    pub now: Timestamp,
}

/// The outcome of one [`Completion`], in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionResult {
    /// Written.
    Done,
    /// Refused: the lease token no longer matches (rescued and re-claimed, or
    /// finished already). Nothing was written.
    LeaseLost,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseReport {
    /// Jobs whose lease this worker no longer holds; it should stop them.
    pub lost: Vec<JobId>,
    /// Jobs an operator asked to cancel; their handlers should stop.
    pub cancel_requested: Vec<JobId>,
}

/// Which finished jobs to prune.
#[derive(Debug, Clone)]
pub struct PruneRequest {
    /// Jobs finished before this instant.
    pub finished_before: Timestamp,
    /// Only this queue; `None`: every queue not in `except_queues`.
    pub queue: Option<String>,
    /// With `queue: None`, queues left alone (they have rules of their own).
    pub except_queues: Vec<String>,
    /// The most rows to delete in one call (keeps transactions short).
    pub limit: usize,
}

/// Filters for listing jobs; newest first, paged by id.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Whose jobs.
    pub scope: Scope,
    /// Any of these states (empty: all).
    pub states: Vec<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this tenant (within `scope`).
    pub tenant: Option<String>,
    /// Only jobs with an id below this (the previous page's `next_cursor`).
    pub before_id: Option<JobId>,
    /// Page size: 0 means [`JobFilter::DEFAULT_PAGE`]; more than
    /// [`JobFilter::MAX_PAGE`] is capped (see [`JobFilter::page_size`]).
    pub limit: usize,
}

impl JobFilter {
    /// The page size when none is asked for.
    pub const DEFAULT_PAGE: usize = 50;
    /// The largest page a store returns.
    pub const MAX_PAGE: usize = 1000;

    /// The page size a store returns for this filter: `limit`, with 0
    /// meaning [`JobFilter::DEFAULT_PAGE`], capped at [`JobFilter::MAX_PAGE`].
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => Self::DEFAULT_PAGE,
            n => n.min(Self::MAX_PAGE),
        }
    }
}

/// One page of jobs.
#[derive(Debug, Clone, Default)]
pub struct JobPage {
    /// The jobs, newest (highest id) first.
    pub jobs: Vec<Job>,
    /// Pass as `before_id` to get the next page; `None` on the last page.
    pub next_cursor: Option<JobId>,
}

/// A queue's state and figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Its name.
    pub name: String,
    /// Whether workers are told not to claim from it.
    pub paused: bool,
    /// Jobs now in each state (states with none are absent).
    pub counts: BTreeMap<JobState, u64>,
    /// How long the oldest available job has been waiting.
    #[serde(with = "crate::job::opt_duration_ms", rename = "oldest_available_age_ms")]
    pub oldest_available_age: Option<Duration>,
    /// Jobs ever completed; survives pruning. Kept per queue: absent for a
    /// tenant scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_total: Option<u64>,
    /// Attempts ever failed (retried or discarded); survives pruning.
    /// Absent for a tenant scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_total: Option<u64>,
    /// Jobs ever discarded; survives pruning. Absent for a tenant scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discarded_total: Option<u64>,
}

/// A running job whose lease lapsed, as [`Housekeeping::lapsed_leases`]
/// reports it. The engine decides what becomes of it
/// ([`lifecycle::rescue_completion`](crate::lifecycle::rescue_completion))
/// and writes that with [`Housekeeping::rescue_lapsed`].
#[derive(Debug, Clone, PartialEq)]
pub struct LapsedLease {
    /// The job.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// The attempt that was running (1-based).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The job's own retry policy, if it has one (an unreadable stored
    /// policy is reported as none: the other policies apply).
    pub retry: Option<crate::RetryPolicy>,
    /// The worker that held the lease.
    pub owner: Option<String>,
    /// The lapsed lease's token: the rescue is fenced by it.
    pub lease_token: i64,
    /// When the lease ran out.
    pub expired_at: Timestamp,
}

/// The hot path: what producers and workers call for every job. A store
/// implements every role; the roles say who calls what, and the
/// conformance suite is organised by them.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// A short name for the backend ("sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// Inserts jobs atomically: all are written or none. A job whose unique
    /// key is taken (by a stored job, or by an earlier job of the same batch)
    /// is not written; its [`Inserted`] names the existing job with
    /// `duplicate: true`. Creates queues on first use. Results are in input order.
    async fn insert_jobs(&self, jobs: Vec<ValidJob>, now: Timestamp) -> Result<Vec<Inserted>, StoreError>;

    /// Claims up to `limit` available jobs of an unpaused queue whose `run_at`
    /// has come and whose `expires_at` has not passed, ordered by priority,
    /// then `run_at`, then id. Each becomes running with a fresh lease (a
    /// token larger than any before for that job) and one more attempt.
    async fn claim_available(&self, req: ClaimRequest) -> Result<Vec<Job>, StoreError>;

    /// Records how attempts ended. Each write applies only if the job is
    /// still running under the given lease token; otherwise its result is
    /// [`CompletionResult::LeaseLost`] and nothing changes for it.
    /// Snooze and hand-back give the attempt back.
    async fn complete_batch(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError>;

    /// Extends the leases `owner` holds on `held` (id, token) to `until`.
    async fn extend_leases(
        &self,
        owner: &str,
        held: &[(JobId, i64)],
        until: Timestamp,
    ) -> Result<LeaseReport, StoreError>;

    /// Of the running jobs `ids`, those an operator asked to cancel. A
    /// read: workers ask it whenever the store may have changed
    /// ([`JobQueue::wait_for_change`]), so a cancel reaches a running job
    /// promptly instead of at its next heartbeat.
    async fn cancel_requests(&self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError>;

    /// Stores a running job's progress, if the lease still holds.
    async fn report_progress(
        &self,
        id: JobId,
        lease_token: i64,
        progress: Progress,
    ) -> Result<(), StoreError>;

    /// The queues that hold at least one available job, by name. Cheap at
    /// any size (an index probe per known queue, no count): workers ask it
    /// to say when jobs wait in queues they do not serve.
    async fn queues_with_available_jobs(&self) -> Result<Vec<String>, StoreError>;

    /// Waits until another process may have written jobs, or `timeout`
    /// passes. Spurious returns are allowed; it is a hint to look again.
    async fn wait_for_change(&self, timeout: Duration) -> Result<(), StoreError>;

    /// How many claims a worker keeps under way at once per queue unless it
    /// is told otherwise. More than one pays where claims queue up behind
    /// one another cheaply (a single writer); where concurrent claims compete
    /// for the same rows and the server's CPU, one is better.
    fn claims_in_flight(&self) -> usize {
        1
    }

    /// Finishes what the store does in the background for calls already
    /// made (PostgreSQL: the wake-ups of inserts, sent after their commit),
    /// so that a short-lived process may exit without losing them. Default:
    /// nothing.
    async fn flush(&self) {}
}

/// Maintenance primitives, run by the maintenance leader. The store reports
/// and applies; what happens to a job is decided by the engine.
#[async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    /// Running jobs whose lease expired before `now`, oldest expiry first,
    /// at most `limit`. A read: nothing changes.
    async fn lapsed_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<LapsedLease>, StoreError>;

    /// Writes the rescues the engine decided for lapsed leases (each a
    /// [`Finish::Retry`](crate::Finish::Retry) or
    /// [`Finish::Discard`](crate::Finish::Discard) from
    /// [`lifecycle::rescue_completion`](crate::lifecycle::rescue_completion)).
    /// Each applies only if its job is still running under that lease token
    /// and the lease is still expired at `now` (a heartbeat that extended
    /// it in between wins); otherwise its result is
    /// [`CompletionResult::LeaseLost`]. Counts toward the queue totals as a
    /// failed attempt, like a completion with the same finish.
    async fn rescue_lapsed(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError>;

    /// Scheduled and retryable jobs whose `run_at` has come become available.
    /// Returns the queues that received jobs.
    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Unstarted jobs whose `expires_at` passed become expired. Returns how many.
    async fn expire_due(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError>;

    /// Deletes finished jobs as the request says. Returns how many.
    async fn prune_finished(&self, req: &PruneRequest) -> Result<u64, StoreError>;

    /// The earliest `run_at` of a scheduled or retryable job, if any.
    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError>;

    /// The store's own upkeep, run by the maintenance leader on every pass
    /// (PostgreSQL: vacuuming the jobs table when autovacuum is off). It
    /// returns at once; long work runs in the background. Default: nothing.
    async fn upkeep(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The tenant-scoped read and operator model: what dashboards, the CLI and
/// the HTTP API call. Every method takes the caller's [`Scope`]: jobs of
/// other tenants look as if they did not exist, and actions on a whole
/// queue (pause, remove) need [`Scope::All`] ([`StoreError::Forbidden`]
/// otherwise, see [`Scope::require_all`]).
#[async_trait]
pub trait Operator: Send + Sync + 'static {
    /// One job, if `scope` may see it.
    async fn get_job(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError>;

    /// Jobs matching `filter`, newest first, at most
    /// [`JobFilter::page_size`] of them.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError>;

    /// Cancels a job: an unstarted one becomes cancelled at once; a running
    /// one is flagged (`cancel_requested`), waiters of
    /// [`JobQueue::wait_for_change`] are woken, and its worker stops it as
    /// soon as [`JobQueue::cancel_requests`] tells it. A finished one is [`StoreError::InvalidState`].
    async fn cancel_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError>;

    /// An operator's retry: a discarded, cancelled, expired, retryable or
    /// scheduled job becomes available now; if it had used all its attempts
    /// it is allowed one more. Completed and running jobs are refused, and so
    /// is a job whose unique key another unfinished job (same tenant) holds
    /// ([`StoreError::UniqueKeyHeld`]): one key never has two unfinished jobs.
    async fn retry_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError>;

    /// An operator's discard: an unstarted job (scheduled, available,
    /// retryable) becomes discarded at once, with an error saying an
    /// operator discarded it. Running jobs are refused (cancel them), as are
    /// finished ones ([`StoreError::InvalidState`]).
    async fn discard_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError>;

    /// Pauses or resumes a queue. An unknown queue is created when `create`
    /// is set, else refused with [`StoreError::QueueNotFound`] (nothing
    /// written). Needs [`Scope::All`].
    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        create: bool,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Deletes the jobs of `queue` that wait to run (scheduled, available,
    /// retryable) and that `scope` may see; running and finished jobs stay.
    /// Returns how many were deleted. An unknown queue deletes nothing.
    async fn clear_queue(&self, queue: &str, scope: &Scope) -> Result<u64, StoreError>;

    /// Removes a queue's record (its pause flag and totals). Refused with
    /// [`StoreError::QueueNotEmpty`] while it holds unfinished jobs; its
    /// finished jobs stay until pruned. [`StoreError::QueueNotFound`] if
    /// there is no such queue. Enqueuing to the name later creates it anew.
    /// Needs [`Scope::All`].
    async fn remove_queue(&self, queue: &str, scope: &Scope) -> Result<(), StoreError>;

    /// Every known queue with its figures as `scope` may see them: with a
    /// tenant scope, the counts are of that tenant's jobs and the totals
    /// (kept per queue, not per tenant) are absent.
    async fn queue_stats(&self, scope: &Scope, now: Timestamp) -> Result<Vec<QueueStats>, StoreError>;

    /// Every registered schedule (removed ones included) that `scope` may
    /// see (a tenant sees the schedules whose jobs are its own), by name,
    /// with its next and last fire times and the current state of its last job.
    async fn list_schedules(&self, scope: &Scope) -> Result<Vec<ScheduleState>, StoreError>;
}

/// Leadership: one holder of a named role at a time across the fleet.
#[async_trait]
pub trait Leadership: Send + Sync + 'static {
    /// Takes or renews the leader role `role` for `owner` until `now + ttl`.
    /// Returns true if `owner` holds the role afterwards. A holder that
    /// stops renewing loses the role once its lease runs out.
    async fn elect_leader(
        &self,
        role: &str,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives up the leader role if `owner` holds it (graceful shutdown).
    async fn resign_leader(&self, role: &str, owner: &str) -> Result<(), StoreError>;
}

/// Schedules: what schedulers register and fire.
#[async_trait]
pub trait Schedules: Send + Sync + 'static {
    /// Registers the current set of schedules (every scheduler does at
    /// start). A new schedule starts at its `next_fire`; a known one keeps
    /// its progress unless its `spec` or `enabled` changed (or it had been
    /// removed), in which case it restarts at the given `next_fire`. Stored
    /// schedules missing from `schedules` are marked removed at `now` and
    /// never fire again; their history stays listed.
    async fn sync_schedules(
        &self,
        schedules: Vec<ScheduleRegistration>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Fires one tick, in one transaction: guarded by the schedule's
    /// fingerprint (else [`TickResult::Superseded`]) and its stored next
    /// fire time equal to `tick.expected_next` (else
    /// [`TickResult::AlreadyFired`]), it moves the next fire time to
    /// `tick.next_fire`, records the tick unique on (schedule, fire time),
    /// inserts the tick's job and records it as the schedule's last run, so
    /// any number of schedulers racing on one store make one job per tick.
    /// With `skip_while_running` and the last run's job unfinished, the tick
    /// is recorded as skipped instead; with no job, only the next fire time moves.
    async fn fire_schedule_tick(&self, tick: ScheduleTick, now: Timestamp) -> Result<TickResult, StoreError> {
        self.fire_schedule_ticks(vec![tick], now)
            .await?
            .pop()
            .ok_or_else(|| {
                StoreError::Backend(crate::error::BackendError::permanent(
                    "firing one tick returned no result",
                ))
            })
    }

    /// Fires many ticks in one transaction: each has exactly the meaning of
    /// [`Schedules::fire_schedule_tick`] as if they were fired one after the
    /// other in input order (so a later tick of the same schedule sees what
    /// an earlier one wrote); all are written or, on an error, none.
    /// Results are in input order. A scheduler fires every due tick with a
    /// few calls instead of one transaction per tick.
    async fn fire_schedule_ticks(
        &self,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError>;
}

/// A whole store: every role. Implemented for any type that implements
/// them all, so a backend implements the five role traits and nothing else.
/// The engine holds an `Arc<dyn Store>`; a face that needs one role only
/// can take that role's trait.
pub trait Store: JobQueue + Housekeeping + Operator + Leadership + Schedules {}

impl<T: JobQueue + Housekeeping + Operator + Leadership + Schedules> Store for T {}

/// A schedule as a scheduler registers it with the store (see
/// [`Schedules::sync_schedules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRegistration {
    /// The schedule's unique name.
    pub name: String,
    /// When it fires, as written, with its zone (`cron 0 3 * * * in Europe/Paris`).
    /// A change of `spec` (or of `enabled`) resets the next fire time.
    pub spec: String,
    /// A hash of the whole definition. Ticks carry it, so a scheduler still
    /// running an older definition cannot fire once the set was re-synced.
    pub fingerprint: String,
    /// Disabled schedules are listed but never fire.
    pub enabled: bool,
    /// The first fire time after registration (`None`: `@reboot`, never, or disabled).
    pub next_fire: Option<Timestamp>,
}

/// One tick of a schedule, fired with [`Schedules::fire_schedule_tick`] or
/// [`Schedules::fire_schedule_ticks`].
#[derive(Debug, Clone)]
pub struct ScheduleTick {
    /// The schedule.
    pub schedule: String,
    /// The definition's fingerprint, as registered.
    pub fingerprint: String,
    /// The next fire time the scheduler read from the store: the tick is
    /// fired only if the store's still equals it (compare-and-set), so ticks
    /// are handled in order and once.
    pub expected_next: Option<Timestamp>,
    /// The tick's fire time (before jitter).
    pub fire_at: Timestamp,
    /// The job to enqueue. `None` drops the ticks up to `fire_at` (a
    /// missed-run policy chose not to run them): only the next fire time moves.
    pub job: Option<ValidJob>,
    /// Skip the tick (recording the skip) while the schedule's last job is unfinished.
    pub skip_while_running: bool,
    /// The schedule's next fire time once this tick is handled.
    pub next_fire: Option<Timestamp>,
}

/// What [`Schedules::fire_schedule_tick`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickResult {
    /// The tick's job was inserted (or, when its unique key was taken, the
    /// holder is named with `duplicate: true`) and recorded as the last run.
    Enqueued(Inserted),
    /// The previous run (`running`) is unfinished and the schedule skips
    /// overlapping runs: the tick was recorded as skipped, no job was written.
    SkippedOverlap {
        /// The unfinished job of the previous run.
        running: JobId,
    },
    /// The ticks up to `fire_at` were dropped: only the next fire time moved.
    Dropped,
    /// Another scheduler handled this tick first (the store's next fire time
    /// is no longer `expected_next`, or the tick is recorded). Nothing was written.
    AlreadyFired {
        /// The store's next fire time now.
        next_fire: Option<Timestamp>,
    },
    /// The schedule was changed or removed by a later sync: this scheduler's
    /// definition is stale. Nothing was written.
    Superseded,
}

/// How the latest tick of a schedule turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "state")]
pub enum ScheduleOutcome {
    /// It never fired.
    Never,
    /// Its job is in this state now.
    Job(JobState),
    /// Its job was pruned (it had finished).
    Pruned,
    /// It was skipped because the previous run was unfinished.
    SkippedOverlap,
}

impl std::fmt::Display for ScheduleOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleOutcome::Never => f.write_str("-"),
            ScheduleOutcome::Job(s) => write!(f, "{s}"),
            ScheduleOutcome::Pruned => f.write_str("finished (pruned)"),
            ScheduleOutcome::SkippedOverlap => f.write_str("skipped (previous run unfinished)"),
        }
    }
}

/// A schedule's stored state, as [`Operator::list_schedules`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleState {
    /// Its name.
    pub name: String,
    /// When it fires, as registered.
    pub spec: String,
    /// The fingerprint of the registered definition.
    pub fingerprint: String,
    /// Whether it may fire.
    pub enabled: bool,
    /// When a sync left it out; removed schedules never fire.
    pub removed_at: Option<Timestamp>,
    /// The earliest tick not handled yet.
    pub next_fire: Option<Timestamp>,
    /// The fire time of the latest tick that ran or was skipped.
    pub last_fire: Option<Timestamp>,
    /// The job of the latest run.
    pub last_job: Option<JobId>,
    /// How the latest tick turned out.
    pub last_outcome: ScheduleOutcome,
}
