//! errand's PostgreSQL store: many processes on many machines share one
//! database.
//!
//! [`PostgresStore`] implements [`errand_core::Store`] and passes the same
//! conformance suite as the SQLite store. What it adds:
//!
//! - **Claiming** with `FOR UPDATE SKIP LOCKED` over a partial index on
//!   available jobs, so workers in any number of processes take disjoint
//!   batches, and fetch speed does not depend on how much finished history
//!   the table holds.
//! - **Wake-ups** through LISTEN/NOTIFY, with a polling fallback while the
//!   listening connection is down (see [`Store::wait_for_change`](errand_core::Store::wait_for_change)).
//! - **Migrations** embedded in the binary, applied on open (or by
//!   [`PostgresStore::migrate`]) under an advisory lock, so several processes
//!   may start at once; a schema from a newer errand is refused.
//! - **Your own transactions**: [`PostgresStore::insert_jobs_in`] enqueues
//!   inside the application's transaction (the job exists only if it
//!   commits), and [`PostgresStore::complete_in`] records a job's completion
//!   inside the handler's transaction, so its effects and its completion
//!   commit together.
//!
//! Every object lives in one schema ([`PostgresConfig::schema`], default
//! `errand`). Operating notes (autovacuum, pruning, connection counts) are in
//! `docs/POSTGRES.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), errand_core::StoreError> {
//! use errand_postgres::{PostgresConfig, PostgresStore};
//!
//! let store = PostgresStore::open(PostgresConfig::from_url("postgres://errand@localhost/app")).await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```

mod complete;
mod config;
mod error;
mod insert;
mod listener;
mod migrate;
mod row;
mod schedule;
mod sql;
mod store;
mod tx;
mod upkeep;

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use errand_core::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

pub use config::{DEFAULT_SCHEMA, PostgresConfig, check_schema_name, redact_text, redact_url};
pub use errand_core::url::is_postgres_url;
pub use error::PostgresError;
pub use migrate::SCHEMA_VERSION;
/// The `sqlx` this crate is built with: use it for the transactions you pass
/// to [`PostgresStore::insert_jobs_in`] and [`PostgresStore::complete_in`].
pub use sqlx;

use crate::error::{Target, connect_error, db};
use crate::listener::Wakeups;
use crate::sql::Sql;

/// A [`Store`](errand_core::Store) on PostgreSQL. Cheap to clone: clones
/// share one connection pool and one listener.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.target.text)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

struct Inner {
    pool: PgPool,
    sql: Sql,
    schema: String,
    target: Target,
    /// A pool of one connection for LISTEN, so waiting never takes a
    /// connection from `pool`.
    listener_pool: PgPool,
    listener_task: OnceLock<JoinHandle<()>>,
    wakeups: Arc<Wakeups>,
    notifier: listener::Notifier,
    upkeep: Arc<upkeep::Upkeep>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.listener_task.get() {
            task.abort();
        }
    }
}

/// Parses the URL and applies the configuration's connection settings.
/// Returns the options and how long connecting may take: libpq's
/// `connect_timeout` in the URL's query, else [`PostgresConfig::connect_timeout`].
fn connect_options(config: &PostgresConfig) -> Result<(PgConnectOptions, Duration), PostgresError> {
    let url = config.url.trim();
    if !is_postgres_url(url) {
        let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
        return Err(PostgresError::Config(format!(
            "invalid PostgreSQL URL: it must start with postgres:// or postgresql:// (the scheme is {scheme:?})"
        )));
    }
    config::check_password_chars(url)?;
    let (url, timeout) = config::take_connect_timeout(url)?;
    let (url, unknown) = config::take_unknown_params(&url);
    for name in unknown {
        // The driver would log the value too, which may be a secret.
        tracing::warn!(parameter = %name, "ignoring an unknown PostgreSQL URL parameter");
    }
    let url = url.as_str();
    let opts = PgConnectOptions::from_str(url).map_err(|e| {
        let why = match &e {
            sqlx::Error::Configuration(inner) => inner.to_string(),
            other => other.to_string(),
        };
        PostgresError::Config(format!(
            "invalid PostgreSQL URL {}: {}",
            config::redact_url(url),
            error::one_line(&why)
        ))
    })?;
    let mut opts = opts.application_name(&config.application_name);
    if plain_on_loopback(url, std::env::var_os("PGSSLMODE").is_some(), &opts) {
        opts = opts.ssl_mode(PgSslMode::Disable);
    }
    if let Some(t) = config.statement_timeout {
        opts = opts.options([("statement_timeout", format!("{}", t.as_millis().max(1)))]);
    }
    Ok((opts, timeout.unwrap_or(config.connect_timeout)))
}

/// Whether to connect without TLS although the URL did not ask for that:
/// when neither the URL (`sslmode`) nor `PGSSLMODE` chose a mode and the
/// server is on this machine (a loopback address, `localhost` or a Unix
/// socket). The drivers' default, `prefer`, would encrypt every message
/// to and from a server on the same host, which protects nothing and cost
/// a few percent of throughput on both sides. Any explicit `sslmode` wins.
fn plain_on_loopback(url: &str, env_sslmode: bool, opts: &PgConnectOptions) -> bool {
    let explicit = url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|kv| matches!(kv.split('=').next(), Some("sslmode" | "ssl-mode")))
    });
    if explicit || env_sslmode || !matches!(opts.get_ssl_mode(), PgSslMode::Prefer) {
        return false;
    }
    if opts.get_socket().is_some() {
        return true;
    }
    let host = opts.get_host().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Connects once, directly, so that a failure names exactly what is wrong
/// (a pool would only say that it timed out).
async fn probe(
    timeout: Duration,
    opts: &PgConnectOptions,
    target: &Target,
) -> Result<PgConnection, PostgresError> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(connect_error(target, e)),
        Err(_) => Err(PostgresError::Connect {
            message: format!(
                "{}: no answer within {} ms (is the host reachable?)",
                target.text,
                timeout.as_millis()
            ),
            source: None,
        }),
    }
}

impl PostgresStore {
    /// Connects, checks the schema version and applies pending migrations
    /// (unless [`PostgresConfig::migrate_on_open`] is off).
    ///
    /// A malformed URL or schema name fails with
    /// [`StoreError::InvalidConfig`] before anything is tried; refused
    /// credentials, a missing database or an unreachable server fail with
    /// [`StoreError::Connect`]; each with one line saying which. A schema
    /// written by a newer errand fails with [`StoreError::SchemaTooNew`].
    pub async fn open(config: PostgresConfig) -> Result<Self, StoreError> {
        config.check_schema()?;
        let (opts, connect_timeout) = connect_options(&config)?;
        let target = Target::of(&opts);
        let mut conn = probe(connect_timeout, &opts, &target).await?;
        let checked = if !config.create {
            migrate::require_created(&mut conn, &config.schema).await
        } else {
            Ok(())
        };
        let checked = if checked.is_err() {
            checked
        } else if config.migrate_on_open {
            migrate::migrate(&mut conn, &config.schema, SCHEMA_VERSION)
                .await
                .map(drop)
        } else {
            migrate::require_current(&mut conn, &config.schema).await
        };
        let _ = conn.close().await;
        checked?;

        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(Some(config.idle_timeout))
            .max_lifetime(Some(config.max_lifetime))
            // The pool pings every connection when it is returned, dropping
            // broken ones; pinging again before each use would cost a round
            // trip per operation. Only long-idle connections are checked.
            .test_before_acquire(false)
            // Generic plans only: every errand statement is written for one
            // plan (an index walk or primary-key lookups), planned once per
            // connection instead of once per call. Set with SET rather than
            // a startup option, which poolers such as PgBouncer refuse.
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_generic_plan").await?;
                    Ok(())
                })
            })
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for.as_secs() >= 30 {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(opts.clone());
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(connect_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(
                opts.clone()
                    .application_name(&format!("{}-listener", config.application_name))
                    // LISTEN waits are not statements, but be explicit.
                    .options([("statement_timeout", "0")]),
            );
        let notifier = listener::Notifier::spawn(pool.clone(), sql::channel(&config.schema));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                sql: Sql::new(&config.schema),
                schema: config.schema.clone(),
                target,
                pool,
                listener_pool,
                listener_task: OnceLock::new(),
                wakeups: Wakeups::new(config.poll_interval),
                notifier,
                upkeep: Arc::default(),
            }),
        })
    }

    /// Applies every pending migration (what `errand migrate` runs). Safe to
    /// call from several processes at once. Returns the schema version.
    pub async fn migrate(&self) -> Result<i64, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(db)?;
        Ok(migrate::migrate(&mut conn, &self.inner.schema, SCHEMA_VERSION).await?)
    }

    /// Applies pending migrations up to `version` only, without opening a
    /// store: for staged rollouts and for testing the upgrade path from an
    /// older schema. Returns the schema version afterwards.
    pub async fn migrate_to(config: &PostgresConfig, version: i64) -> Result<i64, StoreError> {
        config.check_schema()?;
        let (opts, connect_timeout) = connect_options(config)?;
        let target = Target::of(&opts);
        let mut conn = probe(connect_timeout, &opts, &target).await?;
        let out = migrate::migrate(&mut conn, &config.schema, version).await;
        let _ = conn.close().await;
        Ok(out?)
    }

    /// The schema's version as recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(db)?;
        Ok(migrate::current_version(&mut conn, &self.inner.schema).await?)
    }

    /// The schema holding errand's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// `VACUUM (ANALYZE)` of the jobs table, now: removes the dead row
    /// versions claims and completions leave behind and refreshes the
    /// planner's statistics. Autovacuum (or, where it is off, the store's
    /// upkeep) does this on a live system; benchmarks call it before a
    /// measured run, as the peers' drivers do.
    pub async fn vacuum_jobs(&self) -> Result<(), StoreError> {
        upkeep::vacuum(&self.inner.pool, &self.inner.schema)
            .await
            .map_err(db)
    }

    /// The connection pool, for the application's own queries and
    /// transactions (see [`PostgresStore::insert_jobs_in`]).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Whether the LISTEN connection behind
    /// [`wait_for_change`](errand_core::Store::wait_for_change) is up. It is
    /// opened by the first wait; while it is down, waits fall back to polling.
    pub fn listening(&self) -> bool {
        self.inner.wakeups.listening()
    }

    /// Closes the pools and stops the listener. Later operations fail with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        if let Some(task) = self.inner.listener_task.get() {
            task.abort();
        }
        self.inner.listener_pool.close().await;
        self.inner.pool.close().await;
    }

    fn start_listener(&self) {
        self.inner.listener_task.get_or_init(|| {
            listener::spawn(
                self.inner.listener_pool.clone(),
                sql::channel(&self.inner.schema),
                self.inner.wakeups.clone(),
            )
        });
    }
}

// Futures of the public API must be `Send` (they run in spawned tasks); the
// compiler's inference of that fails easily around sqlx's executors, so
// this pins it down at build time.
#[cfg(test)]
mod send_checks {
    use errand_core::{Completion, Finish, JobId, Timestamp};

    fn is_send<T: Send>(_: T) {}

    #[allow(dead_code)]
    fn public_futures_are_send(
        conn: &mut sqlx::PgConnection,
        config: crate::PostgresConfig,
        store: crate::PostgresStore,
    ) {
        is_send(crate::PostgresStore::open(config.clone()));
        is_send(crate::PostgresStore::migrate_to(&config, 1));
        is_send(store.migrate());
        is_send(store.schema_version());
        is_send(store.close());
        is_send(store.insert_jobs_in(&mut *conn, vec![], Timestamp::UNIX_EPOCH));
        let c = Completion {
            id: JobId(1),
            lease_token: 1,
            finish: Finish::HandBack,
        };
        is_send(store.complete_in(conn, c, Timestamp::UNIX_EPOCH));
    }
}

#[cfg(test)]
mod tls_tests {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;

    use super::plain_on_loopback;

    fn plain(url: &str, env: bool) -> bool {
        let opts = PgConnectOptions::from_str(url).unwrap();
        plain_on_loopback(url, env, &opts)
    }

    #[test]
    fn a_server_on_this_machine_is_reached_without_tls_unless_asked() {
        assert!(plain("postgres://u@127.0.0.1:5432/db", false));
        assert!(plain("postgres://u@127.0.0.2/db", false));
        assert!(plain("postgres://u@localhost/db", false));
        assert!(plain("postgres://u@[::1]:5432/db", false));
        assert!(plain("postgresql://u@%2Fvar%2Frun%2Fpostgresql/db", false));
        assert!(plain("postgres://u@127.0.0.1/db?application_name=x", false));
    }

    #[test]
    fn an_explicit_mode_or_a_remote_server_keeps_the_default() {
        assert!(!plain("postgres://u@127.0.0.1/db?sslmode=prefer", false));
        assert!(!plain(
            "postgres://u@127.0.0.1/db?application_name=x&sslmode=require",
            false
        ));
        assert!(!plain("postgres://u@localhost/db?ssl-mode=prefer", false));
        assert!(!plain("postgres://u@127.0.0.1/db", true));
        assert!(!plain("postgres://u@db.internal/db", false));
        assert!(!plain("postgres://u@10.0.0.5/db", false));
    }
}
