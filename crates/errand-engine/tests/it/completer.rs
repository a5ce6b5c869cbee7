//! The completer against a store that refuses some completions: a
//! permanent refusal of one job's write costs that job alone (it is
//! dropped and rescued after its lease), a transient failure is retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use errand_core::store::{
    ClaimRequest, CompletionResult, Housekeeping, Inserted, JobFilter, JobPage, JobQueue, LapsedLease,
    Leadership, LeaseReport, Operator, PruneRequest, QueueStats, ScheduleRegistration, ScheduleState,
    ScheduleTick, Schedules, TickResult,
};
use errand_core::{
    BackendError, Clock as _, Completion, Job, JobId, JobState, ManualClock, Progress, Scope, Store,
    StoreError, SystemClock, Timestamp, ValidJob,
};
use errand_engine::{Errand, Handler, JobArgs, JobContext, JobError, MaintenanceConfig, Readiness};

use crate::harness::{Env, env, fast_config, wait_for};

/// A real store, except that `complete_batch` fails: permanently for any
/// batch holding the poisoned job (as PostgreSQL refuses a value it cannot
/// store), and transiently for the next `flaky` calls.
struct Refusing {
    inner: Arc<dyn Store>,
    poisoned: AtomicI64,
    flaky: AtomicUsize,
    refused: AtomicUsize,
}

impl Refusing {
    fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Refusing {
            inner,
            poisoned: AtomicI64::new(0),
            flaky: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl JobQueue for Refusing {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn insert_jobs(&self, jobs: Vec<ValidJob>, now: Timestamp) -> Result<Vec<Inserted>, StoreError> {
        self.inner.insert_jobs(jobs, now).await
    }

    async fn claim_available(&self, req: ClaimRequest) -> Result<Vec<Job>, StoreError> {
        self.inner.claim_available(req).await
    }

    async fn complete_batch(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        let poisoned = self.poisoned.load(Ordering::SeqCst);
        if items.iter().any(|c| c.id.0 == poisoned) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(
                BackendError::permanent("unsupported Unicode escape sequence (SQLSTATE 22P05)").into(),
            );
        }
        if self
            .flaky
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(BackendError::transient("database or disk is full").into());
        }
        self.inner.complete_batch(items, now).await
    }

    async fn extend_leases(
        &self,
        owner: &str,
        held: &[(JobId, i64)],
        until: Timestamp,
    ) -> Result<LeaseReport, StoreError> {
        self.inner.extend_leases(owner, held, until).await
    }

    async fn cancel_requests(&self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        self.inner.cancel_requests(ids).await
    }

    async fn report_progress(
        &self,
        id: JobId,
        lease_token: i64,
        progress: Progress,
    ) -> Result<(), StoreError> {
        self.inner.report_progress(id, lease_token, progress).await
    }

    async fn queues_with_available_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.inner.queues_with_available_jobs().await
    }

    async fn wait_for_change(&self, timeout: Duration) -> Result<(), StoreError> {
        self.inner.wait_for_change(timeout).await
    }

    fn claims_in_flight(&self) -> usize {
        self.inner.claims_in_flight()
    }

    async fn flush(&self) {
        self.inner.flush().await
    }
}

#[async_trait]
impl Housekeeping for Refusing {
    async fn lapsed_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<LapsedLease>, StoreError> {
        self.inner.lapsed_leases(now, limit).await
    }

    async fn rescue_lapsed(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        self.inner.rescue_lapsed(items, now).await
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.promote_due(now, limit).await
    }

    async fn expire_due(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.expire_due(now, limit).await
    }

    async fn prune_finished(&self, req: &PruneRequest) -> Result<u64, StoreError> {
        self.inner.prune_finished(req).await
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due_at().await
    }

    async fn upkeep(&self) -> Result<(), StoreError> {
        self.inner.upkeep().await
    }
}

#[async_trait]
impl Operator for Refusing {
    async fn get_job(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        self.inner.get_job(id, scope).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        self.inner.list_jobs(filter).await
    }

    async fn cancel_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        self.inner.cancel_job(id, scope, now).await
    }

    async fn retry_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        self.inner.retry_job(id, scope, now).await
    }

    async fn discard_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        self.inner.discard_job(id, scope, now).await
    }

    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        create: bool,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner
            .set_queue_paused(queue, paused, create, scope, now)
            .await
    }

    async fn clear_queue(&self, queue: &str, scope: &Scope) -> Result<u64, StoreError> {
        self.inner.clear_queue(queue, scope).await
    }

    async fn remove_queue(&self, queue: &str, scope: &Scope) -> Result<(), StoreError> {
        self.inner.remove_queue(queue, scope).await
    }

    async fn queue_stats(&self, scope: &Scope, now: Timestamp) -> Result<Vec<QueueStats>, StoreError> {
        self.inner.queue_stats(scope, now).await
    }

    async fn list_schedules(&self, scope: &Scope) -> Result<Vec<ScheduleState>, StoreError> {
        self.inner.list_schedules(scope).await
    }
}

#[async_trait]
impl Leadership for Refusing {
    async fn elect_leader(
        &self,
        role: &str,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.elect_leader(role, owner, ttl, now).await
    }

    async fn resign_leader(&self, role: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.resign_leader(role, owner).await
    }
}

#[async_trait]
impl Schedules for Refusing {
    async fn sync_schedules(
        &self,
        schedules: Vec<ScheduleRegistration>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.sync_schedules(schedules, now).await
    }

    async fn fire_schedule_tick(&self, tick: ScheduleTick, now: Timestamp) -> Result<TickResult, StoreError> {
        self.inner.fire_schedule_tick(tick, now).await
    }

    async fn fire_schedule_ticks(
        &self,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError> {
        self.inner.fire_schedule_ticks(ticks, now).await
    }
}

#[derive(Serialize, Deserialize)]
struct Quick {
    n: u32,
}

impl JobArgs for Quick {
    const KIND: &'static str = "quick";
}

struct QuickHandler;

impl Handler<Quick> for QuickHandler {
    async fn perform(&self, _ctx: &JobContext, _args: Quick) -> Result<(), JobError> {
        Ok(())
    }
}

/// The test's runtime: `env`'s SQLite store behind [`Refusing`], on a
/// manual clock (leases lapse when the test says).
fn refusing(env: &Env) -> (Errand, Arc<Refusing>, Arc<ManualClock>) {
    let store = Refusing::new(env.errand.store().clone());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let errand = Errand::new(store.clone()).with_clock(clock.clone());
    (errand, store, clock)
}

/// Waits (bounded) until `what` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One job whose outcome the store refuses for good must not stall the
/// worker: before, the completer retried the batch holding it forever and
/// no completion landed again.
#[tokio::test]
async fn a_completion_the_store_refuses_for_good_is_dropped_and_the_others_land() {
    let env = env().await;
    let (errand, store, clock) = refusing(&env);
    let client = errand.client();
    // The poisoned job and three others, run together: their outcomes
    // reach the completer as one batch, or a few.
    let poisoned = client.enqueue_args(&Quick { n: 0 }).await.unwrap().id;
    store.poisoned.store(poisoned.0, Ordering::SeqCst);
    let mut good = Vec::new();
    for n in 1..=3 {
        good.push(client.enqueue_args(&Quick { n }).await.unwrap().id);
    }
    let running = errand
        .worker()
        .queue("default", 4)
        .register(QuickHandler)
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    for id in &good {
        wait_for(&env, *id, JobState::Completed).await;
    }
    assert!(
        store.refused.load(Ordering::SeqCst) >= 1,
        "the poisoned write was tried"
    );
    // Later completions land too.
    for n in 4..=6 {
        let id = client.enqueue_args(&Quick { n }).await.unwrap().id;
        wait_for(&env, id, JobState::Completed).await;
    }
    until("the poisoned outcome is dropped", || {
        running.stats().completions_dropped == 1
    })
    .await;
    assert_eq!(running.stats().completed, 6, "{:?}", running.stats());
    assert_eq!(running.running(), 0, "the dropped job is no longer held");
    assert_eq!(running.readiness(), Readiness::Ready);

    // Its lease is no longer extended: once it lapses, the job is rescued.
    let job = errand.store().get_job(poisoned, &Scope::All).await.unwrap();
    assert_eq!(job.state, JobState::Running, "{job:?}");
    let mut maintenance = errand.maintenance(MaintenanceConfig::default());
    assert_eq!(
        maintenance.tick().await.unwrap().rescued,
        0,
        "the lease holds yet"
    );
    clock.advance(fast_config().lease + Duration::from_secs(1));
    assert_eq!(maintenance.tick().await.unwrap().rescued, 1);
    let job = errand.store().get_job(poisoned, &Scope::All).await.unwrap();
    assert_eq!(job.state, JobState::Retryable, "{job:?}");
    assert_eq!(job.attempt, 1, "{job:?}");
    running.shutdown().await;
}

/// A transient failure (a full disk) is waited out: the batch is written
/// once the store takes it, and nothing is dropped.
#[tokio::test]
async fn a_completion_that_fails_for_a_while_is_retried_until_it_lands() {
    let env = env().await;
    let (errand, store, _clock) = refusing(&env);
    store.flaky.store(3, Ordering::SeqCst);
    let running = errand
        .worker()
        .queue("default", 2)
        .register(QuickHandler)
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let id = errand.client().enqueue_args(&Quick { n: 1 }).await.unwrap().id;
    wait_for(&env, id, JobState::Completed).await;
    assert_eq!(store.refused.load(Ordering::SeqCst), 3);
    assert_eq!(running.stats().completions_dropped, 0);
    assert_eq!(running.stats().completed, 1);
    running.shutdown().await;
}
