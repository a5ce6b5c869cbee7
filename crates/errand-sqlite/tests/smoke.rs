//! Store-specific tests for SQLite: durability settings, multi-process files, migrations.

use std::time::Duration;

use errand_core::validate::{Limits, validate};
use errand_core::{ClaimRequest, Completion, Finish, NewJob, Store, Timestamp};
use errand_sqlite::{SqliteConfig, SqliteStore};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

#[tokio::test]
async fn insert_claim_complete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("a.db")))
        .await
        .unwrap();
    let now = t(1_800_000_000);
    let jobs = (0..10)
        .map(|i| {
            validate(
                NewJob::new("noop", format!("{{\"n\":{i}}}")),
                &Limits::default(),
                now,
            )
            .unwrap()
        })
        .collect();
    let ins = store.insert_jobs(jobs, now).await.unwrap();
    assert_eq!(ins.len(), 10);
    let claimed = store
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 4,
            owner: "w".into(),
            lease_for: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    assert_eq!(claimed[0].id, ins[0].id);
    let items = claimed
        .iter()
        .map(|j| Completion {
            id: j.id,
            lease_token: j.lease.as_ref().unwrap().token,
            finish: Finish::Complete { result: None },
        })
        .collect();
    let res = store.complete_batch(items, now).await.unwrap();
    assert!(res.iter().all(|r| *r == errand_core::CompletionResult::Done));
    let q = store.list_queues(now).await.unwrap();
    assert_eq!(q[0].completed_total, 4);
    assert_eq!(q[0].counts[&errand_core::JobState::Available], 6);
}
