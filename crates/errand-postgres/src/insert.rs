//! Inserting jobs: one `UNNEST` statement for the batch; unique keys checked
//! under advisory locks in the same transaction.

use errand_core::clock::to_micros;
use errand_core::store::Inserted;
use errand_core::{JobId, JobState, StoreError, UniqueMode, ValidJob};
use jiff::Timestamp;
use sqlx::{PgConnection, Row};

use crate::error::{db, json};
use crate::migrate::lock_key;
use crate::row;
use crate::sql::Sql;

/// Whether any job of the batch has a unique key (and so needs the locked path).
pub(crate) fn needs_unique_check(jobs: &[ValidJob]) -> bool {
    jobs.iter().any(|j| j.unique.is_some())
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Whether an insert notifies listeners inside its own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notify {
    /// In the transaction: listeners hear only if it commits (the
    /// application's own transactions, schedule ticks).
    InTransaction,
    /// Not at all: the caller notifies after its commit (see `insert_jobs.sql`).
    AfterCommit,
}

/// One element when every row has the same value, which the statement then
/// gives to all of them (see `insert_jobs.sql` and `complete_batch.sql`).
pub(crate) fn shared<T: PartialEq>(mut column: Vec<T>) -> Vec<T> {
    if column.windows(2).all(|w| w[0] == w[1]) {
        column.truncate(1);
    }
    column
}

/// Inserts every job of `jobs` with one statement. Returns (id, state) in input order.
pub(crate) async fn insert_rows(
    conn: &mut PgConnection,
    sql: &Sql,
    jobs: &[&ValidJob],
    now: Timestamp,
    notify: Notify,
) -> Result<Vec<(JobId, JobState)>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let n = jobs.len();
    let mut tenant = Vec::with_capacity(n);
    let mut queue = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut args = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut expires_at = Vec::with_capacity(n);
    let mut unique_key = Vec::with_capacity(n);
    let mut timeout_ms = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut meta = Vec::with_capacity(n);
    let mut retry = Vec::with_capacity(n);
    for j in jobs {
        tenant.push(j.tenant.as_deref());
        queue.push(j.queue.as_str());
        kind.push(j.kind.as_str());
        args.push(j.args.as_str());
        priority.push(j.priority);
        max_attempts.push(j.max_attempts);
        run_at.push(to_micros(j.run_at));
        expires_at.push(j.expires_at.map(to_micros));
        unique_key.push(j.unique.as_ref().map(|(k, _)| k.as_str()));
        timeout_ms.push(
            j.timeout
                .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        );
        tags.push(if j.tags.is_empty() {
            "[]".to_owned()
        } else {
            json(&j.tags)?
        });
        meta.push(j.meta.as_str());
        retry.push(j.retry.as_ref().map(json).transpose()?);
    }
    let rows = sqlx::query(&sql.insert_jobs)
        .bind(to_micros(now))
        .bind(shared(tenant))
        .bind(shared(queue))
        .bind(shared(kind))
        .bind(args)
        .bind(shared(priority))
        .bind(shared(max_attempts))
        .bind(shared(run_at))
        .bind(shared(expires_at))
        .bind(shared(unique_key))
        .bind(shared(timeout_ms))
        .bind(shared(tags))
        .bind(shared(meta))
        .bind(shared(retry))
        .bind(notify == Notify::InTransaction)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    if rows.len() != n {
        return Err(StoreError::Backend(errand_core::BackendError::permanent(
            format!("inserting {n} jobs returned {} rows", rows.len()),
        )));
    }
    // Ids were drawn in input order (the statement inserts ORDER BY
    // ordinality) and the rows come back sorted by id.
    rows.iter()
        .map(|r| {
            // By position: the statement returns (id, state).
            let id: i64 = r.try_get(0).map_err(db)?;
            let state: &str = r.try_get(1).map_err(db)?;
            Ok((JobId(id), row::state(id, state)?))
        })
        .collect()
}

/// A job that may hold a unique key: stored, or earlier in this batch.
struct Holder<'a> {
    tenant: Option<&'a str>,
    key: &'a str,
    /// A stored job's id, or the position in `to_insert` of a batch job.
    id: Either,
    state: JobState,
    created_at: i64,
}

#[derive(Clone, Copy)]
enum Either {
    Stored(i64),
    New(usize),
}

enum Slot {
    New(usize),
    Duplicate(Either, JobState),
}

/// Inserts `jobs`, honouring unique keys. Must run inside a transaction
/// (the advisory locks it takes are released at commit).
/// The advisory lock of a (tenant, unique key) in `schema`: inserts and
/// operator retries of jobs with that key take it.
pub(crate) fn unique_lock_key(schema: &str, tenant: Option<&str>, key: &str) -> i64 {
    let tenant = tenant.map_or(&b"\0"[..], str::as_bytes);
    lock_key(&[b"errand.unique", schema.as_bytes(), tenant, key.as_bytes()])
}

pub(crate) async fn insert_unique(
    conn: &mut PgConnection,
    sql: &Sql,
    schema: &str,
    jobs: &[ValidJob],
    now: Timestamp,
    notify: Notify,
) -> Result<Vec<Inserted>, StoreError> {
    let now_us = to_micros(now);

    // Lock every (tenant, key) of the batch, in key order.
    let mut keys: Vec<i64> = jobs
        .iter()
        .filter_map(|j| {
            let (key, _) = j.unique.as_ref()?;
            Some(unique_lock_key(schema, j.tenant.as_deref(), key))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    sqlx::query(&sql.insert_jobs_lock_keys)
        .bind(&keys)
        .execute(&mut *conn)
        .await
        .map_err(db)?;

    // Stored jobs that may hold the keys.
    let mut names: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.unique.as_ref().map(|(k, _)| k.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let longest = jobs
        .iter()
        .filter_map(|j| match &j.unique {
            Some((_, UniqueMode::Period { period })) => Some(micros(*period)),
            _ => None,
        })
        .max();
    // With no period in the batch, only unfinished jobs count.
    let since = longest.map_or(i64::MAX, |p| now_us.saturating_sub(p));
    let rows = sqlx::query(&sql.insert_jobs_find_unique)
        .bind(&names)
        .bind(since)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut stored = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r.try_get("id").map_err(db)?;
        let tenant: Option<String> = r.try_get("tenant").map_err(db)?;
        let key: String = r.try_get("unique_key").map_err(db)?;
        let state: String = r.try_get("state").map_err(db)?;
        let created_at: i64 = r.try_get("created_at").map_err(db)?;
        stored.push((id, tenant, key, row::state(id, &state)?, created_at));
    }
    let mut holders: Vec<Holder<'_>> = stored
        .iter()
        .map(|(id, tenant, key, state, created_at)| Holder {
            tenant: tenant.as_deref(),
            key,
            id: Either::Stored(*id),
            state: *state,
            created_at: *created_at,
        })
        .collect();

    // Decide, in input order, which jobs are new and which are duplicates.
    let mut slots = Vec::with_capacity(jobs.len());
    let mut to_insert: Vec<&ValidJob> = Vec::new();
    for j in jobs {
        if let Some((key, mode)) = &j.unique {
            let since = match mode {
                UniqueMode::WhileUnfinished => None,
                UniqueMode::Period { period } => Some(now_us.saturating_sub(micros(*period))),
            };
            // The newest holder wins: batch jobs are newer than stored ones.
            let found = holders
                .iter()
                .filter(|h| h.key == key && h.tenant == j.tenant.as_deref())
                .filter(|h| !h.state.is_finished() || since.is_some_and(|s| h.created_at > s))
                .max_by_key(|h| match h.id {
                    Either::Stored(id) => (0, id),
                    Either::New(i) => (1, i as i64),
                });
            if let Some(h) = found {
                slots.push(Slot::Duplicate(h.id, h.state));
                continue;
            }
            holders.push(Holder {
                tenant: j.tenant.as_deref(),
                key,
                id: Either::New(to_insert.len()),
                state: if j.run_at <= now {
                    JobState::Available
                } else {
                    JobState::Scheduled
                },
                created_at: now_us,
            });
        }
        slots.push(Slot::New(to_insert.len()));
        to_insert.push(j);
    }

    let written = insert_rows(conn, sql, &to_insert, now, notify).await?;
    let resolve = |e: Either| match e {
        Either::Stored(id) => JobId(id),
        Either::New(i) => written[i].0,
    };
    Ok(slots
        .into_iter()
        .map(|s| match s {
            Slot::New(i) => Inserted {
                id: written[i].0,
                duplicate: false,
                state: written[i].1,
            },
            Slot::Duplicate(e, state) => Inserted {
                id: resolve(e),
                duplicate: true,
                state,
            },
        })
        .collect())
}

/// Inserts jobs without unique keys: one statement, atomic on its own.
pub(crate) async fn insert_plain(
    conn: &mut PgConnection,
    sql: &Sql,
    jobs: &[ValidJob],
    now: Timestamp,
    notify: Notify,
) -> Result<Vec<Inserted>, StoreError> {
    let refs: Vec<&ValidJob> = jobs.iter().collect();
    Ok(insert_rows(conn, sql, &refs, now, notify)
        .await?
        .into_iter()
        .map(|(id, state)| Inserted {
            id,
            duplicate: false,
            state,
        })
        .collect())
}
