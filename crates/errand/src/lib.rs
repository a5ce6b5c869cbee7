//! errand: durable background jobs and schedules.
//!
//! This crate is the facade for Rust applications: it re-exports the job
//! model ([`core`]), the engine ([`Errand`], [`Client`], workers, handlers)
//! and the stores, and opens a store from a URL with [`open_store`].
//!
//! # Features
//!
//! Each store is a feature, so an application compiles only the database
//! drivers it uses:
//!
//! - `sqlite` (default): the embedded SQLite store, `SqliteStore`;
//! - `postgres`: the PostgreSQL store, `PostgresStore`.
//!
//! A URL of a store left out of the build is still recognised, and
//! [`open_store`] refuses it with [`StoreError::InvalidConfig`] naming the
//! feature to enable. The `errand` command-line program is a separate crate
//! (`errand-cli`), so library users compile no CLI.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")] mod demo {
//! use errand::{Errand, Handler, JobArgs, JobContext, JobError};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Welcome { user_id: u64 }
//!
//! impl JobArgs for Welcome {
//!     const KIND: &'static str = "email.welcome";
//! }
//!
//! struct SendWelcome;
//!
//! impl Handler<Welcome> for SendWelcome {
//!     async fn perform(&self, _ctx: &JobContext, args: Welcome) -> Result<(), JobError> {
//!         println!("welcome, user {}", args.user_id);
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let errand = Errand::new(errand::open_store("sqlite://errand.db").await?);
//! errand.client().enqueue_args(&Welcome { user_id: 7 }).await?;
//! let worker = errand.worker().queue("default", 10).register(SendWelcome).build()?.start();
//! // … later, on shutdown:
//! worker.shutdown().await;
//! # Ok(()) }
//! # }
//! ```

use std::sync::Arc;

pub use errand_core as core;
pub use errand_core::url::{redact_text, redact_url};
pub use errand_core::{JobId, JobState, NewJob, RetryPolicies, RetryPolicy, Store, StoreError};
pub use errand_engine::executor::command::CommandExecutor;
pub use errand_engine::{
    Client, EnqueueError, Errand, Executor, Handler, JobArgs, JobContext, JobError, Maintenance,
    MaintenanceConfig, QueueConfig, Readiness, RunningWorker, Worker, WorkerConfig,
};
#[cfg(feature = "postgres")]
pub use errand_postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "sqlite")]
pub use errand_sqlite::{Durability, SqliteConfig, SqliteStore};

/// Where the store lives, parsed from a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file: `sqlite://PATH`, `sqlite:PATH`, or a bare path.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL server: `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl StoreUrl {
    /// Parses a database URL; the error says which forms are accepted.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::InvalidConfig("the database URL is empty".into()));
        }
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(StoreError::InvalidConfig(format!(
                    "{url:?} names no file: use sqlite://PATH"
                )));
            }
            return Ok(StoreUrl::Sqlite(rest.into()));
        }
        if errand_core::url::is_postgres_url(url) {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        // "postgres:/db", "postgresql:db", "postgres//u@h/db": a PostgreSQL
        // URL with its scheme mistyped, not a file to create.
        let lower = url.to_ascii_lowercase();
        if ["postgres:", "postgresql:", "postgres/", "postgresql/"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(StoreError::InvalidConfig(format!(
                "malformed PostgreSQL URL {:?}: it must start with postgres:// (postgres://USER@HOST/DB)",
                redact_url(url)
            )));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreError::InvalidConfig(format!(
                "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            )));
        }
        Ok(StoreUrl::Sqlite(url.into()))
    }
}

/// Backend settings that do not fit in a URL.
///
/// Start from [`StoreOptions::default`] and set the fields you need (the
/// struct is `#[non_exhaustive]`: a feature may add a field).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// SQLite commit durability.
    #[cfg(feature = "sqlite")]
    pub durability: Durability,
    /// The PostgreSQL schema holding errand's tables (default `errand`).
    pub postgres_schema: Option<String>,
    /// Refuse a store that has not been created yet instead of creating it:
    /// a missing SQLite file, or a database or PostgreSQL schema without
    /// errand's tables, is [`StoreError::Uninitialized`]. The CLI sets it for
    /// every command but `work`, `serve`, `migrate` and `bench`.
    pub must_exist: bool,
    /// The permission bits of a newly created SQLite file (default `0o600`).
    pub sqlite_file_mode: Option<u32>,
}

/// Opens (and migrates) the store a URL names, with default settings.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with(url, &StoreOptions::default()).await
}

/// Opens (and migrates) the store a URL names.
///
/// A URL of a store this build leaves out (see the crate's features) is
/// [`StoreError::InvalidConfig`], naming the feature.
pub async fn open_store_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match StoreUrl::parse(url)? {
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => {
            let mut config = SqliteConfig::new(path)
                .durability(options.durability)
                .create(!options.must_exist);
            if let Some(mode) = options.sqlite_file_mode {
                config = config.file_mode(mode);
            }
            let store = SqliteStore::open(config).await?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(url) => {
            let mut config = PostgresConfig::from_url(url);
            if let Some(schema) = &options.postgres_schema {
                config = config.schema(schema.clone());
            }
            config = config.create(!options.must_exist);
            Ok(Arc::new(PostgresStore::open(config).await?))
        }
        // A store this build leaves out: unreachable with every feature on.
        #[allow(unreachable_patterns)]
        other => {
            let _ = options;
            Err(left_out(&other))
        }
    }
}

/// The error for a URL whose store this build leaves out: it names the
/// store and the feature that adds it.
fn left_out(url: &StoreUrl) -> StoreError {
    let (what, feature) = match url {
        StoreUrl::Sqlite(path) => (format!("an SQLite file ({})", path.display()), "sqlite"),
        StoreUrl::Postgres(url) => (format!("a PostgreSQL server ({})", redact_url(url)), "postgres"),
    };
    StoreError::InvalidConfig(format!(
        "the database URL names {what}, but this build of errand has no {feature} store: \
         enable the errand crate's \"{feature}\" feature"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            StoreUrl::parse("sqlite://a.db").unwrap(),
            StoreUrl::Sqlite("a.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/x.db").unwrap(),
            StoreUrl::Sqlite("/var/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:a.db").unwrap(),
            StoreUrl::Sqlite("a.db".into())
        );
        assert_eq!(
            StoreUrl::parse("./errand.db").unwrap(),
            StoreUrl::Sqlite("./errand.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("postgres://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        assert!(
            StoreUrl::parse("mysql://x")
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
        assert!(matches!(
            StoreUrl::parse("PostgreSQL://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        for typo in ["postgres:/db", "postgresql:u:secret@h/db"] {
            let e = StoreUrl::parse(typo).unwrap_err().to_string();
            assert!(e.contains("malformed PostgreSQL URL"), "{typo}: {e}");
            assert!(!e.contains("secret"), "{typo}: the password is not shown: {e}");
        }
        for typo in [
            "postgres//u:secret@h/db",
            "postgresql//h/db",
            "Postgres:/u:secret@h/db",
        ] {
            let e = StoreUrl::parse(typo).unwrap_err().to_string();
            assert!(e.contains("malformed PostgreSQL URL"), "{typo}: {e}");
            assert!(!e.contains("secret"), "{typo}: the password is not shown: {e}");
        }
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert!(StoreUrl::parse(" ").is_err());
    }

    #[test]
    fn a_store_left_out_of_the_build_is_named_with_its_feature() {
        let e = left_out(&StoreUrl::Postgres("postgres://u:secret@h/db".into()));
        assert!(matches!(e, StoreError::InvalidConfig(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("a PostgreSQL server (postgres://u:***@h/db)"), "{e}");
        assert!(
            e.contains("enable the errand crate's \"postgres\" feature"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
        let e = left_out(&StoreUrl::Sqlite("jobs.db".into())).to_string();
        assert!(e.contains("an SQLite file (jobs.db)"), "{e}");
        assert!(e.contains("enable the errand crate's \"sqlite\" feature"), "{e}");
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn without_the_postgres_feature_a_postgres_url_is_refused_not_taken_for_a_file() {
        for url in ["postgres://u:secret@127.0.0.1:1/db", "postgresql://h/db"] {
            let e = open_store(url).await.err().expect("refused");
            assert!(matches!(e, StoreError::InvalidConfig(_)), "{url}: {e:?}");
            assert!(e.to_string().contains("a PostgreSQL server"), "{url}: {e}");
        }
    }

    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn without_the_sqlite_feature_an_sqlite_url_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobs.db");
        for url in [format!("sqlite://{}", file.display()), file.display().to_string()] {
            let e = open_store(&url).await.err().expect("refused");
            assert!(matches!(e, StoreError::InvalidConfig(_)), "{url}: {e:?}");
            assert!(e.to_string().contains("\"sqlite\" feature"), "{url}: {e}");
        }
        assert!(!file.exists(), "no file is created");
    }
}
