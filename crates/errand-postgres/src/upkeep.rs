//! Vacuuming the jobs table when the server's autovacuum will not.
//!
//! Every claim and completion leaves a dead row version and dead index
//! entries behind; claims walk over the dead entries of the fetch index until
//! vacuum removes them, and the heap grows. Autovacuum normally does this
//! (migration 1 tunes it for `jobs`). Where it is switched off, for the
//! server or for the table, the maintenance leader runs `VACUUM (ANALYZE)` on
//! `jobs` itself once as many rows are dead as would have triggered
//! autovacuum under those settings, at most once per [`MIN_GAP`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection, PgPool};

/// The shortest time between two vacuums started here.
pub(crate) const MIN_GAP: Duration = Duration::from_secs(10);

/// Whether a vacuum runs, and when the last one started.
#[derive(Default)]
pub(crate) struct Upkeep {
    running: AtomicBool,
    last: Mutex<Option<Instant>>,
}

/// True when autovacuum is off for `schema`.jobs and enough of its rows are
/// dead (the thresholds migration 1 sets for autovacuum: 1000 rows plus 1%).
const NEEDS_VACUUM: &str = "\
SELECT (NOT current_setting('autovacuum')::bool
        OR coalesce(c.reloptions, '{}') && ARRAY['autovacuum_enabled=false', 'autovacuum_enabled=off'])
       AND s.n_dead_tup > 1000 + 0.01 * s.n_live_tup
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE n.nspname = $1 AND c.relname = 'jobs'";

impl Upkeep {
    /// Starts a vacuum in the background if one is needed and none runs;
    /// returns at once.
    pub(crate) fn poke(self: &std::sync::Arc<Self>, pool: &PgPool, schema: &str) {
        {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < MIN_GAP) {
                return;
            }
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let pool = pool.clone();
        let schema = schema.to_owned();
        tokio::spawn(async move {
            match vacuum_if_needed(&pool, &schema).await {
                Ok(true) => {
                    *this.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(schema = %schema, error = %e, "cannot vacuum the jobs table"),
            }
            this.running.store(false, Ordering::Release);
        });
    }
}

/// Vacuums `schema`.jobs if [`NEEDS_VACUUM`] says so; returns whether it did.
async fn vacuum_if_needed(pool: &PgPool, schema: &str) -> Result<bool, sqlx::Error> {
    let needed: Option<bool> = sqlx::query_scalar(NEEDS_VACUUM)
        .bind(schema)
        .fetch_optional(pool)
        .await?;
    if needed != Some(true) {
        return Ok(false);
    }
    let started = Instant::now();
    vacuum(pool, schema).await?;
    tracing::info!(schema = %schema, elapsed_ms = started.elapsed().as_millis() as u64,
        "vacuumed the jobs table (autovacuum is off)");
    Ok(true)
}

/// `VACUUM (ANALYZE)` of `schema`.jobs. VACUUM cannot run in a transaction
/// block, so each statement is sent alone, on a connection of its own that
/// takes no slot from the pool. It may outlast the pool's statement
/// timeout, and the driver's statement logging is off on it: a vacuum of a
/// big table is slow by nature, and would be logged as a slow statement
/// warning each time (the caller logs how long it took).
pub(crate) async fn vacuum(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let opts = (*pool.connect_options()).clone().disable_statement_logging();
    let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    let vacuum = format!("VACUUM (ANALYZE) \"{schema}\".jobs");
    let done = sqlx::query(&vacuum).persistent(false).execute(&mut conn).await;
    let _ = conn.close().await;
    done.map(drop)
}
