//! Enqueueing and completing inside the application's own transaction.

use errand_core::store::{CompletionResult, Inserted};
use errand_core::{Completion, StoreError, ValidJob};
use jiff::Timestamp;
use sqlx::{Connection, PgConnection};

use crate::PostgresStore;
use crate::complete::complete_rows;
use crate::error::db;
use crate::insert::{Notify, insert_plain, insert_unique, needs_unique_check};

impl PostgresStore {
    /// Inserts jobs on `conn`, normally the application's open transaction:
    /// the jobs exist, and workers are woken, only if that transaction
    /// commits. Same rules as [`Store::insert_jobs`](errand_core::Store::insert_jobs)
    /// (all or nothing, unique keys, results in input order).
    ///
    /// With unique keys the check runs in a savepoint holding
    /// transaction-scoped advisory locks on the keys until the application
    /// commits, so a concurrent enqueue of the same key waits for the
    /// outcome instead of racing it. If `conn` is not in a transaction, the
    /// insert commits on its own.
    ///
    /// ```no_run
    /// # async fn demo(store: errand_postgres::PostgresStore, job: errand_core::ValidJob)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = store.pool().begin().await?;
    /// errand_postgres::sqlx::query("UPDATE accounts SET welcomed = true WHERE id = 7")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.insert_jobs_in(&mut tx, vec![job], errand_core::Timestamp::now()).await?;
    /// tx.commit().await?; // the job and the update commit together
    /// # Ok(())
    /// # }
    /// ```
    pub async fn insert_jobs_in(
        &self,
        conn: &mut PgConnection,
        jobs: Vec<ValidJob>,
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = &self.inner.sql;
        if needs_unique_check(&jobs) {
            // A savepoint inside the caller's transaction, or a transaction
            // of its own on a bare connection.
            let mut sp = conn.begin().await.map_err(db)?;
            let out = insert_unique(
                &mut sp,
                sql,
                &self.inner.schema,
                &jobs,
                now,
                Notify::InTransaction,
            )
            .await?;
            sp.commit().await.map_err(db)?;
            Ok(out)
        } else {
            insert_plain(conn, sql, &jobs, now, Notify::InTransaction).await
        }
    }

    /// Records how an attempt ended on `conn`, normally the handler's open
    /// transaction, so the job's own writes and its completion commit (or
    /// roll back) together. Fenced like
    /// [`Store::complete_batch`](errand_core::Store::complete_batch): when the
    /// job is no longer running under `completion.lease_token`, nothing is
    /// written and the result is [`StoreError::LeaseLost`], so that a `?`
    /// aborts the handler's transaction and its effects are not applied
    /// twice. The job's row stays locked until the transaction ends.
    ///
    /// The engine must not send another completion for the job afterwards
    /// (it would be refused as lease lost, which is harmless).
    pub async fn complete_in(
        &self,
        conn: &mut PgConnection,
        completion: Completion,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (id, token) = (completion.id, completion.lease_token);
        let results = complete_rows(conn, &self.inner.sql, std::slice::from_ref(&completion), now).await?;
        match results.first() {
            Some(CompletionResult::Done) => Ok(()),
            _ => Err(StoreError::LeaseLost { id, token }),
        }
    }
}
