//! The store conformance suite (`errand_core::testkit`) run against
//! PostgreSQL: every scenario gets a fresh schema of its own.
//!
//! The server URL comes from `ERRAND_TEST_POSTGRES_URL`. Without it the
//! suite fails under CI (`CI` set) and is skipped elsewhere: the macro's
//! store constructor cannot decline, so the first scenario to ask for a
//! store says so and ends the test binary successfully.

mod support;

use std::sync::Arc;

use errand_core::Store;

async fn fresh_store() -> Arc<dyn Store> {
    let Some(config) = support::config().await else {
        std::process::exit(0);
    };
    Arc::new(support::open(config).await)
}

errand_core::store_conformance!(fresh_store);
