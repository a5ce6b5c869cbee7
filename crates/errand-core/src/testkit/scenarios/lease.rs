//! Leases: heartbeats, progress, rescue of lost leases, and fencing.

use std::sync::Arc;

use crate::error::StoreError;
use crate::job::{Finish, JobId, JobState, NewJob, Progress};
use crate::retry::{RetryPolicies, RetryPolicy};
use crate::store::{CompletionResult, LeaseReport, Scope, Store};
use crate::testkit::support::*;

fn sorted(mut ids: Vec<JobId>) -> Vec<JobId> {
    ids.sort();
    ids
}

/// A heartbeat moves the lease deadline of every held job to `until`
/// (exactly), reports nothing, and keeps those jobs from being rescued.
pub async fn extend_leases_moves_the_lease_deadline(store: Arc<dyn Store>) {
    let s = &*store;
    insert(s, vec![NewJob::new("k", "{}"), NewJob::new("k", "{}")], at(0)).await;
    let jobs = claim(s, "default", 2, WORKER, at(1)).await;
    let held: Vec<(JobId, i64)> = jobs.iter().map(|j| (j.id, token(j))).collect();
    let until = plus(at(90), std::time::Duration::from_micros(3));
    let report = ok("extend_leases", s.extend_leases(WORKER, &held, until).await);
    assert_eq!(report, LeaseReport::default(), "every lease is still held");
    for j in &jobs {
        let got = get(s, j.id).await;
        let lease = got.lease.expect("still leased");
        assert_eq!(lease.expires_at, until, "job {}: lease deadline", j.id);
        assert_eq!(
            (lease.owner.as_str(), lease.token),
            (WORKER, token(j)),
            "same lease"
        );
    }
    let policy = RetryPolicies::from(RetryPolicy::fixed(secs(1)));
    // The original lease (1s + ~30s) has run out by 60s; the extended one has not.
    let rescued = ok("rescue", rescue(s, at(60), &policy, 100).await);
    assert_eq!(rescued, 0, "an extended lease must not be rescued");
    for j in &jobs {
        assert_eq!(state_of(s, j.id).await, JobState::Running);
    }
}

/// A heartbeat reports as `lost` (and does not extend) every job the
/// worker no longer holds: a wrong token, a lease of another owner, a
/// finished job, a job that no longer exists.
pub async fn extend_leases_reports_leases_no_longer_held(store: Arc<dyn Store>) {
    let s = &*store;
    insert(s, (0..4).map(|_| NewJob::new("k", "{}")).collect(), at(0)).await;
    let mine = claim(s, "default", 3, WORKER, at(1)).await;
    let theirs = claim(s, "default", 1, "worker-2", at(1)).await.remove(0);
    let (kept, wrong, done) = (&mine[0], &mine[1], &mine[2]);
    finish(s, done, Finish::Complete { result: None }, at(2)).await;
    let missing = JobId(theirs.id.0.max(done.id.0) + 1_000_000);
    let held = vec![
        (kept.id, token(kept)),
        (wrong.id, token(wrong) + 1_000),
        (done.id, token(done)),
        (theirs.id, token(&theirs)),
        (missing, 1),
    ];
    let until = at(120);
    let report = ok("extend_leases", s.extend_leases(WORKER, &held, until).await);
    assert_eq!(
        sorted(report.lost.clone()),
        sorted(vec![wrong.id, done.id, theirs.id, missing]),
        "lost leases: {report:?}"
    );
    assert!(report.cancel_requested.is_empty(), "{report:?}");
    let exp = |id: JobId| async move { get(s, id).await.lease.map(|l| l.expires_at) };
    assert_eq!(exp(kept.id).await, Some(until), "the held lease is extended");
    assert_eq!(
        exp(wrong.id).await,
        wrong.lease.as_ref().map(|l| l.expires_at),
        "wrong token: unchanged"
    );
    assert_eq!(
        exp(theirs.id).await,
        theirs.lease.as_ref().map(|l| l.expires_at),
        "other owner: unchanged"
    );
    assert_eq!(exp(done.id).await, None, "a finished job stays without a lease");
}

/// After an operator cancels a running job, the next heartbeat of its
/// worker reports it in `cancel_requested` (not `lost`: the worker still
/// holds it and the lease is extended until the handler stops).
pub async fn extend_leases_reports_cancel_requests(store: Arc<dyn Store>) {
    let s = &*store;
    insert(s, vec![NewJob::new("k", "{}"), NewJob::new("k", "{}")], at(0)).await;
    let jobs = claim(s, "default", 2, WORKER, at(1)).await;
    let (victim, other) = (&jobs[0], &jobs[1]);
    ok("cancel_job", s.cancel_job(victim.id, &Scope::All, at(2)).await);
    let held = vec![(victim.id, token(victim)), (other.id, token(other))];
    let report = ok("extend_leases", s.extend_leases(WORKER, &held, at(60)).await);
    assert_eq!(
        report,
        LeaseReport {
            lost: vec![],
            cancel_requested: vec![victim.id],
        }
    );
    let lease = get(s, victim.id).await.lease.expect("still leased");
    assert_eq!(
        lease.expires_at,
        at(60),
        "a cancel-requested job's lease is still extended"
    );
}

/// A running job's progress is stored and shown by `get_job`; a report
/// with a wrong token, or after the job finished, is `LeaseLost` and
/// changes nothing.
pub async fn report_progress_is_stored_for_the_lease_holder(store: Arc<dyn Store>) {
    let s = &*store;
    let id = add(s, NewJob::new("k", "{}"), at(0)).await;
    let job = claim_id(s, "default", id, at(1)).await;
    let p1 = Progress {
        percent: 42.5,
        message: Some("row 425 of 1000".into()),
    };
    ok(
        "report_progress",
        s.report_progress(id, token(&job), p1.clone()).await,
    );
    assert_eq!(get(s, id).await.progress, Some(p1.clone()));
    let p2 = Progress {
        percent: 60.0,
        message: None,
    };
    ok(
        "report_progress",
        s.report_progress(id, token(&job), p2.clone()).await,
    );
    assert_eq!(
        get(s, id).await.progress,
        Some(p2.clone()),
        "a later report replaces the earlier"
    );

    let bad = token(&job) + 1_000;
    let forged = Progress {
        percent: 99.0,
        message: Some("forged".into()),
    };
    match s.report_progress(id, bad, forged.clone()).await {
        Err(StoreError::LeaseLost { id: i, token: t }) => assert_eq!((i, t), (id, bad)),
        other => panic!("report_progress with a wrong token: expected LeaseLost, got {other:?}"),
    }
    assert_eq!(
        get(s, id).await.progress,
        Some(p2),
        "a refused report changes nothing"
    );

    finish(s, &job, Finish::Complete { result: None }, at(2)).await;
    match s.report_progress(id, token(&job), forged).await {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("report_progress after completion: expected LeaseLost, got {other:?}"),
    }
}

/// Running jobs whose lease expired before `now` become retryable, with an
/// error for the lost attempt in their history and `run_at` = now + the
/// job's own retry policy's delay for that attempt (else the policy
/// given); unexpired leases are untouched.
pub async fn rescue_makes_expired_leases_retryable_with_an_error(store: Arc<dyn Store>) {
    let s = &*store;
    let plain = add(s, NewJob::new("k", "{}").max_attempts(3), at(0)).await;
    let own = crate::RetryPolicy::linear(secs(7), secs(3), secs(3600));
    let custom = add(s, NewJob::new("k", "{}").retry(own).priority(200), at(0)).await;
    let dead = claim_id(s, "default", plain, at(1)).await;
    let dead_too = claim_id(s, "default", custom, at(1)).await;
    let alive = add(s, NewJob::new("k", "{}"), at(0)).await;
    let alive = claim_id(s, "default", alive, at(20)).await;
    let policy = RetryPolicies::from(RetryPolicy::fixed(secs(10)));

    // The first leases run out at 31.000250s; nothing has expired at 31s.
    assert_eq!(ok("rescue", rescue(s, at(31), &policy, 100).await), 0);
    assert_eq!(state_of(s, plain).await, JobState::Running);

    let now = at(40);
    assert_eq!(ok("rescue", rescue(s, now, &policy, 100).await), 2);
    for (job, delay) in [(&dead, 10), (&dead_too, 7)] {
        let got = get(s, job.id).await;
        assert_eq!(got.state, JobState::Retryable, "job {}", job.id);
        assert_eq!(
            got.run_at,
            plus(now, secs(delay)),
            "job {}: run_at after rescue",
            job.id
        );
        assert_eq!(got.lease, None, "job {}: lease cleared", job.id);
        assert_eq!(got.attempt, 1, "job {}: the lost attempt counts", job.id);
        assert_eq!(got.finished_at, None);
        assert_eq!(
            got.errors.len(),
            1,
            "job {}: one error recorded: {:?}",
            job.id,
            got.errors
        );
        let e = &got.errors[0];
        assert_eq!(
            (e.attempt, e.at),
            (1, now),
            "job {}: error names attempt 1 at now",
            job.id
        );
        assert!(!e.message.is_empty(), "the rescue error says what happened");
    }
    assert_eq!(get(s, alive.id).await, alive, "an unexpired lease is untouched");
}

/// A rescued job waits as a failed attempt would: by its own policy, else
/// its kind's, else its queue's, else the default. A kind or queue with no
/// policy of its own gets the default.
pub async fn rescue_picks_the_kind_then_the_queue_policy(store: Arc<dyn Store>) {
    let s = &*store;
    let mail_slow = add(s, NewJob::new("mail", "{}").queue("slow"), at(0)).await;
    let other_slow = add(s, NewJob::new("resize", "{}").queue("slow"), at(0)).await;
    let other_fast = add(s, NewJob::new("resize", "{}"), at(0)).await;
    let own = RetryPolicy::fixed(secs(2));
    let mail_own = add(s, NewJob::new("mail", "{}").queue("slow").retry(own), at(0)).await;
    for (queue, id) in [
        ("slow", mail_slow),
        ("slow", other_slow),
        ("default", other_fast),
        ("slow", mail_own),
    ] {
        claim_id(s, queue, id, at(1)).await;
    }
    let mut policies = RetryPolicies::from(RetryPolicy::fixed(secs(10)));
    policies.kinds.insert("mail".into(), RetryPolicy::fixed(secs(4)));
    policies.queues.insert("slow".into(), RetryPolicy::fixed(secs(6)));
    policies
        .queues
        .insert("unused".into(), RetryPolicy::fixed(secs(8)));

    let now = at(100);
    assert_eq!(ok("rescue", rescue(s, now, &policies, 10).await), 4);
    for (id, delay, why) in [
        (mail_slow, 4, "the kind's policy before the queue's"),
        (other_slow, 6, "the queue's policy"),
        (other_fast, 10, "the default"),
        (mail_own, 2, "the job's own policy first"),
    ] {
        let got = get(s, id).await;
        assert_eq!(got.state, JobState::Retryable, "job {id}");
        assert_eq!(got.run_at, plus(now, secs(delay)), "job {id}: {why}");
    }
}

/// A rescued job that has used its last attempt is discarded (finished
/// now, with the error recorded); `limit` caps how many one call rescues.
pub async fn rescue_discards_jobs_out_of_attempts_and_honours_its_limit(store: Arc<dyn Store>) {
    let s = &*store;
    let last = add(s, NewJob::new("k", "{}").max_attempts(1).priority(0), at(0)).await;
    insert(s, (0..3).map(|_| NewJob::new("k", "{}")).collect(), at(0)).await;
    let jobs = claim(s, "default", 4, WORKER, at(1)).await;
    assert_eq!(jobs.len(), 4);
    let policy = RetryPolicies::from(RetryPolicy::fixed(secs(10)));
    let now = at(100);
    let a = ok("rescue", rescue(s, now, &policy, 3).await);
    assert_eq!(a, 3, "the first call rescues up to its limit");
    let b = ok("rescue", rescue(s, now, &policy, 3).await);
    assert_eq!(b, 1, "the second call rescues the rest");
    assert_eq!(ok("rescue", rescue(s, now, &policy, 3).await), 0);
    let job = get(s, last).await;
    assert_eq!(job.state, JobState::Discarded, "out of attempts");
    assert_eq!(job.finished_at, Some(now));
    assert_eq!(job.lease, None);
    assert_eq!(job.errors.len(), 1, "{:?}", job.errors);
}

/// Fencing: once a job's lease was rescued and the job claimed again, the
/// first worker's completion, progress and heartbeat are refused; they
/// cannot overwrite the newer attempt, whose own completion is written.
pub async fn stale_completion_after_rescue_is_refused(store: Arc<dyn Store>) {
    let s = &*store;
    let id = add(s, NewJob::new("k", "{}"), at(0)).await;
    let old = claim(s, "default", 1, "worker-old", at(1)).await.remove(0);
    let policy = RetryPolicies::from(RetryPolicy::fixed(secs(5)));
    assert_eq!(ok("rescue", rescue(s, at(60), &policy, 10).await), 1);
    ok("promote_due", s.promote_due(at(65), 10).await);
    let new = claim(s, "default", 1, "worker-new", at(66)).await.remove(0);
    assert_eq!(new.id, id);
    assert_eq!(new.attempt, 2);

    let stale = Finish::Complete {
        result: Some(r#""old""#.into()),
    };
    assert_eq!(finish(s, &old, stale, at(67)).await, CompletionResult::LeaseLost);
    let p = Progress {
        percent: 100.0,
        message: None,
    };
    match s.report_progress(id, token(&old), p).await {
        Err(StoreError::LeaseLost { .. }) => {}
        other => panic!("stale progress: expected LeaseLost, got {other:?}"),
    }
    let report = ok(
        "extend_leases",
        s.extend_leases("worker-old", &[(id, token(&old))], at(200)).await,
    );
    assert_eq!(report.lost, vec![id], "the old worker learns it lost the job");
    assert_eq!(get(s, id).await, new, "the newer attempt is exactly as claimed");

    let fresh = Finish::Complete {
        result: Some(r#""new""#.into()),
    };
    assert_eq!(finish(s, &new, fresh, at(68)).await, CompletionResult::Done);
    let job = get(s, id).await;
    assert_eq!(job.state, JobState::Completed);
    assert_json_eq("result", job.result.as_deref().unwrap_or("null"), r#""new""#);
}
