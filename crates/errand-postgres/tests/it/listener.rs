//! Wake-ups through LISTEN/NOTIFY; polling while the listener is down; reconnection.

use errand_core::prelude::*;
use std::time::{Duration, Instant};

use errand_core::store::ClaimRequest;
use errand_core::{Completion, Finish, NewJob};
use errand_postgres::{PostgresStore, sqlx};

use crate::support;
use crate::{at, valid};

/// How long a wait may take when a notification is expected; far below the
/// waits' own timeout, so a return within it was caused by the notification.
const PROMPT: Duration = Duration::from_secs(3);
const LONG: Duration = Duration::from_secs(30);

async fn listening(store: &PostgresStore) {
    // The first wait starts the listener.
    store.wait_for_change(Duration::from_millis(1)).await.unwrap();
    assert!(
        support::eventually(Duration::from_secs(10), || store.listening()).await,
        "the listener never connected"
    );
}

/// Starts a wait in the background and returns a handle yielding how long it took.
fn wait_in_background(store: &PostgresStore) -> tokio::task::JoinHandle<Duration> {
    let store = store.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        store.wait_for_change(LONG).await.unwrap();
        start.elapsed()
    })
}

/// Lets a background wait subscribe before the test acts.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn an_insert_by_another_process_wakes_a_waiter() {
    let Some(config) = support::config().await else {
        return;
    };
    let waiter = support::open(config.clone()).await;
    let producer = support::open(config.clone()).await;
    listening(&waiter).await;
    let wait = wait_in_background(&waiter);
    settle().await;
    producer
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();
    let took = wait.await.unwrap();
    assert!(took < PROMPT, "woken after {took:?}");
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_scheduled_insert_does_not_wake_but_its_promotion_and_a_hand_back_do() {
    let Some(config) = support::config().await else {
        return;
    };
    let waiter = support::open(config.clone()).await;
    let other = support::open(config.clone()).await;
    listening(&waiter).await;

    // Scheduled: nothing to claim yet, so no notification.
    let wait = wait_in_background(&waiter);
    settle().await;
    let later = valid(NewJob::new("k", "{}").run_at(at(60)), at(0));
    other.insert_jobs(vec![later], at(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wait.is_finished(), "a scheduled job must not wake workers");
    wait.abort();

    let wait = wait_in_background(&waiter);
    settle().await;
    assert_eq!(
        other.promote_due(at(60), 10).await.unwrap(),
        vec!["default".to_owned()]
    );
    assert!(wait.await.unwrap() < PROMPT);

    let claimed = other
        .claim_available(ClaimRequest {
            queue: "default".into(),
            limit: 1,
            owner: "w".into(),
            lease_for: Duration::from_secs(30),
            now: at(61),
        })
        .await
        .unwrap();
    let wait = wait_in_background(&waiter);
    settle().await;
    other
        .complete_batch(
            vec![Completion {
                id: claimed[0].id,
                lease_token: claimed[0].lease.as_ref().unwrap().token,
                finish: Finish::HandBack,
            }],
            at(62),
        )
        .await
        .unwrap();
    assert!(wait.await.unwrap() < PROMPT);
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_killed_listener_connection_is_replaced_and_notifications_flow_again() {
    let Some(config) = support::config().await else {
        return;
    };
    let app = format!("errand-test-{}", config.schema_name());
    let config = config.application_name(&app);
    let waiter = support::open(config.clone()).await;
    let producer = support::open(config.clone()).await;
    listening(&waiter).await;

    let mut admin = support::connect().await;
    let find = format!("SELECT pid FROM pg_stat_activity WHERE application_name = '{app}-listener'");
    let before: Vec<i32> = sqlx::query_scalar(&find).fetch_all(&mut admin).await.unwrap();
    assert_eq!(before.len(), 1, "exactly one listener connection: {before:?}");
    // A waiter blocked at the moment of the kill is woken: it may have missed
    // notifications, so it must look again.
    let wait = wait_in_background(&waiter);
    settle().await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    assert!(wait.await.unwrap() < PROMPT, "the kill did not wake the waiter");

    // A new LISTEN connection replaces the killed one.
    let mut replaced = false;
    for _ in 0..100 {
        let now: Vec<i32> = sqlx::query_scalar(&find).fetch_all(&mut admin).await.unwrap();
        if now.len() == 1 && now[0] != before[0] && waiter.listening() {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replaced, "the listener did not reconnect");
    let wait = wait_in_background(&waiter);
    settle().await;
    producer
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();
    assert!(
        wait.await.unwrap() < PROMPT,
        "notifications do not flow after the reconnect"
    );
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn an_operator_retry_and_a_resumed_queue_wake_waiters() {
    let Some(config) = support::config().await else {
        return;
    };
    let waiter = support::open(config.clone()).await;
    let other = support::open(config.clone()).await;
    listening(&waiter).await;
    let ins = other
        .insert_jobs(vec![valid(NewJob::new("k", "{}").run_at(at(600)), at(0))], at(0))
        .await
        .unwrap();
    other
        .set_queue_paused("default", true, true, &errand_core::Scope::All, at(1))
        .await
        .unwrap();

    let wait = wait_in_background(&waiter);
    settle().await;
    other
        .retry_job(ins[0].id, &errand_core::store::Scope::All, at(2))
        .await
        .unwrap();
    assert!(
        wait.await.unwrap() < PROMPT,
        "an operator retry did not wake the waiter"
    );

    let wait = wait_in_background(&waiter);
    settle().await;
    other
        .set_queue_paused("default", false, true, &errand_core::Scope::All, at(3))
        .await
        .unwrap();
    assert!(
        wait.await.unwrap() < PROMPT,
        "resuming a queue did not wake the waiter"
    );
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn stores_on_different_schemas_do_not_wake_each_other() {
    let Some(a) = support::config().await else { return };
    let Some(b) = support::config().await else { return };
    let waiter = support::open(a.clone()).await;
    let other = support::open(b.clone()).await;
    listening(&waiter).await;
    let wait = wait_in_background(&waiter);
    settle().await;
    other
        .insert_jobs(vec![valid(NewJob::new("k", "{}"), at(0))], at(0))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wait.is_finished(), "a job in another schema woke the waiter");
    wait.abort();
    support::drop_schema(a.schema_name()).await;
    support::drop_schema(b.schema_name()).await;
}
