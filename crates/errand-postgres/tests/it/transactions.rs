//! Enqueueing in the application's transaction, and completing in the
//! handler's transaction.

use errand_core::prelude::*;
use std::time::Duration;

use errand_core::store::{ClaimRequest, Scope};
use errand_core::{Completion, Finish, Job, JobId, JobState, NewJob, StoreError};
use errand_postgres::PostgresStore;
use errand_postgres::sqlx;

use crate::support;
use crate::{at, valid};

async fn app_table(store: &PostgresStore) -> String {
    let table = format!("\"{}\".app_effects", store.schema());
    sqlx::raw_sql(&format!("CREATE TABLE {table} (note text NOT NULL)"))
        .execute(store.pool())
        .await
        .unwrap();
    table
}

async fn count(store: &PostgresStore, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn claim_one(store: &PostgresStore, now: errand_core::Timestamp) -> Job {
    let mut jobs = store
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 1,
            owner: "w1".into(),
            lease_for: Duration::from_secs(30),
            now,
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists() {
    let Some(store) = support::store().await else {
        return;
    };
    let mut tx = store.pool().begin().await.unwrap();
    let ins = store
        .insert_jobs_in(&mut tx, vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(
        store.get_job(ins[0].id, &Scope::All).await,
        Err(StoreError::NotFound(_))
    ));
    let jobs = store
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 10,
            owner: "w".into(),
            lease_for: Duration::from_secs(30),
            now: at(1),
        })
        .await
        .unwrap();
    assert!(jobs.is_empty());
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn a_job_enqueued_in_a_committed_transaction_exists_with_the_apps_writes() {
    let Some(store) = support::store().await else {
        return;
    };
    let table = app_table(&store).await;
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES ('signed up')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let ins = store
        .insert_jobs_in(
            &mut tx,
            vec![valid(
                NewJob::new("email.welcome", r#"{"to":"a@b"}"#).unique_key("welcome-7"),
                at(0),
            )],
            at(0),
        )
        .await
        .unwrap();
    // Not visible outside the transaction before it commits.
    assert!(store.get_job(ins[0].id, &Scope::All).await.is_err());
    tx.commit().await.unwrap();
    let job = store.get_job(ins[0].id, &Scope::All).await.unwrap();
    assert_eq!(
        (job.state, job.kind.as_str()),
        (JobState::Available, "email.welcome")
    );
    assert_eq!(count(&store, &table).await, 1);
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn a_unique_key_taken_in_an_open_transaction_makes_a_concurrent_enqueue_wait_then_see_it() {
    let Some(store) = support::store().await else {
        return;
    };
    let job = || valid(NewJob::new("k", "{}").unique_key("once"), at(0));
    let mut tx = store.pool().begin().await.unwrap();
    let first = store.insert_jobs_in(&mut tx, vec![job()], at(0)).await.unwrap();
    assert!(!first[0].duplicate);

    let other = store.clone();
    let second = tokio::spawn(async move { other.insert_jobs(vec![job()], at(0)).await });
    // The second enqueue waits on the key's lock while the first transaction is open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the second enqueue must wait for the first transaction"
    );
    tx.commit().await.unwrap();
    let second = second.await.unwrap().unwrap();
    assert!(second[0].duplicate, "{second:?}");
    assert_eq!(second[0].id, first[0].id);
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn a_failed_unique_enqueue_leaves_the_apps_transaction_usable() {
    let Some(store) = support::store().await else {
        return;
    };
    let table = app_table(&store).await;
    // Make every job insert fail, after the unique check has run.
    let s = store.schema();
    sqlx::raw_sql(&format!(
        r#"CREATE FUNCTION "{s}".refuse() RETURNS trigger LANGUAGE plpgsql
               AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
           CREATE TRIGGER refuse BEFORE INSERT ON "{s}".jobs
               FOR EACH ROW EXECUTE FUNCTION "{s}".refuse();"#
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES ('before')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = store
        .insert_jobs_in(
            &mut tx,
            vec![valid(NewJob::new("k", "{}").unique_key("u"), at(0))],
            at(0),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused by the test"), "{err}");
    // Only the store's savepoint was rolled back.
    sqlx::query(&format!("INSERT INTO {table} VALUES ('after')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&store, &table).await, 2);
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn completing_in_the_handlers_transaction_commits_with_its_effects() {
    let Some(store) = support::store().await else {
        return;
    };
    let table = app_table(&store).await;
    store
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();
    let job = claim_one(&store, at(1)).await;
    let token = job.lease.as_ref().unwrap().token;

    // Rolled back: neither the effect nor the completion happened.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES ('effect')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .complete_in(
            &mut tx,
            Completion {
                id: job.id,
                lease_token: token,
                finish: Finish::Complete {
                    result: Some("1".into()),
                },
            },
            at(2),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        store.get_job(job.id, &Scope::All).await.unwrap().state,
        JobState::Running
    );
    assert_eq!(count(&store, &table).await, 0);

    // Committed: both.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {table} VALUES ('effect')"))
        .execute(&mut *tx)
        .await
        .unwrap();
    store
        .complete_in(
            &mut tx,
            Completion {
                id: job.id,
                lease_token: token,
                finish: Finish::Complete {
                    result: Some("1".into()),
                },
            },
            at(3),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let done = store.get_job(job.id, &Scope::All).await.unwrap();
    assert_eq!(
        (done.state, done.result.as_deref()),
        (JobState::Completed, Some("1"))
    );
    assert_eq!(count(&store, &table).await, 1);
    let q = store.queue_stats(&errand_core::Scope::All, at(4)).await.unwrap();
    assert_eq!(q[0].completed_total, Some(1));
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn completing_in_a_transaction_with_a_lost_lease_is_refused() {
    let Some(store) = support::store().await else {
        return;
    };
    store
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();
    let job = claim_one(&store, at(1)).await;
    let stale = job.lease.as_ref().unwrap().token;
    // The lease lapses and the job is rescued, then claimed again.
    let lapsed = store.lapsed_leases(at(100), 10).await.unwrap();
    let policies = errand_core::RetryPolicy::fixed(Duration::ZERO).into();
    let rescues = lapsed
        .iter()
        .map(|l| errand_core::lifecycle::rescue_completion(l, &policies, at(100)))
        .collect();
    let rescued = store.rescue_lapsed(rescues, at(100)).await.unwrap();
    assert_eq!(rescued, vec![errand_core::CompletionResult::Done]);
    store.promote_due(at(100), 10).await.unwrap();
    let again = claim_one(&store, at(101)).await;
    assert_eq!(again.id, job.id);
    assert!(again.lease.as_ref().unwrap().token > stale);

    let mut tx = store.pool().begin().await.unwrap();
    let err = store
        .complete_in(
            &mut tx,
            Completion {
                id: job.id,
                lease_token: stale,
                finish: Finish::Complete { result: None },
            },
            at(102),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseLost { id, token } if id == job.id && token == stale),
        "{err:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        store.get_job(JobId(job.id.0), &Scope::All).await.unwrap().state,
        JobState::Running
    );
    support::drop_schema(store.schema()).await;
}
