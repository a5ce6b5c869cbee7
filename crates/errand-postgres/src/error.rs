//! Turning driver errors into [`StoreError`]s of one clear line.

use std::io;

use errand_core::StoreError;
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

/// The one-line reason a connection attempt to `target` failed.
pub(crate) fn connect_error(target: &Target, e: &sqlx::Error) -> StoreError {
    let t = &target.text;
    let why = match e {
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
    StoreError::Connect(why)
}

/// A driver error during normal operation. Losing the server is
/// [`StoreError::Connect`] (callers may retry and report not-ready); a
/// closed pool is [`StoreError::Closed`]; anything else is
/// [`StoreError::Backend`].
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut => {
            StoreError::Connect("PostgreSQL is unreachable: timed out waiting for a connection".to_owned())
        }
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => StoreError::Closed,
        sqlx::Error::Io(io) => StoreError::Connect(format!(
            "lost the connection to PostgreSQL: {}",
            one_line(&io.to_string())
        )),
        sqlx::Error::Tls(tls) => StoreError::Connect(format!("TLS failed: {}", one_line(&tls.to_string()))),
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            // admin_shutdown, crash_shutdown, cannot_connect_now: the server went away.
            if matches!(code.as_str(), "57P01" | "57P02" | "57P03") {
                StoreError::Connect(format!("PostgreSQL is unavailable: {}", one_line(d.message())))
            } else {
                StoreError::Backend(format!("{} (SQLSTATE {code})", one_line(d.message())))
            }
        }
        other => StoreError::Backend(one_line(&other.to_string())),
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
