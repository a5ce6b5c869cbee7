//! Shared test harness: the server URL, a fresh schema per test, and cleanup.
//!
//! Tests read the server URL from `ERRAND_TEST_POSTGRES_URL`. When it is
//! unset, tests are skipped with a message — unless `CI` is set, where a
//! missing server is a failure.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errand_postgres::sqlx::{self, Connection, PgConnection};
use errand_postgres::{PostgresConfig, PostgresStore};

/// The variable naming the test server.
pub const URL_VAR: &str = "ERRAND_TEST_POSTGRES_URL";

/// The server URL, or `None` (after saying so) when tests should skip.
pub fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{URL_VAR} is not set, and CI is: the PostgreSQL tests must run in CI \
             (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            say_skipped();
            None
        }
    }
}

/// Says once per test binary that the tests are skipped. Written to the
/// process's stderr directly: the test harness hides what tests print.
pub fn say_skipped() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {URL_VAR} is not set, so the PostgreSQL tests do not run; set it to run them \
             (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        );
    });
}

/// Test schemas are named `t_<unix seconds>_<pid>_<n>`, so stale ones from
/// crashed runs can be recognised by age and dropped.
pub fn fresh_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "t_{secs}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A configuration for a fresh, empty schema; `None` when skipping.
pub async fn config() -> Option<PostgresConfig> {
    let url = url()?;
    sweep_stale_schemas(&url).await;
    Some(
        PostgresConfig::from_url(url)
            .schema(fresh_schema())
            .max_connections(4),
    )
}

/// A store on a fresh, empty schema; `None` when skipping.
pub async fn store() -> Option<PostgresStore> {
    let config = config().await?;
    Some(open(config).await)
}

/// Opens `config`, panicking with the store's message on failure.
pub async fn open(config: PostgresConfig) -> PostgresStore {
    PostgresStore::open(config)
        .await
        .unwrap_or_else(|e| panic!("cannot open the test store: {e}"))
}

/// A direct connection to the test server.
pub async fn connect() -> PgConnection {
    let url = std::env::var(URL_VAR).expect("only called after url()");
    PgConnection::connect(&url)
        .await
        .expect("connect to the test server")
}

/// Drops `schema` and everything in it.
pub async fn drop_schema(schema: &str) {
    let mut conn = connect().await;
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop the test schema");
}

/// Drops test schemas older than 15 minutes: leftovers of failed runs.
async fn sweep_stale_schemas(url: &str) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let Ok(mut conn) = PgConnection::connect(url).await else {
            return;
        };
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9]+_[0-9]+$'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for name in names {
            let born: u64 = name
                .split('_')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            if now.saturating_sub(born) > 15 * 60 {
                let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await;
            }
        }
    })
    .await;
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
