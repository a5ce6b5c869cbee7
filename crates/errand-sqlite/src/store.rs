//! `Store` for SQLite.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use errand_core::clock::{add, from_micros, to_micros};
use errand_core::lifecycle::{self, Event};
use errand_core::store::{
    ClaimRequest, CompletionResult, Housekeeping, Inserted, JobFilter, JobPage, JobQueue, LapsedLease,
    Leadership, LeaseReport, Operator, PruneRequest, QueueStats, ScheduleRegistration, ScheduleState,
    ScheduleTick, Schedules, Scope, TickResult,
};
use errand_core::{
    Completion, ErrorRecord, Finish, Job, JobId, JobState, Progress, StoreError, UniqueMode, ValidJob,
};

use crate::SqliteStore;
use crate::row::{self, err};
use crate::writer;

const CLAIM_SELECT: &str = include_str!("../sql/claim_select.sql");
const CLAIM_UPDATE: &str = include_str!("../sql/claim_update.sql");
const LOAD_CLAIMED: &str = include_str!("../sql/load_claimed.sql");
const INSERT: &str = include_str!("../sql/insert_job.sql");
const COMPLETE_SUCCESSES: &str = include_str!("../sql/complete_successes.sql");
const COMPLETE_SUCCESSES_RETURNING: &str =
    concat!(include_str!("../sql/complete_successes.sql"), "RETURNING jobs.id");
const FIND_UNIQUE: &str = include_str!("../sql/find_unique.sql");
const UNIQUE_HOLDER: &str = include_str!("../sql/unique_holder.sql");
const RESCUE: &str = include_str!("../sql/rescue_expired_leases.sql");
const PROMOTE: &str = include_str!("../sql/promote_due.sql");
const EXPIRE: &str = include_str!("../sql/expire_due.sql");
const PRUNE_CANDIDATES: &str = include_str!("../sql/prune_candidates.sql");
const PRUNE: &str = include_str!("../sql/prune_finished.sql");

// See sql/complete.sql for the fencing rule these share.
// No RETURNING: SQLite runs a RETURNING clause as a trigger with an ephemeral
// table and a statement journal, which cost more than the update itself. A
// change count of 1 says the write applied; the queues' totals are added per
// batch by `ByIds`.
const CLEAR_LEASE: &str = "lease_owner = NULL, lease_expires_at = NULL";
const APPEND_ERROR: &str = "errors = json_insert(errors, '$[#]', json(?4))";

/// The UPDATE for each kind of finish, built once (indexed by [`finish_index`]).
/// How many kinds of [`Finish`] there are (one statement each).
const FINISH_KINDS: usize = 9;

static FINISH_SQL: std::sync::LazyLock<[String; FINISH_KINDS]> = std::sync::LazyLock::new(|| {
    [
        Finish::Complete { result: None },
        Finish::Retry {
            at: Timestamp::UNIX_EPOCH,
            error: placeholder_error(),
        },
        Finish::Discard {
            error: placeholder_error(),
        },
        Finish::Snooze {
            at: Timestamp::UNIX_EPOCH,
        },
        Finish::Defer {
            at: Timestamp::UNIX_EPOCH,
            note: placeholder_error(),
        },
        Finish::Cancel {
            error: placeholder_error(),
        },
        Finish::Expire,
        Finish::HandBack,
        Finish::CompleteAndDelete,
    ]
    .map(|f| build_finish_sql(&f))
});

fn placeholder_error() -> ErrorRecord {
    ErrorRecord {
        attempt: 0,
        at: Timestamp::UNIX_EPOCH,
        message: String::new(),
        worker: None,
    }
}

fn finish_sql(f: &Finish) -> &'static str {
    &FINISH_SQL[finish_index(f)]
}

/// Whether the finish's statement takes the text parameter ?4 (hand-back takes neither ?3 nor ?4).
fn finish_has_text(f: &Finish) -> bool {
    !matches!(
        f,
        Finish::Snooze { .. } | Finish::Expire | Finish::HandBack | Finish::CompleteAndDelete
    )
}

/// The statement of one kind of finish: its source and target states come
/// from [`lifecycle`] (a finish is written only from running, fenced by the
/// lease token).
fn build_finish_sql(f: &Finish) -> String {
    let sources = lifecycle::sql_states(lifecycle::finish_event(f));
    let fence = format!("WHERE id = ?1 AND state IN ({sources}) AND lease_token = ?2");
    let set = match f {
        Finish::Complete { .. } => "finished_at = ?3, result = ?4".to_owned(),
        Finish::Retry { .. } => format!("run_at = ?3, {APPEND_ERROR}"),
        Finish::Discard { .. } | Finish::Cancel { .. } => format!("finished_at = ?3, {APPEND_ERROR}"),
        Finish::Snooze { .. } => "run_at = ?3, attempt = attempt - 1".to_owned(),
        Finish::Defer { .. } => format!("run_at = ?3, attempt = attempt - 1, {APPEND_ERROR}"),
        Finish::Expire => "finished_at = ?3, attempt = attempt - 1".to_owned(),
        Finish::HandBack => "attempt = attempt - 1".to_owned(),
        // The queue is returned: its total is added after the row is gone.
        Finish::CompleteAndDelete => return format!("DELETE FROM jobs {fence} RETURNING queue"),
    };
    let state = f.target_state().as_str();
    format!("UPDATE jobs SET state = '{state}', {set}, {CLEAR_LEASE} {fence}")
}

fn finish_index(f: &Finish) -> usize {
    match f {
        Finish::Complete { .. } => 0,
        Finish::Retry { .. } => 1,
        Finish::Discard { .. } => 2,
        Finish::Snooze { .. } => 3,
        Finish::Defer { .. } => 4,
        Finish::Cancel { .. } => 5,
        Finish::Expire => 6,
        Finish::HandBack => 7,
        Finish::CompleteAndDelete => 8,
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::backend)
}

/// Inserts `jobs`; with `create_queues`, first makes sure their queues exist.
pub(crate) fn insert_all(
    conn: &Connection,
    jobs: Vec<ValidJob>,
    now: Timestamp,
    create_queues: bool,
) -> Result<Vec<Inserted>, StoreError> {
    let now_us = to_micros(now);
    let mut out = Vec::with_capacity(jobs.len());
    if create_queues {
        let mut queue = conn
            .prepare_cached("INSERT OR IGNORE INTO queues (name, created_at) VALUES (?1, ?2)")
            .map_err(err)?;
        let mut last: Option<&str> = None;
        for j in &jobs {
            if last != Some(j.queue.as_str()) {
                queue.execute(params![j.queue, now_us]).map_err(err)?;
                last = Some(j.queue.as_str());
            }
        }
    }
    let mut ins = conn.prepare_cached(INSERT).map_err(err)?;
    let mut find = conn.prepare_cached(FIND_UNIQUE).map_err(err)?;
    for j in jobs {
        let (unique_key, unique_period) = match &j.unique {
            Some((k, UniqueMode::WhileUnfinished)) => (Some(k.as_str()), None),
            Some((k, UniqueMode::Period { period })) => (
                Some(k.as_str()),
                Some(period.as_micros().min(i64::MAX as u128) as i64),
            ),
            None => (None, None),
        };
        if let Some(key) = unique_key {
            let since = unique_period.map(|p| now_us.saturating_sub(p));
            let found: Option<(i64, String)> = find
                .query_row(params![key, j.tenant, since], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(err)?;
            if let Some((id, state)) = found {
                out.push(Inserted {
                    id: JobId(id),
                    duplicate: true,
                    state: JobState::parse(&state).unwrap_or(JobState::Available),
                });
                continue;
            }
        }
        let state = if j.run_at <= now {
            JobState::Available
        } else {
            JobState::Scheduled
        };
        let tags = if j.tags.is_empty() {
            "[]".to_owned()
        } else {
            json(&j.tags)?
        };
        let retry = j.retry.as_ref().map(json).transpose()?;
        ins.execute(params![
            j.tenant,
            j.queue,
            j.kind,
            j.args,
            j.priority,
            state.as_str(),
            j.max_attempts,
            to_micros(j.run_at),
            now_us,
            j.expires_at.map(to_micros),
            unique_key,
            unique_period,
            j.timeout.map(|t| t.as_millis().min(i64::MAX as u128) as i64),
            tags,
            j.meta,
            retry,
        ])
        .map_err(err)?;
        out.push(Inserted {
            id: JobId(conn.last_insert_rowid()),
            duplicate: false,
            state,
        });
    }
    Ok(out)
}

/// Claims jobs on the writer; returns their ids in claim order (see
/// `claim_select.sql` and `claim_update.sql`).
fn claim(conn: &Connection, req: &ClaimRequest) -> Result<Vec<i64>, StoreError> {
    let now = to_micros(req.now);
    let until = to_micros(add(req.now, req.lease_for));
    let ids = conn
        .prepare_cached(CLAIM_SELECT)
        .map_err(err)?
        .query_map(params![req.queue, now, req.limit as i64], |r| r.get(0))
        .map_err(err)?
        .collect::<Result<Vec<i64>, _>>()
        .map_err(err)?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let marked = conn
        .prepare_cached(CLAIM_UPDATE)
        .map_err(err)?
        .execute(params![json(&ids)?, now, req.owner, until])
        .map_err(err)?;
    // Both statements run in one transaction under the write lock.
    if marked != ids.len() {
        return Err(StoreError::Backend(errand_core::BackendError::permanent(
            format!("claim marked {marked} of the {} jobs it picked", ids.len()),
        )));
    }
    Ok(ids)
}

/// Reads claimed jobs by id, in claim order.
fn load_claimed(conn: &Connection, ids: &[i64]) -> Result<Vec<Job>, StoreError> {
    let mut st = conn.prepare_cached(LOAD_CLAIMED).map_err(err)?;
    let rows = st.query_map([json(&ids)?], row::job).map_err(err)?;
    let mut jobs = rows.collect::<Result<Vec<_>, _>>().map_err(err)?;
    jobs.sort_unstable_by_key(|j| (j.priority, j.run_at, j.id));
    Ok(jobs)
}

fn complete(
    conn: &Connection,
    items: Vec<Completion>,
    now: Timestamp,
) -> Result<Vec<CompletionResult>, StoreError> {
    let now_us = to_micros(now);
    let mut counted = ByIds::default();
    let mut out = vec![CompletionResult::LeaseLost; items.len()];
    // Successful attempts without a result, nearly every item of a busy
    // no-op worker's batch, go in one statement; anything else (and a job
    // given twice) goes one by one.
    let mut successes = String::from("{");
    let mut at: HashMap<i64, usize> = HashMap::new();
    let mut rest = Vec::new();
    for (i, c) in items.iter().enumerate() {
        match &c.finish {
            Finish::Complete { result: None } if !at.contains_key(&c.id.0) => {
                at.insert(c.id.0, i);
                if successes.len() > 1 {
                    successes.push(',');
                }
                // Integers only: nothing here needs escaping.
                let _ = write!(successes, "\"{}\":{}", c.id.0, c.lease_token);
            }
            _ => rest.push(i),
        }
    }
    if !at.is_empty() {
        successes.push('}');
        // Nearly always every job still holds its lease and the change count
        // says all were written, with no RETURNING (which SQLite runs through
        // an ephemeral table). Otherwise the statement is undone and run
        // again, returning the ids it wrote.
        writer::exec(conn, "SAVEPOINT successes").map_err(err)?;
        let changed = conn
            .prepare_cached(COMPLETE_SUCCESSES)
            .map_err(err)?
            .execute(params![now_us, successes])
            .map_err(err)?;
        let written: Vec<usize> = if changed == at.len() {
            writer::exec(conn, "RELEASE successes").map_err(err)?;
            at.into_values().collect()
        } else {
            writer::exec(conn, "ROLLBACK TO successes").map_err(err)?;
            writer::exec(conn, "RELEASE successes").map_err(err)?;
            let mut st = conn.prepare_cached(COMPLETE_SUCCESSES_RETURNING).map_err(err)?;
            let ids = st
                .query_map(params![now_us, successes], |r| r.get::<_, i64>(0))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            ids.iter().filter_map(|id| at.get(id).copied()).collect()
        };
        for i in written {
            out[i] = CompletionResult::Done;
            counted.add(items[i].id.0, &items[i].finish);
        }
    }
    // One prepared statement per kind of finish, looked up once per batch.
    let mut statements: [Option<rusqlite::CachedStatement<'_>>; FINISH_KINDS] = Default::default();
    for i in rest {
        let c = &items[i];
        let slot = &mut statements[finish_index(&c.finish)];
        if slot.is_none() {
            *slot = Some(conn.prepare_cached(finish_sql(&c.finish)).map_err(err)?);
        }
        let st = slot.as_mut().expect("prepared above");
        if let Finish::CompleteAndDelete = c.finish {
            let queue: Option<String> = st
                .query_row(params![c.id.0, c.lease_token], |r| r.get(0))
                .optional()
                .map_err(err)?;
            if let Some(queue) = queue {
                counted.add_deleted(queue);
                out[i] = CompletionResult::Done;
            }
            continue;
        }
        let (time, text): (i64, Option<String>) = match &c.finish {
            Finish::Complete { result } => (now_us, result.clone()),
            Finish::Retry { at, error } => (to_micros(*at), Some(json(error)?)),
            Finish::Discard { error } | Finish::Cancel { error } => (now_us, Some(json(error)?)),
            Finish::Snooze { at } => (to_micros(*at), None),
            Finish::Defer { at, note } => (to_micros(*at), Some(json(note)?)),
            Finish::Expire | Finish::HandBack => (now_us, None),
            Finish::CompleteAndDelete => unreachable!("deleted above"),
        };
        let changed = match &c.finish {
            Finish::HandBack => st.execute(params![c.id.0, c.lease_token]),
            f if finish_has_text(f) => st.execute(params![c.id.0, c.lease_token, time, text]),
            _ => st.execute(params![c.id.0, c.lease_token, time]),
        }
        .map_err(err)?;
        if changed == 1 {
            counted.add(c.id.0, &c.finish);
            out[i] = CompletionResult::Done;
        }
    }
    counted.write(conn)?;
    Ok(out)
}

/// The ids of jobs whose finish counts toward a queue total (completions and
/// rescues alike), per total; their queues are looked up by primary key and
/// the totals added in one statement per total, at the end of the batch.
/// Jobs deleted by their completion can no longer be looked up: they are
/// counted by queue name instead.
#[derive(Default)]
struct ByIds([Vec<i64>; 3], HashMap<String, i64>);

impl ByIds {
    /// A job completed and deleted from `queue`.
    fn add_deleted(&mut self, queue: String) {
        *self.1.entry(queue).or_default() += 1;
    }

    fn add(&mut self, id: i64, finish: &Finish) {
        match finish {
            Finish::Complete { .. } => self.0[0].push(id),
            Finish::Retry { .. } => self.0[1].push(id),
            Finish::Discard { .. } => {
                self.0[1].push(id);
                self.0[2].push(id);
            }
            _ => {}
        }
    }

    fn write(self, conn: &Connection) -> Result<(), StoreError> {
        static SQL: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
            ["completed_total", "failed_total", "discarded_total"].map(|column| {
                format!(
                    "UPDATE queues SET {column} = {column} + c.n \
                     FROM (SELECT j.queue, count(*) AS n \
                           FROM json_each(?1) AS e CROSS JOIN jobs AS j ON j.id = e.value \
                           GROUP BY j.queue) AS c \
                     WHERE queues.name = c.queue"
                )
            })
        });
        for (sql, ids) in SQL.iter().zip(self.0) {
            if ids.is_empty() {
                continue;
            }
            conn.prepare_cached(sql)
                .map_err(err)?
                .execute([json(&ids)?])
                .map_err(err)?;
        }
        for (queue, n) in self.1 {
            conn.prepare_cached("UPDATE queues SET completed_total = completed_total + ?2 WHERE name = ?1")
                .map_err(err)?
                .execute(params![queue, n])
                .map_err(err)?;
        }
        Ok(())
    }
}

fn lapsed(conn: &Connection, now: Timestamp, limit: usize) -> Result<Vec<LapsedLease>, StoreError> {
    let mut st = conn.prepare_cached(RESCUE).map_err(err)?;
    st.query_map(params![to_micros(now), limit as i64], |r| {
        let retry: Option<String> = r.get(5)?;
        Ok(LapsedLease {
            id: JobId(r.get(0)?),
            queue: r.get(1)?,
            kind: r.get(2)?,
            attempt: r.get(3)?,
            max_attempts: r.get(4)?,
            // An unreadable policy of the job's own falls back to the others.
            retry: retry.and_then(|s| serde_json::from_str(&s).ok()),
            owner: r.get(6)?,
            lease_token: r.get(7)?,
            expired_at: from_micros(r.get(8)?),
        })
    })
    .map_err(err)?
    .collect::<Result<_, _>>()
    .map_err(err)
}

/// Writes the rescues of leases still lapsed at `now` (under the writer's
/// lock: no heartbeat can extend one between the check and the write).
fn rescue_lapsed(
    conn: &Connection,
    items: Vec<Completion>,
    now: Timestamp,
) -> Result<Vec<CompletionResult>, StoreError> {
    let mut out = vec![CompletionResult::LeaseLost; items.len()];
    let mut still = Vec::with_capacity(items.len());
    let mut at = Vec::with_capacity(items.len());
    {
        let mut st = conn
            .prepare_cached(
                "SELECT count(*) FROM jobs WHERE id = ?1 AND lease_token = ?2 AND state = 'running' \
                 AND lease_expires_at < ?3",
            )
            .map_err(err)?;
        for (i, c) in items.into_iter().enumerate() {
            let n: i64 = st
                .query_row(params![c.id.0, c.lease_token, to_micros(now)], |r| r.get(0))
                .map_err(err)?;
            if n == 1 {
                at.push(i);
                still.push(c);
            }
        }
    }
    for (i, r) in at.into_iter().zip(complete(conn, still, now)?) {
        out[i] = r;
    }
    Ok(out)
}

fn load(conn: &Connection, id: JobId) -> Result<Option<Job>, StoreError> {
    conn.prepare_cached("SELECT * FROM jobs WHERE id = ?1")
        .map_err(err)?
        .query_row([id.0], row::job)
        .optional()
        .map_err(err)
}

fn load_scoped(conn: &Connection, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
    match load(conn, id)? {
        Some(j) if scope.allows(j.tenant.as_deref()) => Ok(j),
        _ => Err(StoreError::NotFound(id)),
    }
}

fn operator_record(job: &Job, now: Timestamp, message: &str) -> Result<String, StoreError> {
    json(&ErrorRecord {
        attempt: job.attempt,
        at: now,
        message: message.to_owned(),
        worker: None,
    })
}

fn cancel(conn: &Connection, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
    let job = load_scoped(conn, id, scope)?;
    let refused = || StoreError::InvalidState {
        id,
        state: job.state,
        action: "cancel",
    };
    match lifecycle::transition(Some(job.state), Event::Cancel) {
        // A running job is stopped by its worker, which finishes it cancelled.
        Ok(_) if job.state == JobState::Running => {
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id.0])
                .map_err(err)?;
        }
        Ok(next) => finish_unstarted(conn, &job, next, "cancelled by an operator", now)?,
        Err(_) => return Err(refused()),
    }
    load_scoped(conn, id, scope)
}

fn discard(conn: &Connection, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
    let job = load_scoped(conn, id, scope)?;
    let next = lifecycle::transition(Some(job.state), Event::OperatorDiscard).map_err(|_| {
        StoreError::InvalidState {
            id,
            state: job.state,
            action: "discard",
        }
    })?;
    finish_unstarted(
        conn,
        &job,
        next,
        &lifecycle::operator_discard_error(job.attempt, now).message,
        now,
    )?;
    conn.prepare_cached("UPDATE queues SET discarded_total = discarded_total + 1 WHERE name = ?1")
        .map_err(err)?
        .execute([&job.queue])
        .map_err(err)?;
    load_scoped(conn, id, scope)
}

/// An operator finishes an unstarted job (`job`, read under the writer's
/// lock) in state `next`, recording `message` in its history.
fn finish_unstarted(
    conn: &Connection,
    job: &Job,
    next: JobState,
    message: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE jobs SET state = ?2, finished_at = ?3, errors = json_insert(errors, '$[#]', json(?4)) \
         WHERE id = ?1",
    )
    .map_err(err)?
    .execute(params![
        job.id.0,
        next.as_str(),
        to_micros(now),
        operator_record(job, now, message)?
    ])
    .map_err(err)?;
    Ok(())
}

fn retry(conn: &Connection, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
    let job = load_scoped(conn, id, scope)?;
    match lifecycle::transition(Some(job.state), Event::OperatorRetry) {
        Ok(next) => {
            if let Some(key) = &job.unique_key {
                // Under the writer's lock: no insert can race this check.
                let unfinished = json(&JobState::UNFINISHED.map(JobState::as_str))?;
                let holder: Option<i64> = conn
                    .prepare_cached(UNIQUE_HOLDER)
                    .map_err(err)?
                    .query_row(params![key, job.tenant, id.0, unfinished], |r| r.get(0))
                    .optional()
                    .map_err(err)?;
                if let Some(holder) = holder {
                    return Err(StoreError::UniqueKeyHeld {
                        id,
                        holder: JobId(holder),
                    });
                }
            }
            conn.execute(
                "UPDATE jobs SET state = ?3, run_at = ?2, finished_at = NULL, cancel_requested = 0, \
                 max_attempts = max(max_attempts, attempt + 1), \
                 expires_at = CASE WHEN expires_at <= ?2 THEN NULL ELSE expires_at END \
                 WHERE id = ?1",
                params![id.0, to_micros(now), next.as_str()],
            )
            .map_err(err)?;
            conn.execute(
                "INSERT OR IGNORE INTO queues (name, created_at) VALUES (?1, ?2)",
                params![job.queue, to_micros(now)],
            )
            .map_err(err)?;
            load_scoped(conn, id, scope)
        }
        Err(_) => Err(StoreError::InvalidState {
            id,
            state: job.state,
            action: "retry",
        }),
    }
}

fn list(conn: &Connection, f: &JobFilter) -> Result<JobPage, StoreError> {
    let limit = f.page_size();
    let mut sql = String::from("SELECT * FROM jobs WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |clause: &str, v: rusqlite::types::Value, sql: &mut String| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Scope::Tenant(t) = &f.scope {
        push("tenant =", t.clone().into(), &mut sql);
    }
    if let Some(t) = &f.tenant {
        push("tenant =", t.clone().into(), &mut sql);
    }
    if let Some(q) = &f.queue {
        push("queue =", q.clone().into(), &mut sql);
    }
    if let Some(k) = &f.kind {
        push("kind =", k.clone().into(), &mut sql);
    }
    if let Some(c) = f.before_id {
        push("id <", c.0.into(), &mut sql);
    }
    if !f.states.is_empty() {
        let names: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
        push(
            "state IN (SELECT value FROM json_each(",
            json(&names)?.into(),
            &mut sql,
        );
        sql.push_str("))");
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
    let mut st = conn.prepare(&sql).map_err(err)?;
    let mut jobs = st
        .query_map(rusqlite::params_from_iter(args), row::job)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let next_cursor = if jobs.len() > limit {
        jobs.truncate(limit);
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(JobPage { jobs, next_cursor })
}

fn queues(conn: &Connection, scope: &Scope, now: Timestamp) -> Result<Vec<QueueStats>, StoreError> {
    let all = *scope == Scope::All;
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.clone()),
    };
    let mut out: BTreeMap<String, QueueStats> = BTreeMap::new();
    let mut st = conn
        .prepare("SELECT name, paused, completed_total, failed_total, discarded_total FROM queues")
        .map_err(err)?;
    let rows = st
        .query_map([], |r| {
            Ok(QueueStats {
                name: r.get(0)?,
                paused: r.get::<_, i64>(1)? != 0,
                completed_total: all.then_some(r.get::<_, i64>(2)? as u64),
                failed_total: all.then_some(r.get::<_, i64>(3)? as u64),
                discarded_total: all.then_some(r.get::<_, i64>(4)? as u64),
                ..Default::default()
            })
        })
        .map_err(err)?;
    for q in rows {
        let q = q.map_err(err)?;
        out.insert(q.name.clone(), q);
    }
    let mut st = conn
        .prepare(
            "SELECT queue, state, count(*) FROM jobs WHERE (?1 IS NULL OR tenant = ?1) GROUP BY queue, state",
        )
        .map_err(err)?;
    let rows = st
        .query_map([&tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(err)?;
    for row in rows {
        let (queue, state, n) = row.map_err(err)?;
        if let (Some(q), Some(s)) = (out.get_mut(&queue), JobState::parse(&state)) {
            q.counts.insert(s, n as u64);
        }
    }
    let mut st = conn
        // A job is available (waiting) since it was due or, if it was
        // enqueued already due (run_at in the past), since it was enqueued.
        .prepare(
            "SELECT queue, min(max(run_at, created_at)) FROM jobs WHERE state = 'available' \
             AND (?1 IS NULL OR tenant = ?1) GROUP BY queue",
        )
        .map_err(err)?;
    let rows = st
        .query_map([&tenant], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(err)?;
    for row in rows {
        let (queue, oldest) = row.map_err(err)?;
        if let Some(q) = out.get_mut(&queue) {
            let age = now.duration_since(from_micros(oldest));
            q.oldest_available_age = Some(Duration::try_from(age).unwrap_or(Duration::ZERO));
        }
    }
    Ok(out.into_values().collect())
}

impl SqliteStore {
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.readers.with(f))
            .await
            .map_err(StoreError::backend)?
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn insert_jobs(&self, jobs: Vec<ValidJob>, now: Timestamp) -> Result<Vec<Inserted>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let known = {
            let known = self.inner.known_queues.read().unwrap_or_else(|e| e.into_inner());
            jobs.iter().all(|j| known.contains(&j.queue))
        };
        if known && jobs.len() == 1 {
            // One INSERT (after a unique-key read, if any): atomic on its own.
            return self
                .inner
                .writer
                .run_one_statement(move |conn| insert_all(conn, jobs, now, false))
                .await;
        }
        let mut queues: Vec<String> = jobs.iter().map(|j| j.queue.clone()).collect();
        queues.sort_unstable();
        queues.dedup();
        let out = self
            .inner
            .writer
            .run(move |conn| insert_all(conn, jobs, now, true))
            .await?;
        // Committed: the queues exist from now on.
        self.inner
            .known_queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(queues);
        Ok(out)
    }

    async fn claim_available(&self, req: ClaimRequest) -> Result<Vec<Job>, StoreError> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let ids = self
            .inner
            .writer
            .run_one_statement(move |conn| claim(conn, &req))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Committed: the rows are read off the writer thread. Nothing else
        // changes a running job under a fresh lease but its own worker.
        self.read(move |conn| load_claimed(conn, &ids)).await
    }

    async fn complete_batch(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .writer
            .run(move |conn| complete(conn, items, now))
            .await
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
        let owner = owner.to_owned();
        let held = held.to_vec();
        self.inner
            .writer
            .run(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "UPDATE jobs SET lease_expires_at = ?4 \
                         WHERE id = ?1 AND state = 'running' AND lease_token = ?2 AND lease_owner = ?3 \
                         RETURNING cancel_requested",
                    )
                    .map_err(err)?;
                let mut report = LeaseReport::default();
                for (id, token) in held {
                    let cancel: Option<i64> = st
                        .query_row(params![id.0, token, owner, to_micros(until)], |r| r.get(0))
                        .optional()
                        .map_err(err)?;
                    match cancel {
                        None => report.lost.push(id),
                        Some(1) => report.cancel_requested.push(id),
                        Some(_) => {}
                    }
                }
                Ok(report)
            })
            .await
    }

    async fn report_progress(
        &self,
        id: JobId,
        lease_token: i64,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let text = json(&progress)?;
        self.inner
            .writer
            .run(move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE jobs SET progress = ?3 WHERE id = ?1 AND state = 'running' AND lease_token = ?2",
                    )
                    .map_err(err)?
                    .execute(params![id.0, lease_token, text])
                    .map_err(err)?;
                if n == 1 {
                    Ok(())
                } else {
                    Err(StoreError::LeaseLost { id, token: lease_token })
                }
            })
            .await
    }

    async fn cancel_requests(&self, ids: &[JobId]) -> Result<Vec<JobId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json(&ids.iter().map(|id| id.0).collect::<Vec<_>>())?;
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?1)) \
                     AND state = 'running' AND cancel_requested = 1",
                )
                .map_err(err)?;
            let rows = stmt.query_map([&ids], |r| r.get::<_, i64>(0)).map_err(err)?;
            let ids: Vec<i64> = rows.collect::<Result<_, _>>().map_err(err)?;
            Ok(ids.into_iter().map(JobId).collect())
        })
        .await
    }

    async fn queues_with_available_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            // One probe of the fetch index per known queue.
            let mut st = conn
                .prepare_cached(
                    "SELECT q.name FROM queues AS q WHERE EXISTS \
                     (SELECT 1 FROM jobs AS j WHERE j.queue = q.name AND j.state = 'available') ORDER BY q.name",
                )
                .map_err(err)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(err)
        })
        .await
    }

    async fn wait_for_change(&self, timeout: Duration) -> Result<(), StoreError> {
        let mut rx = self.inner.watch.subscribe();
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
        Ok(())
    }

    /// Two: claims queue up at the single writer at no extra cost, and with
    /// two under way the writer claims the next batch while the last one is
    /// read and started (about a fifth more jobs per second in `errand bench`).
    fn claims_in_flight(&self) -> usize {
        2
    }
}

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn lapsed_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<LapsedLease>, StoreError> {
        self.read(move |conn| lapsed(conn, now, limit)).await
    }

    async fn rescue_lapsed(
        &self,
        items: Vec<Completion>,
        now: Timestamp,
    ) -> Result<Vec<CompletionResult>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .writer
            .run(move |conn| rescue_lapsed(conn, items, now))
            .await
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner
            .writer
            .run(move |conn| {
                let mut st = conn.prepare_cached(PROMOTE).map_err(err)?;
                let mut queues: Vec<String> = st
                    .query_map(params![to_micros(now), limit as i64], |r| r.get(0))
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                queues.sort_unstable();
                queues.dedup();
                Ok(queues)
            })
            .await
    }

    async fn expire_due(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner
            .writer
            .run(move |conn| {
                let n = conn
                    .prepare_cached(EXPIRE)
                    .map_err(err)?
                    .execute(params![to_micros(now), limit as i64])
                    .map_err(err)?;
                Ok(n as u64)
            })
            .await
    }

    async fn prune_finished(&self, req: &PruneRequest) -> Result<u64, StoreError> {
        let before = to_micros(req.finished_before);
        let (queue, except, limit) = (req.queue.clone(), json(&req.except_queues)?, req.limit as i64);
        let ids: Vec<i64> = self
            .read(move |conn| {
                let mut st = conn.prepare_cached(PRUNE_CANDIDATES).map_err(err)?;
                let rows = st
                    .query_map(params![queue, before, except, limit], |r| r.get(0))
                    .map_err(err)?;
                rows.collect::<Result<_, _>>().map_err(err)
            })
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = json(&ids)?;
        self.inner
            .writer
            .run_one_statement(move |conn| {
                let n = conn
                    .prepare_cached(PRUNE)
                    .map_err(err)?
                    .execute(params![ids, before])
                    .map_err(err)?;
                Ok(n as u64)
            })
            .await
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|conn| {
            let v: Option<i64> = conn
                .query_row(
                    "SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retryable')",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            Ok(v.map(from_micros))
        })
        .await
    }
}

#[async_trait]
impl Operator for SqliteStore {
    async fn get_job(&self, id: JobId, scope: &Scope) -> Result<Job, StoreError> {
        let scope = scope.clone();
        self.read(move |conn| load_scoped(conn, id, &scope)).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| list(conn, &filter)).await
    }

    async fn cancel_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let scope = scope.clone();
        self.inner
            .writer
            .run(move |conn| cancel(conn, id, &scope, now))
            .await
    }

    async fn retry_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let scope = scope.clone();
        self.inner
            .writer
            .run(move |conn| retry(conn, id, &scope, now))
            .await
    }

    async fn discard_job(&self, id: JobId, scope: &Scope, now: Timestamp) -> Result<Job, StoreError> {
        let scope = scope.clone();
        self.inner
            .writer
            .run(move |conn| discard(conn, id, &scope, now))
            .await
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
        let queue = queue.to_owned();
        self.inner
            .writer
            .run(move |conn| {
                let changed = if create {
                    conn.execute(
                        "INSERT INTO queues (name, paused, created_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                        params![queue, paused as i64, to_micros(now)],
                    )
                } else {
                    conn.execute(
                        "UPDATE queues SET paused = ?2 WHERE name = ?1",
                        params![queue, paused as i64],
                    )
                }
                .map_err(err)?;
                if changed == 0 {
                    return Err(StoreError::QueueNotFound(queue));
                }
                Ok(())
            })
            .await
    }

    async fn clear_queue(&self, queue: &str, scope: &Scope) -> Result<u64, StoreError> {
        let queue = queue.to_owned();
        let tenant = match scope {
            Scope::All => None,
            Scope::Tenant(t) => Some(t.clone()),
        };
        let waiting = json(&JobState::WAITING.map(JobState::as_str))?;
        self.inner
            .writer
            .run(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM jobs WHERE queue = ?1 AND state IN (SELECT value FROM json_each(?2)) \
                         AND (?3 IS NULL OR tenant = ?3)",
                        params![queue, waiting, tenant],
                    )
                    .map_err(err)?;
                Ok(n as u64)
            })
            .await
    }

    async fn remove_queue(&self, queue: &str, scope: &Scope) -> Result<(), StoreError> {
        scope.require_all("removing a queue")?;
        let name = queue.to_owned();
        let unfinished = json(&JobState::UNFINISHED.map(JobState::as_str))?;
        self.inner
            .writer
            .run(move |conn| {
                let known: bool = conn
                    .query_row("SELECT count(*) FROM queues WHERE name = ?1", [&name], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(err)?
                    > 0;
                if !known {
                    return Err(StoreError::QueueNotFound(name));
                }
                let unfinished: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM jobs WHERE queue = ?1 \
                         AND state IN (SELECT value FROM json_each(?2))",
                        params![name, unfinished],
                        |r| r.get(0),
                    )
                    .map_err(err)?;
                if unfinished > 0 {
                    return Err(StoreError::QueueNotEmpty {
                        queue: name,
                        jobs: unfinished as u64,
                    });
                }
                conn.execute("DELETE FROM queues WHERE name = ?1", [&name])
                    .map_err(err)?;
                Ok(())
            })
            .await?;
        // The next insert into this name creates it again.
        self.inner
            .known_queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(queue);
        Ok(())
    }

    async fn queue_stats(&self, scope: &Scope, now: Timestamp) -> Result<Vec<QueueStats>, StoreError> {
        let scope = scope.clone();
        self.read(move |conn| queues(conn, &scope, now)).await
    }

    async fn list_schedules(&self, scope: &Scope) -> Result<Vec<ScheduleState>, StoreError> {
        // Schedules belong to no tenant.
        if !scope.allows(None) {
            return Ok(Vec::new());
        }
        self.read(crate::schedule::list).await
    }
}

#[async_trait]
impl Leadership for SqliteStore {
    async fn elect_leader(
        &self,
        role: &str,
        owner: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (role, owner) = (role.to_owned(), owner.to_owned());
        self.inner
            .writer
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO leaders (role, owner, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
                     WHERE leaders.owner = excluded.owner OR leaders.expires_at <= ?4",
                    params![role, owner, to_micros(add(now, ttl)), to_micros(now)],
                )
                .map_err(err)?;
                let holder: String = conn
                    .query_row("SELECT owner FROM leaders WHERE role = ?1", [&role], |r| r.get(0))
                    .map_err(err)?;
                Ok(holder == owner)
            })
            .await
    }

    async fn resign_leader(&self, role: &str, owner: &str) -> Result<(), StoreError> {
        let (role, owner) = (role.to_owned(), owner.to_owned());
        self.inner
            .writer
            .run(move |conn| {
                conn.execute(
                    "DELETE FROM leaders WHERE role = ?1 AND owner = ?2",
                    params![role, owner],
                )
                .map_err(err)?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl Schedules for SqliteStore {
    async fn sync_schedules(
        &self,
        schedules: Vec<ScheduleRegistration>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner
            .writer
            .run(move |conn| crate::schedule::sync(conn, schedules, now))
            .await
    }

    async fn fire_schedule_ticks(
        &self,
        ticks: Vec<ScheduleTick>,
        now: Timestamp,
    ) -> Result<Vec<TickResult>, StoreError> {
        if ticks.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .writer
            .run(move |conn| crate::schedule::fire_all(conn, ticks, now))
            .await
    }
}
