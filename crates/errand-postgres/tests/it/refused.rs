//! Writes PostgreSQL refuses for good: a permanent error with its SQLSTATE,
//! which costs a worker only the job it is about.

use std::sync::Arc;
use std::time::Duration;

use errand_core::prelude::*;
use errand_core::store::ClaimRequest;
use errand_core::{Completion, DbCode, ErrorCode, Finish, JobState, NewJob, Outcome, Scope};
use errand_engine::{Errand, Executor, JobContext, WorkerConfig};

use crate::support;

/// Fails with a message holding a NUL byte when its args say so, which
/// PostgreSQL cannot keep in a job's error history (jsonb has no `\u0000`).
struct NulOrOk;

#[async_trait::async_trait]
impl Executor for NulOrOk {
    async fn execute(&self, _ctx: &JobContext, args: &str) -> Outcome {
        if args.contains("nul") {
            Outcome::Retryable {
                error: "stderr: \0\0\0".into(),
            }
        } else {
            Outcome::Completed { result: None }
        }
    }
}

#[tokio::test]
async fn an_error_message_postgres_cannot_store_is_a_permanent_error_with_its_sqlstate() {
    let Some(store) = support::store().await else {
        return;
    };
    let schema = store.schema().to_owned();
    let errand = Errand::new(Arc::new(store.clone()));
    let id = errand.client().enqueue(NewJob::new("k", "{}")).await.unwrap().id;
    let now = errand.clock().now();
    let job = store
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 1,
            owner: "w".into(),
            lease_for: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap()
        .remove(0);
    let finish = Finish::Discard {
        error: errand_core::ErrorRecord {
            attempt: 1,
            at: now,
            message: "bad \0 byte".into(),
            worker: None,
        },
    };
    let e = store
        .complete_batch(
            vec![Completion {
                id,
                lease_token: job.lease.unwrap().token,
                finish,
            }],
            now,
        )
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert_eq!(e.code(), ErrorCode::StoreError);
    assert!(
        matches!(e.db_code(), Some(DbCode::SqlState(s)) if s.starts_with("22")),
        "a data exception: {e:?}"
    );
    assert!(e.to_string().contains("SQLSTATE 22"), "{e}");
    let source = std::error::Error::source(&e).expect("the driver's error");
    assert!(
        source.downcast_ref::<errand_postgres::sqlx::Error>().is_some(),
        "{source:?}"
    );
    support::drop_schema(&schema).await;
}

/// The same refusal inside a worker: the job's outcome is dropped (the job
/// is rescued when its lease lapses) and the other jobs complete.
#[tokio::test]
async fn a_worker_drops_only_the_outcome_postgres_refuses() {
    let Some(store) = support::store().await else {
        return;
    };
    let schema = store.schema().to_owned();
    let errand = Errand::new(Arc::new(store.clone()));
    let client = errand.client();
    let bad = client.enqueue(NewJob::new("nul", "\"nul\"")).await.unwrap().id;
    let mut good = Vec::new();
    for _ in 0..3 {
        good.push(client.enqueue(NewJob::new("nul", "\"ok\"")).await.unwrap().id);
    }
    let worker = errand
        .worker()
        .queue("default", 4)
        .executor("nul", NulOrOk)
        .config(WorkerConfig {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_millis(200),
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::default()
        })
        .build()
        .unwrap()
        .start();
    assert!(
        support::eventually(Duration::from_secs(10), || worker.stats().completions_dropped
            == 1)
        .await,
        "{:?}",
        worker.stats()
    );
    let later = client.enqueue(NewJob::new("nul", "\"ok\"")).await.unwrap().id;
    good.push(later);
    assert!(
        support::eventually(Duration::from_secs(10), || worker.stats().completed == 4).await,
        "{:?}",
        worker.stats()
    );
    for id in good {
        let job = store.get_job(id, &Scope::All).await.unwrap();
        assert_eq!(job.state, JobState::Completed, "job {id}");
    }
    let job = store.get_job(bad, &Scope::All).await.unwrap();
    assert_eq!(job.state, JobState::Running, "left for rescue: {job:?}");
    assert_eq!(worker.running(), 0, "the worker let go of it");
    worker.shutdown().await;
    support::drop_schema(&schema).await;
}
