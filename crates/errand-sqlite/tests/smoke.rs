//! Store-specific tests for SQLite: durability settings, multi-process files, migrations.

use errand_core::prelude::*;
use std::time::Duration;

use errand_core::validate::{Limits, validate};
use errand_core::{ClaimRequest, Completion, Finish, NewJob, Timestamp};
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
    let q = store.queue_stats(&errand_core::Scope::All, now).await.unwrap();
    assert_eq!(q[0].completed_total, Some(4));
    assert_eq!(q[0].counts[&errand_core::JobState::Available], 6);
}

/// The WAL file: `<db>-wal`.
fn wal_size(db: &std::path::Path) -> u64 {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    std::fs::metadata(std::path::PathBuf::from(p)).map_or(0, |m| m.len())
}

#[tokio::test]
async fn the_wal_shrinks_back_after_a_burst_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let store = SqliteStore::open(SqliteConfig::new(&db)).await.unwrap();
    let now = t(1_800_000_000);
    let pad = "x".repeat(100_000);
    // About 30 MB written in three large transactions: the WAL grows past 10 MB.
    for _ in 0..3 {
        let jobs = (0..100)
            .map(|i| {
                validate(
                    NewJob::new("big", format!("{{\"n\":{i},\"pad\":\"{pad}\"}}")),
                    &Limits::default(),
                    now,
                )
                .unwrap()
            })
            .collect();
        store.insert_jobs(jobs, now).await.unwrap();
    }
    // (Each of those transactions was in the WAL whole before its commit.)
    // With no more writes, the WAL is checkpointed and truncated.
    let bound = 4 * 1024 * 1024;
    wal_shrinks_to(&db, bound).await;
    // After a steady stream of small commits too.
    for i in 0..3000 {
        let job = validate(
            NewJob::new("small", format!("{{\"n\":{i}}}")),
            &Limits::default(),
            now,
        )
        .unwrap();
        store.insert_jobs(vec![job], now).await.unwrap();
    }
    wal_shrinks_to(&db, bound).await;
}

/// Waits (with a deadline) until the WAL file is at most `bound` bytes.
async fn wal_shrinks_to(db: &std::path::Path, bound: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while wal_size(db) > bound {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL stayed at {} bytes (bound {bound})",
            wal_size(db)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
