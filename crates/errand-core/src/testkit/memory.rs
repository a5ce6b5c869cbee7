//! A minimal in-memory model of the [`Store`] contract, used only to check
//! that every conformance scenario can pass. It favours plainness over
//! speed and is not a backend: nothing outside this crate's tests sees it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::Notify;

use crate::clock;
use crate::error::StoreError;
use crate::job::{Completion, Finish, Job, JobId, JobState, Lease, Progress, UniqueMode};
use crate::lifecycle::{self, Event};
use crate::store::{
    ClaimRequest, CompletionResult, Housekeeping, Inserted, JobFilter, JobPage, JobQueue, LapsedLease,
    Leadership, LeaseReport, Operator, PruneRequest, QueueStats, ScheduleOutcome, ScheduleRegistration,
    ScheduleState, ScheduleTick, Schedules, Scope, Store, TickResult,
};
use crate::validate::ValidJob;

/// A fresh, empty model store.
pub(crate) async fn fresh() -> Arc<dyn Store> {
    Arc::new(MemoryStore::default())
}

#[derive(Default)]
struct QueueRow {
    paused: bool,
    completed_total: u64,
    failed_total: u64,
    discarded_total: u64,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<JobId, Job>,
    next_id: i64,
    next_token: i64,
    queues: BTreeMap<String, QueueRow>,
    leaders: HashMap<String, (String, Timestamp)>,
    schedules: BTreeMap<String, ScheduleRow>,
    /// Fired ticks: (schedule, fire time). Unique, like the stores' tick table.
    ticks: BTreeSet<(String, Timestamp)>,
}

/// A schedule's bookkeeping; `last_outcome` is `None` (never), or whether
/// the latest tick enqueued (`true`) or was skipped (`false`).
struct ScheduleRow {
    reg: ScheduleRegistration,
    removed_at: Option<Timestamp>,
    next_fire: Option<Timestamp>,
    last_fire: Option<Timestamp>,
    last_job: Option<JobId>,
    last_enqueued: Option<bool>,
}

#[derive(Default)]
struct MemoryStore {
    state: Mutex<State>,
    changed: Notify,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unfinished(s: JobState) -> bool {
    !s.is_finished()
}

impl State {
    fn holder(&self, tenant: &Option<String>, key: &str, mode: UniqueMode, now: Timestamp) -> Option<&Job> {
        self.jobs.values().rev().find(|j| {
            j.tenant == *tenant
                && j.unique_key.as_deref() == Some(key)
                && match mode {
                    UniqueMode::WhileUnfinished => unfinished(j.state),
                    UniqueMode::Period { period } => j.created_at > clock::sub(now, period),
                }
        })
    }

    fn insert(&mut self, v: ValidJob, now: Timestamp) -> Inserted {
        if let Some((key, mode)) = &v.unique
            && let Some(h) = self.holder(&v.tenant, key, *mode, now)
        {
            return Inserted {
                id: h.id,
                duplicate: true,
                state: h.state,
            };
        }
        self.next_id += 1;
        let id = JobId(self.next_id);
        let state = if v.run_at <= now {
            JobState::Available
        } else {
            JobState::Scheduled
        };
        self.queue(&v.queue);
        self.jobs.insert(
            id,
            Job {
                id,
                tenant: v.tenant,
                queue: v.queue,
                kind: v.kind,
                args: v.args,
                priority: v.priority,
                state,
                attempt: 0,
                max_attempts: v.max_attempts,
                run_at: v.run_at,
                created_at: now,
                attempted_at: None,
                finished_at: None,
                expires_at: v.expires_at,
                unique_key: v.unique.map(|(k, _)| k),
                timeout: v.timeout,
                tags: v.tags,
                meta: v.meta,
                retry: v.retry,
                progress: None,
                result: None,
                errors: Vec::new(),
                lease: None,
                cancel_requested: false,
            },
        );
        Inserted {
            id,
            duplicate: false,
            state,
        }
    }

    fn queue(&mut self, name: &str) -> &mut QueueRow {
        self.queues.entry(name.to_owned()).or_default()
    }
}

impl State {
    fn sync_schedules(&mut self, regs: Vec<ScheduleRegistration>, now: Timestamp) {
        let names: BTreeSet<String> = regs.iter().map(|r| r.name.clone()).collect();
        for reg in regs {
            match self.schedules.get_mut(&reg.name) {
                None => {
                    self.schedules.insert(
                        reg.name.clone(),
                        ScheduleRow {
                            next_fire: reg.next_fire,
                            reg,
                            removed_at: None,
                            last_fire: None,
                            last_job: None,
                            last_enqueued: None,
                        },
                    );
                }
                Some(row) => {
                    let reset = row.removed_at.is_some()
                        || row.reg.spec != reg.spec
                        || row.reg.enabled != reg.enabled;
                    if reset {
                        row.next_fire = reg.next_fire;
                    }
                    row.removed_at = None;
                    row.reg = reg;
                }
            }
        }
        for (name, row) in &mut self.schedules {
            if !names.contains(name) && row.removed_at.is_none() {
                row.removed_at = Some(now);
                row.next_fire = None;
            }
        }
    }

    fn fire_schedule_tick(&mut self, tick: ScheduleTick, now: Timestamp) -> TickResult {
        let Some(row) = self.schedules.get_mut(&tick.schedule) else {
            return TickResult::Superseded;
        };
        if row.removed_at.is_some() || !row.reg.enabled || row.reg.fingerprint != tick.fingerprint {
            return TickResult::Superseded;
        }
        if row.next_fire != tick.expected_next {
            return TickResult::AlreadyFired {
                next_fire: row.next_fire,
            };
        }
        row.next_fire = tick.next_fire;
        let Some(job) = tick.job else {
            return TickResult::Dropped;
        };
        let key = (tick.schedule.clone(), tick.fire_at);
        if self.ticks.contains(&key) {
            return TickResult::AlreadyFired {
                next_fire: tick.next_fire,
            };
        }
        self.ticks.insert(key);
        let last = row.last_job;
        let running = last.filter(|id| self.jobs.get(id).is_some_and(|j| unfinished(j.state)));
        if let (true, Some(running)) = (tick.skip_while_running, running) {
            let row = self.schedules.get_mut(&tick.schedule).expect("looked up above");
            row.last_fire = Some(tick.fire_at);
            row.last_enqueued = Some(false);
            return TickResult::SkippedOverlap { running };
        }
        let inserted = self.insert(job, now);
        let row = self.schedules.get_mut(&tick.schedule).expect("looked up above");
        row.last_fire = Some(tick.fire_at);
        row.last_job = Some(inserted.id);
        row.last_enqueued = Some(true);
        TickResult::Enqueued(inserted)
    }

    fn list_schedules(&self) -> Vec<ScheduleState> {
        self.schedules
            .iter()
            .map(|(name, row)| ScheduleState {
                name: name.clone(),
                spec: row.reg.spec.clone(),
                fingerprint: row.reg.fingerprint.clone(),
                enabled: row.reg.enabled,
                removed_at: row.removed_at,
                next_fire: row.next_fire,
                last_fire: row.last_fire,
                last_job: row.last_job,
                last_outcome: match row.last_enqueued {
                    None => ScheduleOutcome::Never,
                    Some(false) => ScheduleOutcome::SkippedOverlap,
                    Some(true) => match row.last_job.and_then(|id| self.jobs.get(&id)) {
                        Some(j) => ScheduleOutcome::Job(j.state),
                        None => ScheduleOutcome::Pruned,
                    },
                },
            })
            .collect()
    }
}

fn visible_mut<'a>(state: &'a mut State, id: JobId, scope: &Scope) -> Result<&'a mut Job, StoreError> {
    match state.jobs.get_mut(&id) {
        Some(j) if scope.allows(j.tenant.as_deref()) => Ok(j),
        _ => Err(StoreError::NotFound(id)),
    }
}

impl State {
    /// Writes one fenced finish (see [`JobQueue::complete_batch`]).
    fn finish(&mut self, c: Completion, now: Timestamp) -> CompletionResult {
        let Some(job) = self.jobs.get_mut(&c.id).filter(|j| held(j, c.lease_token)) else {
            return CompletionResult::LeaseLost;
        };
        job.lease = None;
        job.state = c.finish.target_state();
        let delete = matches!(c.finish, Finish::CompleteAndDelete);
        let (mut completed, mut failed, mut discarded) = (0, 0, 0);
        match c.finish {
            Finish::Complete { result } => {
                job.result = result;
                completed = 1;
            }
            Finish::Retry { at, error } => {
                job.run_at = at;
                job.errors.push(error);
                failed = 1;
            }
            Finish::Discard { error } => {
                job.errors.push(error);
                failed = 1;
                discarded = 1;
            }
            Finish::Snooze { at } => {
                job.run_at = at;
                job.attempt -= 1;
            }
            Finish::Defer { at, note } => {
                job.run_at = at;
                job.attempt -= 1;
                job.errors.push(note);
            }
            Finish::Cancel { error } => job.errors.push(error),
            Finish::Expire => job.attempt -= 1,
            Finish::HandBack => job.attempt -= 1,
            Finish::CompleteAndDelete => completed = 1,
        }
        if job.state.is_finished() {
            job.finished_at = Some(now);
        }
        let queue = job.queue.clone();
        if delete {
            self.jobs.remove(&c.id);
        }
        let q = self.queue(&queue);
        q.completed_total += completed;
        q.failed_total += failed;
        q.discarded_total += discarded;
        CompletionResult::Done
    }
}

fn held(job: &Job, token: i64) -> bool {
    job.state == JobState::Running && job.lease.as_ref().is_some_and(|l| l.token == token)
}

#[async_trait]
impl JobQueue for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn insert_jobs(&self, jobs: Vec<ValidJob>, now: Timestamp) -> Result<Vec<Inserted>, StoreError> {
        let mut st = self.lock();
        let out = jobs.into_iter().map(|v| st.insert(v, now)).collect();
        drop(st);
        self.changed.notify_waiters();
        Ok(out)
    }

    async fn claim_available(&self, req: ClaimRequest) -> Result<Vec<Job>, StoreError> {
        let mut st = self.lock();
        if st.queues.get(&req.queue).is_some_and(|q| q.paused) {
            return Ok(Vec::new());
        }
        let mut due: Vec<(i32, Timestamp, JobId)> = st
            .jobs
            .values()
            .filter(|j| {
                j.queue == req.queue
                    && j.state == JobState::Available
                    && j.run_at <= req.now
                    && j.expires_at.is_none_or(|e| e >= req.now)
            })
            .map(|j| (j.priority, j.run_at, j.id))
            .collect();
        due.sort();
        due.truncate(req.limit);
        let mut out = Vec::new();
        for (_, _, id) in due {
            st.next_token += 1;
            let token = st.next_token;
            let job = st.jobs.get_mut(&id).expect("listed");
            job.state = JobState::Running;
            job.attempt += 1;
            job.attempted_at = Some(req.now);
            job.lease = Some(Lease {
                owner: req.owner.clone(),
                token,
                expires_at: clock::add(req.now, req.lease_for),
            });
            out.push(job.clone());
        }
        Ok(out)
    }

    async fn complete_batch(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        let mut st = self.lock();
        Ok(items.into_iter().map(|c| st.finish(c, now)).collect())
    }

    async fn cancel_requests(&self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        let st = self.lock();
        Ok(ids
            .iter()
            .copied()
            .filter(|id| {
                st.jobs
                    .get(id)
                    .is_some_and(|j| j.state == JobState::Running && j.cancel_requested)
            })
            .collect())
    }

    async fn extend_leases(
        &self,
        owner: &str,
        held_leases: &[(JobId, i64)],
        until: Timestamp,
    ) -> Result<LeaseReport, StoreError> {
        let mut st = self.lock();
        let mut report = LeaseReport::default();
        for &(id, token) in held_leases {
            match st.jobs.get_mut(&id) {
                Some(j) if held(j, token) && j.lease.as_ref().is_some_and(|l| l.owner == owner) => {
                    if let Some(l) = j.lease.as_mut() {
                        l.expires_at = until;
                    }
                    if j.cancel_requested {
                        report.cancel_requested.push(id);
                    }
                }
                _ => report.lost.push(id),
            }
        }
        Ok(report)
    }

    async fn report_progress(
        &self,
        id: JobId,
        lease_token: i64,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        match st.jobs.get_mut(&id) {
            Some(j) if held(j, lease_token) => {
                j.progress = Some(progress);
                Ok(())
            }
            _ => Err(StoreError::LeaseLost {
                id,
                token: lease_token,
            }),
        }
    }

    async fn queues_with_available_jobs(&self) -> Result<Vec<String>, StoreError> {
        let st = self.lock();
        let mut names: Vec<String> = st
            .jobs
            .values()
            .filter(|j| j.state == JobState::Available)
            .map(|j| j.queue.clone())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn wait_for_change(&self, timeout: Duration) -> Result<(), StoreError> {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
        Ok(())
    }
}

#[async_trait]
impl Housekeeping for MemoryStore {
    async fn lapsed_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<LapsedLease>, StoreError> {
        let st = self.lock();
        let mut lapsed: Vec<LapsedLease> = st
            .jobs
            .values()
            .filter_map(|j| match (&j.state, &j.lease) {
                (JobState::Running, Some(l)) if l.expires_at < now => Some(LapsedLease {
                    id: j.id,
                    queue: j.queue.clone(),
                    kind: j.kind.clone(),
                    attempt: j.attempt,
                    max_attempts: j.max_attempts,
                    retry: j.retry.clone(),
                    owner: Some(l.owner.clone()),
                    lease_token: l.token,
                    expired_at: l.expires_at,
                }),
                _ => None,
            })
            .collect();
        lapsed.sort_by_key(|l| (l.expired_at, l.id));
        lapsed.truncate(limit);
        Ok(lapsed)
    }

    async fn rescue_lapsed(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        let mut st = self.lock();
        Ok(items
            .into_iter()
            .map(|c| {
                let lapsed = st
                    .jobs
                    .get(&c.id)
                    .and_then(|j| j.lease.as_ref())
                    .is_some_and(|l| l.expires_at < now);
                if lapsed {
                    st.finish(c, now)
                } else {
                    CompletionResult::LeaseLost
                }
            })
            .collect())
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut st = self.lock();
        let mut due: Vec<(Timestamp, JobId)> = st
            .jobs
            .values()
            .filter(|j| matches!(j.state, JobState::Scheduled | JobState::Retryable) && j.run_at <= now)
            .map(|j| (j.run_at, j.id))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut queues = BTreeSet::new();
        for (_, id) in due {
            let job = st.jobs.get_mut(&id).expect("listed");
            job.state = JobState::Available;
            queues.insert(job.queue.clone());
        }
        Ok(queues.into_iter().collect())
    }

    async fn expire_due(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut st = self.lock();
        let due: Vec<JobId> = st
            .jobs
            .values()
            .filter(|j| {
                matches!(
                    j.state,
                    JobState::Scheduled | JobState::Available | JobState::Retryable
                ) && j.expires_at.is_some_and(|e| e < now)
            })
            .map(|j| j.id)
            .take(limit)
            .collect();
        for id in &due {
            let job = st.jobs.get_mut(id).expect("listed");
            job.state = JobState::Expired;
            job.finished_at = Some(now);
        }
        Ok(due.len() as u64)
    }

    async fn prune_finished(&self, req: &PruneRequest) -> Result<u64, StoreError> {
        let mut st = self.lock();
        let doomed: Vec<JobId> = st
            .jobs
            .values()
            .filter(|j| {
                j.state.is_finished()
                    && j.finished_at.is_some_and(|f| f < req.finished_before)
                    && match &req.queue {
                        Some(q) => j.queue == *q,
                        None => !req.except_queues.contains(&j.queue),
                    }
            })
            .map(|j| j.id)
            .take(req.limit)
            .collect();
        for id in &doomed {
            st.jobs.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|j| matches!(j.state, JobState::Scheduled | JobState::Retryable))
            .map(|j| j.run_at)
            .min())
    }
}

#[async_trait]
impl Operator for MemoryStore {
    async fn get_job(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        visible_mut(&mut self.lock(), id, scope).map(|j| j.clone())
    }

    async fn list_jobs(&self, f: &JobFilter) -> Result<JobPage, StoreError> {
        let limit = f.page_size();
        let st = self.lock();
        let mut jobs: Vec<Job> = st
            .jobs
            .values()
            .rev()
            .filter(|j| {
                f.scope.allows(j.tenant.as_deref())
                    && (f.states.is_empty() || f.states.contains(&j.state))
                    && f.queue.as_ref().is_none_or(|q| *q == j.queue)
                    && f.kind.as_ref().is_none_or(|k| *k == j.kind)
                    && f.tenant.as_ref().is_none_or(|t| j.tenant.as_ref() == Some(t))
                    && f.before_id.is_none_or(|b| j.id < b)
            })
            .take(limit + 1)
            .cloned()
            .collect();
        let next_cursor = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn cancel_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let mut st = self.lock();
        let job = visible_mut(&mut st, id, scope)?;
        match lifecycle::transition(Some(job.state), Event::Cancel) {
            // A running job is stopped by its worker, which finishes it cancelled.
            Ok(_) if job.state == JobState::Running => job.cancel_requested = true,
            Ok(next) => {
                job.state = next;
                job.finished_at = Some(now);
            }
            Err(_) => {
                return Err(StoreError::InvalidState {
                    id,
                    state: job.state,
                    action: "cancel",
                });
            }
        }
        Ok(job.clone())
    }

    async fn retry_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let mut st = self.lock();
        let (key, tenant) = {
            let job = visible_mut(&mut st, id, scope)?;
            (job.unique_key.clone(), job.tenant.clone())
        };
        let retriable =
            lifecycle::transition(Some(visible_mut(&mut st, id, scope)?.state), Event::OperatorRetry).is_ok();
        if let Some(key) = key.filter(|_| retriable)
            && let Some(holder) = st.jobs.values().find(|j| {
                j.id != id
                    && j.unique_key.as_deref() == Some(key.as_str())
                    && j.tenant == tenant
                    && !j.state.is_finished()
            })
        {
            return Err(StoreError::UniqueKeyHeld {
                id,
                holder: holder.id,
            });
        }
        let job = visible_mut(&mut st, id, scope)?;
        match lifecycle::transition(Some(job.state), Event::OperatorRetry) {
            Err(_) => Err(StoreError::InvalidState {
                id,
                state: job.state,
                action: "retry",
            }),
            Ok(next) => {
                job.state = next;
                job.run_at = now;
                job.finished_at = None;
                job.cancel_requested = false;
                job.expires_at = job.expires_at.filter(|e| *e > now);
                if job.attempt >= job.max_attempts {
                    job.max_attempts = job.attempt + 1;
                }
                Ok(job.clone())
            }
        }
    }

    async fn discard_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let mut st = self.lock();
        let job = visible_mut(&mut st, id, scope)?;
        let next = lifecycle::transition(Some(job.state), Event::OperatorDiscard).map_err(|_| {
            StoreError::InvalidState {
                id,
                state: job.state,
                action: "discard",
            }
        })?;
        job.state = next;
        job.finished_at = Some(now);
        job.errors
            .push(lifecycle::operator_discard_error(job.attempt, now));
        let (job, queue) = (job.clone(), job.queue.clone());
        st.queue(&queue).discarded_total += 1;
        Ok(job)
    }

    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        create: bool,
        scope: &Scope,
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        scope.require_all("pausing or resuming a queue")?;
        let mut st = self.lock();
        if !create && !st.queues.contains_key(queue) {
            return Err(StoreError::QueueNotFound(queue.to_owned()));
        }
        st.queue(queue).paused = paused;
        Ok(())
    }

    async fn clear_queue(&self, queue: &str, scope: &Scope) -> Result<u64, StoreError> {
        let mut st = self.lock();
        let before = st.jobs.len();
        st.jobs.retain(|_, j| {
            !(j.queue == queue && JobState::WAITING.contains(&j.state) && scope.allows(j.tenant.as_deref()))
        });
        Ok((before - st.jobs.len()) as u64)
    }

    async fn remove_queue(&self, queue: &str, scope: &Scope) -> Result<(), StoreError> {
        scope.require_all("removing a queue")?;
        let mut st = self.lock();
        if !st.queues.contains_key(queue) {
            return Err(StoreError::QueueNotFound(queue.to_owned()));
        }
        let unfinished = st
            .jobs
            .values()
            .filter(|j| j.queue == queue && !j.state.is_finished())
            .count() as u64;
        if unfinished > 0 {
            return Err(StoreError::QueueNotEmpty {
                queue: queue.to_owned(),
                jobs: unfinished,
            });
        }
        st.queues.remove(queue);
        Ok(())
    }

    async fn queue_stats(&self, scope: &Scope, now: Timestamp) -> Result<Vec<QueueStats>, StoreError> {
        let st = self.lock();
        let all = *scope == Scope::All;
        Ok(st
            .queues
            .iter()
            .map(|(name, q)| {
                let mut counts = BTreeMap::new();
                let mut oldest: Option<Timestamp> = None;
                for j in st
                    .jobs
                    .values()
                    .filter(|j| j.queue == *name && scope.allows(j.tenant.as_deref()))
                {
                    *counts.entry(j.state).or_insert(0) += 1;
                    if j.state == JobState::Available {
                        let since = j.run_at.max(j.created_at);
                        oldest = Some(oldest.map_or(since, |o| o.min(since)));
                    }
                }
                QueueStats {
                    name: name.clone(),
                    paused: q.paused,
                    counts,
                    oldest_available_age: oldest.map(|o| {
                        let us = (clock::to_micros(now) - clock::to_micros(o)).max(0);
                        Duration::from_micros(us as u64)
                    }),
                    completed_total: all.then_some(q.completed_total),
                    failed_total: all.then_some(q.failed_total),
                    discarded_total: all.then_some(q.discarded_total),
                }
            })
            .collect())
    }

    async fn list_schedules(&self, scope: &Scope) -> Result<Vec<ScheduleState>, StoreError> {
        // Schedules belong to no tenant.
        if !scope.allows(None) {
            return Ok(Vec::new());
        }
        Ok(self.lock().list_schedules())
    }
}

#[async_trait]
impl Leadership for MemoryStore {
    async fn elect_leader(
        &self,
        role: &str,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let free = match st.leaders.get(role) {
            None => true,
            Some((holder, until)) => holder == owner || *until < now,
        };
        if free {
            st.leaders
                .insert(role.to_owned(), (owner.to_owned(), clock::add(now, ttl)));
        }
        Ok(free)
    }

    async fn resign_leader(&self, role: &str, owner: &str) -> Result<(), StoreError> {
        let mut st = self.lock();
        if st.leaders.get(role).is_some_and(|(h, _)| h == owner) {
            st.leaders.remove(role);
        }
        Ok(())
    }
}

#[async_trait]
impl Schedules for MemoryStore {
    async fn sync_schedules(
        &self,
        regs: Vec<ScheduleRegistration>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.lock().sync_schedules(regs, now);
        Ok(())
    }

    async fn fire_schedule_ticks(
        &self,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError> {
        let out: Vec<TickResult> = {
            let mut st = self.lock();
            ticks.into_iter().map(|t| st.fire_schedule_tick(t, now)).collect()
        };
        if out.iter().any(|r| matches!(r, TickResult::Enqueued(_))) {
            self.changed.notify_waiters();
        }
        Ok(out)
    }
}
