//! Connections and versioned migrations.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use errand_core::StoreError;

use crate::{Durability, SqliteConfig};

/// The WAL size (pages) at which a committing writer checkpoints by itself.
/// Normally the watcher thread checkpoints long before (see `watch.rs`), so
/// the writer thread seldom spends its time copying pages; this is the
/// fallback under a steady stream of commits, where the watcher's
/// checkpoints never catch up with the end of the WAL. Between its own
/// transactions the writer competes with no other writer, so its
/// checkpoint completes, and the next commit restarts the WAL and truncates
/// it to [`WAL_SIZE_LIMIT_BYTES`]: the WAL stays under about 64 MiB (4 KiB
/// pages). Lower, the writer copies pages back far more often: at 8 MiB,
/// `errand bench` lost about a sixth of its single-enqueue rate.
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_schedules.sql")),
];

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    crate::row::err(e)
}

/// How long opening keeps retrying while another process holds the lock it
/// needs to switch a new file to WAL mode (at most; usually milliseconds).
const OPEN_RETRY_FOR: Duration = Duration::from_secs(10);

/// Opens a connection with errand's settings.
///
/// A missing file is created with `cfg.file_mode` (0600 by default; SQLite
/// gives the `-wal` and `-shm` files the database's mode), or refused when
/// `cfg.create` is false. A file that is not a database, or that this process
/// cannot write, is [`StoreError::Unusable`].
pub(crate) fn connect(cfg: &SqliteConfig) -> Result<Connection, StoreError> {
    let path = &cfg.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(StoreError::Connect(format!(
            "cannot open SQLite database {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if cfg.create {
        create_file(cfg)?;
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !path.exists() {
        return Err(StoreError::Uninitialized(format!(
            "SQLite database {} does not exist; run `errand migrate` to create it (or check --database)",
            path.display()
        )));
    }
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| match crate::row::classify(e, Some(path)) {
            StoreError::Backend(e) => {
                StoreError::Connect(format!("cannot open SQLite database {}: {e}", path.display()))
            }
            other => other,
        })?;
    // SQLite opens a file it may not write read-only without saying so.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(StoreError::Unusable(format!(
            "SQLite database {} is read-only for this user; errand needs to write it \
             (check the permissions of the file and its directory)",
            path.display()
        )));
    }
    conn.busy_timeout(cfg.busy_timeout).map_err(sqlite_err)?;
    let sync = match cfg.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    let mode = with_lock_retry(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)))
        .map_err(|e| match crate::row::classify(e, Some(path)) {
            StoreError::Backend(e) => {
                StoreError::Connect(format!("cannot use SQLite database {}: {e}", path.display()))
            }
            other => other,
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Connect(format!(
            "SQLite database {} cannot use WAL mode (got {mode})",
            path.display()
        )));
    }
    with_lock_retry(|| {
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000; \
             PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES};"
        ))
    })
    .map_err(sqlite_err)?;
    // Plans must not depend on bound values: SQLite otherwise re-prepares a
    // statement whenever a value it planned with changes, such as the claim's
    // `LIMIT ?`, which differs from claim to claim (a parse and plan per claim).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sqlite_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates the database file with the configured mode if it does not exist
/// yet, so that SQLite never creates it with the process's default (0644).
fn create_file(cfg: &SqliteConfig) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(cfg.file_mode)
        .open(&cfg.path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(StoreError::Unusable(format!(
            "cannot create SQLite database {}: {e}; check the permissions of its directory",
            cfg.path.display()
        ))),
        Err(e) => Err(StoreError::Connect(format!(
            "cannot create SQLite database {}: {e}",
            cfg.path.display()
        ))),
    }
}

/// Runs `f` again, with backoff, while it fails because another connection
/// holds a lock (SQLITE_BUSY / SQLITE_LOCKED) for at most [`OPEN_RETRY_FOR`].
///
/// The busy timeout does not cover every case: when two processes open a new
/// file at once, switching it to WAL mode can fail with "database is locked"
/// at once, without the busy handler being called.
pub(crate) fn with_lock_retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + OPEN_RETRY_FOR;
    let mut delay = Duration::from_millis(1);
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && Instant::now() + delay < deadline =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Refuses a damaged file: the first page must carry SQLite's header, and a
/// file of at most [`QUICK_CHECK_MAX_BYTES`] must pass `PRAGMA quick_check`
/// (a larger one is only checked as it is read: a full check would make
/// every start slow).
pub(crate) fn check_intact(conn: &Connection, cfg: &SqliteConfig) -> Result<(), StoreError> {
    let path = &cfg.path;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 {
        let mut header = [0u8; 16];
        let readable = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
            .is_ok();
        if readable && &header != b"SQLite format 3\0" {
            return Err(StoreError::Unusable(format!(
                "{} is not an SQLite database (its header is wrong); check --database, or restore it from a backup",
                path.display()
            )));
        }
    }
    if size > QUICK_CHECK_MAX_BYTES {
        return Ok(());
    }
    let verdict: String = with_lock_retry(|| conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)))
        .map_err(|e| crate::row::classify(e, Some(path)))?;
    if verdict != "ok" {
        return Err(StoreError::Unusable(format!(
            "SQLite database {} is damaged ({verdict}); restore it from a backup",
            path.display()
        )));
    }
    Ok(())
}

/// Files up to this size are checked with `PRAGMA quick_check` when opened
/// (it reads every page: tens of milliseconds for this size).
pub(crate) const QUICK_CHECK_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The WAL file is truncated to this size whenever it is reset after a
/// checkpoint (`PRAGMA journal_size_limit`), so a burst of writes does not
/// leave a huge file behind; the watcher truncates it to nothing once the
/// store is idle. Lower, a busy store's WAL is cut back and regrows on
/// every reset, which slows its commits.
pub(crate) const WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// The schema version stored in the file.
pub(crate) fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err)
}

/// Applies pending migrations under the write lock, so concurrent starters
/// serialise; refuses a schema newer than this build, and, unless
/// `cfg.create`, a file with no errand schema at all.
pub(crate) fn migrate(conn: &Connection, cfg: &SqliteConfig) -> Result<i64, StoreError> {
    with_lock_retry(|| conn.execute_batch("BEGIN IMMEDIATE")).map_err(|e| {
        match crate::row::classify(e, Some(&cfg.path)) {
            StoreError::Backend(e) => {
                StoreError::Connect(format!("cannot lock the SQLite database for migration: {e}"))
            }
            other => other,
        }
    })?;
    let out = migrate_locked(conn, cfg);
    match out {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(sqlite_err)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_locked(conn: &Connection, cfg: &SqliteConfig) -> Result<i64, StoreError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == 0 && !cfg.create {
        return Err(StoreError::Uninitialized(format!(
            "SQLite database {} has no errand schema; run `errand migrate` to create it (or check --database)",
            cfg.path.display()
        )));
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        conn.execute_batch(sql).map_err(sqlite_err)?;
        conn.execute_batch(&format!("PRAGMA user_version = {v}"))
            .map_err(sqlite_err)?;
        tracing::info!(version = v, "applied SQLite migration");
    }
    Ok(SCHEMA_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many connections switching one fresh file to WAL mode at the same
    /// moment: without the retry, some fail at once with "database is locked".
    #[test]
    fn many_connections_open_a_fresh_file_at_once() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let cfg = SqliteConfig::new(dir.path().join("t.db"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
            let threads: Vec<_> = (0..16)
                .map(|_| {
                    let cfg = cfg.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        let conn = connect(&cfg)?;
                        migrate(&conn, &cfg)
                    })
                })
                .collect();
            for t in threads {
                let out = t.join().expect("no panic");
                assert!(out.is_ok(), "round {round}: {out:?}");
            }
        }
    }
}
