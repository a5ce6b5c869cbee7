//! How to reach the database, and the knobs of the pool.

use std::time::Duration;

use crate::error::PostgresError;
use errand_core::url::password_span;
pub use errand_core::url::{redact_text, redact_url};

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "errand";

/// How to open a [`PostgresStore`](crate::PostgresStore).
///
/// ```
/// use std::time::Duration;
/// use errand_postgres::PostgresConfig;
///
/// let config = PostgresConfig::from_url("postgres://errand@db.internal/app")
///     .schema("jobs")
///     .max_connections(20)
///     .acquire_timeout(Duration::from_secs(3));
/// assert_eq!(config.schema_name(), "jobs");
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) poll_interval: Duration,
    pub(crate) migrate_on_open: bool,
    pub(crate) create: bool,
    pub(crate) application_name: String,
}

impl std::fmt::Debug for PostgresConfig {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("statement_timeout", &self.statement_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("migrate_on_open", &self.migrate_on_open)
            .field("create", &self.create)
            .field("application_name", &self.application_name)
            .finish()
    }
}

impl PostgresConfig {
    /// A configuration for the database at `url` (`postgres://user:pass@host:port/db?sslmode=…`),
    /// with every other setting at its default. The URL is checked by
    /// [`PostgresStore::open`](crate::PostgresStore::open).
    pub fn from_url(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: 10,
            min_connections: 0,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(1800),
            statement_timeout: Some(Duration::from_secs(60)),
            poll_interval: Duration::from_secs(1),
            migrate_on_open: true,
            create: true,
            application_name: "errand".to_owned(),
        }
    }

    /// The schema holding errand's tables (default `errand`); created if
    /// missing. 1–48 lower-case ASCII letters, digits and `_`, starting with
    /// a letter or `_`. Stores on different schemas of one database are
    /// independent: they share no jobs, queues, leaders or notifications.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The configured schema.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Most connections the pool opens (default 10). The LISTEN connection
    /// used by [`Store::wait_for_change`](errand_core::Store::wait_for_change) is one more.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections the pool keeps open even when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long opening the store waits for the server to answer (default 5 s).
    /// A `connect_timeout` in the URL's query (libpq's, in whole seconds)
    /// overrides it.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long an operation waits for a pooled connection, including
    /// connecting a new one, before it fails with
    /// [`StoreError::Connect`](errand_core::StoreError::Connect) (default 5 s).
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// Idle connections are closed after this long (default 5 min).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Connections are replaced after this long (default 30 min).
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        self.max_lifetime = d;
        self
    }

    /// The server cancels any one statement of the store that runs longer
    /// (default 60 s; `None`: the server's own setting).
    pub fn statement_timeout(mut self, d: Option<Duration>) -> Self {
        self.statement_timeout = d;
        self
    }

    /// While the LISTEN connection is down, how often
    /// [`wait_for_change`](errand_core::Store::wait_for_change) returns so
    /// callers look for work by polling (default 1 s).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d.max(Duration::from_millis(10));
        self
    }

    /// Whether [`PostgresStore::open`](crate::PostgresStore::open) applies
    /// pending migrations (default true). When false, opening a database
    /// whose schema is behind fails and asks for `errand migrate`.
    pub fn migrate_on_open(mut self, yes: bool) -> Self {
        self.migrate_on_open = yes;
        self
    }

    /// Whether [`PostgresStore::open`](crate::PostgresStore::open) may create
    /// errand's schema and tables where none exist (default true). When
    /// false, a database without them is refused with
    /// [`StoreError::Uninitialized`](errand_core::StoreError::Uninitialized),
    /// which asks for `errand migrate`; an existing schema is still upgraded
    /// (if [`PostgresConfig::migrate_on_open`]).
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// The `application_name` the connections report to the server (default
    /// `errand`; the LISTEN connection adds `-listener`).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Checks the schema name (see [`check_schema_name`]).
    pub(crate) fn check_schema(&self) -> Result<(), PostgresError> {
        check_schema_name(&self.schema)
    }
}

/// Checks a schema name before anything is opened: it is spliced into every
/// statement, so only plain lower-case identifiers are allowed.
pub fn check_schema_name(name: &str) -> Result<(), PostgresError> {
    let s = name.as_bytes();
    let ok = !s.is_empty()
        && s.len() <= 48
        && (s[0].is_ascii_lowercase() || s[0] == b'_')
        && s.iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(PostgresError::Config(format!(
            "invalid schema name {name:?}: use 1-48 lower-case ASCII letters, digits and '_', \
             starting with a letter or '_' (and not 'pg_')"
        )))
    }
}

/// Takes libpq's `connect_timeout` parameter (whole seconds; 0 or less
/// means no limit) out of the URL's query, since the driver does not know
/// it and would only warn. Returns the URL without it and the timeout it
/// sets, if it names one.
pub(crate) fn take_connect_timeout(url: &str) -> Result<(String, Option<Duration>), PostgresError> {
    let Some((main, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut timeout = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("connect_timeout", value)) => {
                let secs: i64 = value.trim().parse().map_err(|_| {
                    PostgresError::Config(format!(
                        "invalid PostgreSQL URL {}: connect_timeout must be a whole number of seconds (got {value:?})",
                        redact_url(url)
                    ))
                })?;
                // libpq: zero or less waits for ever. A day is as long as
                // anyone waits for a connection.
                let secs = if secs <= 0 { 86_400 } else { secs.unsigned_abs() };
                timeout = Some(Duration::from_secs(secs));
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        main.to_owned()
    } else {
        format!("{main}?{}", kept.join("&"))
    };
    Ok((url, timeout))
}

/// The query parameters the driver understands (besides `connect_timeout`,
/// which [`take_connect_timeout`] handles). The driver warns about any other
/// one with its value, which may be a secret; such parameters are taken out
/// beforehand and named (without their values) by [`take_unknown_params`].
const DRIVER_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Takes the query parameters the driver does not know out of `url`.
/// Returns the URL without them and their names.
pub(crate) fn take_unknown_params(url: &str) -> (String, Vec<String>) {
    let (main, query) = match password_span(url.split_once("://").map_or(url, |(_, r)| r)) {
        // A '?' inside the password does not start the query.
        Some((_, at)) => {
            let offset = url.find("://").map_or(0, |i| i + 3) + at;
            match url[offset..].split_once('?') {
                Some((before, q)) => (&url[..offset + before.len()], q),
                None => return (url.to_owned(), Vec::new()),
            }
        }
        None => match url.split_once('?') {
            Some(split) => split,
            None => return (url.to_owned(), Vec::new()),
        },
    };
    let mut unknown = Vec::new();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let known = key.is_empty()
                || DRIVER_PARAMS.contains(&key)
                || (key.starts_with("options[") && key.ends_with(']'));
            if !known {
                unknown.push(key.to_owned());
            }
            known
        })
        .collect();
    if kept.is_empty() {
        (main.to_owned(), unknown)
    } else {
        (format!("{main}?{}", kept.join("&")), unknown)
    }
}

/// Refuses a password holding a character that ends the user information
/// of a URL (`?`, `#`, `/`): the driver would read the rest as the query
/// or the path and report a confusing error (such as an invalid port).
pub(crate) fn check_password_chars(url: &str) -> Result<(), PostgresError> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    if let Some((user_end, at)) = password_span(rest) {
        let password = &rest[user_end + 1..at];
        if let Some(c) = password.chars().find(|c| matches!(c, '?' | '#' | '/')) {
            return Err(PostgresError::Config(format!(
                "invalid PostgreSQL URL {}: the password holds {c:?}, which must be \
                 percent-encoded in a URL (%{:02X})",
                redact_url(url),
                c as u32
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_params_are_taken_out_by_name() {
        assert_eq!(
            take_unknown_params("postgres://u:p?w@h/db?sslmode=disable&sslpassword=x&options[a]=b&bogus"),
            (
                "postgres://u:p?w@h/db?sslmode=disable&options[a]=b".to_owned(),
                vec!["sslpassword".to_owned(), "bogus".to_owned()]
            )
        );
        assert_eq!(
            take_unknown_params("postgres://h/db?secret_token=1"),
            ("postgres://h/db".to_owned(), vec!["secret_token".to_owned()])
        );
        assert_eq!(
            take_unknown_params("postgres://h/db"),
            ("postgres://h/db".to_owned(), vec![])
        );
    }

    #[test]
    fn a_password_with_a_question_mark_is_refused_without_showing_it() {
        let e = check_password_chars("postgres://app:S3cr?t@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgres://app:***@h/db"), "{e}");
        assert!(e.contains("%3F") && !e.contains("S3cr"), "{e}");
        assert!(check_password_chars("postgres://app:p@ss@h/db?sslmode=disable").is_ok());
        assert!(check_password_chars("postgres://h/db?password=a?b").is_ok());
    }

    #[test]
    fn connect_timeout_is_taken_from_the_query() {
        let t = |u: &str| take_connect_timeout(u).map_err(|e| e.to_string());
        assert_eq!(t("postgres://h/db"), Ok(("postgres://h/db".into(), None)));
        assert_eq!(
            t("postgres://h/db?connect_timeout=7"),
            Ok(("postgres://h/db".into(), Some(Duration::from_secs(7))))
        );
        assert_eq!(
            t("postgres://h/db?sslmode=disable&connect_timeout=2&application_name=x"),
            Ok((
                "postgres://h/db?sslmode=disable&application_name=x".into(),
                Some(Duration::from_secs(2))
            ))
        );
        assert_eq!(
            t("postgres://h/db?connect_timeout=0"),
            Ok(("postgres://h/db".into(), Some(Duration::from_secs(86_400))))
        );
        let e = t("postgres://u:secret@h/db?connect_timeout=soon").unwrap_err();
        assert!(
            e.contains("connect_timeout must be a whole number of seconds"),
            "{e}"
        );
        assert!(e.contains("\"soon\"") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = PostgresConfig::from_url("postgres://bob:s3cret@db/app");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn schema_names_are_checked() {
        for good in ["errand", "_x", "t_1_abc"] {
            assert!(
                PostgresConfig::from_url("").schema(good).check_schema().is_ok(),
                "{good}"
            );
        }
        for bad in ["", "Errand", "1abc", "a-b", "a\"b", "pg_catalog", &"x".repeat(49)] {
            let err = PostgresConfig::from_url("")
                .schema(bad)
                .check_schema()
                .unwrap_err();
            assert!(err.to_string().contains("invalid schema name"), "{bad}: {err}");
        }
    }
}
