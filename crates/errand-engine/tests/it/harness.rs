//! Shared set-up: a fresh SQLite store per test and helpers to wait for states.

use std::sync::Arc;
use std::time::Duration;

use errand_core::{Job, JobId, JobState, Scope, Store};
use errand_engine::{Errand, WorkerConfig};
use errand_sqlite::{SqliteConfig, SqliteStore};

pub(crate) struct Env {
    pub(crate) errand: Errand,
    _dir: tempfile::TempDir,
}

pub(crate) async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("t.db")))
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    Env {
        errand: Errand::new(store),
        _dir: dir,
    }
}

/// Fast heartbeats and a long poll interval, so tests prove wake-ups work without polling.
pub(crate) fn fast_config() -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(50),
        poll_interval: Duration::from_secs(30),
        shutdown_grace: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

/// Waits (bounded) until the job reaches `state`; panics with the job on timeout.
pub(crate) async fn wait_for(env: &Env, id: JobId, state: JobState) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = env.errand.store().get_job(id, &Scope::All).await.unwrap();
        if job.state == state {
            return job;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("job {id} never became {state}: {job:#?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
