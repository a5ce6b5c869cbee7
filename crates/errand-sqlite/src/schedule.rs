//! Schedule bookkeeping: registration, firing ticks exactly once, listing.
//!
//! A schedule's `next_fire` column is its cursor. Firing a batch of ticks is
//! one writer command (so one transaction); each tick in it is a
//! compare-and-set of the cursor from the value the scheduler read, the
//! insert of the tick into `schedule_ticks` (primary key (schedule, fire
//! time)), the job's insert and the record of the run. A racing scheduler's
//! compare-and-set matches no row and writes nothing.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use errand_core::clock::{from_micros, to_micros};
use errand_core::store::{ScheduleOutcome, ScheduleRegistration, ScheduleState, ScheduleTick, TickResult};
use errand_core::{JobId, JobState, StoreError};

use crate::row::err;

/// Registers or updates one schedule. The cursor restarts when the schedule
/// comes back from removal or its spec or enabled flag changed; in an
/// upsert every SET expression reads the old row, so the CASE compares
/// against the stored values.
const UPSERT: &str = "INSERT INTO schedules (name, spec, fingerprint, enabled, next_fire, registered_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
     ON CONFLICT (name) DO UPDATE SET \
       next_fire = CASE WHEN schedules.removed_at IS NOT NULL OR schedules.spec <> excluded.spec \
                          OR schedules.enabled <> excluded.enabled \
                        THEN excluded.next_fire ELSE schedules.next_fire END, \
       spec = excluded.spec, fingerprint = excluded.fingerprint, enabled = excluded.enabled, \
       updated_at = excluded.updated_at, removed_at = NULL";

/// Marks every schedule not in the JSON array ?2 removed.
const REMOVE_OTHERS: &str = "UPDATE schedules SET removed_at = ?1, updated_at = ?1, next_fire = NULL \
     WHERE removed_at IS NULL AND name NOT IN (SELECT value FROM json_each(?2))";

/// The compare-and-set of the cursor. `IS` compares NULLs as equal (an
/// `@reboot` schedule has no cursor).
const ADVANCE: &str = "UPDATE schedules SET next_fire = ?4, updated_at = ?5 \
     WHERE name = ?1 AND fingerprint = ?2 AND enabled = 1 AND removed_at IS NULL AND next_fire IS ?3";

/// Keeps the latest 100 ticks of a schedule: older ones can never fire again
/// anyway (the cursor is past them), so only recent history is worth rows.
const PRUNE_TICKS: &str = "DELETE FROM schedule_ticks WHERE schedule = ?1 AND fire_at < \
     (SELECT fire_at FROM schedule_ticks WHERE schedule = ?1 ORDER BY fire_at DESC LIMIT 1 OFFSET 99)";

const LIST: &str = "SELECT s.name, s.spec, s.fingerprint, s.enabled, s.removed_at, s.next_fire, s.last_fire, \
            s.last_job_id, s.last_outcome, j.state \
     FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id ORDER BY s.name";

/// See [`errand_core::Store::sync_schedules`].
pub(crate) fn sync(
    conn: &Connection,
    regs: Vec<ScheduleRegistration>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let now_us = to_micros(now);
    let mut upsert = conn.prepare_cached(UPSERT).map_err(err)?;
    for r in &regs {
        upsert
            .execute(params![
                r.name,
                r.spec,
                r.fingerprint,
                r.enabled as i64,
                r.next_fire.map(to_micros),
                now_us
            ])
            .map_err(err)?;
    }
    let names: Vec<&str> = regs.iter().map(|r| r.name.as_str()).collect();
    let names = serde_json::to_string(&names).map_err(StoreError::backend)?;
    conn.execute(REMOVE_OTHERS, params![now_us, names]).map_err(err)?;
    Ok(())
}

/// See [`errand_core::Store::fire_schedule_ticks`]: one writer command, so
/// one transaction (all or nothing); each tick sees what the earlier ones wrote.
pub(crate) fn fire_all(
    conn: &Connection,
    ticks: Vec<ScheduleTick>,
    now: Timestamp,
) -> Result<Vec<TickResult>, StoreError> {
    ticks.into_iter().map(|t| fire(conn, t, now)).collect()
}

/// One tick of [`fire_all`]; see [`errand_core::Store::fire_schedule_tick`].
fn fire(conn: &Connection, tick: ScheduleTick, now: Timestamp) -> Result<TickResult, StoreError> {
    let now_us = to_micros(now);
    let fire_us = to_micros(tick.fire_at);
    let moved = conn
        .prepare_cached(ADVANCE)
        .map_err(err)?
        .execute(params![
            tick.schedule,
            tick.fingerprint,
            tick.expected_next.map(to_micros),
            tick.next_fire.map(to_micros),
            now_us
        ])
        .map_err(err)?;
    if moved == 0 {
        return refusal(conn, &tick);
    }
    let Some(job) = tick.job else {
        return Ok(TickResult::Dropped);
    };
    let recorded = conn
        .prepare_cached(
            "INSERT INTO schedule_ticks (schedule, fire_at, fired_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (schedule, fire_at) DO NOTHING",
        )
        .map_err(err)?
        .execute(params![tick.schedule, fire_us, now_us])
        .map_err(err)?;
    if recorded == 0 {
        return Ok(TickResult::AlreadyFired {
            next_fire: tick.next_fire,
        });
    }
    if tick.skip_while_running {
        let running: Option<i64> = conn
            .prepare_cached(
                "SELECT j.id FROM schedules s JOIN jobs j ON j.id = s.last_job_id \
                 WHERE s.name = ?1 AND j.state IN ('scheduled', 'available', 'running', 'retryable')",
            )
            .map_err(err)?
            .query_row([&tick.schedule], |r| r.get(0))
            .optional()
            .map_err(err)?;
        if let Some(id) = running {
            conn.prepare_cached(
                "UPDATE schedules SET last_fire = ?2, last_outcome = 'skipped_overlap' WHERE name = ?1",
            )
            .map_err(err)?
            .execute(params![tick.schedule, fire_us])
            .map_err(err)?;
            prune_ticks(conn, &tick.schedule)?;
            return Ok(TickResult::SkippedOverlap { running: JobId(id) });
        }
    }
    let inserted = crate::store::insert_all(conn, vec![job], now, true)?
        .pop()
        .ok_or_else(|| {
            StoreError::Backend(errand_core::BackendError::permanent(
                "inserting a tick's job returned nothing",
            ))
        })?;
    conn.prepare_cached("UPDATE schedule_ticks SET job_id = ?3 WHERE schedule = ?1 AND fire_at = ?2")
        .map_err(err)?
        .execute(params![tick.schedule, fire_us, inserted.id.0])
        .map_err(err)?;
    conn.prepare_cached(
        "UPDATE schedules SET last_fire = ?2, last_job_id = ?3, last_outcome = 'enqueued' WHERE name = ?1",
    )
    .map_err(err)?
    .execute(params![tick.schedule, fire_us, inserted.id.0])
    .map_err(err)?;
    prune_ticks(conn, &tick.schedule)?;
    Ok(TickResult::Enqueued(inserted))
}

fn prune_ticks(conn: &Connection, schedule: &str) -> Result<(), StoreError> {
    conn.prepare_cached(PRUNE_TICKS)
        .map_err(err)?
        .execute([schedule])
        .map_err(err)?;
    Ok(())
}

/// Why the compare-and-set matched no row.
fn refusal(conn: &Connection, tick: &ScheduleTick) -> Result<TickResult, StoreError> {
    let row: Option<(String, bool, Option<i64>, Option<i64>)> = conn
        .prepare_cached("SELECT fingerprint, enabled, removed_at, next_fire FROM schedules WHERE name = ?1")
        .map_err(err)?
        .query_row([&tick.schedule], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(err)?;
    Ok(match row {
        Some((fp, true, None, next)) if fp == tick.fingerprint => TickResult::AlreadyFired {
            next_fire: next.map(from_micros),
        },
        _ => TickResult::Superseded,
    })
}

/// See [`errand_core::Store::list_schedules`].
pub(crate) fn list(conn: &Connection) -> Result<Vec<ScheduleState>, StoreError> {
    let mut st = conn.prepare_cached(LIST).map_err(err)?;
    let rows = st
        .query_map([], |r| {
            let outcome: Option<String> = r.get(8)?;
            let job_state: Option<String> = r.get(9)?;
            let last_outcome = match outcome.as_deref() {
                None => ScheduleOutcome::Never,
                Some("skipped_overlap") => ScheduleOutcome::SkippedOverlap,
                Some(_) => match job_state.as_deref().and_then(JobState::parse) {
                    Some(s) => ScheduleOutcome::Job(s),
                    None => ScheduleOutcome::Pruned,
                },
            };
            Ok(ScheduleState {
                name: r.get(0)?,
                spec: r.get(1)?,
                fingerprint: r.get(2)?,
                enabled: r.get::<_, i64>(3)? != 0,
                removed_at: r.get::<_, Option<i64>>(4)?.map(from_micros),
                next_fire: r.get::<_, Option<i64>>(5)?.map(from_micros),
                last_fire: r.get::<_, Option<i64>>(6)?.map(from_micros),
                last_job: r.get::<_, Option<i64>>(7)?.map(JobId),
                last_outcome,
            })
        })
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}
