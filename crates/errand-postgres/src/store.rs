//! `Store` for PostgreSQL. The SQL is in `sql/`, one file per statement.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use errand_core::clock::{add, from_micros, to_micros};
use errand_core::store::{
    ClaimRequest, CompletionResult, Housekeeping, Inserted, JobFilter, JobPage, JobQueue, LapsedLease,
    Leadership, LeaseReport, Operator, PruneRequest, QueueStats, ScheduleRegistration, ScheduleState,
    ScheduleTick, Schedules, Scope, TickResult,
};
use errand_core::{Completion, Job, JobId, JobState, Progress, RetryPolicy, StoreError, ValidJob};
use jiff::Timestamp;
use sqlx::{Acquire, Row};

use crate::PostgresStore;
use crate::complete::complete_rows;
use crate::error::{db, json};
use crate::insert::{Notify, insert_plain, insert_unique, needs_unique_check};
use crate::row;

fn scope_tenant(scope: &Scope) -> Option<&str> {
    match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.as_str()),
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// The job if `scope` may see it, else [`StoreError::NotFound`].
    async fn load(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        let r = sqlx::query(&self.inner.sql.get_job)
            .bind(id.0)
            .bind(scope_tenant(scope))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db)?;
        match r {
            Some(r) => row::job(&r),
            None => Err(StoreError::NotFound(id)),
        }
    }

    /// Why an operator action that matched no row was refused.
    async fn refusal(&self, id: JobId, scope: &Scope, action: &'static str) -> StoreError {
        match self.load(id, scope).await {
            Ok(job) => StoreError::InvalidState {
                id,
                state: job.state,
                action,
            },
            Err(e) => e,
        }
    }
}

#[async_trait]
impl JobQueue for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn insert_jobs(&self, jobs: Vec<ValidJob>, now: Timestamp) -> Result<Vec<Inserted>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = &self.inner.sql;
        let out = if needs_unique_check(&jobs) {
            let mut tx = self.inner.pool.begin().await.map_err(db)?;
            let out =
                insert_unique(&mut tx, sql, &self.inner.schema, &jobs, now, Notify::AfterCommit).await?;
            tx.commit().await.map_err(db)?;
            out
        } else {
            let mut conn = self.inner.pool.acquire().await.map_err(db)?;
            insert_plain(&mut conn, sql, &jobs, now, Notify::AfterCommit).await?
        };
        // Committed: wake other processes' workers of the queues that got
        // available jobs, once per queue.
        let mut woken = std::collections::HashSet::new();
        for (job, ins) in jobs.iter().zip(&out) {
            if !ins.duplicate && ins.state == JobState::Available && woken.insert(job.queue.as_str()) {
                self.inner.notifier.notify(&job.queue);
            }
        }
        Ok(out)
    }

    async fn claim_available(&self, req: ClaimRequest) -> Result<Vec<Job>, StoreError> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.inner.sql.claim_available)
            .bind(&req.queue)
            .bind(limit(req.limit))
            .bind(to_micros(req.now))
            .bind(&req.owner)
            .bind(to_micros(add(req.now, req.lease_for)))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        let mut jobs = row::jobs(&rows)?;
        jobs.sort_unstable_by_key(|j| (j.priority, j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete_batch(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.inner.pool.acquire().await.map_err(db)?;
        complete_rows(&mut conn, &self.inner.sql, &items, now).await
    }

    async fn extend_leases(
        &self,
        owner: &str,
        held: &[(JobId, i64)],
        until: Timestamp,
    ) -> Result<LeaseReport, StoreError> {
        if held.is_empty() {
            return Ok(LeaseReport::default());
        }
        let ids: Vec<i64> = held.iter().map(|(id, _)| id.0).collect();
        let tokens: Vec<i64> = held.iter().map(|(_, t)| *t).collect();
        let rows = sqlx::query(&self.inner.sql.extend_leases)
            .bind(owner)
            .bind(to_micros(until))
            .bind(&ids)
            .bind(&tokens)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        let mut kept = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id").map_err(db)?;
            let cancel: bool = r.try_get("cancel_requested").map_err(db)?;
            kept.insert(id, cancel);
        }
        let mut report = LeaseReport::default();
        for (id, _) in held {
            match kept.get(&id.0) {
                None => report.lost.push(*id),
                Some(true) => report.cancel_requested.push(*id),
                Some(false) => {}
            }
        }
        Ok(report)
    }

    async fn cancel_requests(&self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let rows: Vec<i64> = sqlx::query_scalar(&self.inner.sql.cancel_requests)
            .bind(&ids)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(JobId).collect())
    }

    async fn report_progress(
        &self,
        id: JobId,
        lease_token: i64,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(&self.inner.sql.report_progress)
            .bind(id.0)
            .bind(lease_token)
            .bind(json(&progress)?)
            .execute(&self.inner.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost {
                id,
                token: lease_token,
            })
        }
    }

    async fn queues_with_available_jobs(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(&self.inner.sql.queues_with_available_jobs)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)
    }

    async fn flush(&self) {
        self.inner.notifier.flush().await;
    }

    async fn wait_for_change(&self, timeout: Duration) -> Result<(), StoreError> {
        if self.inner.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        self.start_listener();
        self.inner.wakeups.wait(timeout).await;
        Ok(())
    }
}

#[async_trait]
impl Housekeeping for PostgresStore {
    async fn lapsed_leases(&self, now: Timestamp, limit_n: usize) -> Result<Vec<LapsedLease>, StoreError> {
        if limit_n == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.inner.sql.lapsed_leases)
            .bind(to_micros(now))
            .bind(limit(limit_n))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let retry: Option<String> = r.try_get("retry").map_err(db)?;
                Ok(LapsedLease {
                    id: JobId(r.try_get("id").map_err(db)?),
                    queue: r.try_get("queue").map_err(db)?,
                    kind: r.try_get("kind").map_err(db)?,
                    attempt: r.try_get("attempt").map_err(db)?,
                    max_attempts: r.try_get("max_attempts").map_err(db)?,
                    // An unreadable policy of the job's own falls back to the others.
                    retry: retry.and_then(|s| serde_json::from_str::<RetryPolicy>(&s).ok()),
                    owner: r.try_get("lease_owner").map_err(db)?,
                    lease_token: r.try_get("lease_token").map_err(db)?,
                    expired_at: from_micros(r.try_get("lease_expires_at").map_err(db)?),
                })
            })
            .collect()
    }

    async fn rescue_lapsed(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        let mut out = vec![CompletionResult::LeaseLost; items.len()];
        if items.is_empty() {
            return Ok(out);
        }
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let ids: Vec<i64> = items.iter().map(|c| c.id.0).collect();
        let tokens: Vec<i64> = items.iter().map(|c| c.lease_token).collect();
        let locked: std::collections::HashSet<i64> = sqlx::query_scalar(&self.inner.sql.rescue_lapsed)
            .bind(&ids)
            .bind(&tokens)
            .bind(to_micros(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        let (at, still): (Vec<usize>, Vec<Completion>) = items
            .into_iter()
            .enumerate()
            .filter(|(_, c)| locked.contains(&c.id.0))
            .unzip();
        if still.is_empty() {
            return Ok(out);
        }
        let conn = tx.acquire().await.map_err(db)?;
        let results = complete_rows(conn, &self.inner.sql, &still, now).await?;
        tx.commit().await.map_err(db)?;
        for (i, r) in at.into_iter().zip(results) {
            out[i] = r;
        }
        Ok(out)
    }

    async fn promote_due(&self, now: Timestamp, limit_n: usize) -> Result<Vec<String>, StoreError> {
        if limit_n == 0 {
            return Ok(Vec::new());
        }
        let mut queues: Vec<String> = sqlx::query_scalar(&self.inner.sql.promote_due)
            .bind(to_micros(now))
            .bind(limit(limit_n))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        queues.sort_unstable();
        Ok(queues)
    }

    async fn expire_due(&self, now: Timestamp, limit_n: usize) -> Result<u64, StoreError> {
        if limit_n == 0 {
            return Ok(0);
        }
        let done = sqlx::query(&self.inner.sql.expire_due)
            .bind(to_micros(now))
            .bind(limit(limit_n))
            .execute(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn prune_finished(&self, req: &PruneRequest) -> Result<u64, StoreError> {
        if req.limit == 0 {
            return Ok(0);
        }
        // With a queue named, the exceptions do not apply.
        let except: &[String] = if req.queue.is_some() {
            &[]
        } else {
            &req.except_queues
        };
        let done = sqlx::query(&self.inner.sql.prune_finished)
            .bind(to_micros(req.finished_before))
            .bind(limit(req.limit))
            .bind(req.queue.as_deref())
            .bind(except)
            .execute(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(&self.inner.sql.next_due_at)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(v.map(from_micros))
    }

    async fn upkeep(&self) -> Result<(), StoreError> {
        self.inner.upkeep.poke(&self.inner.pool, &self.inner.schema);
        Ok(())
    }
}

#[async_trait]
impl Operator for PostgresStore {
    async fn get_job(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        self.load(id, scope).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let page = filter.page_size();
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(&self.inner.sql.list_jobs)
            .bind(scope_tenant(&filter.scope))
            .bind(filter.tenant.as_deref())
            .bind(filter.queue.as_deref())
            .bind(filter.kind.as_deref())
            .bind(&states)
            .bind(filter.before_id.map(|id| id.0))
            .bind(limit(page + 1))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        let mut jobs = row::jobs(&rows)?;
        let next_cursor = if jobs.len() > page {
            jobs.truncate(page);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn cancel_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let r = sqlx::query(&self.inner.sql.cancel_job)
            .bind(id.0)
            .bind(scope_tenant(scope))
            .bind(to_micros(now))
            .bind(now.to_string())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db)?;
        match r {
            Some(r) => row::job(&r),
            None => Err(self.refusal(id, scope, "cancel").await),
        }
    }

    async fn retry_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        // A job with a unique key is revived only if no other unfinished
        // job holds the key, checked under the key's advisory lock (the one
        // inserts take), so no insert can slip in between.
        let key: Option<(Option<String>, Option<String>)> = sqlx::query_as(&self.inner.sql.retry_job_key)
            .bind(id.0)
            .bind(scope_tenant(scope))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if let Some((Some(key), tenant)) = key {
            let lock = crate::insert::unique_lock_key(&self.inner.schema, tenant.as_deref(), &key);
            sqlx::query(&self.inner.sql.insert_jobs_lock_keys)
                .bind(vec![lock])
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let unfinished: Vec<&str> = JobState::UNFINISHED.iter().map(|s| s.as_str()).collect();
            let holder: Option<i64> = sqlx::query_scalar(&self.inner.sql.retry_job_holder)
                .bind(&key)
                .bind(tenant.as_deref())
                .bind(id.0)
                .bind(&unfinished)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if let Some(holder) = holder {
                return Err(StoreError::UniqueKeyHeld {
                    id,
                    holder: JobId(holder),
                });
            }
        }
        let r = sqlx::query(&self.inner.sql.retry_job)
            .bind(id.0)
            .bind(scope_tenant(scope))
            .bind(to_micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        match r {
            Some(r) => row::job(&r),
            None => Err(self.refusal(id, scope, "retry").await),
        }
    }

    async fn discard_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let record = errand_core::lifecycle::operator_discard_error(0, now);
        let r = sqlx::query(&self.inner.sql.discard_job)
            .bind(id.0)
            .bind(scope_tenant(scope))
            .bind(to_micros(now))
            .bind(now.to_string())
            .bind(&record.message)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db)?;
        match r {
            Some(r) => row::job(&r),
            None => Err(self.refusal(id, scope, "discard").await),
        }
    }

    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        create: bool,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        scope.require_all("pausing or resuming a queue")?;
        let done = sqlx::query(&self.inner.sql.set_queue_paused)
            .bind(queue)
            .bind(paused)
            .bind(to_micros(now))
            .bind(create)
            .execute(&self.inner.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::QueueNotFound(queue.to_owned()));
        }
        Ok(())
    }

    async fn clear_queue(&self, queue: &str, scope: &Scope) -> Result<u64, StoreError> {
        let waiting: Vec<&str> = JobState::WAITING.iter().map(|s| s.as_str()).collect();
        let done = sqlx::query(&self.inner.sql.clear_queue)
            .bind(queue)
            .bind(&waiting)
            .bind(scope_tenant(scope))
            .execute(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn remove_queue(&self, queue: &str, scope: &Scope) -> Result<(), StoreError> {
        scope.require_all("removing a queue")?;
        let finished: Vec<&str> = JobState::FINISHED.iter().map(|s| s.as_str()).collect();
        let row = sqlx::query(&self.inner.sql.remove_queue)
            .bind(queue)
            .bind(&finished)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db)?;
        let known: bool = row.try_get("known").map_err(db)?;
        let unfinished: i64 = row.try_get("unfinished").map_err(db)?;
        if !known {
            Err(StoreError::QueueNotFound(queue.to_owned()))
        } else if unfinished > 0 {
            Err(StoreError::QueueNotEmpty {
                queue: queue.to_owned(),
                jobs: unfinished as u64,
            })
        } else {
            Ok(())
        }
    }

    async fn queue_stats(&self, scope: &Scope, now: Timestamp) -> Result<Vec<QueueStats>, StoreError> {
        let all = *scope == Scope::All;
        let tenant = scope_tenant(scope);
        let pool = &self.inner.pool;
        let sql = &self.inner.sql;
        let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
        for r in sqlx::query(&sql.list_queues).fetch_all(pool).await.map_err(db)? {
            let name: String = r.try_get("name").map_err(db)?;
            let count = |c: &str| r.try_get::<i64, _>(c).map(|n| n.max(0) as u64).map_err(db);
            let q = QueueStats {
                name: name.clone(),
                paused: r.try_get("paused").map_err(db)?,
                completed_total: all.then_some(count("completed")?),
                failed_total: all.then_some(count("failed")?),
                discarded_total: all.then_some(count("discarded")?),
                ..Default::default()
            };
            out.insert(name, q);
        }
        for r in sqlx::query(&sql.list_queues_counts)
            .bind(tenant)
            .fetch_all(pool)
            .await
            .map_err(db)?
        {
            let queue: String = r.try_get("queue").map_err(db)?;
            let state: String = r.try_get("state").map_err(db)?;
            let n: i64 = r.try_get("n").map_err(db)?;
            if let (Some(q), Some(s)) = (out.get_mut(&queue), JobState::parse(&state)) {
                q.counts.insert(s, n.max(0) as u64);
            }
        }
        for r in sqlx::query(&sql.list_queues_oldest)
            .bind(tenant)
            .fetch_all(pool)
            .await
            .map_err(db)?
        {
            let queue: String = r.try_get("queue").map_err(db)?;
            let oldest: i64 = r.try_get("oldest").map_err(db)?;
            if let Some(q) = out.get_mut(&queue) {
                let age = now.duration_since(from_micros(oldest));
                q.oldest_available_age = Some(Duration::try_from(age).unwrap_or(Duration::ZERO));
            }
        }
        Ok(out.into_values().collect())
    }

    async fn list_schedules(&self, scope: &Scope) -> Result<Vec<ScheduleState>, StoreError> {
        // Schedules belong to no tenant.
        if !scope.allows(None) {
            return Ok(Vec::new());
        }
        self.list_schedules_rows().await
    }
}

#[async_trait]
impl Leadership for PostgresStore {
    async fn elect_leader(
        &self,
        role: &str,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let holder: Option<String> = sqlx::query_scalar(&self.inner.sql.elect_leader)
            .bind(role)
            .bind(owner)
            .bind(to_micros(now))
            .bind(to_micros(add(now, ttl)))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(holder.as_deref() == Some(owner))
    }

    async fn resign_leader(&self, role: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(&self.inner.sql.resign_leader)
            .bind(role)
            .bind(owner)
            .execute(&self.inner.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl Schedules for PostgresStore {
    async fn sync_schedules(
        &self,
        schedules: Vec<ScheduleRegistration>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sync_schedules_tx(schedules, now).await
    }

    async fn fire_schedule_ticks(
        &self,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError> {
        self.fire_schedule_ticks_tx(ticks, now).await
    }
}
