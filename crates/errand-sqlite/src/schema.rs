//! Connections and versioned migrations.

use rusqlite::{Connection, OpenFlags};

use errand_core::StoreError;

use crate::{Durability, SqliteConfig};

/// The WAL size (pages) at which a committing writer checkpoints by itself.
/// Normally the watcher thread checkpoints long before (see `watch.rs`), so
/// the writer thread never spends its time copying pages; this is the fallback.
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_schedules.sql")),
];

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Opens a connection with errand's settings.
pub(crate) fn connect(cfg: &SqliteConfig) -> Result<Connection, StoreError> {
    if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(StoreError::Connect(format!(
            "cannot open SQLite database {}: directory {} does not exist",
            cfg.path.display(),
            dir.display()
        )));
    }
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&cfg.path, flags).map_err(|e| {
        StoreError::Connect(format!("cannot open SQLite database {}: {e}", cfg.path.display()))
    })?;
    conn.busy_timeout(cfg.busy_timeout).map_err(sqlite_err)?;
    let sync = match cfg.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| {
            StoreError::Connect(format!("cannot use SQLite database {}: {e}", cfg.path.display()))
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Connect(format!(
            "SQLite database {} cannot use WAL mode (got {mode})",
            cfg.path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000; \
         PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"
    ))
    .map_err(sqlite_err)?;
    // Plans must not depend on bound values: SQLite otherwise re-prepares a
    // statement whenever a value it planned with changes, such as the claim's
    // `LIMIT ?`, which differs from claim to claim (a parse and plan per claim).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sqlite_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The schema version stored in the file.
pub(crate) fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)
}

/// Applies pending migrations under the write lock, so concurrent starters
/// serialise; refuses a schema newer than this build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| StoreError::Connect(format!("cannot lock the SQLite database for migration: {e}")))?;
    let found = version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql).map_err(sqlite_err)?;
        tx.execute_batch(&format!("PRAGMA user_version = {v}"))
            .map_err(sqlite_err)?;
        tracing::info!(version = v, "applied SQLite migration");
    }
    tx.commit().map_err(sqlite_err)?;
    Ok(SCHEMA_VERSION)
}
