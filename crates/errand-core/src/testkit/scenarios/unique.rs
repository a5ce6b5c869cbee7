//! Unique keys: duplicates name the existing job and write nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{Finish, JobId, JobState, NewJob};
use crate::store::{JobFilter, Scope, Store};
use crate::testkit::support::*;

async fn count_jobs(store: &dyn Store) -> usize {
    list_all(store, &JobFilter::default()).await.len()
}

/// With [`UniqueMode::WhileUnfinished`](crate::UniqueMode), enqueueing a key
/// that an unfinished job holds returns that job's id and state with
/// `duplicate: true`, writes nothing (the original keeps its own args), and
/// this holds while the job is available, running and retryable.
pub async fn unique_key_while_unfinished_returns_the_existing_job(store: Arc<dyn Store>) {
    let s = &*store;
    let first = add(s, NewJob::new("sync", r#"{"v":1}"#).unique_key("sync:42"), at(0)).await;

    let dup = |now| {
        insert1(
            s,
            NewJob::new("sync", r#"{"v":2}"#)
                .priority(1)
                .unique_key("sync:42"),
            now,
        )
    };
    let d = dup(at(1)).await;
    assert_eq!(
        (d.id, d.duplicate, d.state),
        (first, true, JobState::Available),
        "duplicate of an available job"
    );

    let job = claim_id(s, "default", first, at(2)).await;
    let d = dup(at(3)).await;
    assert_eq!(
        (d.id, d.duplicate, d.state),
        (first, true, JobState::Running),
        "duplicate of a running job"
    );

    let retry = Finish::Retry {
        at: at(60),
        error: failure(1, at(4), "flaky"),
    };
    finish(s, &job, retry, at(4)).await;
    let d = dup(at(5)).await;
    assert_eq!(
        (d.id, d.duplicate, d.state),
        (first, true, JobState::Retryable),
        "duplicate of a retryable job"
    );

    assert_eq!(count_jobs(s).await, 1, "duplicates must not be written");
    let job = get(s, first).await;
    assert_json_eq("args of the original", &job.args, r#"{"v":1}"#);
    assert_eq!(job.priority, 100, "a duplicate must not change the original");
}

/// Once the job holding a [`UniqueMode::WhileUnfinished`](crate::UniqueMode)
/// key has finished (completed, or cancelled), the key is free: a new job
/// is written.
pub async fn unique_key_while_unfinished_is_free_once_the_job_finished(store: Arc<dyn Store>) {
    let s = &*store;
    let first = add(s, NewJob::new("sync", "{}").unique_key("k1"), at(0)).await;
    run_to_completion(s, "default", first, at(1)).await;
    let second = insert1(s, NewJob::new("sync", "{}").unique_key("k1"), at(2)).await;
    assert!(
        !second.duplicate,
        "key of a completed job is still taken: {second:?}"
    );
    assert_ne!(second.id, first);
    assert_eq!(second.state, JobState::Available);

    let third = insert1(s, NewJob::new("sync", "{}").unique_key("k1"), at(3)).await;
    assert_eq!(
        (third.id, third.duplicate),
        (second.id, true),
        "the new job holds the key"
    );

    let other = add(s, NewJob::new("sync", "{}").unique_key("k2"), at(4)).await;
    ok("cancel_job", s.cancel_job(other, &Scope::All, at(5)).await);
    let again = insert1(s, NewJob::new("sync", "{}").unique_key("k2"), at(6)).await;
    assert!(
        !again.duplicate,
        "key of a cancelled job is still taken: {again:?}"
    );
    assert_eq!(count_jobs(s).await, 4);
}

/// With [`UniqueMode::Period`](crate::UniqueMode), a key stays taken for
/// `period` after the holder's creation whatever its state (finished
/// included), and is free from exactly `created_at + period` ("created less
/// than `period` ago" is a duplicate).
pub async fn unique_key_with_period_holds_whatever_the_state(store: Arc<dyn Store>) {
    let s = &*store;
    let period = secs(60);
    let job = || NewJob::new("digest", "{}").unique_for("digest:daily", period);
    let first = add(s, job(), at(0)).await;
    run_to_completion(s, "default", first, at(5)).await;

    let d = insert1(s, job(), at(10)).await;
    assert_eq!(
        (d.id, d.duplicate, d.state),
        (first, true, JobState::Completed),
        "duplicate of a completed job within the period"
    );
    let last_moment = plus(at(59), Duration::from_micros(999_999));
    let d = insert1(s, job(), last_moment).await;
    assert_eq!((d.id, d.duplicate), (first, true), "1µs before the period ends");

    let second = insert1(s, job(), at(60)).await;
    assert!(!second.duplicate, "the period has passed, yet: {second:?}");
    let d = insert1(s, job(), at(61)).await;
    assert_eq!(
        (d.id, d.duplicate),
        (second.id, true),
        "the new job holds the key"
    );
    assert_eq!(count_jobs(s).await, 2);
}

/// Unique keys are scoped by tenant: the same key under two tenants (and
/// under no tenant) makes separate jobs; within one scope it deduplicates,
/// the no-tenant scope included.
pub async fn unique_keys_are_scoped_by_tenant(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let job = |tenant: Option<&str>| {
        let j = NewJob::new("invoice", "{}").unique_key("invoice:7");
        match tenant {
            Some(t) => j.tenant(t),
            None => j,
        }
    };
    let a = add(s, job(Some("acme")), now).await;
    let b = add(s, job(Some("globex")), now).await;
    let none = add(s, job(None), now).await;
    assert!(
        a != b && b != none && a != none,
        "three separate jobs: {a} {b} {none}"
    );

    let d = insert1(s, job(Some("acme")), at(1)).await;
    assert_eq!((d.id, d.duplicate), (a, true), "same tenant, same key");
    let d = insert1(s, job(None), at(1)).await;
    assert_eq!((d.id, d.duplicate), (none, true), "no tenant, same key");
    assert_eq!(count_jobs(s).await, 3);
}

/// In one batch, a job repeating a key taken earlier in the same batch (or
/// already stored) is not written; its result names the job that holds the key.
pub async fn duplicate_keys_inside_one_batch_make_one_job(store: Arc<dyn Store>) {
    let s = &*store;
    let stored = add(s, NewJob::new("k", "{}").unique_key("old"), at(0)).await;
    let out = insert(
        s,
        vec![
            NewJob::new("k", r#"{"i":0}"#).unique_key("a"),
            NewJob::new("k", r#"{"i":1}"#).unique_key("b"),
            NewJob::new("k", r#"{"i":2}"#).unique_key("a"),
            NewJob::new("k", r#"{"i":3}"#),
            NewJob::new("k", r#"{"i":4}"#).unique_key("old"),
            NewJob::new("k", r#"{"i":5}"#).unique_key("a"),
        ],
        at(1),
    )
    .await;
    let flags: Vec<bool> = out.iter().map(|i| i.duplicate).collect();
    assert_eq!(
        flags,
        [false, false, true, false, true, true],
        "duplicate flags: {out:?}"
    );
    assert_eq!(out[2].id, out[0].id, "in-batch duplicate names the first holder");
    assert_eq!(out[5].id, out[0].id, "in-batch duplicate names the first holder");
    assert_eq!(out[4].id, stored, "duplicate of a stored job names it");
    let new: Vec<JobId> = [0, 1, 3].iter().map(|&i| out[i].id).collect();
    assert!(
        new[0] != new[1] && new[1] != new[2] && new[0] != new[2],
        "{new:?}"
    );
    assert_eq!(count_jobs(s).await, 4, "one stored + three new");
    assert_json_eq(
        "args of the key's holder",
        &get(s, out[0].id).await.args,
        r#"{"i":0}"#,
    );
}

/// Two producers racing to insert the same keys (as two schedulers firing
/// the same tick do) create exactly one job per key; every other insert is
/// reported as a duplicate of it.
pub async fn concurrent_inserts_of_one_key_make_one_job(store: Arc<dyn Store>) {
    const KEYS: usize = 25;
    let now = t0();
    let mut tasks = Vec::new();
    for producer in 0..2 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for k in 0..KEYS {
                // The two producers walk the keys in opposite orders to collide both ways.
                let k = if producer == 0 { k } else { KEYS - 1 - k };
                let job = valid(NewJob::new("tick", "{}").unique_key(format!("tick:{k}")), now);
                let ins = ok("insert_jobs", store.insert_jobs(vec![job], now).await);
                out.push((k, ins[0].clone()));
            }
            out
        }));
    }
    let mut by_key: Vec<Vec<(JobId, bool)>> = vec![Vec::new(); KEYS];
    for t in tasks {
        for (k, ins) in t.await.expect("producer task panicked") {
            by_key[k].push((ins.id, ins.duplicate));
        }
    }
    for (k, results) in by_key.iter().enumerate() {
        let fresh = results.iter().filter(|(_, dup)| !dup).count();
        assert_eq!(fresh, 1, "key tick:{k}: one insert must win, got {results:?}");
        assert_eq!(
            results[0].0, results[1].0,
            "key tick:{k}: both results name one job"
        );
    }
    assert_eq!(count_jobs(&*store).await, KEYS);
}
