//! Versioned migrations: applied on open, idempotent, safe with many
//! processes at once, refusing newer schemas, and upgrading from version 1.

use errand_core::prelude::*;
use errand_core::store::{ClaimRequest, Scope};
use errand_core::{Completion, Finish, JobId, JobState, StoreError};
use errand_postgres::sqlx;
use errand_postgres::{PostgresStore, SCHEMA_VERSION};

use crate::support;
use crate::{at, t0, valid};

#[tokio::test]
async fn open_creates_the_schema_at_the_current_version_and_reopening_changes_nothing() {
    let Some(config) = support::config().await else {
        return;
    };
    let store = support::open(config.clone()).await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(store.migrate().await.unwrap(), SCHEMA_VERSION);
    let again = support::open(config.clone()).await;
    assert_eq!(again.schema_version().await.unwrap(), SCHEMA_VERSION);
    let mut conn = support::connect().await;
    let applied: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{}\".errand_migrations ORDER BY version",
        config.schema_name()
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn many_processes_opening_a_new_schema_at_once_all_succeed() {
    let Some(config) = support::config().await else {
        return;
    };
    // Each open uses its own connection, as separate processes would.
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let c = config.clone();
            tokio::spawn(async move { PostgresStore::open(c).await.map(|s| s.schema().to_owned()) })
        })
        .collect();
    for o in opens {
        o.await
            .unwrap()
            .unwrap_or_else(|e| panic!("a concurrent open failed: {e}"));
    }
    let mut conn = support::connect().await;
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".errand_migrations",
        config.schema_name()
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, SCHEMA_VERSION, "each migration must be applied exactly once");
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_schema_from_a_newer_errand_is_refused() {
    let Some(config) = support::config().await else {
        return;
    };
    let store = support::open(config.clone()).await;
    sqlx::query(&format!(
        "INSERT INTO \"{}\".errand_migrations (version, name) VALUES ($1, 'from the future')",
        store.schema()
    ))
    .bind(SCHEMA_VERSION + 5)
    .execute(store.pool())
    .await
    .unwrap();
    match PostgresStore::open(config.clone()).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 5, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let err = store.migrate().await.unwrap_err();
    assert!(err.to_string().contains("upgrade errand"), "{err}");
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn without_migrate_on_open_an_old_schema_asks_for_errand_migrate() {
    let Some(config) = support::config().await else {
        return;
    };
    let err = PostgresStore::open(config.clone().migrate_on_open(false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("errand migrate"), "{err}");
    PostgresStore::migrate_to(&config, 1).await.unwrap();
    let err = PostgresStore::open(config.clone().migrate_on_open(false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("version 1"), "{err}");
    support::open(config.clone()).await;
    support::open(config.clone().migrate_on_open(false)).await;
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_version_1_database_with_jobs_upgrades_and_keeps_working() {
    let Some(config) = support::config().await else {
        return;
    };
    assert_eq!(PostgresStore::migrate_to(&config, 1).await.unwrap(), 1);
    let schema = config.schema_name().to_owned();
    // Jobs written by a version-1 errand: one waiting, one finished.
    let mut conn = support::connect().await;
    let t = errand_core::clock::to_micros(t0());
    sqlx::raw_sql(&format!(
        r#"INSERT INTO "{schema}".queues (name, created_at) VALUES ('old', {t});
           INSERT INTO "{schema}".jobs (queue, kind, args, priority, state, max_attempts, run_at, created_at)
           VALUES ('old', 'legacy.kind', '{{"v": 1}}', 100, 'available', 3, {t}, {t});
           INSERT INTO "{schema}".jobs (queue, kind, args, priority, state, attempt, max_attempts, run_at,
                                        created_at, finished_at, result)
           VALUES ('old', 'legacy.kind', '{{}}', 100, 'completed', 1, 3, {t}, {t}, {t}, 'true');"#
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let store = support::open(config.clone()).await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let old = store.get_job(JobId(1), &Scope::All).await.unwrap();
    assert_eq!(
        (old.state, old.args.as_str()),
        (JobState::Available, r#"{"v": 1}"#)
    );
    let claimed = store
        .claim_available(ClaimRequest {
            queue: "old".into(),
            limit: 10,
            owner: "w".into(),
            lease_for: std::time::Duration::from_secs(30),
            now: at(1),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let done = store
        .complete_batch(
            vec![Completion {
                id: claimed[0].id,
                lease_token: claimed[0].lease.as_ref().unwrap().token,
                finish: Finish::Complete { result: None },
            }],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(done, vec![errand_core::CompletionResult::Done]);
    // New jobs get ids after the old ones.
    let new = store
        .insert_jobs(
            vec![valid(errand_core::NewJob::new("k", "{}").queue("old"), at(3))],
            at(3),
        )
        .await
        .unwrap();
    assert!(new[0].id.0 > 2, "{new:?}");
    let queues = store.queue_stats(&errand_core::Scope::All, at(4)).await.unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(
        queues[0].completed_total,
        Some(1),
        "totals count from the upgrade on"
    );
    assert_eq!(queues[0].counts.get(&JobState::Completed), Some(&2));
    support::drop_schema(&schema).await;
}
