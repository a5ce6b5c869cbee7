//! Mapping between rows and the core model.

use std::time::Duration;

use errand_core::clock::from_micros;
use errand_core::{Job, JobId, JobState, Lease, StoreError};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::db;

fn parse_json<T: serde::de::DeserializeOwned>(id: i64, column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Backend(errand_core::BackendError::permanent(format!(
            "job {id}: column {column} holds unreadable JSON: {e}"
        )))
    })
}

pub(crate) fn state(id: i64, s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| {
        StoreError::Backend(errand_core::BackendError::permanent(format!(
            "job {id}: unknown state {s:?}"
        )))
    })
}

/// The `__JOB__` column list (see `sql.rs`), in order: rows are read by
/// position, which spares a name lookup per column of every claimed job.
/// A test in `sql.rs` checks the list against the statement's.
#[cfg(test)]
pub(crate) const JOB_COLUMN_NAMES: [&str; 26] = [
    "id",
    "tenant",
    "queue",
    "kind",
    "args",
    "priority",
    "state",
    "attempt",
    "max_attempts",
    "run_at",
    "created_at",
    "attempted_at",
    "finished_at",
    "expires_at",
    "unique_key",
    "timeout_ms",
    "tags",
    "meta",
    "retry",
    "progress",
    "result",
    "errors",
    "lease_owner",
    "lease_token",
    "lease_expires_at",
    "cancel_requested",
];

/// Reads a row selected with the `__JOB__` column list.
pub(crate) fn job(r: &PgRow) -> Result<Job, StoreError> {
    // Unchecked: the statement fixes every column's type (a unit test in
    // sql.rs checks the list), and checking each value's type against the
    // row description was a tenth of decoding a claim.
    fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres>>(r: &'r PgRow, i: usize) -> Result<T, StoreError> {
        r.try_get_unchecked(i).map_err(db)
    }
    let id: i64 = get(r, 0)?;
    let state = state(id, get::<&str>(r, 6)?)?;
    let tags: &str = get(r, 16)?;
    let retry: Option<&str> = get(r, 18)?;
    let progress: Option<&str> = get(r, 19)?;
    let errors: &str = get(r, 21)?;
    let lease_owner: Option<String> = get(r, 22)?;
    let lease_expires: Option<i64> = get(r, 24)?;
    Ok(Job {
        id: JobId(id),
        tenant: get(r, 1)?,
        queue: get(r, 2)?,
        kind: get(r, 3)?,
        args: get(r, 4)?,
        priority: get(r, 5)?,
        state,
        attempt: get(r, 7)?,
        max_attempts: get(r, 8)?,
        run_at: from_micros(get(r, 9)?),
        created_at: from_micros(get(r, 10)?),
        attempted_at: get::<Option<i64>>(r, 11)?.map(from_micros),
        finished_at: get::<Option<i64>>(r, 12)?.map(from_micros),
        expires_at: get::<Option<i64>>(r, 13)?.map(from_micros),
        unique_key: get(r, 14)?,
        timeout: get::<Option<i64>>(r, 15)?.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        tags: if tags == "[]" {
            Vec::new()
        } else {
            parse_json(id, "tags", tags)?
        },
        meta: get(r, 17)?,
        retry: retry.map(|s| parse_json(id, "retry", s)).transpose()?,
        progress: progress.map(|s| parse_json(id, "progress", s)).transpose()?,
        result: get(r, 20)?,
        errors: if errors == "[]" {
            Vec::new()
        } else {
            parse_json(id, "errors", errors)?
        },
        lease: match (state, lease_owner, lease_expires) {
            (JobState::Running, Some(owner), Some(exp)) => Some(Lease {
                owner,
                token: get(r, 23)?,
                expires_at: from_micros(exp),
            }),
            _ => None,
        },
        cancel_requested: get(r, 25)?,
    })
}

/// Reads every row as a job.
pub(crate) fn jobs(rows: &[PgRow]) -> Result<Vec<Job>, StoreError> {
    rows.iter().map(job).collect()
}
