//! Queues, leader election and change notification.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{JobState, NewJob};
use crate::store::Store;
use crate::testkit::support::*;

/// `queues_with_available_jobs` names the queues holding an available job,
/// sorted, and no other: not a queue whose jobs are only scheduled,
/// running or finished, not an empty one.
pub async fn queues_with_available_jobs_names_only_those(store: Arc<dyn Store>) {
    let s = &*store;
    add(s, job_in("b", "k"), at(0)).await;
    add(s, job_in("a", "k"), at(0)).await;
    add(s, job_in("a", "k"), at(0)).await;
    add(s, job_in("later", "k").run_at(at(100)), at(0)).await;
    let busy = add(s, job_in("busy", "k"), at(0)).await;
    claim_id(s, "busy", busy, at(1)).await;
    let done = add(s, job_in("done", "k"), at(0)).await;
    run_to_completion(s, "done", done, at(1)).await;
    ok(
        "set_queue_paused",
        s.set_queue_paused("empty", true, true, &Scope::All, at(1)).await,
    );
    let got = ok("queues_with_available_jobs", s.queues_with_available_jobs().await);
    assert_eq!(got, ["a", "b"]);
}

/// Clearing a queue deletes its waiting jobs (scheduled, available,
/// retryable) within the scope, and nothing else: not its running or
/// finished jobs, not another tenant's, not another queue's.
pub async fn clear_queue_deletes_only_waiting_jobs_in_scope(store: Arc<dyn Store>) {
    let s = &*store;
    let available = add(s, job_in("q", "k"), at(0)).await;
    let scheduled = add(s, job_in("q", "k").run_at(at(100)), at(0)).await;
    let retryable = add(s, job_in("q", "k").priority(0), at(0)).await;
    let running = add(s, job_in("q", "k").priority(1), at(0)).await;
    let done = add(s, job_in("q", "k").priority(2), at(0)).await;
    let theirs = add(s, job_in("q", "k").tenant("t2"), at(0)).await;
    let mine = add(s, job_in("q", "k").tenant("t1"), at(0)).await;
    let elsewhere = add(s, job_in("other", "k"), at(0)).await;
    let job = claim_id(s, "q", retryable, at(1)).await;
    let retry = crate::job::Finish::Retry {
        at: at(50),
        error: failure(1, at(1), "x"),
    };
    finish(s, &job, retry, at(1)).await;
    claim_id(s, "q", running, at(1)).await;
    run_to_completion(s, "q", done, at(1)).await;

    let tenant = crate::store::Scope::Tenant("t1".into());
    let n = ok("clear_queue", s.clear_queue("q", &tenant).await);
    assert_eq!(n, 1, "a tenant clears only its own waiting jobs");
    assert_not_found(
        "a cleared job",
        mine,
        s.get_job(mine, &crate::store::Scope::All).await,
    );
    let n = ok("clear_queue", s.clear_queue("q", &crate::store::Scope::All).await);
    assert_eq!(n, 4, "available, scheduled, retryable and the other tenant's");
    for id in [available, scheduled, retryable, theirs] {
        assert_not_found(
            "a cleared job",
            id,
            s.get_job(id, &crate::store::Scope::All).await,
        );
    }
    assert_eq!(state_of(s, running).await, JobState::Running);
    assert_eq!(state_of(s, done).await, JobState::Completed);
    assert_eq!(state_of(s, elsewhere).await, JobState::Available);
    assert_eq!(
        ok(
            "clear_queue",
            s.clear_queue("nosuch", &crate::store::Scope::All).await
        ),
        0
    );
}

/// A queue can be removed once it holds no unfinished job: the removal of
/// a busy queue is refused with the count, an unknown one is not found,
/// and a removed queue is no longer listed (until it is used again).
pub async fn remove_queue_refuses_a_busy_queue_and_forgets_an_empty_one(store: Arc<dyn Store>) {
    let s = &*store;
    match s.remove_queue("nosuch", &Scope::All).await {
        Err(crate::StoreError::QueueNotFound(q)) => assert_eq!(q, "nosuch"),
        other => panic!("remove_queue of an unknown queue: {other:?}"),
    }
    let id = add(s, job_in("q", "k"), at(0)).await;
    match s.remove_queue("q", &Scope::All).await {
        Err(crate::StoreError::QueueNotEmpty { queue, jobs }) => assert_eq!((queue.as_str(), jobs), ("q", 1)),
        other => panic!("remove_queue of a busy queue: {other:?}"),
    }
    run_to_completion(s, "q", id, at(1)).await;
    ok("remove_queue", s.remove_queue("q", &Scope::All).await);
    let listed = ok("list_queues", s.queue_stats(&Scope::All, at(2)).await);
    assert!(listed.iter().all(|q| q.name != "q"), "removed: {listed:?}");
    // Used again, it is created anew.
    add(s, job_in("q", "k"), at(3)).await;
    let q = queue_stats(s, "q", at(3)).await;
    assert_eq!(q.counts.get(&JobState::Available), Some(&1), "{q:?}");
}

/// Without `create`, pausing or resuming an unknown queue is refused as not
/// found and creates nothing; a known queue is paused and resumed.
pub async fn set_queue_paused_without_create_refuses_an_unknown_queue(store: Arc<dyn Store>) {
    let s = &*store;
    for paused in [true, false] {
        match s
            .set_queue_paused("nosuch", paused, false, &Scope::All, at(0))
            .await
        {
            Err(crate::StoreError::QueueNotFound(q)) => assert_eq!(q, "nosuch"),
            other => panic!("set_queue_paused of an unknown queue: {other:?}"),
        }
    }
    let listed = ok("list_queues", s.queue_stats(&Scope::All, at(0)).await);
    assert!(
        listed.iter().all(|q| q.name != "nosuch"),
        "nothing created: {listed:?}"
    );
    add(s, job_in("known", "k"), at(0)).await;
    ok(
        "set_queue_paused",
        s.set_queue_paused("known", true, false, &Scope::All, at(1)).await,
    );
    assert!(queue_stats(s, "known", at(1)).await.paused);
    ok(
        "set_queue_paused",
        s.set_queue_paused("known", false, false, &Scope::All, at(2))
            .await,
    );
    assert!(!queue_stats(s, "known", at(2)).await.paused);
}

/// Pausing creates an unknown queue and lists it as paused (with no jobs);
/// resuming lists it as unpaused; pausing twice is harmless.
pub async fn set_queue_paused_creates_and_flags_the_queue(store: Arc<dyn Store>) {
    let s = &*store;
    ok(
        "set_queue_paused",
        s.set_queue_paused("nightly", true, true, &Scope::All, at(0))
            .await,
    );
    let q = queue_stats(s, "nightly", at(0)).await;
    assert!(q.paused, "paused: {q:?}");
    assert!(
        q.counts.values().all(|&n| n == 0),
        "a new queue has no jobs: {q:?}"
    );
    assert_eq!(q.oldest_available_age, None);
    ok(
        "set_queue_paused",
        s.set_queue_paused("nightly", true, true, &Scope::All, at(1))
            .await,
    );
    assert!(queue_stats(s, "nightly", at(1)).await.paused, "still paused");
    ok(
        "set_queue_paused",
        s.set_queue_paused("nightly", false, true, &Scope::All, at(2))
            .await,
    );
    assert!(!queue_stats(s, "nightly", at(2)).await.paused, "resumed");

    // Pausing one queue leaves the others alone.
    add(s, job_in("busy", "k"), at(3)).await;
    ok(
        "set_queue_paused",
        s.set_queue_paused("nightly", true, true, &Scope::All, at(4))
            .await,
    );
    assert!(
        !queue_stats(s, "busy", at(4)).await.paused,
        "another queue is not paused"
    );
    assert_eq!(claim(s, "busy", 1, WORKER, at(4)).await.len(), 1);
}

/// `list_queues` counts each queue's jobs per state (states with none are
/// absent) and reports how long its oldest available job has waited since
/// it became available: its `run_at`, or its enqueue if that was later
/// (none when nothing is available).
pub async fn list_queues_counts_jobs_per_state_and_the_oldest_wait(store: Arc<dyn Store>) {
    let s = &*store;
    let q = "mail";
    add(s, job_in(q, "k").priority(0), at(-90)).await; // will be running
    add(s, job_in(q, "k").priority(0), at(-80)).await; // will be completed
    add(s, job_in(q, "k"), at(-30)).await;
    add(s, job_in(q, "k"), at(-10)).await;
    add(s, job_in(q, "k").run_at(at(60)), at(0)).await;
    assert_eq!(
        claim(s, q, 1, WORKER, at(-5)).await.len(),
        1,
        "setup: one running job"
    );
    let second = claim(s, q, 1, WORKER, at(-5)).await.remove(0);
    finish(s, &second, crate::Finish::Complete { result: None }, at(-4)).await;
    add(s, job_in("empty", "k"), at(0)).await;
    let only = claim(s, "empty", 1, WORKER, at(0)).await;
    assert_eq!(only.len(), 1);

    let now = plus(at(0), Duration::from_micros(250));
    let stats = queue_stats(s, q, now).await;
    let want = [
        (JobState::Available, 2),
        (JobState::Scheduled, 1),
        (JobState::Running, 1),
        (JobState::Completed, 1),
    ];
    assert_eq!(
        stats.counts,
        want.into_iter().collect(),
        "counts of queue mail (absent states must not be listed)"
    );
    assert_eq!(
        stats.oldest_available_age,
        Some(Duration::from_micros(30_000_250)),
        "the oldest available job has waited since -30s"
    );
    let empty = queue_stats(s, "empty", now).await;
    assert_eq!(empty.oldest_available_age, None, "no available job, no age");
    assert_eq!(empty.counts.get(&JobState::Running), Some(&1));
}

/// A job enqueued with a `run_at` already in the past has waited since it
/// was enqueued, not since its `run_at`: the oldest wait is counted from
/// the later of the two.
pub async fn list_queues_oldest_wait_starts_when_a_job_became_available(store: Arc<dyn Store>) {
    let s = &*store;
    let q = "late";
    // Due an hour before it was enqueued, at 0.
    add(s, job_in(q, "k").run_at(at(-3600)), at(0)).await;
    let stats = queue_stats(s, q, at(10)).await;
    assert_eq!(
        stats.oldest_available_age,
        Some(secs(10)),
        "enqueued at 0, already due: it has waited 10s, not since its run_at"
    );
    // A later job that was due in the past too does not change the oldest.
    add(s, job_in(q, "k").run_at(at(-7200)), at(5)).await;
    let stats = queue_stats(s, q, at(10)).await;
    assert_eq!(stats.oldest_available_age, Some(secs(10)), "{stats:?}");
}

/// The leader role is held exclusively while its ttl lasts: others are
/// refused, the holder can renew (pushing the deadline), and once it stops
/// renewing another owner takes over after the deadline. Roles are
/// independent of one another.
pub async fn leader_role_is_exclusive_while_its_ttl_lasts(store: Arc<dyn Store>) {
    let s = &*store;
    let ttl = secs(10);
    let elect = |owner: &'static str, now| async move {
        ok(
            "elect_leader",
            s.elect_leader("maintenance", owner, ttl, now).await,
        )
    };
    assert!(elect("a", at(0)).await, "the first candidate becomes leader");
    assert!(
        !elect("b", at(5)).await,
        "a second candidate is refused while a's ttl lasts"
    );
    assert!(elect("a", at(5)).await, "the holder renews until 15s");
    assert!(
        !elect("b", at(12)).await,
        "the renewal extended a's hold past 10s"
    );
    assert!(elect("a", at(12)).await, "the holder renews again, until 22s");
    assert!(!elect("b", at(21)).await, "still a's");
    assert!(
        elect("b", at(23)).await,
        "a stopped renewing: b takes over after 22s"
    );
    assert!(!elect("a", at(24)).await, "a lost the role");

    let other = ok(
        "elect_leader",
        s.elect_leader("scheduler", "a", ttl, at(24)).await,
    );
    assert!(other, "another role is independent");
}

/// Resigning frees the role at once for another owner; a non-holder's
/// resignation changes nothing.
pub async fn resigned_leader_role_is_free_at_once(store: Arc<dyn Store>) {
    let s = &*store;
    let ttl = secs(60);
    assert!(ok(
        "elect_leader",
        s.elect_leader("maintenance", "a", ttl, at(0)).await
    ));
    ok("resign_leader", s.resign_leader("maintenance", "b").await);
    let b = ok(
        "elect_leader",
        s.elect_leader("maintenance", "b", ttl, at(1)).await,
    );
    assert!(!b, "b's resignation of a role it does not hold must not free it");
    ok("resign_leader", s.resign_leader("maintenance", "a").await);
    let b = ok(
        "elect_leader",
        s.elect_leader("maintenance", "b", ttl, at(2)).await,
    );
    assert!(b, "after a resigned, b is elected at once");
    ok("resign_leader", s.resign_leader("nobody-holds-this", "a").await);
}

/// `wait_for_change` returns (Ok) within its timeout even when nothing
/// changes; with a job inserted meanwhile it also returns.
pub async fn wait_for_change_returns_within_its_timeout(store: Arc<dyn Store>) {
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        store.wait_for_change(Duration::from_millis(50)),
    )
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("wait_for_change failed: {e}"),
        Err(_) => panic!("wait_for_change(50ms) still waiting after 5s"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "wait_for_change took {:?}",
        started.elapsed()
    );

    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.wait_for_change(Duration::from_millis(200)).await })
    };
    add(&*store, NewJob::new("k", "{}"), t0()).await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    match r {
        Ok(Ok(Ok(()))) => {}
        other => panic!("wait_for_change with an insert meanwhile: {other:?}"),
    }
}
