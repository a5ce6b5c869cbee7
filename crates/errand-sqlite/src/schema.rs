//! Connections and versioned migrations.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use errand_core::StoreError;

use crate::error::{LOCK, OpenError};
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

/// Another SQLite failure while opening `cfg`'s file.
fn setup(cfg: &SqliteConfig) -> impl FnOnce(rusqlite::Error) -> OpenError + '_ {
    move |source| OpenError::Setup {
        path: cfg.path.clone(),
        source,
    }
}

/// How long opening keeps retrying while another process holds the lock it
/// needs to switch a new file to WAL mode (at most; usually milliseconds).
const OPEN_RETRY_FOR: Duration = Duration::from_secs(10);

/// Opens a connection with errand's settings.
///
/// A missing file is created with `cfg.file_mode` (0600 by default; SQLite
/// gives the `-wal` and `-shm` files the database's mode), or refused when
/// `cfg.create` is false. A file that is not a database, or that this process
/// cannot write, becomes [`StoreError::Unusable`] at the port.
pub(crate) fn connect(cfg: &SqliteConfig) -> Result<Connection, OpenError> {
    let path = &cfg.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(OpenError::NoDirectory {
            path: path.clone(),
            dir: dir.to_owned(),
        });
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if cfg.create {
        create_file(cfg)?;
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !path.exists() {
        return Err(OpenError::Missing { path: path.clone() });
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|source| OpenError::Sqlite {
        path: path.clone(),
        doing: "open",
        source,
    })?;
    // SQLite opens a file it may not write read-only without saying so.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(OpenError::ReadOnly { path: path.clone() });
    }
    conn.busy_timeout(cfg.busy_timeout).map_err(setup(cfg))?;
    let sync = match cfg.durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    let mode = with_lock_retry(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)))
        .map_err(|source| OpenError::Sqlite {
            path: path.clone(),
            doing: "use",
            source,
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal {
            path: path.clone(),
            mode,
        });
    }
    with_lock_retry(|| {
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000; \
             PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES};"
        ))
    })
    .map_err(setup(cfg))?;
    // Plans must not depend on bound values: SQLite otherwise re-prepares a
    // statement whenever a value it planned with changes, such as the claim's
    // `LIMIT ?`, which differs from claim to claim (a parse and plan per claim).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(setup(cfg))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates the database file with the configured mode if it does not exist
/// yet, so that SQLite never creates it with the process's default (0644).
fn create_file(cfg: &SqliteConfig) -> Result<(), OpenError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(cfg.file_mode)
        .open(&cfg.path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(OpenError::Create {
            path: cfg.path.clone(),
            source,
        }),
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
pub(crate) fn check_intact(conn: &Connection, cfg: &SqliteConfig) -> Result<(), OpenError> {
    let path = &cfg.path;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 {
        let mut header = [0u8; 16];
        let readable = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
            .is_ok();
        if readable && &header != b"SQLite format 3\0" {
            return Err(OpenError::NotADatabase { path: path.clone() });
        }
    }
    if size > QUICK_CHECK_MAX_BYTES {
        return Ok(());
    }
    let verdict: String =
        with_lock_retry(|| conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))).map_err(setup(cfg))?;
    if verdict != "ok" {
        return Err(OpenError::Damaged {
            path: path.clone(),
            verdict,
        });
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
pub(crate) fn migrate(conn: &Connection, cfg: &SqliteConfig) -> Result<i64, OpenError> {
    with_lock_retry(|| conn.execute_batch("BEGIN IMMEDIATE")).map_err(|source| OpenError::Sqlite {
        path: cfg.path.clone(),
        doing: LOCK,
        source,
    })?;
    let out = migrate_locked(conn, cfg);
    match out {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(setup(cfg))?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_locked(conn: &Connection, cfg: &SqliteConfig) -> Result<i64, OpenError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(setup(cfg))?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == 0 && !cfg.create {
        return Err(OpenError::NoSchema {
            path: cfg.path.clone(),
        });
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        conn.execute_batch(sql).map_err(setup(cfg))?;
        conn.execute_batch(&format!("PRAGMA user_version = {v}"))
            .map_err(setup(cfg))?;
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
