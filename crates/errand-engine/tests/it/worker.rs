use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use errand_core::{Clock as _, JobState, NewJob, Scope};
use errand_engine::{Handler, JobArgs, JobContext, JobError};

use crate::harness::{env, fast_config, wait_for};

#[derive(Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

impl JobArgs for Add {
    const KIND: &'static str = "math.add";
}

struct AddHandler;

impl Handler<Add> for AddHandler {
    async fn perform(&self, ctx: &JobContext, args: Add) -> Result<(), JobError> {
        ctx.progress(50.0, Some("halfway".to_owned())).await?;
        ctx.set_result(&serde_json::json!({ "sum": args.a + args.b }))?;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Fail {
    how: String,
}

impl JobArgs for Fail {
    const KIND: &'static str = "fail";
}

struct FailHandler(Arc<AtomicUsize>);

impl Handler<Fail> for FailHandler {
    async fn perform(&self, ctx: &JobContext, args: Fail) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        match args.how.as_str() {
            "retry" => Err(JobError::retryable("flaky")),
            "permanent" => Err(JobError::permanent("bad input")),
            "snooze" => Err(JobError::snooze(Duration::from_secs(3600))),
            "panic" => panic!("boom"),
            "sleep" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            "wait-cancel" => {
                ctx.cancelled().await;
                Err(JobError::retryable("stopped"))
            }
            _ => Ok(()),
        }
    }

    fn retry_policy(&self) -> Option<errand_core::RetryPolicy> {
        Some(errand_core::RetryPolicy::fixed(Duration::from_secs(600)))
    }
}

#[tokio::test]
async fn typed_job_completes_with_its_result_and_progress() {
    let env = env().await;
    let worker = env
        .errand
        .worker()
        .queue("default", 4)
        .register(AddHandler)
        .config(fast_config())
        .build()
        .unwrap();
    let running = worker.start();
    let ins = env
        .errand
        .client()
        .enqueue_args(&Add { a: 2, b: 3 })
        .await
        .unwrap();
    let job = wait_for(&env, ins.id, JobState::Completed).await;
    assert_eq!(job.result.as_deref(), Some(r#"{"sum":5}"#));
    assert_eq!(job.progress.unwrap().message.as_deref(), Some("halfway"));
    assert_eq!(job.attempt, 1);
    assert!(job.lease.is_none());
    let report = running.shutdown().await;
    assert!(report.graceful);
}

async fn run_fail(how: &str, max_attempts: i32) -> (errand_core::Job, usize) {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let worker = env
        .errand
        .worker()
        .queue("default", 2)
        .register(FailHandler(calls.clone()))
        .config(fast_config())
        .build()
        .unwrap();
    let running = worker.start();
    let job = NewJob::from_args("fail", &Fail { how: how.into() })
        .unwrap()
        .max_attempts(max_attempts);
    let id = env.errand.client().enqueue(job).await.unwrap().id;
    let want = match how {
        "retry" | "panic" if max_attempts > 1 => JobState::Retryable,
        "retry" | "panic" | "permanent" => JobState::Discarded,
        "snooze" => JobState::Scheduled,
        _ => JobState::Completed,
    };
    let job = wait_for(&env, id, want).await;
    running.shutdown().await;
    (job, calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn retryable_error_waits_with_the_kinds_backoff_and_keeps_the_error() {
    let (job, calls) = run_fail("retry", 3).await;
    assert_eq!(calls, 1);
    assert_eq!(job.errors.len(), 1);
    assert_eq!(job.errors[0].message, "flaky");
    assert_eq!(job.errors[0].attempt, 1);
    let wait = job.run_at.duration_since(job.errors[0].at);
    assert_eq!(wait.as_secs(), 600, "the kind's fixed 10-minute policy applies");
}

#[tokio::test]
async fn last_attempt_failure_discards() {
    let (job, _) = run_fail("retry", 1).await;
    assert!(job.finished_at.is_some());
    assert_eq!(job.errors.len(), 1);
}

#[tokio::test]
async fn permanent_error_discards_at_once() {
    let (job, calls) = run_fail("permanent", 25).await;
    assert_eq!(calls, 1);
    assert_eq!(job.errors[0].message, "bad input");
}

#[tokio::test]
async fn panic_is_a_retryable_error() {
    let (job, _) = run_fail("panic", 5).await;
    assert!(
        job.errors[0].message.contains("panicked: boom"),
        "{:?}",
        job.errors
    );
}

#[tokio::test]
async fn snooze_does_not_spend_an_attempt() {
    let (job, _) = run_fail("snooze", 5).await;
    assert_eq!(job.attempt, 0);
    assert!(job.errors.is_empty());
}

#[tokio::test]
async fn timeout_is_a_retryable_error() {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .register(FailHandler(calls))
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let job = NewJob::from_args("fail", &Fail { how: "sleep".into() })
        .unwrap()
        .timeout(Duration::from_millis(50));
    let id = env.errand.client().enqueue(job).await.unwrap().id;
    let job = wait_for(&env, id, JobState::Retryable).await;
    assert_eq!(job.errors[0].message, "timed out after 50ms");
    running.shutdown().await;
}

/// Runs a job that waits for its cancel on a worker with `config`, cancels
/// it once it runs, and waits (at most `within`) for it to end cancelled.
async fn cancel_a_running_job(config: errand_engine::WorkerConfig, within: Duration) {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .register(FailHandler(calls.clone()))
        .config(config)
        .build()
        .unwrap()
        .start();
    let job = NewJob::from_args(
        "fail",
        &Fail {
            how: "wait-cancel".into(),
        },
    )
    .unwrap();
    let id = env.errand.client().enqueue(job).await.unwrap().id;
    wait_for(&env, id, JobState::Running).await;
    let flagged = env.errand.client().cancel(id, &Scope::All).await.unwrap();
    assert!(flagged.cancel_requested);
    let job = tokio::time::timeout(within, wait_for(&env, id, JobState::Cancelled))
        .await
        .expect("the cancel waited for the heartbeat");
    assert_eq!(job.errors.last().unwrap().message, "cancelled by an operator");
    running.shutdown().await;
}

#[tokio::test]
async fn operator_cancel_stops_a_running_job() {
    cancel_a_running_job(fast_config(), Duration::from_secs(10)).await;
}

#[tokio::test]
async fn shutdown_hands_back_unfinished_jobs_without_spending_an_attempt() {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .register(FailHandler(calls))
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let job = NewJob::from_args("fail", &Fail { how: "sleep".into() }).unwrap();
    let id = env.errand.client().enqueue(job).await.unwrap().id;
    wait_for(&env, id, JobState::Running).await;
    let report = running.shutdown().await;
    assert!(!report.graceful);
    assert_eq!(report.handed_back, 1);
    let job = env.errand.store().get_job(id, &Scope::All).await.unwrap();
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.attempt, 0);
}

/// A cancel from this process reaches the running job at once, long
/// before the next heartbeat (10 s here).
#[tokio::test]
async fn operator_cancel_does_not_wait_for_the_heartbeat() {
    let config = errand_engine::WorkerConfig {
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(10),
        ..fast_config()
    };
    cancel_a_running_job(config, Duration::from_secs(3)).await;
}

/// A job of a kind this worker has no executor for waits, its attempt not
/// spent and a note in its history saying why, so that a worker that has
/// one (a newer deploy) runs it later.
#[tokio::test]
async fn unknown_kind_waits_without_spending_attempts() {
    let mut env = env().await;
    let clock = Arc::new(errand_core::ManualClock::new(errand_core::SystemClock.now()));
    env.errand = env.errand.clone().with_clock(clock.clone());
    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .register(AddHandler)
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let id = env
        .errand
        .client()
        .enqueue(NewJob::new("nobody.handles.this", "{}"))
        .await
        .unwrap()
        .id;
    let before = env.errand.clock().now();
    let job = wait_for(&env, id, JobState::Scheduled).await;
    assert_eq!(job.attempt, 0, "no attempt is spent");
    assert_eq!(job.errors.len(), 1, "one note says why: {:?}", job.errors);
    assert!(
        job.errors[0]
            .message
            .contains("no worker seen so far has an executor"),
        "{:?}",
        job.errors
    );
    assert!(
        job.run_at >= errand_core::clock::add(before, Duration::from_secs(4)),
        "{job:?}"
    );
    // Due again and claimed again: it waits again, with no second note.
    let store = env.errand.store();
    clock.set(errand_core::clock::add(job.run_at, Duration::from_secs(1)));
    store.promote_due(clock.now(), 10).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        let j = store.get_job(id, &errand_core::Scope::All).await.unwrap();
        if j.state == JobState::Scheduled && j.run_at != job.run_at {
            break j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not put back again: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!((again.attempt, again.errors.len()), (0, 1), "{again:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn paused_queue_is_not_worked_until_resumed() {
    let env = env().await;
    let client = env.errand.client();
    client.pause("default", &errand_core::Scope::All).await.unwrap();
    let running = env
        .errand
        .worker()
        .queue("default", 2)
        .register(AddHandler)
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let id = client.enqueue_args(&Add { a: 1, b: 1 }).await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        env.errand.store().get_job(id, &Scope::All).await.unwrap().state,
        JobState::Available
    );
    client.resume("default", &errand_core::Scope::All).await.unwrap();
    wait_for(&env, id, JobState::Completed).await;
    running.shutdown().await;
}

/// Waits (up to 20 s) until the worker has completed `n` jobs.
async fn wait_completed(running: &errand_engine::RunningWorker, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while running.stats().completed < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {:?}",
            running.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn many_jobs_each_complete_exactly_once() {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let running = env
        .errand
        .worker()
        .queue("default", 50)
        .register(FailHandler(calls.clone()))
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let jobs: Vec<NewJob> = (0..2000)
        .map(|_| NewJob::from_args("fail", &Fail { how: "ok".into() }).unwrap())
        .collect();
    env.errand.client().enqueue_many(jobs).await.unwrap();
    wait_completed(&running, 2000).await;
    running.shutdown().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2000);
    let q = env
        .errand
        .client()
        .queues(&errand_core::Scope::All)
        .await
        .unwrap();
    assert_eq!(q[0].completed_total, Some(2000));
    assert_eq!(q[0].counts.get(&JobState::Completed), Some(&2000));
}

/// Counts the jobs running at once and remembers the most.
struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[derive(Serialize, Deserialize)]
struct Slow {}

impl JobArgs for Slow {
    const KIND: &'static str = "slow";
}

impl Handler<Slow> for Gauge {
    async fn perform(&self, _ctx: &JobContext, _args: Slow) -> Result<(), JobError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A worker for the `slow` jobs of queue `default` with 3 slots shared by
/// `fetchers` fetchers, recording its peak concurrency in `peak`.
fn gauged(
    errand: &errand_engine::Errand,
    fetchers: usize,
    peak: Arc<AtomicUsize>,
) -> errand_engine::WorkerBuilder {
    let mut queue = errand_engine::QueueConfig::new("default", 3);
    queue.fetchers = Some(fetchers);
    errand.worker().queue_config(queue).register(Gauge {
        now: Arc::default(),
        peak,
    })
}

#[tokio::test]
async fn fetchers_of_a_queue_share_its_concurrency() {
    let env = env().await;
    let peak = Arc::new(AtomicUsize::new(0));
    let running = gauged(&env.errand, 4, peak.clone())
        .config(fast_config())
        .build()
        .unwrap()
        .start();
    let jobs: Vec<NewJob> = (0..200)
        .map(|_| NewJob::from_args("slow", &Slow {}).unwrap())
        .collect();
    env.errand.client().enqueue_many(jobs).await.unwrap();
    wait_completed(&running, 200).await;
    running.shutdown().await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "at most 3 at once, and all 3 used"
    );
}

#[tokio::test]
async fn zero_fetchers_is_refused() {
    let env = env().await;
    let built = gauged(&env.errand, 0, Arc::default()).build();
    let Err(err) = built else {
        panic!("a queue with no fetchers was accepted");
    };
    assert_eq!(
        (err.field, err.code.as_str()),
        ("fetchers", "setting_out_of_range")
    );
}

/// A queue with `keep_completed: false` deletes each job that succeeds and
/// counts it; a job that fails there is kept, and so is a success in a queue
/// that keeps its completed jobs.
#[tokio::test]
async fn a_queue_that_keeps_no_completed_jobs_deletes_them_and_counts_them() {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut gone = errand_engine::QueueConfig::new("gone", 4);
    gone.keep_completed = false;
    let worker = env
        .errand
        .worker()
        .queue_config(gone)
        .queue("kept", 4)
        .register(FailHandler(calls.clone()))
        .config(fast_config())
        .build()
        .unwrap();
    let running = worker.start();
    let client = env.errand.client();
    let fail = |how: &str, queue: &str| {
        NewJob::from_args("fail", &Fail { how: how.into() })
            .unwrap()
            .queue(queue)
    };
    let ok_gone = client.enqueue(fail("ok", "gone")).await.unwrap().id;
    let bad_gone = client.enqueue(fail("permanent", "gone")).await.unwrap().id;
    let ok_kept = client.enqueue(fail("ok", "kept")).await.unwrap().id;
    wait_for(&env, bad_gone, JobState::Discarded).await;
    wait_for(&env, ok_kept, JobState::Completed).await;
    wait_completed(&running, 2).await;
    let err = env
        .errand
        .store()
        .get_job(ok_gone, &Scope::All)
        .await
        .unwrap_err();
    assert!(
        matches!(err, errand_core::StoreError::NotFound(_)),
        "the success in `gone` is deleted: {err:?}"
    );
    let stats = client.queues(&errand_core::Scope::All).await.unwrap();
    let gone = stats.iter().find(|q| q.name == "gone").unwrap();
    assert_eq!(
        (gone.completed_total, gone.discarded_total),
        (Some(1), Some(1)),
        "{gone:?}"
    );
    assert_eq!(gone.counts.get(&JobState::Completed), None, "{gone:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    running.shutdown().await;
}
