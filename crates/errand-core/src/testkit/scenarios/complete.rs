//! `complete_batch`: every [`Finish`] and the fencing of completions.

use std::sync::Arc;

use crate::job::{Completion, Finish, Job, JobId, JobState, NewJob};
use crate::store::{CompletionResult, Scope, Store};
use crate::testkit::support::*;

/// Inserts one job at 0s and claims it at 1s.
async fn running(store: &dyn Store, job: NewJob) -> Job {
    let id = add(store, job, at(0)).await;
    claim_id(store, "default", id, at(1)).await
}

fn assert_finished(job: &Job, state: JobState, now: jiff::Timestamp) {
    assert_eq!(job.state, state, "state after the completion");
    assert_eq!(
        job.finished_at,
        Some(now),
        "finished_at of a {state} job is the completion's now"
    );
    assert_eq!(job.lease, None, "a {state} job holds no lease");
}

/// `Complete` makes the job completed with its result, `finished_at` = now,
/// the lease cleared and the attempt count kept.
pub async fn complete_stores_the_result_and_finishes_the_job(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}")).await;
    let result = Finish::Complete {
        result: Some(r#"{"rows":1200,"file":"out.csv"}"#.into()),
    };
    assert_eq!(finish(s, &job, result, at(2)).await, CompletionResult::Done);
    let job = get(s, job.id).await;
    assert_finished(&job, JobState::Completed, at(2));
    assert_json_eq(
        "result",
        job.result.as_deref().expect("result stored"),
        r#"{"rows":1200,"file":"out.csv"}"#,
    );
    assert_eq!(job.attempt, 1, "attempt is kept");
    assert!(job.errors.is_empty(), "no error was recorded: {:?}", job.errors);
}

/// `Retry` makes the job retryable at the given `run_at`, appends the error
/// (attempt, time, message, worker) to the history, clears the lease, and
/// leaves it unfinished. A second failed attempt appends after the first.
pub async fn retry_appends_the_error_and_sets_the_next_run_at(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}")).await;
    let e1 = failure(1, at(2), "connection refused");
    let retry = Finish::Retry {
        at: at(32),
        error: e1.clone(),
    };
    assert_eq!(finish(s, &job, retry, at(2)).await, CompletionResult::Done);
    let got = get(s, job.id).await;
    assert_eq!(got.state, JobState::Retryable);
    assert_eq!(got.run_at, at(32), "run_at is the retry's time");
    assert_eq!(got.errors, vec![e1.clone()], "the error is kept whole");
    assert_eq!(got.lease, None, "lease cleared");
    assert_eq!(got.finished_at, None, "a retryable job is not finished");
    assert_eq!(got.attempt, 1, "the attempt was spent");

    ok("promote_due", s.promote_due(at(32), 100).await);
    let job = claim_id(s, "default", job.id, at(33)).await;
    assert_eq!(job.attempt, 2, "the next claim is attempt 2");
    let e2 = failure(2, at(34), "timeout");
    let retry = Finish::Retry {
        at: at(94),
        error: e2.clone(),
    };
    assert_eq!(finish(s, &job, retry, at(34)).await, CompletionResult::Done);
    assert_eq!(get(s, job.id).await.errors, vec![e1, e2], "errors oldest first");
}

/// `Discard` makes the job discarded with the error appended, `finished_at`
/// = now and the lease cleared.
pub async fn discard_appends_the_error_and_finishes_the_job(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}")).await;
    let e = failure(1, at(2), "invalid address");
    let discard = Finish::Discard { error: e.clone() };
    assert_eq!(finish(s, &job, discard, at(2)).await, CompletionResult::Done);
    let job = get(s, job.id).await;
    assert_finished(&job, JobState::Discarded, at(2));
    assert_eq!(job.errors, vec![e]);
}

/// `Snooze` makes the job scheduled at the given time and gives the attempt
/// back: the count drops by one, so a job with one attempt allowed can
/// snooze and still run.
pub async fn snooze_reschedules_and_gives_the_attempt_back(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}").max_attempts(1)).await;
    assert_eq!(job.attempt, 1);
    let snooze = Finish::Snooze { at: at(60) };
    assert_eq!(finish(s, &job, snooze, at(2)).await, CompletionResult::Done);
    let got = get(s, job.id).await;
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!(got.run_at, at(60), "run_at is the snooze's time");
    assert_eq!(got.attempt, 0, "the attempt is given back");
    assert_eq!(got.lease, None, "lease cleared");
    assert_eq!(got.finished_at, None);
    assert!(
        got.errors.is_empty(),
        "a snooze is not an error: {:?}",
        got.errors
    );

    ok("promote_due", s.promote_due(at(60), 100).await);
    let again = claim_id(s, "default", job.id, at(61)).await;
    assert_eq!(again.attempt, 1, "the snoozed job runs its attempt again");
}

/// `Defer` is a snooze with a note: the job is scheduled at the given time,
/// the attempt is given back, and the note is appended to its history.
pub async fn defer_reschedules_gives_the_attempt_back_and_keeps_its_note(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}").max_attempts(1)).await;
    let note = failure(0, at(2), "not run: no executor for this kind");
    let defer = Finish::Defer {
        at: at(60),
        note: note.clone(),
    };
    assert_eq!(finish(s, &job, defer, at(2)).await, CompletionResult::Done);
    let got = get(s, job.id).await;
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!(got.run_at, at(60));
    assert_eq!(got.attempt, 0, "the attempt is given back");
    assert_eq!(got.lease, None, "lease cleared");
    assert_eq!(got.errors, vec![note], "the note is kept");
    let q = queue_stats(s, "default", at(3)).await;
    assert_eq!(q.failed_total, Some(0), "a deferral is not a failure: {q:?}");
}

/// `HandBack` (graceful shutdown) makes the job available again at once,
/// with the attempt given back and the lease cleared.
pub async fn hand_back_makes_the_job_available_with_the_attempt_given_back(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}")).await;
    assert_eq!(
        finish(s, &job, Finish::HandBack, at(2)).await,
        CompletionResult::Done
    );
    let got = get(s, job.id).await;
    assert_eq!(got.state, JobState::Available);
    assert_eq!(got.attempt, 0, "the attempt is given back");
    assert_eq!(got.lease, None, "lease cleared");
    assert_eq!(got.finished_at, None);
    let again = claim_id(s, "default", job.id, at(2)).await;
    assert_eq!(again.attempt, 1, "the handed-back job runs its attempt again");
}

/// `Cancel` makes the job cancelled with the reason appended to its
/// history, `finished_at` = now and the lease cleared.
pub async fn cancel_finish_records_the_reason_and_finishes_the_job(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}")).await;
    let e = failure(1, at(2), "customer closed the account");
    assert_eq!(
        finish(s, &job, Finish::Cancel { error: e.clone() }, at(2)).await,
        CompletionResult::Done
    );
    let job = get(s, job.id).await;
    assert_finished(&job, JobState::Cancelled, at(2));
    assert_eq!(job.errors, vec![e]);
}

/// `Expire` makes a claimed job expired, `finished_at` = now, lease
/// cleared. Its handler never started, so the attempt is given back (as
/// for snooze and hand-back): `attempt` counts attempts started, and an
/// expired job that shows `attempt: 1` would look as if it had run.
pub async fn expire_finish_marks_the_claimed_job_expired(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}").expires_at(at(2))).await;
    assert_eq!(
        finish(s, &job, Finish::Expire, at(3)).await,
        CompletionResult::Done
    );
    let job = get(s, job.id).await;
    assert_finished(&job, JobState::Expired, at(3));
    assert_eq!(job.attempt, 0, "the unstarted attempt is given back");
    assert!(job.errors.is_empty(), "expiry is not an error: {:?}", job.errors);
}

/// One batch holding every kind of finish writes each job as if it had been
/// completed alone: a store may send the values a batch shares once, and
/// the rest per job, so mixing them must not leak one job's values into
/// another's.
pub async fn every_finish_in_one_batch_lands_on_its_own_job(store: Arc<dyn Store>) {
    let s = &*store;
    let new = |i: usize| NewJob::new("k", "{}").expires_at(at(1_000 + i as i64));
    let ids = insert(s, (0..7).map(new).collect(), at(0)).await;
    let jobs = claim(s, "default", 7, WORKER, at(1)).await;
    assert_eq!(jobs.len(), 7);
    let job = |i: usize| jobs.iter().find(|j| j.id == ids[i].id).expect("claimed").clone();
    let e_retry = failure(1, at(2), "connection refused");
    let e_discard = failure(1, at(2), "invalid address");
    let e_cancel = failure(1, at(2), "customer closed the account");
    let finishes = vec![
        Finish::Complete {
            result: Some(r#"{"rows":3}"#.into()),
        },
        Finish::Complete { result: None },
        Finish::Retry {
            at: at(40),
            error: e_retry.clone(),
        },
        Finish::Discard {
            error: e_discard.clone(),
        },
        Finish::Snooze { at: at(50) },
        Finish::Cancel {
            error: e_cancel.clone(),
        },
        Finish::HandBack,
    ];
    let items = finishes
        .into_iter()
        .enumerate()
        .map(|(i, finish)| Completion {
            id: job(i).id,
            lease_token: token(&job(i)),
            finish,
        })
        .collect();
    let out = ok("complete_batch", s.complete_batch(items, at(2)).await);
    assert_eq!(out, vec![CompletionResult::Done; 7], "every item written");

    let got = get(s, job(0).id).await;
    assert_finished(&got, JobState::Completed, at(2));
    assert_json_eq(
        "result",
        got.result.as_deref().expect("result stored"),
        r#"{"rows":3}"#,
    );
    assert!(got.errors.is_empty());

    let got = get(s, job(1).id).await;
    assert_finished(&got, JobState::Completed, at(2));
    assert_eq!(got.result, None, "no result was given");
    assert_eq!(got.attempt, 1);

    let got = get(s, job(2).id).await;
    assert_eq!(got.state, JobState::Retryable);
    assert_eq!((got.run_at, got.finished_at, got.attempt), (at(40), None, 1));
    assert_eq!(got.errors, vec![e_retry]);
    assert_eq!(got.result, None);

    let got = get(s, job(3).id).await;
    assert_finished(&got, JobState::Discarded, at(2));
    assert_eq!(got.errors, vec![e_discard]);
    assert_eq!(got.result, None);

    let got = get(s, job(4).id).await;
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!((got.run_at, got.finished_at, got.attempt), (at(50), None, 0));
    assert!(got.errors.is_empty(), "a snooze is not an error");

    let got = get(s, job(5).id).await;
    assert_finished(&got, JobState::Cancelled, at(2));
    assert_eq!(got.errors, vec![e_cancel]);

    let got = get(s, job(6).id).await;
    assert_eq!(got.state, JobState::Available);
    assert_eq!((got.run_at, got.finished_at, got.attempt), (at(0), None, 0));
    assert_eq!(got.lease, None);
    assert!(got.errors.is_empty());
    for i in 0..7 {
        assert_eq!(
            get(s, job(i).id).await.expires_at,
            Some(at(1_000 + i as i64)),
            "job {i} keeps its own fields"
        );
    }
}

/// In one batch, an item whose token is wrong (or whose job is not running,
/// or does not exist) is `LeaseLost` and changes nothing; the other items
/// are applied. Results are in input order.
pub async fn completion_with_a_wrong_token_is_refused_for_that_item_only(store: Arc<dyn Store>) {
    let s = &*store;
    let ids = insert(s, (0..3).map(|_| NewJob::new("k", "{}")).collect(), at(0)).await;
    let jobs = claim(s, "default", 3, WORKER, at(1)).await;
    assert_eq!(jobs.len(), 3);
    let find = |i: usize| jobs.iter().find(|j| j.id == ids[i].id).expect("claimed").clone();
    let (a, b, c) = (find(0), find(1), find(2));
    let idle = add(s, NewJob::new("k", "{}").queue("idle"), at(1)).await;
    let missing = JobId(ids.iter().map(|i| i.id.0).max().unwrap_or(0) + 1_000_000);
    let items = vec![
        Completion {
            id: a.id,
            lease_token: token(&a),
            finish: Finish::Complete {
                result: Some("1".into()),
            },
        },
        Completion {
            id: b.id,
            lease_token: token(&b) + 1_000,
            finish: Finish::Complete {
                result: Some("2".into()),
            },
        },
        Completion {
            id: idle,
            lease_token: token(&b),
            finish: Finish::Complete { result: None },
        },
        Completion {
            id: missing,
            lease_token: token(&b),
            finish: Finish::Complete { result: None },
        },
        Completion {
            id: c.id,
            lease_token: token(&c),
            finish: Finish::Retry {
                at: at(60),
                error: failure(1, at(2), "x"),
            },
        },
    ];
    let out = ok("complete_batch", s.complete_batch(items, at(2)).await);
    use CompletionResult::{Done, LeaseLost};
    assert_eq!(
        out,
        vec![Done, LeaseLost, LeaseLost, LeaseLost, Done],
        "per-item results in order"
    );
    assert_eq!(state_of(s, a.id).await, JobState::Completed);
    assert_eq!(state_of(s, c.id).await, JobState::Retryable);
    assert_eq!(get(s, b.id).await, b, "the refused job is exactly as claimed");
    assert_eq!(
        state_of(s, idle).await,
        JobState::Available,
        "a job that is not running is untouched"
    );
    assert_not_found(
        "get_job of a never-inserted id",
        missing,
        s.get_job(missing, &crate::Scope::All).await,
    );
}

/// A completion can be written once: sending it again (in a later batch, or
/// twice in one batch) is `LeaseLost`, and the first write stands.
pub async fn completing_twice_is_refused_the_second_time(store: Arc<dyn Store>) {
    let s = &*store;
    let job = running(s, NewJob::new("k", "{}")).await;
    let first = Finish::Complete {
        result: Some(r#""first""#.into()),
    };
    let second = Finish::Complete {
        result: Some(r#""second""#.into()),
    };
    assert_eq!(finish(s, &job, first, at(2)).await, CompletionResult::Done);
    assert_eq!(finish(s, &job, second, at(3)).await, CompletionResult::LeaseLost);
    let discard = Finish::Discard {
        error: failure(1, at(3), "late"),
    };
    assert_eq!(finish(s, &job, discard, at(3)).await, CompletionResult::LeaseLost);
    let got = get(s, job.id).await;
    assert_eq!(got.state, JobState::Completed);
    assert_json_eq("result", got.result.as_deref().unwrap_or("null"), r#""first""#);
    assert_eq!(
        got.finished_at,
        Some(at(2)),
        "finished_at of the first write stands"
    );
    assert!(
        got.errors.is_empty(),
        "a refused discard wrote an error: {:?}",
        got.errors
    );

    let other = running_in(s, "twice").await;
    let item = |r: &str| Completion {
        id: other.id,
        lease_token: token(&other),
        finish: Finish::Complete {
            result: Some(r.into()),
        },
    };
    let out = ok(
        "complete_batch",
        s.complete_batch(vec![item("1"), item("2")], at(4)).await,
    );
    assert_eq!(
        out,
        vec![CompletionResult::Done, CompletionResult::LeaseLost],
        "the same completion twice in one batch"
    );
    assert_json_eq(
        "result",
        get(s, other.id).await.result.as_deref().unwrap_or("null"),
        "1",
    );
}

async fn running_in(store: &dyn Store, queue: &str) -> Job {
    let id = add(store, job_in(queue, "k"), at(0)).await;
    claim_id(store, queue, id, at(1)).await
}

/// Result-less successes, the bulk of a busy worker's batches, are fenced
/// item by item like any other completion: in one batch, a fresh one is
/// written, one with a stale token and a repeat of the same job are
/// `LeaseLost`, and the queue's `completed_total` counts only what was
/// written (also when the batch spans two queues).
pub async fn result_less_successes_in_one_batch_are_fenced_one_by_one(store: Arc<dyn Store>) {
    let s = &*store;
    let ids = insert(s, (0..3).map(|_| job_in("plain", "k")).collect(), at(0)).await;
    let jobs = claim(s, "plain", 3, WORKER, at(1)).await;
    assert_eq!(jobs.len(), 3);
    let find = |i: usize| jobs.iter().find(|j| j.id == ids[i].id).expect("claimed").clone();
    let (a, b, c) = (find(0), find(1), find(2));
    let other = running_in(s, "plain_other").await;
    let done = |j: &Job, token: i64| Completion {
        id: j.id,
        lease_token: token,
        finish: Finish::Complete { result: None },
    };
    let items = vec![
        done(&a, token(&a)),
        done(&b, token(&b) - 1),
        done(&a, token(&a)),
        done(&other, token(&other)),
        done(&c, token(&c)),
    ];
    let out = ok("complete_batch", s.complete_batch(items, at(2)).await);
    use CompletionResult::{Done, LeaseLost};
    assert_eq!(
        out,
        vec![Done, LeaseLost, LeaseLost, Done, Done],
        "per-item results in order"
    );
    for j in [&a, &c, &other] {
        let got = get(s, j.id).await;
        assert_finished(&got, JobState::Completed, at(2));
        assert_eq!(got.result, None, "no result was given");
    }
    assert_eq!(
        get(s, b.id).await,
        b,
        "the stale item's job is exactly as claimed"
    );
    assert_eq!(queue_stats(s, "plain", at(3)).await.completed_total, Some(2));
    assert_eq!(
        queue_stats(s, "plain_other", at(3)).await.completed_total,
        Some(1)
    );
}

/// `CompleteAndDelete` records a success and deletes the job in the same
/// write, fenced like any other completion. In one batch beside kept
/// completions and a retry: the deleted jobs are gone (`get_job` says not
/// found) and count toward their queue's `completed_total`; a stale token, a
/// repeat of a deleted job and a job that is no longer running are
/// `LeaseLost` and leave their jobs as they were; the other finishes land
/// on their own jobs.
pub async fn complete_and_delete_removes_the_job_and_counts_it(store: Arc<dyn Store>) {
    let s = &*store;
    let ids = insert(s, (0..5).map(|_| job_in("gone", "k")).collect(), at(0)).await;
    let jobs = claim(s, "gone", 5, WORKER, at(1)).await;
    assert_eq!(jobs.len(), 5);
    let find = |i: usize| jobs.iter().find(|j| j.id == ids[i].id).expect("claimed").clone();
    let (a, b, c, d, e) = (find(0), find(1), find(2), find(3), find(4));
    let other = running_in(s, "gone_other").await;
    // `e` is cancelled by an earlier batch: no longer running.
    let cancel = Finish::Cancel {
        error: failure(1, at(2), "stopped"),
    };
    let first = vec![Completion {
        id: e.id,
        lease_token: token(&e),
        finish: cancel,
    }];
    ok("complete_batch", s.complete_batch(first, at(2)).await);
    let item = |j: &Job, lease_token: i64, finish: Finish| Completion {
        id: j.id,
        lease_token,
        finish,
    };
    let e_retry = failure(1, at(2), "try again");
    let items = vec![
        item(&a, token(&a), Finish::CompleteAndDelete),
        item(&b, token(&b) - 1, Finish::CompleteAndDelete),
        item(&c, token(&c), Finish::Complete { result: None }),
        item(&a, token(&a), Finish::CompleteAndDelete),
        item(&other, token(&other), Finish::CompleteAndDelete),
        item(
            &d,
            token(&d),
            Finish::Retry {
                at: at(40),
                error: e_retry.clone(),
            },
        ),
        item(&e, token(&e), Finish::CompleteAndDelete),
    ];
    let out = ok("complete_batch", s.complete_batch(items, at(3)).await);
    use CompletionResult::{Done, LeaseLost};
    assert_eq!(
        out,
        vec![Done, LeaseLost, Done, LeaseLost, Done, Done, LeaseLost],
        "per-item results in order"
    );
    assert_not_found(
        "get_job of a deleted job",
        a.id,
        s.get_job(a.id, &Scope::All).await,
    );
    assert_not_found(
        "get_job of a deleted job",
        other.id,
        s.get_job(other.id, &Scope::All).await,
    );
    assert_eq!(
        get(s, b.id).await,
        b,
        "the stale item's job is exactly as claimed"
    );
    assert_finished(&get(s, c.id).await, JobState::Completed, at(3));
    let got = get(s, d.id).await;
    assert_eq!((got.state, got.run_at), (JobState::Retryable, at(40)));
    assert_eq!(got.errors, vec![e_retry]);
    assert_finished(&get(s, e.id).await, JobState::Cancelled, at(2));
    let stats = queue_stats(s, "gone", at(4)).await;
    assert_eq!(
        (stats.completed_total, stats.failed_total),
        (Some(2), Some(1)),
        "a deleted job counts as completed: {stats:?}"
    );
    assert_eq!(
        stats.counts.get(&JobState::Completed),
        Some(&1),
        "only the kept one is stored"
    );
    assert_eq!(queue_stats(s, "gone_other", at(4)).await.completed_total, Some(1));
}
