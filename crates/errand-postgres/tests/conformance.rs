//! The store conformance suite (`errand_core::testkit`) run against
//! PostgreSQL: every scenario gets a fresh schema of its own, dropped when
//! the scenario passes (a failed one keeps it for inspection, until the
//! stale-schema sweep of a later run).
//!
//! The server URL comes from `ERRAND_TEST_POSTGRES_URL`. Without it the
//! suite fails under CI (`CI` set) and is skipped elsewhere: the macro's
//! store constructor cannot decline, so the first scenario to ask for a
//! store says so and ends the test binary successfully.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use errand_core::Store;

/// Each open store's schema, by the address of its `Arc`.
static SCHEMAS: Mutex<BTreeMap<usize, String>> = Mutex::new(BTreeMap::new());

fn key(store: &Arc<dyn Store>) -> usize {
    Arc::as_ptr(store).cast::<()>() as usize
}

async fn fresh_store() -> Arc<dyn Store> {
    let Some(config) = support::config().await else {
        std::process::exit(0);
    };
    let schema = config.schema_name().to_owned();
    let store: Arc<dyn Store> = Arc::new(support::open(config).await);
    SCHEMAS.lock().unwrap().insert(key(&store), schema);
    store
}

async fn drop_schema(store: Arc<dyn Store>) {
    let schema = SCHEMAS.lock().unwrap().remove(&key(&store));
    drop(store);
    if let Some(schema) = schema {
        support::drop_schema(&schema).await;
    }
}

errand_core::store_conformance!(fresh_store, teardown = drop_schema);
