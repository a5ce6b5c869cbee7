//! SQLite's failures, and how they become [`StoreError`]s.
//!
//! Whether a failure is transient is decided here, once, from SQLite's
//! result code: a busy or locked database, a full disk, an I/O error, an
//! interrupted or aborted statement, a changed schema and a lack of memory
//! may pass; anything else (a constraint violation, a type mismatch, an SQL
//! error, a damaged or read-only file, a value that cannot be read) will
//! not. A damaged file, or one this process cannot write, is
//! [`StoreError::Unusable`].

use std::fmt;
use std::path::{Path, PathBuf};

use errand_core::{BackendError, DbCode, StoreError};

/// Why a database file could not be opened, checked or migrated
/// ([`SqliteStore::open`](crate::SqliteStore::open)). It becomes a
/// [`StoreError`] at the store's port (`From`), which keeps it as its
/// source.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory that should hold the file does not exist.
    NoDirectory {
        /// The database file.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// The file does not exist, and the store may not create it.
    Missing {
        /// The database file.
        path: PathBuf,
    },
    /// The file holds no errand schema, and the store may not create one.
    NoSchema {
        /// The database file.
        path: PathBuf,
    },
    /// The file could not be created.
    Create {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite could not open the file, switch it to WAL mode or take its
    /// write lock.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done ("open", "use", "lock … for migration").
        doing: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// SQLite opened the file read-only: this user may not write it.
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// The file cannot use WAL mode.
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The file is not an SQLite database (its header is wrong).
    NotADatabase {
        /// The database file.
        path: PathBuf,
    },
    /// `PRAGMA quick_check` found damage.
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What the check said.
        verdict: String,
    },
    /// The file was written by a newer errand.
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Another SQLite call failed while opening or migrating.
    Setup {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NoDirectory { path, dir } => write!(
                f,
                "cannot open SQLite database {}: directory {} does not exist",
                path.display(),
                dir.display()
            ),
            OpenError::Missing { path } => write!(
                f,
                "SQLite database {} does not exist; run `errand migrate` to create it (or check --database)",
                path.display()
            ),
            OpenError::NoSchema { path } => write!(
                f,
                "SQLite database {} has no errand schema; run `errand migrate` to create it (or check --database)",
                path.display()
            ),
            OpenError::Create { path, source } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                write!(
                    f,
                    "cannot create SQLite database {}: {source}; check the permissions of its directory",
                    path.display()
                )
            }
            OpenError::Create { path, source } => {
                write!(f, "cannot create SQLite database {}: {source}", path.display())
            }
            OpenError::Sqlite { path, doing, source } => match unusable(source, Some(path)) {
                Some(why) => f.write_str(&why),
                None if *doing == LOCK => {
                    write!(f, "cannot lock the SQLite database for migration: {source}")
                }
                None => write!(f, "cannot {doing} SQLite database {}: {source}", path.display()),
            },
            OpenError::ReadOnly { path } => write!(
                f,
                "SQLite database {} is read-only for this user; errand needs to write it \
                 (check the permissions of the file and its directory)",
                path.display()
            ),
            OpenError::NoWal { path, mode } => write!(
                f,
                "SQLite database {} cannot use WAL mode (got {mode})",
                path.display()
            ),
            OpenError::NotADatabase { path } => write!(
                f,
                "{} is not an SQLite database (its header is wrong); check --database, or restore it from a backup",
                path.display()
            ),
            OpenError::Damaged { path, verdict } => write!(
                f,
                "SQLite database {} is damaged ({verdict}); restore it from a backup",
                path.display()
            ),
            OpenError::SchemaTooNew { found, supported } => write!(
                f,
                "the database schema is version {found}, newer than this errand understands ({supported}); upgrade errand"
            ),
            OpenError::Setup { path, source } => match unusable(source, Some(path)) {
                Some(why) => f.write_str(&why),
                None => write!(f, "{source}"),
            },
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Create { source, .. } => Some(source),
            OpenError::Sqlite { source, .. } | OpenError::Setup { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What [`OpenError::Sqlite`] says it was doing when taking the write lock to migrate.
pub(crate) const LOCK: &str = "lock";

impl OpenError {
    /// Whether an operator has to repair the file or its permissions.
    fn is_unusable(&self) -> bool {
        match self {
            OpenError::Create { source, .. } => source.kind() == std::io::ErrorKind::PermissionDenied,
            OpenError::Sqlite { source, path, .. } | OpenError::Setup { source, path } => {
                unusable(source, Some(path)).is_some()
            }
            OpenError::ReadOnly { .. } | OpenError::NotADatabase { .. } | OpenError::Damaged { .. } => true,
            _ => false,
        }
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Missing { .. } | OpenError::NoSchema { .. } => {
                StoreError::Uninitialized(e.to_string())
            }
            OpenError::SchemaTooNew { found, supported } => StoreError::SchemaTooNew { found, supported },
            // Another failure while setting up: as SQLite's errors are at any time.
            OpenError::Setup { source, path } => classify(source, Some(&path)),
            e => {
                let code = match &e {
                    OpenError::Sqlite { source, .. } => db_code(source),
                    _ => None,
                };
                let unusable = e.is_unusable();
                let mut b = if unusable {
                    BackendError::permanent(e.to_string())
                } else {
                    BackendError::transient(e.to_string())
                };
                if let Some(code) = code {
                    b = b.with_db_code(code);
                }
                let b = b.with_source(e);
                if unusable {
                    StoreError::Unusable(b)
                } else {
                    StoreError::Connect(b)
                }
            }
        }
    }
}

/// Turns an SQLite error into the store's error type.
pub(crate) fn err(e: rusqlite::Error) -> StoreError {
    classify(e, None)
}

/// SQLite's extended result code, when the error came from SQLite.
fn db_code(e: &rusqlite::Error) -> Option<DbCode> {
    e.sqlite_error().map(|s| DbCode::Sqlite(s.extended_code))
}

/// Whether SQLite's error may pass if the call is tried again.
fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(
            DatabaseBusy
                | DatabaseLocked
                | DiskFull
                | SystemIoFailure
                | OutOfMemory
                | OperationInterrupted
                | OperationAborted
                | SchemaChanged
                | FileLockingProtocolFailed
        )
    )
}

/// Why the file cannot be used as it is, if that is what `e` says: it is
/// damaged (SQLITE_CORRUPT, SQLITE_NOTADB), cannot be written
/// (SQLITE_READONLY, SQLITE_PERM), or exists but cannot be opened
/// (SQLITE_CANTOPEN on an existing file: its `-wal` or `-shm` file or its
/// directory is not writable, most often). `path` names the file when known.
fn unusable(e: &rusqlite::Error, path: Option<&Path>) -> Option<String> {
    use rusqlite::ErrorCode::{CannotOpen, DatabaseCorrupt, NotADatabase, PermissionDenied, ReadOnly};
    let file = path.map_or_else(
        || "the SQLite database".to_owned(),
        |p| format!("SQLite database {}", p.display()),
    );
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt | NotADatabase) => {
            Some(format!("{file} is damaged ({e}); restore it from a backup"))
        }
        Some(ReadOnly | PermissionDenied) => Some(format!(
            "{file} cannot be written ({e}); check the permissions of the file and its directory"
        )),
        Some(CannotOpen) if path.is_some_and(|p| p.exists()) => Some(format!(
            "{file} cannot be opened for writing ({e}); check that this user may write the file, \
             its -wal and -shm files and its directory"
        )),
        _ => None,
    }
}

/// Maps an SQLite error to a [`StoreError`]: [`StoreError::Unusable`] when
/// the file is damaged or cannot be written (see [`unusable`]), else
/// [`StoreError::Backend`], transient or permanent by SQLite's result
/// code, with the extended code and SQLite's error as its source.
pub(crate) fn classify(e: rusqlite::Error, path: Option<&Path>) -> StoreError {
    let code = db_code(&e);
    let (b, unusable) = match unusable(&e, path) {
        Some(why) => (BackendError::permanent(why), true),
        None if is_transient(&e) => (BackendError::transient(e.to_string()), false),
        None => (BackendError::permanent(e.to_string()), false),
    };
    let b = match code {
        Some(code) => b.with_db_code(code),
        None => b,
    }
    .with_source(e);
    if unusable {
        StoreError::Unusable(b)
    } else {
        StoreError::Backend(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
    }

    #[test]
    fn sqlite_codes_decide_transience_and_are_kept() {
        // SQLITE_BUSY, SQLITE_FULL, SQLITE_IOERR_WRITE: they may pass.
        for (code, text) in [
            (5, "database is locked"),
            (13, "database or disk is full"),
            (778, "disk I/O error"),
        ] {
            let e = err(failure(code, text));
            assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
            assert!(e.is_transient(), "{e}");
            assert_eq!(e.db_code(), Some(&DbCode::Sqlite(code)));
            assert!(e.to_string().contains(text), "{e}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR ("no such table"), SQLITE_MISMATCH.
        for (code, text) in [
            (2067, "UNIQUE constraint failed: jobs.id"),
            (1, "no such table: jobs"),
            (20, "datatype mismatch"),
        ] {
            let e = err(failure(code, text));
            assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
            assert!(e.is_permanent(), "{e}");
            assert_eq!(e.db_code(), Some(&DbCode::Sqlite(code)));
        }
        // A value that cannot be read is permanent and has no SQLite code.
        let e = err(rusqlite::Error::QueryReturnedNoRows);
        assert!(e.is_permanent() && e.db_code().is_none(), "{e:?}");
        // SQLITE_CORRUPT and SQLITE_READONLY: the file cannot be used.
        for code in [11, 8] {
            let e = err(failure(code, "bad"));
            assert!(matches!(e, StoreError::Unusable(_)), "{e:?}");
            assert!(e.is_permanent());
        }
    }

    #[test]
    fn the_source_is_sqlites_error() {
        let e = err(failure(13, "database or disk is full"));
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{source:?}");
    }

    #[test]
    fn open_errors_become_store_errors_that_keep_them() {
        let path = PathBuf::from("/nonexistent/dir/t.db");
        let e: StoreError = OpenError::NoDirectory {
            path: path.clone(),
            dir: "/nonexistent/dir".into(),
        }
        .into();
        assert!(matches!(e, StoreError::Connect(_)) && e.is_transient(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot connect to the store: cannot open SQLite database /nonexistent/dir/t.db: \
             directory /nonexistent/dir does not exist"
        );
        let e: StoreError = OpenError::Damaged {
            path: path.clone(),
            verdict: "row 3 missing".into(),
        }
        .into();
        assert!(matches!(e, StoreError::Unusable(_)) && e.is_permanent(), "{e:?}");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(
            matches!(
                source.downcast_ref::<OpenError>(),
                Some(OpenError::Damaged { .. })
            ),
            "{source:?}"
        );
        let e: StoreError = OpenError::Missing { path }.into();
        assert!(matches!(e, StoreError::Uninitialized(_)), "{e:?}");
    }
}
