//! The operator model: `cancel_job`, `retry_job`, `discard_job`, and what
//! a tenant scope may see and do.

use std::sync::Arc;

use crate::job::{Finish, Job, JobState, NewJob};
use crate::store::{CompletionResult, Scope, Store};
use crate::testkit::support::*;

/// Cancelling an unstarted job (scheduled, available or retryable) makes it
/// cancelled at once, finished now; the returned job shows it, and it is
/// never claimed.
pub async fn cancel_job_cancels_unstarted_jobs_at_once(store: Arc<dyn Store>) {
    let s = &*store;
    let scheduled = add(s, NewJob::new("k", "{}").run_at(at(100)), at(0)).await;
    let available = add(s, NewJob::new("k", "{}"), at(0)).await;
    let retryable = add(s, NewJob::new("k", "{}").priority(0), at(0)).await;
    let job = claim_id(s, "default", retryable, at(1)).await;
    let retry = Finish::Retry {
        at: at(2),
        error: failure(1, at(1), "x"),
    };
    finish(s, &job, retry, at(1)).await;

    for (id, was) in [
        (scheduled, JobState::Scheduled),
        (available, JobState::Available),
        (retryable, JobState::Retryable),
    ] {
        let now = at(5);
        let returned = ok("cancel_job", s.cancel_job(id, &Scope::All, now).await);
        assert_eq!(returned.state, JobState::Cancelled, "cancel_job of a {was} job");
        assert_eq!(
            returned.finished_at,
            Some(now),
            "cancel_job of a {was} job: finished_at"
        );
        assert!(
            !returned.cancel_requested,
            "a job cancelled at once is not 'requested'"
        );
        assert_eq!(get(s, id).await, returned, "cancel_job returns the stored job");
    }
    ok("promote_due", s.promote_due(at(200), 100).await);
    let got = claim(s, "default", 10, WORKER, at(200)).await;
    assert!(got.is_empty(), "cancelled jobs must never be claimed: {got:?}");
}

/// `cancel_requests` names, of the jobs asked about, the running ones an
/// operator asked to cancel, and nothing else: not an unflagged running
/// job, not a job cancelled before it started, not an unknown id.
pub async fn cancel_requests_names_the_flagged_running_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let flagged = add(s, NewJob::new("k", "{}"), at(0)).await;
    let running = add(s, NewJob::new("k", "{}"), at(0)).await;
    let waiting = add(s, NewJob::new("k", "{}").run_at(at(100)), at(0)).await;
    claim_id(s, "default", flagged, at(1)).await;
    claim_id(s, "default", running, at(1)).await;
    let none = ok("cancel_requests", s.cancel_requests(&[flagged, running]).await);
    assert!(none.is_empty(), "nothing was cancelled yet: {none:?}");
    ok("cancel_job", s.cancel_job(flagged, &Scope::All, at(2)).await);
    ok("cancel_job", s.cancel_job(waiting, &Scope::All, at(2)).await);
    let asked = [flagged, running, waiting, crate::job::JobId(999_999)];
    let got = ok("cancel_requests", s.cancel_requests(&asked).await);
    assert_eq!(got, vec![flagged], "only the flagged running job");
    let empty = ok("cancel_requests", s.cancel_requests(&[]).await);
    assert!(empty.is_empty());
}

/// An operator's retry never makes two unfinished jobs with one unique
/// key: a finished job whose key a newer unfinished job holds is refused
/// with the holder named, and can be retried once the holder has finished.
/// The same key under another tenant is no obstacle.
pub async fn retry_job_refuses_to_revive_a_unique_key_another_job_holds(store: Arc<dyn Store>) {
    let s = &*store;
    let old = add(s, NewJob::new("k", "{}").unique_key("nightly"), at(0)).await;
    ok("cancel_job", s.cancel_job(old, &Scope::All, at(1)).await);
    let newer = add(s, NewJob::new("k", "{}").unique_key("nightly"), at(2)).await;
    assert_ne!(old, newer, "the key was free once the old job finished");
    let other_tenant = add(
        s,
        NewJob::new("k", "{}").unique_key("nightly").tenant("t2"),
        at(2),
    )
    .await;
    assert_ne!(other_tenant, newer);
    match s.retry_job(old, &Scope::All, at(3)).await {
        Err(crate::StoreError::UniqueKeyHeld { id, holder }) => assert_eq!((id, holder), (old, newer)),
        other => panic!("retry of a job whose key is held: {other:?}"),
    }
    assert_eq!(state_of(s, old).await, JobState::Cancelled, "nothing was written");
    ok("cancel_job", s.cancel_job(newer, &Scope::All, at(4)).await);
    let revived = ok("retry_job", s.retry_job(old, &Scope::All, at(5)).await);
    assert_eq!(revived.state, JobState::Available);
}

/// Cancelling a running job only flags it: it stays running under its
/// lease with `cancel_requested`, and its worker can still finish it.
pub async fn cancel_job_flags_a_running_job(store: Arc<dyn Store>) {
    let s = &*store;
    let id = add(s, NewJob::new("k", "{}"), at(0)).await;
    let job = claim_id(s, "default", id, at(1)).await;
    let returned = ok("cancel_job", s.cancel_job(id, &Scope::All, at(2)).await);
    assert_eq!(returned.state, JobState::Running, "a running job keeps running");
    assert!(returned.cancel_requested, "cancel_requested is set");
    assert_eq!(returned.lease, job.lease, "the worker keeps its lease");
    assert_eq!(returned.finished_at, None);
    assert_eq!(get(s, id).await, returned, "cancel_job returns the stored job");

    let cancel = Finish::Cancel {
        error: failure(1, at(3), "cancelled by operator"),
    };
    assert_eq!(finish(s, &job, cancel, at(3)).await, CompletionResult::Done);
    assert_eq!(state_of(s, id).await, JobState::Cancelled);
}

/// Cancelling a finished job (completed, discarded, cancelled, expired)
/// is `InvalidState` naming the job and its state, and changes nothing.
pub async fn cancel_job_refuses_finished_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let completed = add(s, NewJob::new("k", "{}"), at(0)).await;
    let before = run_to_completion(s, "default", completed, at(1)).await;
    let r = s.cancel_job(completed, &Scope::All, at(2)).await;
    assert_invalid_state("cancel_job of a completed job", completed, JobState::Completed, r);
    assert_eq!(
        get(s, completed).await,
        before,
        "a refused cancel changes nothing"
    );

    let discarded = add(s, NewJob::new("k", "{}"), at(0)).await;
    let job = claim_id(s, "default", discarded, at(1)).await;
    let discard = Finish::Discard {
        error: failure(1, at(1), "x"),
    };
    finish(s, &job, discard, at(1)).await;
    let r = s.cancel_job(discarded, &Scope::All, at(2)).await;
    assert_invalid_state("cancel_job of a discarded job", discarded, JobState::Discarded, r);

    let cancelled = add(s, NewJob::new("k", "{}"), at(0)).await;
    ok("cancel_job", s.cancel_job(cancelled, &Scope::All, at(1)).await);
    let r = s.cancel_job(cancelled, &Scope::All, at(2)).await;
    assert_invalid_state("cancel_job of a cancelled job", cancelled, JobState::Cancelled, r);
    assert_eq!(
        get(s, cancelled).await.finished_at,
        Some(at(1)),
        "the first cancel stands"
    );

    let expired = add(s, NewJob::new("k", "{}").expires_at(at(1)), at(0)).await;
    assert_eq!(ok("expire_due", s.expire_due(at(2), 10).await), 1);
    let r = s.cancel_job(expired, &Scope::All, at(3)).await;
    assert_invalid_state("cancel_job of an expired job", expired, JobState::Expired, r);
}

/// An operator scoped to one tenant cannot cancel or retry another
/// tenant's job: both are `NotFound`, and the job is unchanged.
pub async fn operators_cannot_touch_other_tenants_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let id = add(s, NewJob::new("k", "{}").tenant("acme"), at(0)).await;
    let other = Scope::Tenant("globex".into());
    assert_not_found(
        "cancel_job by another tenant",
        id,
        s.cancel_job(id, &other, at(1)).await,
    );
    assert_eq!(
        state_of(s, id).await,
        JobState::Available,
        "the job was not cancelled"
    );

    let job = claim_id(s, "default", id, at(1)).await;
    let discard = Finish::Discard {
        error: failure(1, at(2), "x"),
    };
    finish(s, &job, discard, at(2)).await;
    let before = get(s, id).await;
    assert_not_found(
        "retry_job by another tenant",
        id,
        s.retry_job(id, &other, at(3)).await,
    );
    assert_eq!(get(s, id).await, before, "the job was not retried");

    let own = Scope::Tenant("acme".into());
    let retried = ok(
        "retry_job in the job's own scope",
        s.retry_job(id, &own, at(4)).await,
    );
    assert_eq!(retried.state, JobState::Available);
}

async fn discarded_after_last_attempt(s: &dyn Store) -> Job {
    let id = add(s, NewJob::new("k", "{}").max_attempts(2), at(0)).await;
    for attempt in 1..=2 {
        ok("promote_due", s.promote_due(at(attempt * 10), 10).await);
        let job = claim_id(s, "default", id, at(attempt * 10)).await;
        let f = if attempt < 2 {
            Finish::Retry {
                at: at(attempt * 10 + 5),
                error: failure(attempt as i32, at(attempt * 10 + 1), "x"),
            }
        } else {
            Finish::Discard {
                error: failure(attempt as i32, at(attempt * 10 + 1), "x"),
            }
        };
        finish(s, &job, f, at(attempt * 10 + 1)).await;
    }
    let job = get(s, id).await;
    assert_eq!(
        (job.state, job.attempt, job.max_attempts),
        (JobState::Discarded, 2, 2),
        "setup"
    );
    job
}

/// Retrying a discarded job that used all its attempts makes it available
/// now with exactly one more attempt allowed (`max_attempts - attempt`
/// becomes 1, whichever of the two the store changes); its history is
/// kept and it is no longer finished. The next claim runs that attempt.
pub async fn retry_job_revives_an_exhausted_job_with_one_more_attempt(store: Arc<dyn Store>) {
    let s = &*store;
    let before = discarded_after_last_attempt(s).await;
    let now = at(100);
    let job = ok("retry_job", s.retry_job(before.id, &Scope::All, now).await);
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.run_at, now, "available now");
    assert_eq!(
        job.max_attempts - job.attempt,
        1,
        "exactly one more attempt: {job:?}"
    );
    assert_eq!(job.finished_at, None, "a retried job is no longer finished");
    assert_eq!(job.errors, before.errors, "the error history is kept");
    assert_eq!(get(s, before.id).await, job, "retry_job returns the stored job");

    let claimed = claim_id(s, "default", job.id, now).await;
    assert_eq!(
        claimed.attempt, claimed.max_attempts,
        "the extra attempt is the last one"
    );
}

/// Retrying a cancelled, expired, retryable or scheduled job makes it
/// available now, with its attempt budget unchanged when attempts remain.
/// A job whose running attempt an operator cancelled comes back without
/// `cancel_requested`, so its next run is not told to stop, and an expired
/// job comes back without its past `expires_at`, so it can actually run
/// (the operator's retry overrides the deadline).
pub async fn retry_job_makes_unfinished_and_cancelled_jobs_available_now(store: Arc<dyn Store>) {
    let s = &*store;
    let scheduled = add(s, NewJob::new("k", "{}").run_at(at(500)), at(0)).await;
    let cancelled = add(s, NewJob::new("k", "{}").priority(1), at(0)).await;
    let expired = add(s, job_in("exp", "k").expires_at(at(2)), at(0)).await;
    let retryable = add(s, NewJob::new("k", "{}").priority(0), at(0)).await;

    let job = claim_id(s, "default", retryable, at(1)).await;
    let retry = Finish::Retry {
        at: at(400),
        error: failure(1, at(1), "x"),
    };
    finish(s, &job, retry, at(1)).await;
    let job = claim_id(s, "default", cancelled, at(1)).await;
    ok("cancel_job", s.cancel_job(cancelled, &Scope::All, at(2)).await);
    let cancel = Finish::Cancel {
        error: failure(1, at(3), "stopped"),
    };
    finish(s, &job, cancel, at(3)).await;
    assert_eq!(ok("expire_due", s.expire_due(at(3), 10).await), 1);

    let now = at(10);
    for (id, was, attempt) in [
        (scheduled, JobState::Scheduled, 0),
        (cancelled, JobState::Cancelled, 1),
        (expired, JobState::Expired, 0),
        (retryable, JobState::Retryable, 1),
    ] {
        assert_eq!(state_of(s, id).await, was, "setup");
        let job = ok("retry_job", s.retry_job(id, &Scope::All, now).await);
        assert_eq!(job.state, JobState::Available, "retry_job of a {was} job");
        assert_eq!(job.run_at, now, "retry_job of a {was} job: run_at is now");
        assert_eq!(
            (job.attempt, job.max_attempts),
            (attempt, crate::validate::DEFAULT_MAX_ATTEMPTS),
            "retry_job of a {was} job: attempts unchanged"
        );
        assert_eq!(job.finished_at, None, "retry_job of a {was} job: not finished");
        assert!(
            !job.cancel_requested,
            "retry_job of a {was} job: cancel_requested cleared"
        );
        assert_eq!(get(s, id).await, job, "retry_job returns the stored job");
    }
    let claimed = claim(s, "default", 10, WORKER, now).await;
    assert_eq!(claimed.len(), 3, "the three default-queue jobs are claimable now");
    assert_eq!(
        ok("expire_due", s.expire_due(now, 10).await),
        0,
        "the retried job is not re-expired"
    );
    claim_id(s, "exp", expired, now).await;
}

/// Completed and running jobs cannot be retried by an operator:
/// `InvalidState`, and the job is unchanged.
pub async fn retry_job_refuses_completed_and_running_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let done = add(s, NewJob::new("k", "{}"), at(0)).await;
    let before = run_to_completion(s, "default", done, at(1)).await;
    let r = s.retry_job(done, &Scope::All, at(2)).await;
    assert_invalid_state("retry_job of a completed job", done, JobState::Completed, r);
    assert_eq!(get(s, done).await, before, "a refused retry changes nothing");

    let busy = add(s, NewJob::new("k", "{}"), at(0)).await;
    let running = claim_id(s, "default", busy, at(1)).await;
    let r = s.retry_job(busy, &Scope::All, at(2)).await;
    assert_invalid_state("retry_job of a running job", busy, JobState::Running, r);
    assert_eq!(get(s, busy).await, running, "a refused retry changes nothing");
}

/// An operator's discard finishes an unstarted job as discarded at once,
/// with an error in its history saying an operator did it, counted in its
/// queue's `discarded_total`; a running job is refused (cancel it), and so
/// is a finished one. Another tenant's job looks as if it did not exist.
pub async fn discard_job_discards_unstarted_jobs_and_counts_them(store: Arc<dyn Store>) {
    let s = &*store;
    let waiting = add(s, job_in("dq", "k").tenant("t1"), at(0)).await;
    let running = add(s, job_in("dq_run", "k"), at(0)).await;
    claim_id(s, "dq_run", running, at(1)).await;
    assert_not_found(
        "discard in another tenant's scope",
        waiting,
        s.discard_job(waiting, &Scope::Tenant("t2".into()), at(2)).await,
    );
    let job = ok(
        "discard_job",
        s.discard_job(waiting, &Scope::Tenant("t1".into()), at(2)).await,
    );
    assert_eq!(job.state, JobState::Discarded);
    assert_eq!(job.finished_at, Some(at(2)));
    let last = job.errors.last().expect("the discard is recorded in the history");
    assert_eq!(
        (last.at, last.message.as_str()),
        (at(2), "discarded by an operator")
    );
    assert_invalid_state(
        "discard of a running job",
        running,
        JobState::Running,
        s.discard_job(running, &Scope::All, at(3)).await,
    );
    assert_invalid_state(
        "discard of a discarded job",
        waiting,
        JobState::Discarded,
        s.discard_job(waiting, &Scope::All, at(3)).await,
    );
    assert_eq!(queue_stats(s, "dq", at(4)).await.discarded_total, Some(1));
}

/// A tenant-scoped caller sees each queue with the counts of its own jobs
/// only (the totals, kept per queue, are absent), and may not pause,
/// resume or remove a queue, which every tenant shares: that is
/// `Forbidden` and changes nothing. It sees no schedule: schedules belong
/// to no tenant.
pub async fn a_tenant_scope_sees_its_own_counts_and_cannot_act_on_whole_queues(store: Arc<dyn Store>) {
    let s = &*store;
    add(s, job_in("shared", "k").tenant("t1"), at(0)).await;
    add(s, job_in("shared", "k").tenant("t2"), at(0)).await;
    add(s, job_in("shared", "k").tenant("t2"), at(0)).await;
    add(s, job_in("shared", "k"), at(0)).await;
    let t2 = Scope::Tenant("t2".into());
    let all = ok("queue_stats", s.queue_stats(&Scope::All, at(1)).await);
    let mine = ok("queue_stats", s.queue_stats(&t2, at(1)).await);
    let count = |qs: &[crate::store::QueueStats]| {
        qs.iter()
            .find(|q| q.name == "shared")
            .map(|q| (q.counts.get(&JobState::Available).copied(), q.completed_total))
    };
    assert_eq!(
        count(&all),
        Some((Some(4), Some(0))),
        "every tenant's jobs: {all:?}"
    );
    assert_eq!(
        count(&mine),
        Some((Some(2), None)),
        "only t2's jobs, no totals: {mine:?}"
    );
    for (what, r) in [
        (
            "pause",
            s.set_queue_paused("shared", true, false, &t2, at(2)).await,
        ),
        (
            "pause --create",
            s.set_queue_paused("fresh", true, true, &t2, at(2)).await,
        ),
        ("remove", s.remove_queue("shared", &t2).await),
    ] {
        assert!(
            matches!(r, Err(crate::StoreError::Forbidden(_))),
            "{what} with a tenant scope must be Forbidden, got {r:?}"
        );
    }
    let after = ok("queue_stats", s.queue_stats(&Scope::All, at(3)).await);
    assert!(
        after.iter().all(|q| q.name != "fresh" && !q.paused),
        "nothing was written: {after:?}"
    );
    let schedules = ok("list_schedules", s.list_schedules(&t2).await);
    assert!(schedules.is_empty(), "{schedules:?}");
}
