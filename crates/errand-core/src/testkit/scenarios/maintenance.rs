//! Maintenance: promotion of due jobs, expiry, pruning, and the totals that survive it.

use std::sync::Arc;

use crate::job::{Finish, JobId, JobState, NewJob};
use crate::retry::{RetryPolicies, RetryPolicy};
use crate::store::{CompletionResult, JobFilter, PruneRequest, Scope, Store};
use crate::testkit::support::*;

/// Scheduled and retryable jobs whose `run_at` has come (`run_at <= now`)
/// become available; later ones stay. The result lists each queue that
/// received jobs once; `limit` caps how many one call promotes.
pub async fn promote_due_makes_due_scheduled_and_retryable_jobs_available(store: Arc<dyn Store>) {
    let s = &*store;
    let a1 = add(s, job_in("a", "k").run_at(at(10)), at(0)).await;
    let a2 = add(s, job_in("a", "k").run_at(at(15)), at(0)).await;
    let b = add(s, job_in("b", "k"), at(0)).await;
    let job = claim_id(s, "b", b, at(1)).await;
    let retry = Finish::Retry {
        at: at(20),
        error: failure(1, at(2), "x"),
    };
    finish(s, &job, retry, at(2)).await;
    let c = add(s, job_in("c", "k").run_at(at(100)), at(0)).await;

    let none = ok("promote_due", s.promote_due(at(9), 100).await);
    assert!(none.is_empty(), "nothing is due at 9s: {none:?}");
    assert_eq!(state_of(s, a1).await, JobState::Scheduled);

    let mut queues = ok("promote_due", s.promote_due(at(20), 100).await);
    queues.sort();
    assert_eq!(
        queues,
        vec!["a".to_owned(), "b".to_owned()],
        "queues that received jobs, once each"
    );
    for id in [a1, a2, b] {
        assert_eq!(
            state_of(s, id).await,
            JobState::Available,
            "job {id} is due at 20s"
        );
    }
    assert_eq!(
        state_of(s, c).await,
        JobState::Scheduled,
        "job due at 100s stays scheduled"
    );
    assert_eq!(get(s, a1).await.run_at, at(10), "promotion keeps run_at");

    let queues = ok("promote_due", s.promote_due(at(100), 100).await);
    assert_eq!(queues, vec!["c".to_owned()], "job c is due at 100s");
    assert_eq!(state_of(s, c).await, JobState::Available);

    // The limit.
    insert(
        s,
        (0..3).map(|i| job_in("d", "k").run_at(at(200 + i))).collect(),
        at(0),
    )
    .await;
    let d = JobFilter {
        queue: Some("d".into()),
        states: vec![JobState::Available],
        ..JobFilter::default()
    };
    ok("promote_due", s.promote_due(at(300), 2).await);
    assert_eq!(list_all(s, &d).await.len(), 2, "a limit of 2 promotes 2");
    ok("promote_due", s.promote_due(at(300), 2).await);
    assert_eq!(list_all(s, &d).await.len(), 3, "the next call promotes the rest");
}

/// `next_due_at` is the earliest `run_at` among scheduled and retryable
/// jobs; available, running and finished jobs do not count; `None` when
/// there are none.
pub async fn next_due_at_is_the_earliest_scheduled_or_retryable_run_at(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(ok("next_due_at", s.next_due_at().await), None, "empty store");
    // Inserted at -60s, due at -50s: scheduled.
    add(s, NewJob::new("k", "{}").run_at(at(-50)), at(-60)).await;
    assert_eq!(
        ok("next_due_at", s.next_due_at().await),
        Some(at(-50)),
        "a scheduled job"
    );
    ok("promote_due", s.promote_due(at(-50), 10).await);
    assert_eq!(
        ok("next_due_at", s.next_due_at().await),
        None,
        "only an available job is left"
    );

    add(s, NewJob::new("k", "{}").run_at(at(50)), at(0)).await;
    add(s, NewJob::new("k", "{}").run_at(at(30)), at(0)).await;
    assert_eq!(ok("next_due_at", s.next_due_at().await), Some(at(30)));
    let job = claim(s, "default", 1, WORKER, at(1)).await.remove(0);
    let retry = Finish::Retry {
        at: plus(at(20), std::time::Duration::from_micros(1)),
        error: failure(1, at(2), "x"),
    };
    finish(s, &job, retry, at(2)).await;
    assert_eq!(
        ok("next_due_at", s.next_due_at().await),
        Some(plus(at(20), std::time::Duration::from_micros(1))),
        "a retryable job counts"
    );
}

/// Unstarted jobs (scheduled or available) whose `expires_at` has passed
/// become expired, finished now; running jobs and jobs not yet past
/// their expiry are left alone; `limit` caps one call.
pub async fn expire_due_expires_unstarted_jobs_past_their_deadline(store: Arc<dyn Store>) {
    let s = &*store;
    let available = add(s, NewJob::new("k", "{}").expires_at(at(10)), at(0)).await;
    let scheduled = add(s, NewJob::new("k", "{}").run_at(at(5)).expires_at(at(20)), at(0)).await;
    let running = add(s, job_in("busy", "k").expires_at(at(10)), at(0)).await;
    claim_id(s, "busy", running, at(1)).await;
    let later = add(s, NewJob::new("k", "{}").expires_at(at(1000)), at(0)).await;

    assert_eq!(
        ok("expire_due", s.expire_due(at(9), 100).await),
        0,
        "nothing has expired at 9s"
    );
    assert_eq!(ok("expire_due", s.expire_due(at(15), 100).await), 1);
    let job = get(s, available).await;
    assert_eq!(job.state, JobState::Expired);
    assert_eq!(job.finished_at, Some(at(15)), "finished_at of an expired job");
    assert_eq!(state_of(s, scheduled).await, JobState::Scheduled);

    assert_eq!(ok("expire_due", s.expire_due(at(25), 100).await), 1);
    assert_eq!(
        state_of(s, scheduled).await,
        JobState::Expired,
        "a scheduled job expires too"
    );
    assert_eq!(
        state_of(s, running).await,
        JobState::Running,
        "a started job is not expired"
    );
    assert_eq!(state_of(s, later).await, JobState::Available);

    insert(
        s,
        (0..3)
            .map(|_| NewJob::new("k", "{}").expires_at(at(2000)))
            .collect(),
        at(0),
    )
    .await;
    assert_eq!(
        ok("expire_due", s.expire_due(at(3000), 2).await),
        2,
        "the limit caps one call"
    );
    assert_eq!(
        ok("expire_due", s.expire_due(at(3000), 10).await),
        2,
        "the rest (3rd + `later`)"
    );
}

/// Puts a finished job of each final state into `queue`, finished at the
/// given seconds, and returns their ids.
async fn finished_jobs(s: &dyn Store, queue: &str, done_at: [i64; 4]) -> Vec<JobId> {
    let ids: Vec<JobId> = insert(
        s,
        vec![
            job_in(queue, "k").priority(0),
            job_in(queue, "k").priority(1),
            job_in(queue, "k").priority(2),
            job_in(queue, "k").priority(3).expires_at(at(done_at[3])),
        ],
        at(-10),
    )
    .await
    .iter()
    .map(|i| i.id)
    .collect();
    let job = claim_id(s, queue, ids[0], at(-5)).await;
    finish(s, &job, Finish::Complete { result: None }, at(done_at[0])).await;
    let job = claim_id(s, queue, ids[1], at(-5)).await;
    let discard = Finish::Discard {
        error: failure(1, at(done_at[1]), "x"),
    };
    finish(s, &job, discard, at(done_at[1])).await;
    ok(
        "cancel_job",
        s.cancel_job(ids[2], &Scope::All, at(done_at[2])).await,
    );
    let job = claim_id(s, queue, ids[3], at(-5)).await;
    assert_eq!(
        finish(s, &job, Finish::Expire, at(done_at[3])).await,
        CompletionResult::Done
    );
    for &id in &ids {
        assert!(state_of(s, id).await.is_finished(), "setup: job {id} is finished");
    }
    ids
}

fn prune(before: i64, queue: Option<&str>, except: &[&str], limit: usize) -> PruneRequest {
    PruneRequest {
        finished_before: at(before),
        queue: queue.map(str::to_owned),
        except_queues: except.iter().map(|q| (*q).to_owned()).collect(),
        limit,
    }
}

async fn exists(s: &dyn Store, id: JobId) -> bool {
    s.get_job(id, &Scope::All).await.is_ok()
}

/// Pruning deletes finished jobs (all four final states) whose
/// `finished_at` is strictly before the horizon, and nothing unfinished.
pub async fn prune_finished_deletes_only_jobs_finished_before_the_horizon(store: Arc<dyn Store>) {
    let s = &*store;
    let old = finished_jobs(s, "default", [1, 2, 3, 4]).await;
    let recent = finished_jobs(s, "default", [10, 10, 10, 10]).await;
    let waiting = add(s, NewJob::new("k", "{}").priority(500), at(0)).await;
    let busy = add(s, NewJob::new("k", "{}"), at(0)).await;
    claim_id(s, "default", busy, at(1)).await;
    let later = add(s, NewJob::new("k", "{}").run_at(at(5000)), at(0)).await;

    let n = ok(
        "prune_finished",
        s.prune_finished(&prune(10, None, &[], 100)).await,
    );
    assert_eq!(
        n, 4,
        "the four jobs finished before 10s (not those finished at 10s)"
    );
    for id in old {
        assert_not_found("get_job of a pruned job", id, s.get_job(id, &Scope::All).await);
    }
    for id in recent.into_iter().chain([waiting, busy, later]) {
        assert!(exists(s, id).await, "job {id} must survive the prune");
    }
}

/// `queue: Some(q)` prunes only `q`; `queue: None` prunes every queue but
/// those in `except_queues`; `limit` caps one call.
pub async fn prune_finished_targets_queues_and_honours_its_limit(store: Arc<dyn Store>) {
    let s = &*store;
    let a = finished_jobs(s, "a", [1, 2, 3, 4]).await;
    let b = finished_jobs(s, "b", [1, 2, 3, 4]).await;
    let c = finished_jobs(s, "c", [1, 2, 3, 4]).await;

    let n = ok(
        "prune_finished",
        s.prune_finished(&prune(100, Some("a"), &[], 100)).await,
    );
    assert_eq!(n, 4, "only queue a");
    for &id in b.iter().chain(&c) {
        assert!(exists(s, id).await, "job {id} of another queue must survive");
    }
    let n = ok(
        "prune_finished",
        s.prune_finished(&prune(100, None, &["b"], 3)).await,
    );
    assert_eq!(n, 3, "the limit caps one call");
    let n = ok(
        "prune_finished",
        s.prune_finished(&prune(100, None, &["b"], 3)).await,
    );
    assert_eq!(n, 1, "the rest of queue c");
    let n = ok(
        "prune_finished",
        s.prune_finished(&prune(100, None, &["b"], 3)).await,
    );
    assert_eq!(n, 0, "nothing left outside b");
    for id in b {
        assert!(exists(s, id).await, "job {id} of an excepted queue must survive");
    }
    for id in a.into_iter().chain(c) {
        assert!(!exists(s, id).await, "job {id} should be pruned");
    }
}

/// `completed_total`, `failed_total` (attempts that failed: retried,
/// discarded, or lost and rescued) and `discarded_total` count every such
/// event and are unchanged by pruning the jobs.
pub async fn queue_totals_count_outcomes_and_survive_pruning(store: Arc<dyn Store>) {
    let s = &*store;
    let q = "totals";
    let ids: Vec<JobId> = insert(s, (0..5).map(|i| job_in(q, "k").priority(i)).collect(), at(0))
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let jobs = claim(s, q, 5, WORKER, at(1)).await;
    let job = |i: usize| jobs.iter().find(|j| j.id == ids[i]).expect("claimed").clone();
    finish(s, &job(0), Finish::Complete { result: None }, at(2)).await;
    finish(s, &job(1), Finish::Complete { result: None }, at(2)).await;
    let retry = Finish::Retry {
        at: at(3),
        error: failure(1, at(2), "x"),
    };
    finish(s, &job(2), retry, at(2)).await;
    let discard = Finish::Discard {
        error: failure(1, at(2), "x"),
    };
    finish(s, &job(3), discard, at(2)).await;
    // job 4 loses its lease and is rescued: a failed attempt.
    let policy = RetryPolicies::from(RetryPolicy::fixed(secs(1)));
    assert_eq!(ok("rescue", rescue(s, at(100), &policy, 10).await), 1);

    let before = queue_stats(s, q, at(100)).await;
    assert_eq!(
        (
            before.completed_total,
            before.failed_total,
            before.discarded_total
        ),
        (Some(2), Some(3), Some(1)),
        "(completed, failed, discarded) totals: {before:?}"
    );
    let n = ok(
        "prune_finished",
        s.prune_finished(&prune(1000, Some(q), &[], 100)).await,
    );
    assert_eq!(n, 3, "two completed and one discarded job are pruned");
    let after = queue_stats(s, q, at(100)).await;
    assert_eq!(
        (after.completed_total, after.failed_total, after.discarded_total),
        (Some(2), Some(3), Some(1)),
        "totals after pruning: {after:?}"
    );
    for st in JobState::FINISHED {
        assert_eq!(
            after.counts.get(&st),
            None,
            "no {st} job is left: {:?}",
            after.counts
        );
    }
    assert_eq!(
        after.counts.get(&JobState::Retryable),
        Some(&2),
        "{:?}",
        after.counts
    );
}
