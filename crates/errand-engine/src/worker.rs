//! The worker service.
//!
//! Per queue, a fetcher claims as many jobs as it has free slots (up to the
//! queue's batch size) in one store call, and spawns each as a task. Tasks
//! send their resolved outcome to one completer, which writes everything that
//! has piled up in one `complete_batch` call: under load, claims and
//! completions are both batched without any timer; a batch the store
//! refuses for good is written again entry by entry, and only the entries
//! it still refuses are dropped (their jobs are rescued when their leases
//! lapse). A heartbeat extends the
//! leases of every job in flight and learns of operator cancels. Shutdown
//! stops fetching, waits a grace period, then hands unfinished jobs back
//! without spending their attempt.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use errand_core::lifecycle::{self, Attempt};
use errand_core::store::{ClaimRequest, CompletionResult};
use errand_core::validate::{self, ValidationError};
use errand_core::{
    Completion, ErrorCode, Finish, Job, JobId, Outcome, RetryPolicies, RetryPolicy, Timestamp,
};

use crate::executor::context::ContextParts;
use crate::executor::{Executor, Handler, JobArgs, JobContext, Typed};
use crate::runtime::Errand;

/// One queue a worker serves.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The queue's name.
    pub name: String,
    /// The most jobs of this queue running at once in this worker.
    pub concurrency: usize,
    /// The most jobs claimed in one store call.
    pub fetch_batch: usize,
    /// How many claims may be under way at once, sharing the queue's slots:
    /// with 2, the next claim runs on the store while the jobs of the last
    /// one are read and started, so neither waits for the other. `None`: the
    /// store's choice ([`errand_core::Store::claims_in_flight`]), 1 when `concurrency` is 1.
    pub fetchers: Option<usize>,
    /// The retry policy for this queue's jobs when neither the job nor its kind sets one.
    pub retry: Option<RetryPolicy>,
    /// Whether this queue's completed jobs are kept (until retention prunes
    /// them). `false` deletes a job in the same write that records its
    /// success, as Sidekiq does or BullMQ with `removeOnComplete`: the job
    /// still counts toward the queue's completed total, but its row and its
    /// result are gone at once, which is also the cheapest completion a store
    /// can write. Failed, discarded, cancelled and expired jobs are kept either way.
    pub keep_completed: bool,
}

/// The most slots one queue may have in one worker.
pub const MAX_CONCURRENCY: usize = 100_000;
/// The most jobs one claim may take.
pub const MAX_FETCH_BATCH: usize = 10_000;
/// The most claims a queue may keep under way at once.
pub const MAX_FETCHERS: usize = 64;
/// The shortest lease a worker may take.
pub const MIN_LEASE: Duration = Duration::from_secs(1);
/// The shortest heartbeat interval.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// The shortest idle poll interval.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

fn setting(field: &'static str, code: ErrorCode, message: String) -> ValidationError {
    ValidationError {
        field,
        code,
        message,
        index: None,
    }
}

/// Checks that `v` lies in `min..=max`, naming `field`.
fn in_range(field: &'static str, v: usize, min: usize, max: usize) -> Result<(), ValidationError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(setting(
            field,
            ErrorCode::SettingOutOfRange,
            format!("must be between {min} and {max} (got {v})"),
        ))
    }
}

impl QueueConfig {
    /// Checks the queue's settings; the error names the field (`queue`,
    /// `concurrency`, `fetch_batch`, `fetchers`) and the rule.
    pub fn check(&self) -> Result<(), ValidationError> {
        validate::queue_name("queue", &self.name)?;
        in_range("concurrency", self.concurrency, 1, MAX_CONCURRENCY)?;
        in_range("fetch_batch", self.fetch_batch, 1, MAX_FETCH_BATCH)?;
        if let Some(f) = self.fetchers {
            in_range("fetchers", f, 1, MAX_FETCHERS)?;
        }
        if let Some(r) = &self.retry {
            validate::retry_policy(r)?;
        }
        Ok(())
    }

    /// A queue with `concurrency` slots, claiming up to 500 at a time.
    pub fn new(name: impl Into<String>, concurrency: usize) -> Self {
        QueueConfig {
            name: name.into(),
            concurrency,
            fetch_batch: concurrency.clamp(1, 500),
            fetchers: None,
            retry: None,
            keep_completed: true,
        }
    }
}

/// Worker-wide settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's id (lease owner); generated when `None`.
    pub id: Option<String>,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often leases are extended (well under `lease`).
    pub heartbeat: Duration,
    /// How long an idle fetcher waits before looking again when nothing wakes it.
    pub poll_interval: Duration,
    /// The most completions written in one store call.
    pub completion_batch: usize,
    /// How long shutdown waits for running jobs before handing them back.
    pub shutdown_grace: Duration,
    /// The retry policy when neither job, kind nor queue sets one.
    pub default_retry: RetryPolicy,
    /// Log every finished job at `info` (`job finished`, with its outcome
    /// and `duration_ms`; default true). Failed attempts are logged as
    /// warnings (`job failed`) either way.
    pub log_finished: bool,
}

impl WorkerConfig {
    /// Checks the settings and how they relate; the error names the field
    /// (`lease`, `heartbeat`, `poll_interval`, `completion_batch`) and the rule.
    pub fn check(&self) -> Result<(), ValidationError> {
        let fmt = errand_core::lifecycle::fmt_duration;
        if self.lease < MIN_LEASE {
            return Err(setting(
                "lease",
                ErrorCode::SettingOutOfRange,
                format!("must be at least {} (got {})", fmt(MIN_LEASE), fmt(self.lease)),
            ));
        }
        if self.heartbeat < MIN_HEARTBEAT {
            return Err(setting(
                "heartbeat",
                ErrorCode::SettingOutOfRange,
                format!(
                    "must be at least {} (got {})",
                    fmt(MIN_HEARTBEAT),
                    fmt(self.heartbeat)
                ),
            ));
        }
        // Two heartbeats must fit in a lease, so that one lost or late
        // heartbeat does not cost a live worker its jobs.
        if self.heartbeat > self.lease / 2 {
            return Err(setting(
                "heartbeat",
                ErrorCode::HeartbeatTooSlow,
                format!(
                    "must be at most half the lease ({}), so one late heartbeat does not lose the jobs (got {})",
                    fmt(self.lease / 2),
                    fmt(self.heartbeat)
                ),
            ));
        }
        if self.poll_interval < MIN_POLL_INTERVAL {
            return Err(setting(
                "poll_interval",
                ErrorCode::SettingOutOfRange,
                format!(
                    "must be at least {} (got {})",
                    fmt(MIN_POLL_INTERVAL),
                    fmt(self.poll_interval)
                ),
            ));
        }
        in_range("completion_batch", self.completion_batch, 1, MAX_FETCH_BATCH)?;
        validate::retry_policy(&self.default_retry)
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            id: None,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            completion_batch: 2000,
            shutdown_grace: Duration::from_secs(30),
            default_retry: RetryPolicy::default(),
            log_finished: true,
        }
    }
}

/// Configures a [`Worker`]; from [`Errand::worker`].
pub struct WorkerBuilder {
    rt: Errand,
    config: WorkerConfig,
    queues: Vec<QueueConfig>,
    executors: HashMap<String, Arc<dyn Executor>>,
    kind_retry: HashMap<String, RetryPolicy>,
}

impl WorkerBuilder {
    pub(crate) fn new(rt: Errand) -> Self {
        WorkerBuilder {
            rt,
            config: WorkerConfig::default(),
            queues: Vec::new(),
            executors: HashMap::new(),
            kind_retry: HashMap::new(),
        }
    }

    /// The retry policy for jobs of `kind` that set none, in place of the
    /// kind's executor's own ([`Executor::retry_policy`]): an operator's
    /// setting (`[kind.NAME.retry]` in the config file).
    pub fn kind_retry(mut self, kind: impl Into<String>, policy: RetryPolicy) -> Self {
        self.kind_retry.insert(kind.into(), policy);
        self
    }

    /// Serves `name` with `concurrency` slots.
    pub fn queue(self, name: impl Into<String>, concurrency: usize) -> Self {
        self.queue_config(QueueConfig::new(name, concurrency))
    }

    /// Serves a queue configured in full.
    pub fn queue_config(mut self, q: QueueConfig) -> Self {
        self.queues.retain(|x| x.name != q.name);
        self.queues.push(q);
        self
    }

    /// Registers a typed handler for `A::KIND`.
    pub fn register<A: JobArgs, H: Handler<A>>(self, handler: H) -> Self {
        self.executor(A::KIND, Typed::<A, H>::new(handler))
    }

    /// Registers an executor for `kind`.
    pub fn executor(mut self, kind: impl Into<String>, executor: impl Executor) -> Self {
        let kind = kind.into();
        let executor: Arc<dyn Executor> = Arc::new(executor);
        self.rt.check_args_with(kind.clone(), executor.clone());
        self.executors.insert(kind, executor);
        self
    }

    /// Replaces the worker-wide settings.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the configuration ([`WorkerConfig::check`], [`QueueConfig::check`]).
    pub fn build(self) -> Result<Worker, ValidationError> {
        if self.queues.is_empty() {
            return Err(ValidationError {
                field: "queues",
                code: ErrorCode::NoQueues,
                message: "a worker needs at least one queue".into(),
                index: None,
            });
        }
        for (i, q) in self.queues.iter().enumerate() {
            q.check().map_err(|e| e.at(i))?;
        }
        self.config.check()?;
        for policy in self.kind_retry.values() {
            validate::retry_policy(policy)?;
        }
        let id = self.config.id.clone().unwrap_or_else(default_worker_id);
        Ok(Worker {
            rt: self.rt,
            id: id.into(),
            config: self.config,
            queues: self.queues,
            executors: self.executors,
            kind_retry: self.kind_retry,
        })
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}:{:04x}", std::process::id(), rand::random::<u16>())
}

/// A configured worker; [`Worker::start`] runs it.
pub struct Worker {
    rt: Errand,
    id: Arc<str>,
    config: WorkerConfig,
    queues: Vec<QueueConfig>,
    executors: HashMap<String, Arc<dyn Executor>>,
    kind_retry: HashMap<String, RetryPolicy>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("queues", &self.queues)
            .finish()
    }
}

/// Counters of what a worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Jobs discarded.
    pub discarded: u64,
    /// Jobs snoozed.
    pub snoozed: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Jobs found expired when their turn came.
    pub expired: u64,
    /// Jobs handed back at shutdown.
    pub handed_back: u64,
    /// Completions refused because the lease was lost.
    pub lease_lost: u64,
    /// Outcomes the store refused for good (a permanent error writing that
    /// job's completion, such as a result the database cannot store): they
    /// are not recorded, and their jobs are rescued when their leases lapse.
    pub completions_dropped: u64,
}

#[derive(Default)]
struct Counters([AtomicU64; 10]);

impl Counters {
    fn bump(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n, Ordering::Relaxed);
    }
    fn snapshot(&self) -> WorkerStats {
        let g = |i: usize| self.0[i].load(Ordering::Relaxed);
        WorkerStats {
            claimed: g(0),
            completed: g(1),
            retried: g(2),
            discarded: g(3),
            snoozed: g(4),
            cancelled: g(5),
            expired: g(6),
            handed_back: g(7),
            lease_lost: g(8),
            completions_dropped: g(DROPPED),
        }
    }
}

/// The counter of [`WorkerStats::completions_dropped`].
const DROPPED: usize = 9;

fn counter_index(f: &Finish) -> usize {
    match f {
        Finish::Complete { .. } | Finish::CompleteAndDelete => 1,
        Finish::Retry { .. } => 2,
        Finish::Discard { .. } => 3,
        Finish::Snooze { .. } | Finish::Defer { .. } => 4,
        Finish::Cancel { .. } => 5,
        Finish::Expire => 6,
        Finish::HandBack => 7,
    }
}

/// Why a running job was asked to stop.
const STOP_NONE: u8 = 0;
const STOP_OPERATOR: u8 = 1;
const STOP_LEASE_LOST: u8 = 2;
const STOP_SHUTDOWN: u8 = 3;

struct Inflight {
    token: i64,
    cancel: CancellationToken,
    reason: Arc<AtomicU8>,
}

struct Done {
    id: JobId,
    token: i64,
    finish: Finish,
    /// The attempt's context: what a dropped completion's log line names.
    ctx: JobContext,
}

struct Shared {
    rt: Errand,
    id: Arc<str>,
    config: WorkerConfig,
    executors: HashMap<String, Arc<dyn Executor>>,
    /// The retry policies of failed attempts ([`Worker::retry_policies`]).
    policies: RetryPolicies,
    /// The served queues, and whether each keeps its completed jobs.
    keep_completed: HashMap<String, bool>,
    inflight: Mutex<HashMap<JobId, Inflight>>,
    /// Bounded: when completions are written more slowly than jobs finish,
    /// finished jobs wait here holding their slots, so claiming slows down
    /// instead of the backlog (and every heartbeat's list of held jobs) growing.
    done_tx: mpsc::Sender<Done>,
    counters: Counters,
    /// Fired when the grace period is over: running jobs are handed back.
    hard_stop: CancellationToken,
    /// One bit per kind of store call ([`Call`]) whose latest try failed;
    /// read on every call, so the hot path takes no lock while the store
    /// is reachable.
    failing: AtomicU8,
    readiness: Mutex<Readiness>,
    /// (kind, queue) pairs without an executor here, warned about once.
    unknown_kinds: Mutex<std::collections::HashSet<(String, String)>>,
    /// Notified when a claim finds nothing: the worker is idle.
    idle: tokio::sync::Notify,
}

impl Shared {
    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Inflight>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the running jobs `ids` to stop, for `why` (unless they were
    /// already asked for another reason).
    fn ask_to_stop(&self, ids: &[JobId], why: u8) {
        let inflight = self.inflight();
        for id in ids {
            if let Some(f) = inflight.get(id) {
                let _ = f
                    .reason
                    .compare_exchange(STOP_NONE, why, Ordering::Relaxed, Ordering::Relaxed);
                f.cancel.cancel();
            }
        }
    }

    fn readiness(&self) -> std::sync::MutexGuard<'_, Readiness> {
        self.readiness.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A store call of this kind succeeded: ready again once no kind of
    /// call fails (an empty claim that writes nothing can succeed on a full
    /// disk while completions still fail).
    fn store_ok(&self, call: Call) {
        let bit = 1 << call as u8;
        if self.failing.load(Ordering::Relaxed) & bit == 0 {
            return;
        }
        let mut r = self.readiness();
        if self.failing.fetch_and(!bit, Ordering::Relaxed) & !bit != 0 {
            return;
        }
        if let Readiness::NotReady { since, .. } = &*r {
            let down = self.rt.clock.now().duration_since(*since);
            let down = Duration::try_from(down).unwrap_or_default();
            tracing::info!(worker = %self.id, down_for = %lifecycle::fmt_duration(down),
                "the store answers again: ready");
            *r = Readiness::Ready;
        }
    }

    /// A store call of this kind failed: not ready until every kind of
    /// call that failed has succeeded again.
    fn store_failed(&self, call: Call, error: &errand_core::StoreError) {
        let mut r = self.readiness();
        self.failing.fetch_or(1 << call as u8, Ordering::Relaxed);
        match &mut *r {
            Readiness::Ready => {
                tracing::warn!(worker = %self.id, error = %error,
                    "the store does not answer: not ready; running jobs go on, store calls are retried with backoff");
                *r = Readiness::NotReady {
                    since: self.rt.clock.now(),
                    error: error.to_string(),
                };
            }
            Readiness::NotReady { error: last, .. } => *last = error.to_string(),
        }
    }
}

/// The kinds of store call readiness follows.
#[derive(Debug, Clone, Copy)]
enum Call {
    Claim = 0,
    Complete = 1,
    Heartbeat = 2,
}

/// Whether a worker can reach its store, as its latest store calls found.
/// While it cannot, running jobs go on; claims, completions and heartbeats
/// are retried with backoff, and finished jobs wait to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The latest store call succeeded.
    Ready,
    /// Store calls have failed since `since`.
    NotReady {
        /// When the first of the current run of failures happened.
        since: Timestamp,
        /// The latest failure.
        error: String,
    },
}

/// A running worker. Call [`RunningWorker::shutdown`] to stop it gracefully.
pub struct RunningWorker {
    shared: Arc<Shared>,
    fetch_stop: CancellationToken,
    background_stop: CancellationToken,
    tracker: TaskTracker,
    fetchers: Vec<JoinHandle<()>>,
    completer: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    cancels: JoinHandle<()>,
}

impl std::fmt::Debug for RunningWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningWorker")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Worker {
    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The retry policies this worker applies to failed attempts: its
    /// default, its queues' and its handlers' (by kind, an operator's
    /// [`WorkerBuilder::kind_retry`] before the executor's own). When it
    /// starts it registers them with its [`Errand`], whose maintenance
    /// rescues the jobs of dead workers with them.
    pub fn retry_policies(&self) -> RetryPolicies {
        RetryPolicies {
            default: self.config.default_retry.clone(),
            kinds: self
                .executors
                .iter()
                .filter_map(|(kind, e)| Some((kind.clone(), e.retry_policy()?.clone())))
                .chain(self.kind_retry.clone())
                .collect(),
            queues: self
                .queues
                .iter()
                .filter_map(|q| Some((q.name.clone(), q.retry.clone()?)))
                .collect(),
        }
    }

    /// Starts the fetchers, the completer and the heartbeat on the current tokio runtime.
    pub fn start(self) -> RunningWorker {
        let slots: usize = self.queues.iter().map(|q| q.concurrency).sum();
        let (done_tx, done_rx) = mpsc::channel(slots.max(self.config.completion_batch).max(1));
        let policies = self.retry_policies();
        self.rt.register_retry_policies(&policies);
        let keep_completed = self
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.keep_completed))
            .collect();
        let shared = Arc::new(Shared {
            rt: self.rt,
            id: self.id,
            config: self.config,
            executors: self.executors,
            policies,
            keep_completed,
            inflight: Mutex::new(HashMap::new()),
            done_tx,
            counters: Counters::default(),
            hard_stop: CancellationToken::new(),
            failing: AtomicU8::new(0),
            readiness: Mutex::new(Readiness::Ready),
            unknown_kinds: Mutex::default(),
            idle: tokio::sync::Notify::new(),
        });
        let fetch_stop = CancellationToken::new();
        let background_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let store_fetchers = shared.rt.store.claims_in_flight().max(1);
        let fetchers = self
            .queues
            .into_iter()
            .flat_map(|q| {
                // The queue's fetchers share its slots.
                let slots = Arc::new(Semaphore::new(q.concurrency));
                let fetchers = match q.fetchers {
                    Some(n) => n,
                    None if q.concurrency == 1 => 1,
                    None => store_fetchers,
                };
                (0..fetchers).map(move |_| (q.clone(), slots.clone()))
            })
            .map(|(q, slots)| {
                tokio::spawn(fetch_loop(
                    shared.clone(),
                    q,
                    slots,
                    tracker.clone(),
                    fetch_stop.clone(),
                ))
            })
            .collect();
        let completer = tokio::spawn(completer(shared.clone(), done_rx, background_stop.clone()));
        let heartbeat = tokio::spawn(heartbeat(shared.clone(), background_stop.clone()));
        let cancels = tokio::spawn(watch_cancels(shared.clone(), background_stop.clone()));
        tokio::spawn(watch_unserved(shared.clone(), background_stop.clone()));
        tracing::info!(worker = %shared.id, "worker started");
        RunningWorker {
            shared,
            fetch_stop,
            background_stop,
            tracker,
            fetchers,
            completer,
            heartbeat,
            cancels,
        }
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether every running job finished within the grace period.
    pub graceful: bool,
    /// Jobs handed back unfinished.
    pub handed_back: u64,
}

impl RunningWorker {
    /// Whether this worker can reach its store (see [`Readiness`]): what a
    /// readiness probe should report.
    pub fn readiness(&self) -> Readiness {
        self.shared.readiness().clone()
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Counters so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.counters.snapshot()
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.shared.inflight().len()
    }

    /// Stops fetching, waits up to the grace period for running jobs, hands
    /// the rest back (their attempt is not spent), writes every completion.
    pub async fn shutdown(self) -> ShutdownReport {
        self.shutdown_or(std::future::pending()).await
    }

    /// [`RunningWorker::shutdown`], but the grace period also ends when
    /// `hurry` resolves (a second Ctrl-C): running jobs are then handed
    /// back at once.
    pub async fn shutdown_or(self, hurry: impl std::future::Future<Output = ()>) -> ShutdownReport {
        self.fetch_stop.cancel();
        for f in self.fetchers {
            let _ = f.await;
        }
        self.tracker.close();
        let before = self.shared.counters.snapshot().handed_back;
        let graceful = tokio::select! {
            r = tokio::time::timeout(self.shared.config.shutdown_grace, self.tracker.wait()) => r.is_ok(),
            _ = hurry => {
                tracing::info!(worker = %self.shared.id, running = self.shared.inflight().len(),
                    "asked again to stop: handing running jobs back now");
                false
            }
        };
        if !graceful {
            for f in self.shared.inflight().values() {
                f.reason.store(STOP_SHUTDOWN, Ordering::Relaxed);
                f.cancel.cancel();
            }
            self.shared.hard_stop.cancel();
            self.tracker.wait().await;
        }
        self.background_stop.cancel();
        let _ = self.completer.await;
        let _ = self.heartbeat.await;
        let _ = self.cancels.await;
        let handed_back = self.shared.counters.snapshot().handed_back - before;
        tracing::info!(worker = %self.shared.id, graceful, handed_back, "worker stopped");
        ShutdownReport {
            graceful,
            handed_back,
        }
    }
}

async fn fetch_loop(
    shared: Arc<Shared>,
    q: QueueConfig,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let notify = shared.rt.hub.queue(&q.name);
    let mut backoff = Duration::from_millis(50);
    loop {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.cancelled() => return,
        };
        let mut permits = vec![first];
        while permits.len() < q.fetch_batch {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        if stop.is_cancelled() {
            return;
        }
        let req = ClaimRequest {
            queue: q.name.clone(),
            limit: permits.len(),
            owner: shared.id.to_string(),
            lease_for: shared.config.lease,
            now: shared.rt.clock.now(),
        };
        let jobs = match shared.rt.store.claim_available(req).await {
            Ok(jobs) => {
                shared.store_ok(Call::Claim);
                backoff = Duration::from_millis(50);
                jobs
            }
            Err(e) => {
                shared.store_failed(Call::Claim, &e);
                // The outage is logged once, as not-ready; each retry at debug.
                tracing::debug!(worker = %shared.id, queue = %q.name, error = %e, "claim failed; retrying");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        permits.truncate(jobs.len());
        if jobs.is_empty() {
            shared.idle.notify_one();
            tokio::select! {
                _ = notify.notified() => {},
                _ = shared.rt.store.wait_for_change(shared.config.poll_interval) => {},
                _ = stop.cancelled() => return,
            }
            continue;
        }
        shared.counters.bump(0, jobs.len() as u64);
        let mut started = Vec::with_capacity(jobs.len());
        {
            let mut inflight = shared.inflight();
            for job in jobs {
                let cancel = CancellationToken::new();
                let reason = Arc::new(AtomicU8::new(STOP_NONE));
                let token = job.lease.as_ref().map_or(0, |l| l.token);
                inflight.insert(
                    job.id,
                    Inflight {
                        token,
                        cancel: cancel.clone(),
                        reason: reason.clone(),
                    },
                );
                started.push((job, cancel, reason));
            }
        }
        for ((job, cancel, reason), permit) in started.into_iter().zip(permits) {
            let shared = shared.clone();
            tracker.spawn(async move {
                run_job(&shared, job, cancel, reason).await;
                drop(permit);
            });
        }
    }
}

async fn run_job(shared: &Arc<Shared>, mut job: Job, cancel: CancellationToken, reason: Arc<AtomicU8>) {
    let started = std::time::Instant::now();
    let token = job.lease.as_ref().map_or(0, |l| l.token);
    let now = shared.rt.clock.now();
    let executor = shared.executors.get(&job.kind);
    // The context takes the job's strings instead of copying them.
    let ctx = JobContext::new(ContextParts {
        id: job.id,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        tenant: job.tenant.take(),
        queue: std::mem::take(&mut job.queue),
        kind: std::mem::take(&mut job.kind),
        created_at: job.created_at,
        lease_token: token,
        worker: shared.id.clone(),
        store: shared.rt.store.clone(),
        cancel,
    });
    let finish = if job.expires_at.is_some_and(|e| e <= now) {
        Finish::Expire
    } else if let Some(run) = executor {
        let outcome = execute(shared, &ctx, &job, run.as_ref(), &reason).await;
        match outcome {
            None => Finish::HandBack,
            Some(outcome) => {
                let policy = shared.policies.pick(job.retry.as_ref(), ctx.queue(), ctx.kind());
                let attempt = Attempt {
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                    worker: Some(&shared.id),
                };
                let finished_at = shared.rt.clock.now();
                let unit = if policy.jitter > 0.0 {
                    rand::random::<f64>()
                } else {
                    0.5
                };
                match lifecycle::resolve(attempt, outcome, policy, finished_at, unit) {
                    Finish::Complete { .. } if shared.keep_completed.get(ctx.queue()) == Some(&false) => {
                        Finish::CompleteAndDelete
                    }
                    finish => finish,
                }
            }
        }
    } else {
        unknown_kind(shared, &ctx, &job, now)
    };
    // One line per finished job: its id as a number, its outcome (the state
    // it goes to) and how long it took.
    let duration_ms = started.elapsed().as_millis() as u64;
    match &finish {
        Finish::Retry { error, .. } | Finish::Discard { error } => tracing::warn!(
            job_id = job.id.0, queue = %ctx.queue(), kind = %ctx.kind(), attempt = job.attempt,
            tenant = ctx.tenant().unwrap_or(""), outcome = %finish.target_state(), duration_ms,
            error = %error.message, "job failed"
        ),
        _ if shared.config.log_finished => tracing::info!(
            job_id = job.id.0, queue = %ctx.queue(), kind = %ctx.kind(), attempt = job.attempt,
            tenant = ctx.tenant().unwrap_or(""), outcome = %finish.target_state(), duration_ms,
            "job finished"
        ),
        _ => {}
    }
    let _ = shared
        .done_tx
        .send(Done {
            id: job.id,
            token,
            finish,
            ctx,
        })
        .await;
}

/// The longest a job of a kind no executor here runs waits before a worker looks again.
const UNKNOWN_KIND_MAX_WAIT: Duration = Duration::from_secs(300);

/// A job of a kind this worker has no executor for: it is put back to wait
/// without spending an attempt (a newer worker, mid-deploy, may run it),
/// longer the older it is (5 s up to 5 min). The first time, a note in its
/// history says why (`jobs show` lists it); the worker warns once per kind
/// and queue.
fn unknown_kind(shared: &Shared, ctx: &JobContext, job: &Job, now: Timestamp) -> Finish {
    let key = (ctx.kind().to_owned(), ctx.queue().to_owned());
    let first = shared
        .unknown_kinds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key);
    if first {
        tracing::warn!(worker = %shared.id, kind = %ctx.kind(), queue = %ctx.queue(), job_id = ctx.id().0,
            "no executor for this kind here: its jobs wait (attempts not spent) until a worker that has one takes them");
    }
    let age = Duration::try_from(now.duration_since(ctx.created_at())).unwrap_or_default();
    let at = errand_core::clock::add(now, age.clamp(Duration::from_secs(5), UNKNOWN_KIND_MAX_WAIT));
    let message = format!(
        "not run: no worker seen so far has an executor for kind {:?}; the job waits, its attempts not spent",
        ctx.kind()
    );
    if job.errors.iter().any(|e| e.message == message) {
        return Finish::Snooze { at };
    }
    Finish::Defer {
        at,
        note: errand_core::ErrorRecord {
            attempt: job.attempt - 1,
            at: now,
            message,
            worker: Some(shared.id.to_string()),
        },
    }
}

/// Runs the attempt; `None` means it was cut off by shutdown and goes back.
async fn execute(
    shared: &Arc<Shared>,
    ctx: &JobContext,
    job: &Job,
    executor: &dyn Executor,
    reason: &AtomicU8,
) -> Option<Outcome> {
    let timeout = job.timeout.or_else(|| executor.timeout());
    let run = AssertUnwindSafe(executor.execute(ctx, &job.args)).catch_unwind();
    let bounded = async {
        match timeout {
            Some(t) => tokio::time::timeout(t, run).await.ok(),
            None => Some(run.await),
        }
    };
    let outcome = tokio::select! {
        biased;
        r = bounded => match r {
            Some(Ok(outcome)) => outcome,
            Some(Err(panic)) => Outcome::Retryable { error: format!("the handler panicked: {}", panic_message(&panic)) },
            None => Outcome::TimedOut { after: timeout.unwrap_or_default() },
        },
        _ = shared.hard_stop.cancelled() => return None,
    };
    match reason.load(Ordering::Relaxed) {
        STOP_OPERATOR if !matches!(outcome, Outcome::Completed { .. }) => Some(Outcome::Cancelled {
            reason: "cancelled by an operator".into(),
        }),
        STOP_SHUTDOWN if !matches!(outcome, Outcome::Completed { .. }) => None,
        _ => Some(outcome),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

async fn completer(shared: Arc<Shared>, mut rx: mpsc::Receiver<Done>, stop: CancellationToken) {
    let max = shared.config.completion_batch.max(1);
    let mut buf: Vec<Done> = Vec::with_capacity(max);
    loop {
        let first = tokio::select! {
            biased;
            d = rx.recv() => d,
            _ = stop.cancelled() => None,
        };
        match first {
            Some(d) => buf.push(d),
            None => {
                // Shutting down: every job task has ended, so what is queued is all there is.
                while let Ok(d) = rx.try_recv() {
                    buf.push(d);
                }
                while !buf.is_empty() {
                    let n = buf.len().min(max);
                    let chunk: Vec<Done> = buf.drain(..n).collect();
                    if !flush(&shared, chunk, true, &stop).await {
                        // Out of time: the rest are left for rescue too.
                        break;
                    }
                }
                return;
            }
        }
        while buf.len() < max {
            match rx.try_recv() {
                Ok(d) => buf.push(d),
                Err(_) => break,
            }
        }
        if !flush(&shared, std::mem::take(&mut buf), false, &stop).await {
            // Shutting down and out of time: what is still queued is left
            // for rescue as well.
            return;
        }
    }
}

/// Writes a batch of completions. A transient failure (the store is
/// unreachable or full) is retried with backoff, the jobs staying in flight
/// so their leases keep being extended; the outage itself is logged once,
/// by [`Shared::store_failed`], and retries at debug level.
///
/// A permanent failure ([`StoreError::is_permanent`](errand_core::StoreError::is_permanent):
/// a constraint violation, a value the database refuses) may be one
/// entry's fault, so the batch is written again one entry at a time, and
/// an entry that still fails permanently is dropped ([`drop_completion`]):
/// one bad outcome never stalls the others.
///
/// Once the worker is shutting down (`closing`, or `stop` fired during the
/// retries) it keeps trying for at most the shutdown grace, or only once
/// more if the grace is already over, then gives up and returns false: the
/// jobs stay `running` and are rescued when their leases lapse, so a store
/// that stays down cannot hold the process past its grace.
async fn flush(shared: &Shared, batch: Vec<Done>, closing: bool, stop: &CancellationToken) -> bool {
    let mut give_up_at: Option<tokio::time::Instant> = None;
    let refused = match write(shared, &batch, closing, stop, &mut give_up_at).await {
        Written::Done(results) => {
            record(shared, &batch, results);
            return true;
        }
        Written::GaveUp => return false,
        Written::Refused(e) => e,
    };
    if let [one] = batch.as_slice() {
        drop_completion(shared, one, &refused);
        return true;
    }
    tracing::warn!(worker = %shared.id, jobs = batch.len(), code = %refused.code(), error = %refused,
        "the store refused a batch of completions for good; writing them one at a time");
    for d in &batch {
        let one = std::slice::from_ref(d);
        match write(shared, one, closing, stop, &mut give_up_at).await {
            Written::Done(results) => record(shared, one, results),
            Written::GaveUp => return false,
            Written::Refused(e) => drop_completion(shared, d, &e),
        }
    }
    true
}

/// How one `complete_batch` call ended, after the retries of transient failures.
enum Written {
    /// Written: each entry's result.
    Done(Vec<CompletionResult>),
    /// Refused with a permanent error: nothing of it was written.
    Refused(errand_core::StoreError),
    /// Shutting down and out of time: nothing of it was written.
    GaveUp,
}

/// Writes `batch` in one call, retrying transient failures (see [`flush`]).
async fn write(
    shared: &Shared,
    batch: &[Done],
    closing: bool,
    stop: &CancellationToken,
    give_up_at: &mut Option<tokio::time::Instant>,
) -> Written {
    let items: Vec<Completion> = batch
        .iter()
        .map(|d| Completion {
            id: d.id,
            lease_token: d.token,
            finish: d.finish.clone(),
        })
        .collect();
    let mut delay = Duration::from_millis(100);
    loop {
        match shared
            .rt
            .store
            .complete_batch(items.clone(), shared.rt.clock.now())
            .await
        {
            Ok(r) => {
                shared.store_ok(Call::Complete);
                return Written::Done(r);
            }
            // The store answered, and no retry will change its answer.
            Err(e) if e.is_permanent() => return Written::Refused(e),
            Err(e) => {
                shared.store_failed(Call::Complete, &e);
                let now = tokio::time::Instant::now();
                if closing || stop.is_cancelled() {
                    let deadline = *give_up_at.get_or_insert_with(|| {
                        if shared.hard_stop.is_cancelled() {
                            now
                        } else {
                            now + shared.config.shutdown_grace
                        }
                    });
                    if now >= deadline {
                        tracing::error!(worker = %shared.id, error = %e, jobs = items.len(),
                            "giving up writing completions at shutdown; the jobs will be rescued and run again");
                        return Written::GaveUp;
                    }
                }
                tracing::debug!(worker = %shared.id, error = %e, jobs = items.len(), retry_in = ?delay,
                    "cannot write completions; retrying");
                let wait = give_up_at.map_or(delay, |at| delay.min(at.saturating_duration_since(now)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = stop.cancelled(), if give_up_at.is_none() => {},
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Counts what the store wrote, and lets go of those jobs.
fn record(shared: &Shared, batch: &[Done], results: Vec<CompletionResult>) {
    let mut inflight = shared.inflight();
    for (d, r) in batch.iter().zip(results) {
        inflight.remove(&d.id);
        match r {
            CompletionResult::Done => shared.counters.bump(counter_index(&d.finish), 1),
            CompletionResult::LeaseLost => {
                shared.counters.bump(8, 1);
                tracing::warn!(worker = %shared.id, job_id = %d.id, lease = d.token,
                    "completion refused: the lease was lost (the job was rescued or cancelled)");
            }
        }
    }
}

/// Gives up recording a job's outcome that the store refused for good: the
/// job is let go of, so its lease is no longer extended, and the
/// maintenance leader rescues it once the lease lapses (its attempt
/// counts, as for a worker that died). Logged as an error naming the job
/// and counted in [`WorkerStats::completions_dropped`].
fn drop_completion(shared: &Shared, d: &Done, e: &errand_core::StoreError) {
    shared.inflight().remove(&d.id);
    shared.counters.bump(DROPPED, 1);
    tracing::error!(worker = %shared.id, job_id = d.id.0, queue = %d.ctx.queue(), kind = %d.ctx.kind(),
        attempt = d.ctx.attempt(), outcome = %d.finish.target_state(), code = %e.code(), error = %e,
        "the store refused this job's outcome for good: it is not recorded, and the job will be rescued when its lease lapses");
}

async fn heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // After a failed heartbeat, the next try comes sooner than the next
    // tick (with backoff), so leases are extended as soon as the store is back.
    let mut retry: Option<Duration> = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if retry.is_none() => {},
            _ = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => {},
            _ = stop.cancelled() => return,
        }
        let held: Vec<(JobId, i64)> = shared.inflight().iter().map(|(id, f)| (*id, f.token)).collect();
        if held.is_empty() {
            // No lease to keep: a failed heartbeat no longer matters.
            shared.store_ok(Call::Heartbeat);
            retry = None;
            continue;
        }
        let until = errand_core::clock::add(shared.rt.clock.now(), shared.config.lease);
        match shared.rt.store.extend_leases(&shared.id, &held, until).await {
            Ok(report) => {
                shared.store_ok(Call::Heartbeat);
                retry = None;
                shared.ask_to_stop(&report.lost, STOP_LEASE_LOST);
                shared.ask_to_stop(&report.cancel_requested, STOP_OPERATOR);
            }
            Err(e) => {
                shared.store_failed(Call::Heartbeat, &e);
                tracing::debug!(worker = %shared.id, error = %e, "heartbeat failed; retrying");
                let next = retry.map_or(Duration::from_millis(200), |d| d * 2);
                retry = Some(next.min(shared.config.heartbeat));
            }
        }
    }
}

/// The shortest pause between two looks for cancel requests.
const CANCEL_LOOK_EVERY: Duration = Duration::from_millis(250);

/// Stops running jobs an operator cancelled, promptly: it looks whenever
/// this process cancels a running job or the store may have changed
/// (another process's commit, a NOTIFY), at most every
/// [`CANCEL_LOOK_EVERY`], and at least every heartbeat (which also reports
/// cancel requests).
async fn watch_cancels(shared: Arc<Shared>, stop: CancellationToken) {
    let mut local = shared.rt.hub.cancels();
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = local.changed() => {},
            _ = shared.rt.store.wait_for_change(shared.config.heartbeat) => {},
            _ = stop.cancelled() => return,
        }
        // Many changes in a row (a busy store) make one look.
        let next = last + CANCEL_LOOK_EVERY;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {},
            _ = stop.cancelled() => return,
        }
        last = tokio::time::Instant::now();
        let held: Vec<JobId> = shared.inflight().keys().copied().collect();
        if held.is_empty() {
            continue;
        }
        match shared.rt.store.cancel_requests(&held).await {
            Ok(ids) => shared.ask_to_stop(&ids, STOP_OPERATOR),
            // The heartbeat reports outages; it also brings cancel requests.
            Err(e) => tracing::debug!(worker = %shared.id, error = %e, "cannot look for cancel requests"),
        }
    }
}

/// How often a worker looks for queues with waiting jobs that it does not serve.
const UNSERVED_LOOK_EVERY: Duration = Duration::from_secs(300);
/// The first look comes when the worker first finds nothing to claim, or
/// after this long.
const UNSERVED_FIRST_LOOK: Duration = Duration::from_secs(60);

/// Says, once per queue, when jobs wait in a queue this worker does not
/// serve ([`Store::queues_with_available_jobs`](errand_core::Store::queues_with_available_jobs),
/// cheap at any size): at info the first time it sees them (another worker
/// may serve that queue), as a warning if they still wait at the next look
/// (perhaps none does). It looks first when the worker is idle or after
/// [`UNSERVED_FIRST_LOOK`], then every [`UNSERVED_LOOK_EVERY`].
async fn watch_unserved(shared: Arc<Shared>, stop: CancellationToken) {
    // Queue -> whether the warning was given.
    let mut told: HashMap<String, bool> = HashMap::new();
    tokio::select! {
        _ = tokio::time::sleep(UNSERVED_FIRST_LOOK) => {},
        _ = shared.idle.notified() => {},
        _ = stop.cancelled() => return,
    }
    loop {
        if let Ok(queues) = shared.rt.store.queues_with_available_jobs().await {
            let waiting: Vec<String> = queues
                .into_iter()
                .filter(|q| !shared.keep_completed.contains_key(q))
                .collect();
            told.retain(|q, _| waiting.contains(q));
            for queue in waiting {
                match told.get(&queue) {
                    None => {
                        tracing::info!(worker = %shared.id, queue = %queue,
                            "jobs wait in a queue this worker does not serve; another worker must serve it");
                        told.insert(queue, false);
                    }
                    Some(false) => {
                        tracing::warn!(worker = %shared.id, queue = %queue,
                            waited_at_least = %lifecycle::fmt_duration(UNSERVED_LOOK_EVERY),
                            "jobs still wait in a queue this worker does not serve: is any worker serving it?");
                        told.insert(queue, true);
                    }
                    Some(true) => {}
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(UNSERVED_LOOK_EVERY) => {},
            _ = stop.cancelled() => return,
        }
    }
}
