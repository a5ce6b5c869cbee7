//! Schedule bookkeeping: registration, firing ticks exactly once, listing.
//! The SQL is in `sql/sync_schedules_*.sql`, `sql/fire_schedule_tick_*.sql`
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

    /// See [`errand_core::Store::fire_schedule_tick`].
    pub(crate) async fn fire_schedule_tick_tx(
        &self,
        tick: ScheduleTick,
        now: Timestamp,
    ) -> Result<TickResult, StoreError> {
        let sql = &self.inner.sql;
        let fire_us = to_micros(tick.fire_at);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let advanced = sqlx::query(&sql.fire_schedule_tick_advance)
            .bind(&tick.schedule)
            .bind(&tick.fingerprint)
            .bind(tick.expected_next.map(to_micros))
            .bind(tick.next_fire.map(to_micros))
            .bind(to_micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(advanced) = advanced else {
            let row = sqlx::query(&sql.fire_schedule_tick_refusal)
                .bind(&tick.schedule)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let out = match row {
                Some(r) => {
                    let fp: String = r.try_get("fingerprint").map_err(db)?;
                    let enabled: bool = r.try_get("enabled").map_err(db)?;
                    let removed: Option<i64> = r.try_get("removed_at").map_err(db)?;
                    let next: Option<i64> = r.try_get("next_fire").map_err(db)?;
                    if fp == tick.fingerprint && enabled && removed.is_none() {
                        TickResult::AlreadyFired {
                            next_fire: next.map(from_micros),
                        }
                    } else {
                        TickResult::Superseded
                    }
                }
                None => TickResult::Superseded,
            };
            return Ok(out);
        };
        let last_job: Option<i64> = advanced.try_get("last_job_id").map_err(db)?;
        let Some(job) = tick.job else {
            tx.commit().await.map_err(db)?;
            return Ok(TickResult::Dropped);
        };
        let recorded = sqlx::query(&sql.fire_schedule_tick_record)
            .bind(&tick.schedule)
            .bind(fire_us)
            .bind(to_micros(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if recorded.is_none() {
            tx.commit().await.map_err(db)?;
            return Ok(TickResult::AlreadyFired {
                next_fire: tick.next_fire,
            });
        }
        if let (true, Some(last)) = (tick.skip_while_running, last_job) {
            let running: Option<i64> = sqlx::query_scalar(&sql.fire_schedule_tick_running)
                .bind(last)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if let Some(id) = running {
                sqlx::query(&sql.fire_schedule_tick_done)
                    .bind(&tick.schedule)
                    .bind(fire_us)
                    .bind(None::<i64>)
                    .bind("skipped_overlap")
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                return Ok(TickResult::SkippedOverlap { running: JobId(id) });
            }
        }
        let jobs = vec![job];
        let mut inserted = if needs_unique_check(&jobs) {
            insert_unique(
                &mut tx,
                sql,
                &self.inner.schema,
                &jobs,
                now,
                Notify::InTransaction,
            )
            .await?
        } else {
            insert_plain(&mut tx, sql, &jobs, now, Notify::InTransaction).await?
        };
        let inserted = inserted
            .pop()
            .ok_or_else(|| StoreError::Backend("inserting a tick's job returned nothing".into()))?;
        sqlx::query(&sql.fire_schedule_tick_done)
            .bind(&tick.schedule)
            .bind(fire_us)
            .bind(Some(inserted.id.0))
            .bind("enqueued")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(TickResult::Enqueued(inserted))
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
