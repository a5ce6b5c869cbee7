//! Versioned migrations, embedded in the binary.
//!
//! Each file under `migrations/` is one version, applied in order inside one
//! transaction that holds a transaction-scoped advisory lock for the schema:
//! any number of processes may open the store at once, one applies what is
//! pending and the others wait for it, then find nothing left to do. The
//! applied versions are recorded in `errand_migrations`; a database whose
//! newest version is unknown to this build is refused with
//! [`PostgresError::SchemaTooNew`].

use sqlx::{Connection, Executor, PgConnection};

use crate::error::PostgresError;
use crate::sql::{quoted_schema, render};

/// One schema version.
#[derive(Debug)]
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

macro_rules! migrations {
    ($($version:literal => $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $name, ".sql")),
        }),*]
    };
}

const MIGRATIONS: &[Migration] = migrations!(
    1 => "0001_jobs",
    2 => "0002_totals_and_leaders",
    3 => "0003_schedules",
);

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 3;

/// A stable 64-bit FNV-1a hash: advisory lock keys must agree across
/// processes and builds, which `std`'s hasher does not promise.
pub(crate) fn lock_key(parts: &[&[u8]]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

/// The schema's version: 0 when errand's tables are not there yet.
pub(crate) async fn current_version(conn: &mut PgConnection, schema: &str) -> Result<i64, PostgresError> {
    let table = format!("{}.errand_migrations", quoted_schema(schema));
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar(&format!("SELECT coalesce(max(version), 0)::int8 FROM {table}"))
            .fetch_one(&mut *conn)
            .await?,
    )
}

fn check_not_newer(found: i64) -> Result<(), PostgresError> {
    if found > SCHEMA_VERSION {
        Err(PostgresError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        })
    } else {
        Ok(())
    }
}

/// Applies every migration up to `target` that is not applied yet. Returns
/// the schema's version afterwards.
pub(crate) async fn migrate(
    conn: &mut PgConnection,
    schema: &str,
    target: i64,
) -> Result<i64, PostgresError> {
    let target = target.min(SCHEMA_VERSION);
    // Without the lock first: when nothing is pending (every start but the
    // first), no process waits on another.
    let found = current_version(conn, schema).await?;
    check_not_newer(found)?;
    if found >= target {
        return Ok(found);
    }

    let mut tx = conn.begin().await?;
    // Held until commit: concurrent migrators of this schema queue here.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(&[b"errand.migrate", schema.as_bytes()]))
        .execute(&mut *tx)
        .await?;
    // A migration may rewrite a big table; the store's statement timeout is
    // for its queries, not for this.
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut *tx)
        .await?;
    let q = quoted_schema(schema);
    if !exists {
        let create = format!("CREATE SCHEMA {q}");
        tx.execute(create.as_str()).await?;
    }
    let bookkeeping = format!(
        "CREATE TABLE IF NOT EXISTS {q}.errand_migrations (
             version    bigint      PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )"
    );
    tx.execute(bookkeeping.as_str()).await?;
    // Read again under the lock: another process may have just migrated.
    let found = current_version(&mut tx, schema).await?;
    check_not_newer(found)?;
    let mut version = found;
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > found && m.version <= target)
    {
        let script = render(m.sql, schema);
        tx.execute(script.as_str())
            .await
            .map_err(|source| PostgresError::Migration { name: m.name, source })?;
        let record = format!("INSERT INTO {q}.errand_migrations (version, name) VALUES ($1, $2)");
        sqlx::query(&record)
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
        tracing::info!(
            schema,
            version = m.version,
            migration = m.name,
            "applied migration"
        );
        version = m.version;
    }
    tx.commit().await?;
    Ok(version)
}

/// Fails unless the schema is exactly at [`SCHEMA_VERSION`].
/// Refuses a database where errand's schema was never created.
pub(crate) async fn require_created(conn: &mut PgConnection, schema: &str) -> Result<(), PostgresError> {
    if current_version(conn, schema).await? == 0 {
        return Err(PostgresError::Uninitialized {
            schema: schema.to_owned(),
        });
    }
    Ok(())
}

pub(crate) async fn require_current(conn: &mut PgConnection, schema: &str) -> Result<(), PostgresError> {
    let found = current_version(conn, schema).await?;
    check_not_newer(found)?;
    if found < SCHEMA_VERSION {
        return Err(PostgresError::Outdated {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbered_in_order_and_the_last_is_current() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)), "{}", m.name);
            assert!(
                m.sql.contains("__SCHEMA__"),
                "{} must create its objects in the schema",
                m.name
            );
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn lock_keys_are_stable_and_separate_parts() {
        assert_eq!(lock_key(&[b"a", b"bc"]), lock_key(&[b"a", b"bc"]));
        assert_ne!(lock_key(&[b"a", b"bc"]), lock_key(&[b"ab", b"c"]));
        // Pinned: a change would let old and new processes miss each other's locks.
        assert_eq!(lock_key(&[b"errand"]), 168_176_841_625_865_686);
    }
}
