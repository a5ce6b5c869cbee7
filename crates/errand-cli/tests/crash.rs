//! Crash safety on SQLite, end to end: real `errand work` processes are
//! SIGKILLed at random moments while they work thousands of `command` jobs,
//! and restarted until everything is done. Delivery is at-least-once, so a
//! job's side effect may happen twice; its completion in the store may not.
//! And a worker whose lease was lost (a stale worker) cannot complete.
//!
//! Timing: the worker's lease is 2 s and maintenance runs every 200 ms, but
//! the maintenance leader's lease is the default 15 s, so the jobs a killed
//! worker held are rescued once a surviving process becomes leader (about
//! 15-20 s after the first kill). Deadlines are generous; nothing asserts a
//! tight time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand::core::{
    ClaimRequest, Completion, CompletionResult, Finish, Job, JobFilter, JobState, RetryPolicy, Scope, Store,
};
use errand::{Errand, NewJob};
use jiff::Timestamp;
use serde_json::json;

use common::{Proc, Rng, Scratch};

const CONFIG: &str = r#"
[worker]
lease = "2s"
heartbeat = "500ms"
poll_interval = "100ms"
shutdown_grace = "10s"
queues = { default = 8, fence = 1 }

[maintenance]
interval = "200ms"
"#;

async fn open(s: &Scratch) -> Arc<dyn Store> {
    errand::open_store(&s.url()).await.expect("open the test store")
}

/// Every job in the store, oldest first.
async fn all_jobs(store: &dyn Store) -> Vec<Job> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_jobs(&JobFilter {
                before_id: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list jobs");
        out.extend(page.jobs);
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    out.reverse();
    out
}

/// (jobs completed in `queue`, the queue's completion counter).
async fn completed(store: &dyn Store, queue: &str) -> (u64, u64) {
    let qs = store
        .queue_stats(&errand::core::Scope::All, Timestamp::now())
        .await
        .expect("list queues");
    qs.iter().find(|q| q.name == queue).map_or((0, 0), |q| {
        (
            q.counts.get(&JobState::Completed).copied().unwrap_or(0),
            q.completed_total.unwrap_or(0),
        )
    })
}

/// Jobs waiting to be claimed.
async fn available(store: &dyn Store) -> u64 {
    let qs = store
        .queue_stats(&errand::core::Scope::All, Timestamp::now())
        .await
        .expect("list queues");
    qs.iter().filter_map(|q| q.counts.get(&JobState::Available)).sum()
}

fn work(s: &Scratch, round: usize) -> Proc {
    Proc::spawn(s.cmd(&["work"]), &s.path(&format!("work-{round}.log")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_no_job_and_complete_none_twice() {
    const JOBS: usize = 5000;
    const MAX_KILLS: usize = 8;
    let s = Scratch::new();
    std::fs::write(s.path("errand.toml"), CONFIG).unwrap();
    let effects = s.path("effects.txt");
    let store = open(&s).await;
    let errand = Errand::new(store.clone());
    // Each job appends its id to one file: the side effect we count. A
    // rescued job retries after 200 ms (its own policy), not the default 15 s.
    let argv = json!({"argv": ["sh", "-c", format!("echo $ERRAND_JOB_ID >> '{}'", effects.display())]});
    for _ in 0..JOBS / 1000 {
        let batch = (0..1000)
            .map(|_| {
                NewJob::new("command", argv.to_string()).retry(RetryPolicy::fixed(Duration::from_millis(200)))
            })
            .collect();
        errand.client().enqueue_many(batch).await.expect("enqueue");
    }
    let started = Instant::now();

    // Kill at random moments while work remains; the survivor of the last
    // round finishes the job (and, once it leads maintenance, rescues the orphans).
    let mut rng = Rng::from_env_or_time("ERRAND_CRASH_SEED");
    let mut kills = Vec::new();
    let mut last = work(&s, 0);
    loop {
        tokio::time::sleep(rng.millis(300, 1500)).await;
        if kills.len() == MAX_KILLS || available(&*store).await == 0 {
            break;
        }
        last.kill9();
        kills.push(completed(&*store, "default").await.0);
        last = work(&s, kills.len());
    }
    eprintln!("killed {} workers, at {kills:?} jobs completed", kills.len());
    assert!(
        kills.len() >= 2,
        "the work finished before two kills: make it longer"
    );

    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let (done, _) = completed(&*store, "default").await;
        if done as usize == JOBS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {JOBS} jobs completed; last worker's log:\n{}",
            last.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last.stop(Duration::from_secs(20));
    eprintln!(
        "all {JOBS} jobs completed {:?} after the first start",
        started.elapsed()
    );

    // In the store: every job completed, once.
    let jobs = all_jobs(&*store).await;
    assert_eq!(jobs.len(), JOBS, "no job lost or added");
    let rescued = common::check_all_completed(&jobs);
    let (done, total) = completed(&*store, "default").await;
    assert_eq!(
        (done, total),
        (JOBS as u64, JOBS as u64),
        "the completion counter counts each job once"
    );
    assert!(rescued > 0, "no job was running when a worker was killed");

    // The side effects: every job's at least once; twice only for a job that ran twice.
    let twice = common::check_effects(&effects, &jobs);
    eprintln!(
        "at-least-once: {rescued} attempts rescued after kills; {twice} side effects repeated \
         (of {JOBS} jobs); 0 jobs completed twice in the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_workers_completion_is_refused_after_rescue() {
    let s = Scratch::new();
    std::fs::write(s.path("errand.toml"), CONFIG).unwrap();
    let store = open(&s).await;
    let errand = Errand::new(store.clone());
    let job = NewJob::new(
        "command",
        json!({"argv": ["sh", "-c", "sleep 1; echo second"]}).to_string(),
    )
    .queue("fence")
    .retry(RetryPolicy::fixed(Duration::from_millis(100)));
    let id = errand.client().enqueue(job).await.expect("enqueue").id;

    // A "stale" worker (this test) claims it with a 1 s lease, then stalls.
    let claimed = store
        .claim_available(ClaimRequest {
            queue: "fence".into(),
            limit: 1,
            owner: "stale-worker".into(),
            lease_for: Duration::from_secs(1),
            now: Timestamp::now(),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let stale = claimed[0].lease.clone().expect("a lease").token;
    let stale_completion = |result: &str| Completion {
        id,
        lease_token: stale,
        finish: Finish::Complete {
            result: Some(result.to_owned()),
        },
    };

    // A real worker process: its maintenance rescues the job once the lease
    // lapses, and its worker claims and runs the next attempt.
    let mut p = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    let get = || async { store.get_job(id, &Scope::All).await.expect("get the job") };
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let j = get().await;
        if j.state == JobState::Running && j.lease.as_ref().is_some_and(|l| l.token != stale) {
            break j;
        }
        assert!(
            j.state != JobState::Completed && Instant::now() < deadline,
            "the second attempt was not seen running: {j:?}\n{}",
            p.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(running.attempt, 2);

    // While the new attempt runs, the stale worker's completion is refused and changes nothing.
    let r = store
        .complete_batch(vec![stale_completion("\"stale\"")], Timestamp::now())
        .await
        .expect("complete");
    assert_eq!(r, vec![CompletionResult::LeaseLost]);
    let after = get().await;
    assert_eq!(
        (after.state, after.lease.as_ref().map(|l| l.token)),
        (JobState::Running, running.lease.as_ref().map(|l| l.token)),
        "the stale completion touched the running attempt"
    );
    // Its heartbeat learns it lost the job.
    let report = store
        .extend_leases(
            "stale-worker",
            &[(id, stale)],
            errand::core::clock::add(Timestamp::now(), Duration::from_secs(60)),
        )
        .await
        .expect("heartbeat");
    assert_eq!(report.lost, vec![id]);

    // The new attempt completes; the stale completion is still refused afterwards.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get().await.state != JobState::Completed {
        assert!(
            Instant::now() < deadline,
            "the second attempt did not complete\n{}",
            p.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = store
        .complete_batch(vec![stale_completion("\"stale\"")], Timestamp::now())
        .await
        .expect("complete");
    assert_eq!(r, vec![CompletionResult::LeaseLost]);
    p.stop(Duration::from_secs(20));

    let j = get().await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.attempt, 2);
    let result: serde_json::Value = serde_json::from_str(j.result.as_deref().expect("a result")).unwrap();
    assert_eq!(result["stdout"], "second\n", "the second attempt's result stands");
    assert_eq!(j.errors.len(), 1);
    assert!(j.errors[0].message.contains("stale-worker"), "{:?}", j.errors);
    assert_eq!(completed(&*store, "fence").await, (1, 1), "completed once");
}

/// Command jobs whose processes spawn children, under repeated SIGKILLs of
/// their worker: a rescued job never starts while a copy of it still runs.
/// Each job holds an exclusive `flock` on a file of its own for as long as
/// any of its processes lives (the lock is inherited by its children); a
/// second copy that finds it taken records an overlap. A job runs longer
/// than a rescue takes (lease 2 s, leader 2 s), so a copy left running by a
/// killed worker would still hold the lock when its retry starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_never_leave_a_command_copy_running_beside_its_retry() {
    const JOBS: usize = 8;
    let s = Scratch::new();
    std::fs::write(
        s.path("errand.toml"),
        format!("{CONFIG}leader_ttl = \"2s\"\n\n[queue.default]\nconcurrency = 4\n"),
    )
    .unwrap();
    let overlaps = s.path("overlaps.txt");
    let locks = s.path("locks");
    std::fs::create_dir(&locks).unwrap();
    let store = open(&s).await;
    let errand = Errand::new(store.clone());
    let line = format!(
        "flock -n '{locks}/'$ERRAND_JOB_ID sh -c 'sleep 5 & sleep 5; wait' || echo $ERRAND_JOB_ID >> '{overlaps}'",
        locks = locks.display(),
        overlaps = overlaps.display()
    );
    let argv = json!({"argv": ["sh", "-c", line]});
    let batch = (0..JOBS)
        .map(|_| {
            NewJob::new("command", argv.to_string()).retry(RetryPolicy::fixed(Duration::from_millis(200)))
        })
        .collect();
    errand.client().enqueue_many(batch).await.expect("enqueue");

    let mut rng = Rng::from_env_or_time("ERRAND_CRASH_SEED");
    let mut last = work(&s, 0);
    for round in 1..=4 {
        tokio::time::sleep(rng.millis(400, 1200)).await;
        last.kill9();
        last = work(&s, round);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while (completed(&*store, "default").await.0 as usize) < JOBS {
        assert!(
            Instant::now() < deadline,
            "not every job completed; last worker's log:\n{}",
            last.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last.stop(Duration::from_secs(20));
    let overlapped = std::fs::read_to_string(&overlaps).unwrap_or_default();
    assert!(
        overlapped.trim().is_empty(),
        "a copy of these jobs started while an earlier copy still ran: {overlapped}"
    );
}
