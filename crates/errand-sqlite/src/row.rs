//! Mapping between rows and the core model.

use std::time::Duration;

use rusqlite::Row;

use errand_core::clock::from_micros;
use errand_core::{Job, JobId, JobState, Lease};

/// Reads a `jobs` row selected with `*` (columns in table order).
pub(crate) fn job(r: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(6)?;
    let lease_owner: Option<String> = r.get(23)?;
    let lease_expires: Option<i64> = r.get(25)?;
    let json_err = |i: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let tags: String = r.get(17)?;
    let retry: Option<String> = r.get(19)?;
    let progress: Option<String> = r.get(20)?;
    let errors: String = r.get(22)?;
    Ok(Job {
        id: JobId(r.get(0)?),
        tenant: r.get(1)?,
        queue: r.get(2)?,
        kind: r.get(3)?,
        args: r.get(4)?,
        priority: r.get(5)?,
        state: JobState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown job state {state:?}").into(),
            )
        })?,
        attempt: r.get(7)?,
        max_attempts: r.get(8)?,
        run_at: from_micros(r.get(9)?),
        created_at: from_micros(r.get(10)?),
        attempted_at: r.get::<_, Option<i64>>(11)?.map(from_micros),
        finished_at: r.get::<_, Option<i64>>(12)?.map(from_micros),
        expires_at: r.get::<_, Option<i64>>(13)?.map(from_micros),
        unique_key: r.get(14)?,
        timeout: r
            .get::<_, Option<i64>>(16)?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        tags: if tags == "[]" {
            Vec::new()
        } else {
            serde_json::from_str(&tags).map_err(|e| json_err(17, e))?
        },
        meta: r.get(18)?,
        retry: retry
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| json_err(19, e))?,
        progress: progress
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| json_err(20, e))?,
        result: r.get(21)?,
        errors: if errors == "[]" {
            Vec::new()
        } else {
            serde_json::from_str(&errors).map_err(|e| json_err(22, e))?
        },
        lease: match (lease_owner, lease_expires) {
            (Some(owner), Some(exp)) => Some(Lease {
                owner,
                token: r.get(24)?,
                expires_at: from_micros(exp),
            }),
            _ => None,
        },
        cancel_requested: r.get::<_, i64>(26)? != 0,
    })
}

pub(crate) use crate::error::err;
