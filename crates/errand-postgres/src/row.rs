//! Mapping between rows and the core model.

use std::time::Duration;

use errand_core::clock::from_micros;
use errand_core::{Job, JobId, JobState, Lease, StoreError};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::db;

fn parse_json<T: serde::de::DeserializeOwned>(id: i64, column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("job {id}: column {column} holds unreadable JSON: {e}")))
}

pub(crate) fn state(id: i64, s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::Backend(format!("job {id}: unknown state {s:?}")))
}

/// Reads a row selected with the `__JOB__` column list (see `sql.rs`).
pub(crate) fn job(r: &PgRow) -> Result<Job, StoreError> {
    let id: i64 = r.try_get("id").map_err(db)?;
    let state_name: String = r.try_get("state").map_err(db)?;
    let tags: String = r.try_get("tags").map_err(db)?;
    let retry: Option<String> = r.try_get("retry").map_err(db)?;
    let progress: Option<String> = r.try_get("progress").map_err(db)?;
    let errors: String = r.try_get("errors").map_err(db)?;
    let lease_owner: Option<String> = r.try_get("lease_owner").map_err(db)?;
    let lease_expires: Option<i64> = r.try_get("lease_expires_at").map_err(db)?;
    let state = state(id, &state_name)?;
    Ok(Job {
        id: JobId(id),
        tenant: r.try_get("tenant").map_err(db)?,
        queue: r.try_get("queue").map_err(db)?,
        kind: r.try_get("kind").map_err(db)?,
        args: r.try_get("args").map_err(db)?,
        priority: r.try_get("priority").map_err(db)?,
        state,
        attempt: r.try_get("attempt").map_err(db)?,
        max_attempts: r.try_get("max_attempts").map_err(db)?,
        run_at: from_micros(r.try_get("run_at").map_err(db)?),
        created_at: from_micros(r.try_get("created_at").map_err(db)?),
        attempted_at: r
            .try_get::<Option<i64>, _>("attempted_at")
            .map_err(db)?
            .map(from_micros),
        finished_at: r
            .try_get::<Option<i64>, _>("finished_at")
            .map_err(db)?
            .map(from_micros),
        expires_at: r
            .try_get::<Option<i64>, _>("expires_at")
            .map_err(db)?
            .map(from_micros),
        unique_key: r.try_get("unique_key").map_err(db)?,
        timeout: r
            .try_get::<Option<i64>, _>("timeout_ms")
            .map_err(db)?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        tags: if tags == "[]" {
            Vec::new()
        } else {
            parse_json(id, "tags", &tags)?
        },
        meta: r.try_get("meta").map_err(db)?,
        retry: retry.map(|s| parse_json(id, "retry", &s)).transpose()?,
        progress: progress.map(|s| parse_json(id, "progress", &s)).transpose()?,
        result: r.try_get("result").map_err(db)?,
        errors: if errors == "[]" {
            Vec::new()
        } else {
            parse_json(id, "errors", &errors)?
        },
        lease: match (state, lease_owner, lease_expires) {
            (JobState::Running, Some(owner), Some(exp)) => Some(Lease {
                owner,
                token: r.try_get("lease_token").map_err(db)?,
                expires_at: from_micros(exp),
            }),
            _ => None,
        },
        cancel_requested: r.try_get("cancel_requested").map_err(db)?,
    })
}

/// Reads every row as a job.
pub(crate) fn jobs(rows: &[PgRow]) -> Result<Vec<Job>, StoreError> {
    rows.iter().map(job).collect()
}
