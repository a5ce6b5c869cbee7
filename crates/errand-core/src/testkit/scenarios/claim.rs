//! `claim_available`: order, limit, what is skipped, leases, concurrency.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::job::{Finish, JobId, JobState, NewJob};
use crate::store::{ClaimRequest, CompletionResult, Store};
use crate::testkit::support::*;

/// Jobs are claimed by priority (lower first), then `run_at` (earlier
/// first), then id (older first). Claiming one at a time shows the order;
/// a larger claim takes the first `limit` of that order (the order of the
/// returned vector itself is not part of the contract).
pub async fn claim_orders_by_priority_then_run_at_then_id(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let j = |p: i32, run_at: i64| NewJob::new("k", "{}").priority(p).run_at(at(run_at));
    // Inserted in an order that matches none of the three keys.
    let ids = insert(
        s,
        vec![j(5, -10), j(1, -5), j(1, -20), j(1, -20), j(5, -30), j(0, -1)],
        now,
    )
    .await;
    let id = |i: usize| ids[i].id;
    let want = [id(5), id(2), id(3), id(1), id(4), id(0)];

    let first_two: BTreeSet<JobId> = claim(s, "default", 2, WORKER, now)
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        first_two,
        BTreeSet::from([want[0], want[1]]),
        "claim of 2 takes the first two"
    );
    for (i, w) in want.iter().enumerate().skip(2) {
        let got: Vec<JobId> = claim(s, "default", 1, WORKER, now)
            .await
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            got,
            vec![*w],
            "claim #{i} in priority/run_at/id order; expected {want:?}"
        );
    }
    assert!(
        claim(s, "default", 10, WORKER, now).await.is_empty(),
        "all claimed"
    );
}

/// A claim takes at most `limit` jobs, and `limit: 0` takes none.
pub async fn claim_takes_at_most_limit_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    insert(s, (0..5).map(|_| NewJob::new("k", "{}")).collect(), now).await;
    assert!(
        claim(s, "default", 0, WORKER, now).await.is_empty(),
        "limit 0 claims nothing"
    );
    assert_eq!(claim(s, "default", 3, WORKER, now).await.len(), 3);
    assert_eq!(claim(s, "default", 3, WORKER, now).await.len(), 2);
    assert_eq!(claim(s, "default", 3, WORKER, now).await.len(), 0);
}

/// A claim skips jobs that are scheduled, in another queue, in a paused
/// queue, not yet due at the claim's `now` (a claimer whose clock is
/// behind), or past their `expires_at`. Skipped jobs are left as they were.
pub async fn claim_skips_scheduled_foreign_paused_early_and_expired_jobs(store: Arc<dyn Store>) {
    let s = &*store;
    let now = at(0);
    let ids = |jobs: Vec<crate::Job>| jobs.iter().map(|j| j.id).collect::<Vec<JobId>>();
    let scheduled = add(s, NewJob::new("k", "{}").run_at(at(10)), now).await;
    let other_queue = add(s, job_in("other", "k"), now).await;
    ok(
        "set_queue_paused",
        s.set_queue_paused("frozen", true, true, &Scope::All, now).await,
    );
    let paused = add(s, job_in("frozen", "k"), now).await;
    let expiring = add(s, NewJob::new("k", "{}").expires_at(at(5)), now).await;
    let fresh = add(s, NewJob::new("k", "{}").expires_at(at(500)), now).await;
    // Stored as available (inserted at 3s, due at 3s), but a claimer at 2s must not see it yet.
    let early = add(s, job_in("skewed", "k").run_at(at(3)), at(3)).await;
    assert_eq!(state_of(s, early).await, JobState::Available);

    let got = ids(claim(s, "skewed", 10, WORKER, at(2)).await);
    assert!(got.is_empty(), "a job due at 3s is not claimable at 2s: {got:?}");
    let got = ids(claim(s, "frozen", 10, WORKER, at(6)).await);
    assert!(got.is_empty(), "a paused queue gives out no jobs: {got:?}");
    let got = ids(claim(s, "default", 10, WORKER, at(6)).await);
    assert_eq!(
        got,
        vec![fresh],
        "at 6s only the unexpired, due job of the queue is claimable"
    );

    assert_eq!(
        state_of(s, scheduled).await,
        JobState::Scheduled,
        "scheduled job untouched"
    );
    assert_eq!(
        state_of(s, other_queue).await,
        JobState::Available,
        "other queue untouched"
    );
    assert_eq!(
        state_of(s, paused).await,
        JobState::Available,
        "paused queue untouched"
    );
    let expired = get(s, expiring).await;
    assert_ne!(
        expired.state,
        JobState::Running,
        "a job past its expiry is never started"
    );
    assert_eq!(expired.attempt, 0, "a job past its expiry is never started");

    claim_id(s, "skewed", early, at(3)).await;
    ok(
        "set_queue_paused",
        s.set_queue_paused("frozen", false, true, &Scope::All, at(7))
            .await,
    );
    claim_id(s, "frozen", paused, at(7)).await;
    claim_id(s, "other", other_queue, at(7)).await;
}

/// A claimed job is running with one more attempt, `attempted_at` = now, and
/// a lease held by the claimer until `now + lease_for` (to the microsecond).
/// The claimed job returned equals what `get_job` then shows.
pub async fn claim_starts_an_attempt_under_a_lease(store: Arc<dyn Store>) {
    let s = &*store;
    let id = add(s, NewJob::new("k", "{}"), at(0)).await;
    let now = at(1);
    let claimed = claim(s, "default", 1, "host-a:123", now).await;
    assert_eq!(claimed.len(), 1, "one available job");
    let job = &claimed[0];
    assert_eq!(job.id, id);
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.attempt, 1, "a first claim is attempt 1");
    assert_eq!(job.attempted_at, Some(now), "attempted_at is the claim's now");
    let lease = job.lease.as_ref().expect("a claimed job has a lease");
    assert_eq!(lease.owner, "host-a:123", "lease owner");
    assert_eq!(
        lease.expires_at,
        plus(now, LEASE),
        "lease expiry = now + lease_for"
    );
    assert_eq!(&get(s, id).await, job, "get_job shows what the claim returned");
}

/// Each claim of a job gets a larger lease token than every earlier claim
/// of it, however it came back (retry, rescue, hand-back).
pub async fn reclaimed_job_gets_a_larger_lease_token(store: Arc<dyn Store>) {
    let s = &*store;
    let id = add(s, NewJob::new("k", "{}"), at(0)).await;
    let first = claim_id(s, "default", id, at(1)).await;
    let retry = Finish::Retry {
        at: at(4),
        error: failure(1, at(3), "x"),
    };
    assert_eq!(finish(s, &first, retry, at(3)).await, CompletionResult::Done);
    ok("promote_due", s.promote_due(at(4), 100).await);
    let second = claim_id(s, "default", id, at(4)).await;
    assert!(
        token(&second) > token(&first),
        "retry then claim: {second:?} after {first:?}"
    );

    let policy = crate::RetryPolicies::from(crate::RetryPolicy::fixed(secs(1)));
    let rescued = ok("rescue", rescue(s, at(100), &policy, 100).await);
    assert_eq!(rescued, 1);
    ok("promote_due", s.promote_due(at(101), 100).await);
    let third = claim_id(s, "default", id, at(101)).await;
    assert!(
        token(&third) > token(&second),
        "rescue then claim: {third:?} after {second:?}"
    );

    assert_eq!(
        finish(s, &third, Finish::HandBack, at(102)).await,
        CompletionResult::Done
    );
    let fourth = claim_id(s, "default", id, at(103)).await;
    assert!(
        token(&fourth) > token(&third),
        "hand-back then claim: {fourth:?} after {third:?}"
    );
}

/// Two workers claiming the same queue at once never get the same job, and
/// together they get all of them.
pub async fn concurrent_claimers_never_share_a_job(store: Arc<dyn Store>) {
    const JOBS: usize = 300;
    let now = t0();
    let ids: BTreeSet<JobId> = insert(&*store, (0..JOBS).map(|_| NewJob::new("k", "{}")).collect(), now)
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let mut tasks = Vec::new();
    for w in 0..2 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let req = ClaimRequest {
                    queue: "default".into(),
                    limit: 7,
                    owner: format!("worker-{w}"),
                    lease_for: Duration::from_secs(30),
                    now,
                };
                let jobs = ok("claim_available", store.claim_available(req).await);
                if jobs.is_empty() {
                    return got;
                }
                got.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut per_worker = Vec::new();
    for t in tasks {
        let got = t.await.expect("claimer task panicked");
        per_worker.push(got.len());
        for id in got {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(
        seen, ids,
        "together the claimers get every job (per worker: {per_worker:?})"
    );
}
