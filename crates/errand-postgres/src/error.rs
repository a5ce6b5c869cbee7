//! PostgreSQL's failures, and how they become [`StoreError`]s.
//!
//! Whether a failure is transient is decided here, once, from what the
//! driver and the server said (see [`transient_sqlstate`]): a lost
//! connection, a pool timeout, a serialization failure, a deadlock, a lock
//! timeout, a full disk or a server shutting down may pass; a constraint
//! violation, a syntax error, a missing table or a value the server refuses
//! will not. Messages are one line and never hold a password.

use std::io;

use errand_core::{BackendError, DbCode, StoreError};
use sqlx::postgres::PgConnectOptions;

/// Where the store tried to connect, for error messages: never the password.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) text: String,
}

impl Target {
    pub(crate) fn of(opts: &PgConnectOptions) -> Self {
        let host = match opts.get_socket() {
            Some(path) => path.display().to_string(),
            None => format!("{}:{}", opts.get_host(), opts.get_port()),
        };
        let db = opts.get_database().unwrap_or(opts.get_username());
        Target {
            text: format!("postgres://{}@{host}/{db}", opts.get_username()),
        }
    }
}

/// Why a PostgreSQL store could not be configured, reached or migrated
/// ([`PostgresStore::open`](crate::PostgresStore::open),
/// [`PostgresStore::migrate`](crate::PostgresStore::migrate)). It becomes a
/// [`StoreError`] at the store's port (`From`), which keeps it as its
/// source.
#[derive(Debug)]
#[non_exhaustive]
pub enum PostgresError {
    /// A setting (the URL, the schema name) breaks a rule; nothing was
    /// tried. The message names the setting and the rule, never a password.
    Config(String),
    /// The server could not be reached, refused the credentials, or has no
    /// such database.
    Connect {
        /// What went wrong, where (the URL without its password).
        message: String,
        /// The driver's error, when there is one (none for a timeout).
        source: Option<sqlx::Error>,
    },
    /// A migration's script failed; nothing of it was applied.
    Migration {
        /// The migration (`0002_totals_and_leaders`).
        name: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The database has no errand schema, and the store may not create it.
    Uninitialized {
        /// The schema looked for.
        schema: String,
    },
    /// The schema is older than this build, and the store may not migrate it.
    Outdated {
        /// The schema.
        schema: String,
        /// Its version.
        found: i64,
        /// The version this build needs.
        supported: i64,
    },
    /// The schema was written by a newer errand.
    SchemaTooNew {
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A statement failed while opening or migrating.
    Database(sqlx::Error),
}

impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostgresError::Config(m) | PostgresError::Connect { message: m, .. } => f.write_str(m),
            PostgresError::Migration { name, source } => {
                write!(f, "migration {name} failed: {}", db_message(source))
            }
            PostgresError::Uninitialized { schema } => write!(
                f,
                "the PostgreSQL database has no errand schema {schema:?} (or its tables are missing); \
                 run `errand migrate` to create it (or check --database and postgres_schema)"
            ),
            PostgresError::Outdated {
                schema,
                found,
                supported,
            } => write!(
                f,
                "the database schema {schema:?} is at version {found}, older than this errand's \
                 {supported}: run `errand migrate`"
            ),
            PostgresError::SchemaTooNew { found, supported } => write!(
                f,
                "the database schema is version {found}, newer than this errand understands ({supported}); upgrade errand"
            ),
            PostgresError::Database(e) => f.write_str(&db_message(e)),
        }
    }
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PostgresError::Connect { source, .. } => source.as_ref().map(|e| e as _),
            PostgresError::Migration { source, .. } | PostgresError::Database(source) => Some(source),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for PostgresError {
    fn from(e: sqlx::Error) -> Self {
        PostgresError::Database(e)
    }
}

impl From<PostgresError> for StoreError {
    fn from(e: PostgresError) -> Self {
        match e {
            PostgresError::Config(m) => StoreError::InvalidConfig(m),
            PostgresError::Uninitialized { .. } => StoreError::Uninitialized(e.to_string()),
            PostgresError::SchemaTooNew { found, supported } => StoreError::SchemaTooNew { found, supported },
            PostgresError::Database(e) => db(e),
            PostgresError::Connect { .. } => {
                let code = match &e {
                    PostgresError::Connect { source: Some(s), .. } => sqlstate(s),
                    _ => None,
                };
                StoreError::Connect(with_code(BackendError::transient(e.to_string()), code).with_source(e))
            }
            PostgresError::Migration { ref source, .. } => {
                let code = sqlstate(source);
                let b = if meaning(source).is_transient() {
                    BackendError::transient(e.to_string())
                } else {
                    BackendError::permanent(e.to_string())
                };
                StoreError::Backend(with_code(b, code).with_source(e))
            }
            // Another process (a deploy's `errand migrate`) may bring the
            // schema up to date: worth waiting for.
            PostgresError::Outdated { .. } => {
                StoreError::Backend(BackendError::transient(e.to_string()).with_source(e))
            }
        }
    }
}

fn with_code(b: BackendError, code: Option<DbCode>) -> BackendError {
    match code {
        Some(code) => b.with_db_code(code),
        None => b,
    }
}

/// The SQLSTATE of a server's error.
fn sqlstate(e: &sqlx::Error) -> Option<DbCode> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| DbCode::SqlState(c.into_owned())),
        _ => None,
    }
}

/// Whether an error the server reported with this SQLSTATE may pass if the
/// call is tried again: connection exceptions (class 08), transaction
/// rollbacks such as serialization failures and deadlocks (class 40),
/// insufficient resources such as a full disk or too many connections (53),
/// operator intervention such as a statement timeout or a shutdown (57),
/// system errors (58), a lock that was not available or an object in use
/// (55P03, 55006), and a read-only transaction or a session timeout (25006:
/// a standby after a failover; 25P03, 25P04). Everything else, such as an
/// integrity constraint violation (class 23), a data exception (22) or a
/// syntax error or undefined table (42), is permanent.
pub(crate) fn transient_sqlstate(code: &str) -> bool {
    match code {
        // transaction_integrity_constraint_violation, database_dropped,
        // undefined_file, duplicate_file: not a passing condition.
        "40002" | "57P04" | "58P01" | "58P02" => false,
        "55P03" | "55006" | "25006" | "25P03" | "25P04" => true,
        _ => matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")),
    }
}

/// The one-line reason a connection attempt to `target` failed.
pub(crate) fn connect_error(target: &Target, e: sqlx::Error) -> PostgresError {
    let t = &target.text;
    let why = match &e {
        sqlx::Error::Database(db) => {
            let msg = one_line(db.message());
            match db.code().as_deref() {
                // invalid_password, invalid_authorization_specification
                Some("28P01") | Some("28000") => format!("{t}: authentication refused: {msg}"),
                // invalid_catalog_name
                Some("3D000") => format!("{t}: {msg}"),
                // too_many_connections, cannot_connect_now (starting up / shutting down)
                Some("53300") | Some("57P03") => {
                    format!("{t}: the server is not accepting connections: {msg}")
                }
                _ => format!("{t}: {msg}"),
            }
        }
        sqlx::Error::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused => {
                format!("{t}: connection refused (is PostgreSQL running and listening there?)")
            }
            io::ErrorKind::NotFound => format!("{t}: no such host or socket ({})", one_line(&io.to_string())),
            io::ErrorKind::TimedOut => format!("{t}: the server did not answer in time"),
            // A PostgreSQL server answers a bad start with an error message;
            // something that hangs up instead is most likely not PostgreSQL.
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionAborted => {
                format!(
                    "{t}: the server there hung up during the PostgreSQL handshake ({}); \
                     is it a PostgreSQL server?",
                    one_line(&io.to_string())
                )
            }
            _ if io.to_string().contains("lookup address") => {
                format!(
                    "{t}: cannot resolve the host name ({})",
                    one_line(&io.to_string())
                )
            }
            _ => format!("{t}: {}", one_line(&io.to_string())),
        },
        sqlx::Error::Protocol(detail) => format!(
            "{t}: the server there does not speak the PostgreSQL protocol ({})",
            without_source_location(detail)
        ),
        sqlx::Error::Tls(tls) => format!("{t}: TLS failed: {}", one_line(&tls.to_string())),
        sqlx::Error::PoolTimedOut => format!("{t}: timed out waiting for the server"),
        sqlx::Error::Configuration(c) => format!("invalid PostgreSQL settings: {}", one_line(&c.to_string())),
        other => format!("{t}: {}", one_line(&other.to_string())),
    };
    PostgresError::Connect {
        message: why,
        source: Some(e),
    }
}

/// What a driver error means for the store.
enum Meaning {
    /// The pool is closed: the store is shutting down.
    Closed,
    /// The server is out of reach (transient).
    Connect(String),
    /// Anything else.
    Backend { message: String, transient: bool },
}

impl Meaning {
    fn is_transient(&self) -> bool {
        match self {
            Meaning::Closed | Meaning::Connect(_) => true,
            Meaning::Backend { transient, .. } => *transient,
        }
    }
}

fn meaning(e: &sqlx::Error) -> Meaning {
    match e {
        sqlx::Error::PoolTimedOut => {
            Meaning::Connect("PostgreSQL is unreachable: timed out waiting for a connection".to_owned())
        }
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Meaning::Closed,
        sqlx::Error::Io(io) => Meaning::Connect(format!(
            "lost the connection to PostgreSQL: {}",
            one_line(&io.to_string())
        )),
        sqlx::Error::Tls(tls) => Meaning::Connect(format!("TLS failed: {}", one_line(&tls.to_string()))),
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            // admin_shutdown, crash_shutdown, cannot_connect_now, and the
            // connection exceptions: the server went away.
            if matches!(code.as_str(), "57P01" | "57P02" | "57P03") || code.starts_with("08") {
                Meaning::Connect(format!("PostgreSQL is unavailable: {}", one_line(d.message())))
            } else {
                Meaning::Backend {
                    message: format!("{} (SQLSTATE {code})", one_line(d.message())),
                    transient: transient_sqlstate(&code),
                }
            }
        }
        // The connection lost its place in the protocol; a new one will not.
        sqlx::Error::Protocol(detail) => Meaning::Backend {
            message: without_source_location(detail),
            transient: true,
        },
        other => Meaning::Backend {
            message: one_line(&other.to_string()),
            transient: false,
        },
    }
}

/// The one-line message [`db`] gives `e`.
fn db_message(e: &sqlx::Error) -> String {
    match meaning(e) {
        Meaning::Closed => "the store is closed".to_owned(),
        Meaning::Connect(m) | Meaning::Backend { message: m, .. } => m,
    }
}

/// A driver error during normal operation. Losing the server is
/// [`StoreError::Connect`] (callers may retry and report not-ready); a
/// closed pool is [`StoreError::Closed`]; anything else is
/// [`StoreError::Backend`], transient or permanent by its SQLSTATE (see
/// [`transient_sqlstate`]). The SQLSTATE and the driver's error are kept.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    let code = sqlstate(&e);
    match meaning(&e) {
        Meaning::Closed => StoreError::Closed,
        Meaning::Connect(m) => {
            StoreError::Connect(with_code(BackendError::transient(m), code).with_source(e))
        }
        Meaning::Backend { message, transient } => {
            let b = if transient {
                BackendError::transient(message)
            } else {
                BackendError::permanent(message)
            };
            StoreError::Backend(with_code(b, code).with_source(e))
        }
    }
}
/// The driver's message without the "(crate::module:line)" it appends.
fn without_source_location(detail: &str) -> String {
    let text = one_line(detail);
    match text.rfind(" (sqlx") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_that_may_pass_are_transient() {
        for code in [
            "40001", // serialization_failure
            "40P01", // deadlock_detected
            "55P03", // lock_not_available
            "53100", // disk_full
            "53300", // too_many_connections
            "57014", // query_canceled (statement timeout)
            "08006", // connection_failure
            "25006", // read_only_sql_transaction (a standby after a failover)
            "58030", // io_error
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in [
            "23505", // unique_violation
            "23502", // not_null_violation
            "22P05", // untranslatable_character
            "22021", // character_not_in_repertoire
            "42601", // syntax_error
            "42P01", // undefined_table
            "3F000", // invalid_schema_name
            "40002", // transaction_integrity_constraint_violation
            "XX001", // data_corrupted
            "",
        ] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn driver_errors_keep_their_source_and_say_whether_they_may_pass() {
        let e = db(sqlx::Error::Io(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "reset by peer",
        )));
        assert!(matches!(e, StoreError::Connect(_)) && e.is_transient(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot connect to the store: lost the connection to PostgreSQL: reset by peer"
        );
        assert!(
            std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<sqlx::Error>())
                .is_some()
        );
        let e = db(sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Connect(_)) && e.is_transient(), "{e:?}");
        assert!(matches!(db(sqlx::Error::PoolClosed), StoreError::Closed));
        let e = db(sqlx::Error::RowNotFound);
        assert!(matches!(e, StoreError::Backend(_)) && e.is_permanent(), "{e:?}");
    }

    #[test]
    fn a_failed_migration_says_which_and_keeps_the_drivers_error() {
        let e: StoreError = PostgresError::Migration {
            name: "0002_totals_and_leaders",
            source: sqlx::Error::Io(io::Error::new(io::ErrorKind::BrokenPipe, "broken pipe")),
        }
        .into();
        assert!(e.is_transient(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "store backend error: migration 0002_totals_and_leaders failed: \
             lost the connection to PostgreSQL: broken pipe"
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(
            matches!(
                source.downcast_ref::<PostgresError>(),
                Some(PostgresError::Migration { .. })
            ),
            "{source:?}"
        );
        let e: StoreError = PostgresError::Uninitialized {
            schema: "errand".into(),
        }
        .into();
        assert!(matches!(e, StoreError::Uninitialized(_)), "{e:?}");
        let e: StoreError = PostgresError::Config("invalid schema name".into()).into();
        assert!(matches!(e, StoreError::InvalidConfig(_)), "{e:?}");
    }
}
