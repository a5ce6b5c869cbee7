//! Schedule bookkeeping: registration, firing ticks exactly once, listing.
//! The SQL is in `sql/sync_schedules_*.sql`, `sql/fire_schedule_ticks_*.sql`
//! and `sql/list_schedules.sql`.

use errand_core::clock::{from_micros, to_micros};
use errand_core::store::{ScheduleOutcome, ScheduleRegistration, ScheduleState, ScheduleTick, TickResult};
use errand_core::{JobId, JobState, StoreError};
use jiff::Timestamp;
use sqlx::Row;

use crate::PostgresStore;
use crate::error::db;
use crate::insert::{Notify, insert_plain, insert_unique, needs_unique_check};
use crate::migrate::lock_key;

impl PostgresStore {
    /// See [`errand_core::Store::sync_schedules`].
    pub(crate) async fn sync_schedules_tx(
        &self,
        regs: Vec<ScheduleRegistration>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = &self.inner.sql;
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        sqlx::query(&sql.sync_schedules_lock)
            .bind(lock_key(&[b"errand.schedules", self.inner.schema.as_bytes()]))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let names: Vec<&str> = regs.iter().map(|r| r.name.as_str()).collect();
        let specs: Vec<&str> = regs.iter().map(|r| r.spec.as_str()).collect();
        let fps: Vec<&str> = regs.iter().map(|r| r.fingerprint.as_str()).collect();
        let enabled: Vec<bool> = regs.iter().map(|r| r.enabled).collect();
        let next: Vec<Option<i64>> = regs.iter().map(|r| r.next_fire.map(to_micros)).collect();
        let now_us = to_micros(now);
        if !regs.is_empty() {
            sqlx::query(&sql.sync_schedules_upsert)
                .bind(now_us)
                .bind(&names)
                .bind(&specs)
                .bind(&fps)
                .bind(&enabled)
                .bind(&next)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query(&sql.sync_schedules_remove)
            .bind(now_us)
            .bind(&names)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    /// See [`errand_core::Store::fire_schedule_ticks`]: one transaction for
    /// the batch, a few set-based statements per segment.
    pub(crate) async fn fire_schedule_ticks_tx(
        &self,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError> {
        if ticks.is_empty() {
            return Ok(Vec::new());
        }
        let sql = &self.inner.sql;
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let mut names: Vec<&str> = ticks.iter().map(|t| t.schedule.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        sqlx::query(&sql.fire_schedule_ticks_lock)
            .bind(&names)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(ticks.len());
        for segment in segments(ticks) {
            out.extend(self.fire_segment(&mut tx, segment, now).await?);
        }
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    /// Fires ticks of distinct schedules, in `tx` (which holds their locks).
    async fn fire_segment(
        &self,
        tx: &mut sqlx::PgConnection,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError> {
        let sql = &self.inner.sql;
        let now_us = to_micros(now);
        let names: Vec<&str> = ticks.iter().map(|t| t.schedule.as_str()).collect();
        let fps: Vec<&str> = ticks.iter().map(|t| t.fingerprint.as_str()).collect();
        let expected: Vec<Option<i64>> = ticks.iter().map(|t| t.expected_next.map(to_micros)).collect();
        let next: Vec<Option<i64>> = ticks.iter().map(|t| t.next_fire.map(to_micros)).collect();
        let rows = sqlx::query(&sql.fire_schedule_ticks_advance)
            .bind(&names)
            .bind(&fps)
            .bind(&expected)
            .bind(&next)
            .bind(now_us)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if rows.len() != ticks.len() {
            return Err(StoreError::Backend(errand_core::BackendError::permanent(
                format!("advancing {} schedules returned {} rows", ticks.len(), rows.len()),
            )));
        }
        // Each tick's result, once known; `running` per tick for the overlap check.
        let mut out: Vec<Option<TickResult>> = vec![None; ticks.len()];
        let mut running: Vec<Option<i64>> = vec![None; ticks.len()];
        for (i, (r, tick)) in rows.iter().zip(&ticks).enumerate() {
            let advanced: bool = r.try_get("advanced").map_err(db)?;
            if advanced {
                running[i] = r.try_get("running").map_err(db)?;
                if tick.job.is_none() {
                    out[i] = Some(TickResult::Dropped);
                }
                continue;
            }
            let fp: Option<String> = r.try_get("fingerprint").map_err(db)?;
            let enabled: Option<bool> = r.try_get("enabled").map_err(db)?;
            let removed: Option<i64> = r.try_get("removed_at").map_err(db)?;
            let next: Option<i64> = r.try_get("next_fire").map_err(db)?;
            out[i] = Some(
                if fp.as_deref() == Some(tick.fingerprint.as_str())
                    && enabled == Some(true)
                    && removed.is_none()
                {
                    TickResult::AlreadyFired {
                        next_fire: next.map(from_micros),
                    }
                } else {
                    TickResult::Superseded
                },
            );
        }

        // Record the ticks that advanced with a job; a recorded one already fired.
        let pending: Vec<usize> = (0..ticks.len()).filter(|&i| out[i].is_none()).collect();
        if pending.is_empty() {
            return finish(out);
        }
        let rec_names: Vec<&str> = pending.iter().map(|&i| ticks[i].schedule.as_str()).collect();
        let rec_fires: Vec<i64> = pending.iter().map(|&i| to_micros(ticks[i].fire_at)).collect();
        let recorded: Vec<String> = sqlx::query_scalar(&sql.fire_schedule_ticks_record)
            .bind(&rec_names)
            .bind(&rec_fires)
            .bind(now_us)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let recorded: std::collections::HashSet<String> = recorded.into_iter().collect();
        let mut done_names = Vec::new();
        let mut done_fires = Vec::new();
        let mut done_jobs: Vec<Option<i64>> = Vec::new();
        let mut done_outcomes = Vec::new();
        let mut to_insert = Vec::new();
        let mut inserting = Vec::new();
        for (i, tick) in ticks.into_iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            if !recorded.contains(&tick.schedule) {
                out[i] = Some(TickResult::AlreadyFired {
                    next_fire: tick.next_fire,
                });
                continue;
            }
            if let (true, Some(id)) = (tick.skip_while_running, running[i]) {
                out[i] = Some(TickResult::SkippedOverlap { running: JobId(id) });
                done_names.push(tick.schedule);
                done_fires.push(to_micros(tick.fire_at));
                done_jobs.push(None);
                done_outcomes.push("skipped_overlap");
                continue;
            }
            let Some(job) = tick.job else {
                return Err(StoreError::Backend(errand_core::BackendError::permanent(
                    "a tick without a job reached the insert",
                )));
            };
            inserting.push((i, tick.schedule, to_micros(tick.fire_at)));
            to_insert.push(job);
        }
        if !to_insert.is_empty() {
            let inserted = if needs_unique_check(&to_insert) {
                insert_unique(
                    tx,
                    sql,
                    &self.inner.schema,
                    &to_insert,
                    now,
                    Notify::InTransaction,
                )
                .await?
            } else {
                insert_plain(tx, sql, &to_insert, now, Notify::InTransaction).await?
            };
            if inserted.len() != inserting.len() {
                return Err(StoreError::Backend(errand_core::BackendError::permanent(
                    format!(
                        "inserting {} ticks' jobs returned {} results",
                        inserting.len(),
                        inserted.len()
                    ),
                )));
            }
            for ((i, schedule, fire_us), ins) in inserting.into_iter().zip(inserted) {
                done_names.push(schedule);
                done_fires.push(fire_us);
                done_jobs.push(Some(ins.id.0));
                done_outcomes.push("enqueued");
                out[i] = Some(TickResult::Enqueued(ins));
            }
        }
        if !done_names.is_empty() {
            sqlx::query(&sql.fire_schedule_ticks_done)
                .bind(&done_names)
                .bind(&done_fires)
                .bind(&done_jobs)
                .bind(&done_outcomes)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        finish(out)
    }

    /// See [`errand_core::Store::list_schedules`].
    pub(crate) async fn list_schedules_rows(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows = sqlx::query(&self.inner.sql.list_schedules)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db)?;
        let time = |r: &sqlx::postgres::PgRow, c: &str| -> Result<Option<Timestamp>, StoreError> {
            Ok(r.try_get::<Option<i64>, _>(c).map_err(db)?.map(from_micros))
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let outcome: Option<String> = r.try_get("last_outcome").map_err(db)?;
            let job_state: Option<String> = r.try_get("job_state").map_err(db)?;
            let last_outcome = match outcome.as_deref() {
                None => ScheduleOutcome::Never,
                Some("skipped_overlap") => ScheduleOutcome::SkippedOverlap,
                Some(_) => match job_state.as_deref().and_then(JobState::parse) {
                    Some(s) => ScheduleOutcome::Job(s),
                    None => ScheduleOutcome::Pruned,
                },
            };
            out.push(ScheduleState {
                name: r.try_get("name").map_err(db)?,
                spec: r.try_get("spec").map_err(db)?,
                fingerprint: r.try_get("fingerprint").map_err(db)?,
                enabled: r.try_get("enabled").map_err(db)?,
                removed_at: time(r, "removed_at")?,
                next_fire: time(r, "next_fire")?,
                last_fire: time(r, "last_fire")?,
                last_job: r.try_get::<Option<i64>, _>("last_job_id").map_err(db)?.map(JobId),
                last_outcome,
            });
        }
        Ok(out)
    }
}

/// Splits ticks, in order, into runs in which no schedule appears twice: a
/// set-based statement touches each schedule row once, and a later tick of a
/// schedule must see what the earlier one wrote.
fn segments(ticks: Vec<ScheduleTick>) -> Vec<Vec<ScheduleTick>> {
    let mut out: Vec<Vec<ScheduleTick>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in ticks {
        if out.is_empty() || !seen.insert(t.schedule.clone()) {
            seen.clear();
            seen.insert(t.schedule.clone());
            out.push(Vec::new());
        }
        out.last_mut().expect("pushed above").push(t);
    }
    out
}

/// Every tick's result, or an error if one was left undecided.
fn finish(out: Vec<Option<TickResult>>) -> Result<Vec<TickResult>, StoreError> {
    out.into_iter()
        .map(|r| {
            r.ok_or_else(|| {
                StoreError::Backend(errand_core::BackendError::permanent(
                    "a tick was left without a result",
                ))
            })
        })
        .collect()
}
