//! Recording how attempts ended: the whole batch in one fenced statement.

use std::collections::HashSet;

use errand_core::clock::to_micros;
use errand_core::store::CompletionResult;
use errand_core::{Completion, Finish, StoreError};
use jiff::Timestamp;
use sqlx::{PgConnection, Row};

use crate::error::{db, json};
use crate::insert::shared;
use crate::sql::Sql;

/// A handler's result as JSON text: kept as is when it is JSON, else stored
/// as a JSON string holding the text (the column is `json`, and one bad
/// result must not fail a whole batch of completions).
fn result_json(result: &Option<String>) -> Option<String> {
    result.as_ref().map(|r| {
        if serde_json::from_str::<serde::de::IgnoredAny>(r).is_ok() {
            r.clone()
        } else {
            serde_json::Value::String(r.clone()).to_string()
        }
    })
}

/// Writes `items`, each only if its job is still running under its lease
/// token. Results are in input order. A job named twice in one batch is
/// written once, by its first completion.
pub(crate) async fn complete_rows(
    conn: &mut PgConnection,
    sql: &Sql,
    items: &[Completion],
    now: Timestamp,
) -> Result<Vec<CompletionResult>, StoreError> {
    let n = items.len();
    let mut first = HashSet::with_capacity(n);
    let mut sent = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut token = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut result = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut give_back = Vec::with_capacity(n);
    let mut failed = Vec::with_capacity(n);
    let mut remove = Vec::with_capacity(n);
    for c in items {
        let is_first = first.insert(c.id);
        sent.push(is_first);
        if !is_first {
            continue;
        }
        id.push(c.id.0);
        token.push(c.lease_token);
        state.push(c.finish.target_state().as_str());
        let (at, res, err, back, fail) = match &c.finish {
            Finish::Complete { result } => (None, result_json(result), None, false, false),
            Finish::Retry { at, error } => (Some(to_micros(*at)), None, Some(json(error)?), false, true),
            Finish::Discard { error } => (None, None, Some(json(error)?), false, true),
            Finish::Snooze { at } => (Some(to_micros(*at)), None, None, true, false),
            Finish::Defer { at, note } => (Some(to_micros(*at)), None, Some(json(note)?), true, false),
            Finish::Cancel { error } => (None, None, Some(json(error)?), false, false),
            // Claimed but never started: the attempt is given back.
            Finish::Expire => (None, None, None, true, false),
            Finish::HandBack => (None, None, None, true, false),
            Finish::CompleteAndDelete => (None, None, None, false, false),
        };
        remove.push(matches!(c.finish, Finish::CompleteAndDelete));
        run_at.push(at);
        result.push(res);
        error.push(err);
        give_back.push(back);
        failed.push(fail);
    }
    let rows = sqlx::query(&sql.complete_batch)
        .bind(to_micros(now))
        .bind(&id)
        .bind(&token)
        .bind(shared(state))
        .bind(shared(run_at))
        .bind(shared(result))
        .bind(shared(error))
        .bind(shared(give_back))
        .bind(shared(failed))
        .bind(shared(remove))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut done = HashSet::with_capacity(rows.len());
    for r in &rows {
        done.insert(r.try_get::<i64, _>(0).map_err(db)?);
    }
    Ok(items
        .iter()
        .zip(sent)
        .map(|(c, sent)| {
            if sent && done.contains(&c.id.0) {
                CompletionResult::Done
            } else {
                CompletionResult::LeaseLost
            }
        })
        .collect())
}
