//! Leader election with a lease: one holder, renewal, takeover after the
//! lease runs out, resignation.

use errand_core::prelude::*;
use std::time::Duration;

use crate::at;
use crate::support;

const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn one_holder_renews_and_a_dead_holder_is_replaced_once_its_lease_runs_out() {
    let Some(config) = support::config().await else {
        return;
    };
    // Two processes.
    let a = support::open(config.clone()).await;
    let b = support::open(config.clone()).await;
    assert!(a.elect_leader("maintenance", "a", TTL, at(0)).await.unwrap());
    assert!(!b.elect_leader("maintenance", "b", TTL, at(1)).await.unwrap());
    // a renews before its lease ends; b still cannot take it.
    assert!(a.elect_leader("maintenance", "a", TTL, at(9)).await.unwrap());
    assert!(!b.elect_leader("maintenance", "b", TTL, at(18)).await.unwrap());
    // a stops renewing (dies): once its lease (until 19 s) has run out, b takes over.
    assert!(b.elect_leader("maintenance", "b", TTL, at(19)).await.unwrap());
    // a comes back and finds the role taken.
    assert!(!a.elect_leader("maintenance", "a", TTL, at(20)).await.unwrap());
    // Roles are independent.
    assert!(a.elect_leader("scheduler", "a", TTL, at(20)).await.unwrap());
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_resigned_role_is_free_at_once_and_only_the_holder_can_resign() {
    let Some(store) = support::store().await else {
        return;
    };
    assert!(store.elect_leader("r", "a", TTL, at(0)).await.unwrap());
    store.resign_leader("r", "b").await.unwrap();
    assert!(!store.elect_leader("r", "b", TTL, at(1)).await.unwrap());
    store.resign_leader("r", "a").await.unwrap();
    assert!(store.elect_leader("r", "b", TTL, at(1)).await.unwrap());
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn racing_candidates_elect_exactly_one() {
    let Some(config) = support::config().await else {
        return;
    };
    let stores: Vec<_> = open_n(config.clone(), 6).await;
    let races: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            tokio::spawn(async move {
                s.elect_leader("race", &format!("c{i}"), TTL, at(0))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for r in races {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
    support::drop_schema(config.schema_name()).await;
}

async fn open_n(config: errand_postgres::PostgresConfig, n: usize) -> Vec<errand_postgres::PostgresStore> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(support::open(config.clone()).await);
    }
    out
}
