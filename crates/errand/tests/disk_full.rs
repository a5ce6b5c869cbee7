//! A worker on an SQLite store whose disk is full: SQLite's `max_page_count`
//! makes every write that needs a new page fail with SQLITE_FULL, exactly as
//! a full disk does, and raising it again is the space coming back.

use errand::core::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use errand::core::{JobState, Outcome, Scope};
use errand::{Errand, Executor, JobContext, NewJob, Readiness, SqliteConfig, SqliteStore, WorkerConfig};

/// Succeeds with a result large enough to need new pages when it is written.
struct BigResult;

#[async_trait]
impl Executor for BigResult {
    async fn execute(&self, _ctx: &JobContext, _args: &str) -> Outcome {
        Outcome::Completed {
            result: Some(format!("\"{}\"", "r".repeat(200_000))),
        }
    }
}

/// The log lines written while the test runs.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn eventually(limit: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn state(store: &SqliteStore, id: errand::JobId) -> JobState {
    store.get_job(id, &Scope::All).await.expect("read the job").state
}

// One thread: the log subscriber set for this test sees every task.
#[tokio::test]
async fn a_full_disk_makes_the_worker_not_ready_then_it_recovers_or_stops_within_its_grace() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    );

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("full.db")))
        .await
        .unwrap();
    let errand = Errand::new(Arc::new(store.clone()));
    let grace = Duration::from_secs(1);
    let worker = errand
        .worker()
        .config(WorkerConfig {
            shutdown_grace: grace,
            heartbeat: Duration::from_millis(200),
            poll_interval: Duration::from_millis(50),
            ..WorkerConfig::default()
        })
        .queue("default", 2)
        .executor("big", BigResult)
        .build()
        .unwrap()
        .start();

    // The disk fills up: the job runs, but its completion cannot be written.
    store.set_max_page_count(1).await.unwrap();
    let first = errand
        .client()
        .enqueue(NewJob::new("big", "{}"))
        .await
        .unwrap()
        .id;
    eventually(Duration::from_secs(20), "the worker is not ready", async || {
        matches!(worker.readiness(), Readiness::NotReady { .. })
    })
    .await;
    match worker.readiness() {
        Readiness::NotReady { error, .. } => assert!(error.contains("full"), "{error}"),
        Readiness::Ready => unreachable!(),
    }
    assert_eq!(state(&store, first).await, JobState::Running);

    // Space comes back: the completion is written and the worker is ready again.
    store.set_max_page_count(1 << 30).await.unwrap();
    eventually(Duration::from_secs(20), "the job is completed", async || {
        state(&store, first).await == JobState::Completed
    })
    .await;
    eventually(Duration::from_secs(20), "the worker is ready", async || {
        worker.readiness() == Readiness::Ready
    })
    .await;
    let text = logs.text();
    assert_eq!(
        text.matches("the store does not answer").count(),
        1,
        "the outage is logged once:\n{text}"
    );
    assert!(
        !text.contains("WARN") || !text.contains("cannot write completions"),
        "each retry is not logged as a warning:\n{text}"
    );

    // Full again, and a stop is asked for: shutdown ends within about its
    // grace, leaving the job running for a rescue instead of retrying on.
    let pages = store.set_max_page_count(1).await.unwrap();
    assert!(pages > 1);
    let second = errand
        .client()
        .enqueue(NewJob::new("big", "{}"))
        .await
        .unwrap()
        .id;
    eventually(
        Duration::from_secs(20),
        "the worker is not ready again",
        async || matches!(worker.readiness(), Readiness::NotReady { .. }),
    )
    .await;
    let started = Instant::now();
    let report = tokio::time::timeout(grace * 2 + Duration::from_secs(3), worker.shutdown())
        .await
        .expect("shutdown ends within its grace while completions keep failing");
    assert!(started.elapsed() < grace * 2 + Duration::from_secs(3));
    let _ = report;
    assert!(logs.text().contains("giving up writing completions at shutdown"));
    store.set_max_page_count(1 << 30).await.unwrap();
    assert_eq!(state(&store, second).await, JobState::Running, "left for rescue");
}
