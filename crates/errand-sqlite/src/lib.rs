//! errand's embedded SQLite store.
//!
//! One file, WAL mode, safe for several processes. Inside a process every
//! write goes through one writer thread that groups whatever is waiting into
//! a single `BEGIN IMMEDIATE` transaction (group commit): concurrent single
//! inserts, claims and completion batches share one commit. Each command runs
//! in its own savepoint, so one failing command never undoes another, and its
//! caller hears back only after the commit is durable to the configured level.
//! Reads use a small pool of separate connections.
//!
//! ```no_run
//! # async fn demo() -> Result<(), errand_core::StoreError> {
//! let store = errand_sqlite::SqliteStore::open(errand_sqlite::SqliteConfig::new("errand.db")).await?;
//! # Ok(()) }
//! ```

mod error;
mod reader;
mod row;
mod schedule;
mod schema;
mod store;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use errand_core::StoreError;

pub use error::OpenError;
pub use schema::SCHEMA_VERSION;

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: a committed job survives any crash of the process
    /// (the default). A power loss may drop the last few commits.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced, so it also survives power
    /// loss. Group commit keeps this affordable under concurrency.
    Full,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(format!("unknown durability {other:?}; expected normal or full")),
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// Whether opening may create the file and its schema (the default).
    /// When false, a missing file or one without errand's schema is refused
    /// with [`StoreError::Uninitialized`]; an older schema is still upgraded.
    pub create: bool,
    /// The permission bits a newly created database file gets (default
    /// `0o600`: owner only; the process umask still applies). SQLite gives
    /// the `-wal` and `-shm` files the database file's mode. An existing
    /// file keeps its mode.
    pub file_mode: u32,
    /// Commit durability.
    pub durability: Durability,
    /// How long to wait for another process's write lock before failing.
    pub busy_timeout: Duration,
    /// The most commands grouped into one transaction.
    pub max_group: usize,
    /// How often to look for other processes' writes (see [`errand_core::Store::wait_for_change`]).
    pub watch_interval: Duration,
}

impl SqliteConfig {
    /// Defaults for the file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteConfig {
            path: path.as_ref().to_path_buf(),
            durability: Durability::Normal,
            create: true,
            file_mode: 0o600,
            busy_timeout: Duration::from_secs(10),
            max_group: 512,
            watch_interval: Duration::from_millis(5),
        }
    }

    /// Sets the durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Sets whether opening may create the file and its schema.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Sets the permission bits of a newly created database file.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }
}

/// The SQLite store. Cheap to clone: clones share the writer and readers.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    writer: writer::Writer,
    readers: reader::Readers,
    watch: watch::Watch,
    /// Queues known to exist (committed; queues are never deleted), so a
    /// single insert into one of them is one statement with no savepoint.
    known_queues: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it if needed and allowed) and migrates the database.
    ///
    /// Fails with [`StoreError::Unusable`] when the file is damaged (a file
    /// of up to 64 MiB is checked with `PRAGMA quick_check`, a larger one
    /// only by its header) or this process cannot write it, and with
    /// [`StoreError::Uninitialized`] when `config.create` is false and the
    /// file or its schema is missing.
    pub async fn open(config: SqliteConfig) -> Result<Self, StoreError> {
        let cfg = config.clone();
        let (conn, readers) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let conn = schema::connect(&cfg)?;
            schema::check_intact(&conn, &cfg)?;
            schema::migrate(&conn, &cfg)?;
            let readers = reader::Readers::new(cfg.clone());
            Ok((conn, readers))
        })
        .await
        .map_err(StoreError::backend)??;
        // Raised by the watcher when the WAL outgrows its passive
        // checkpoints; the writer then truncates it between transactions.
        let wal_too_big = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = writer::Writer::spawn(conn, config.max_group, wal_too_big.clone());
        let watch = watch::Watch::spawn(config.clone(), wal_too_big);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                config,
                writer,
                readers,
                watch,
                known_queues: Default::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Copies everything in the WAL back into the database file and
    /// truncates the WAL (`PRAGMA wal_checkpoint(TRUNCATE)`), waiting up to
    /// the busy timeout for other connections: afterwards the database file
    /// alone holds every commit, e.g. for a file-level backup. Fails with
    /// [`StoreError::Backend`] if readers kept it from completing.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let config = self.inner.config.clone();
        tokio::task::spawn_blocking(move || {
            let conn = schema::connect(&config)?;
            let (busy, log, copied): (i64, i64, i64) = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(row::err)?;
            if busy != 0 {
                return Err(StoreError::Backend(errand_core::BackendError::transient(format!(
                    "the WAL checkpoint could not complete ({copied} of {log} pages copied): other connections are reading"
                ))));
            }
            Ok(())
        })
        .await
        .map_err(StoreError::backend)?
    }

    /// Limits the database to `pages` pages (SQLite's `PRAGMA
    /// max_page_count` on this store's writer connection) and returns the
    /// limit in force, which is never below the current size. Writes that
    /// need more pages fail as on a full disk (SQLITE_FULL): for testing how
    /// errand rides out a full disk and recovers when the limit is raised.
    #[doc(hidden)]
    pub async fn set_max_page_count(&self, pages: u64) -> Result<u64, StoreError> {
        self.inner.writer.set_page_limit(pages).await
    }

    /// Applies pending migrations (done by [`SqliteStore::open`] too) and
    /// returns the schema version.
    pub async fn migrate(&self) -> Result<i64, StoreError> {
        self.inner.writer.run(schema::version).await
    }
}
