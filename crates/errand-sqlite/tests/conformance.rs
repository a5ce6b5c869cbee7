//! The store conformance suite (`errand_core::testkit`) run against SQLite:
//! every scenario gets a fresh database file of its own.

use std::sync::Arc;

use errand_core::Store;
use errand_sqlite::{SqliteConfig, SqliteStore};

/// A fresh, empty store on a new temporary file. The directory is leaked so
/// the file outlives the store (the test process cleans up nothing else).
async fn fresh_store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("conformance.db");
    std::mem::forget(dir);
    let store = SqliteStore::open(SqliteConfig::new(path))
        .await
        .expect("open a fresh SQLite store");
    Arc::new(store)
}

errand_core::store_conformance!(fresh_store);
