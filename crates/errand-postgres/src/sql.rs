//! The store's SQL: one statement per file under `sql/`, named after the
//! method that runs it, rendered once per store for its schema.
//!
//! Templates use three placeholders: `__SCHEMA__` (the schema as a quoted
//! identifier), `__CHANNEL__` (the NOTIFY channel as a string literal) and
//! `__JOB__` (every column of a job row aliased `j`, as [`crate::row`] reads them),
//! and the source states of operator actions from errand-core's lifecycle
//! (`__CANCEL_FROM__`, `__RETRY_FROM__`, `__DISCARD_FROM__`), so the state
//! machine is written once.

use errand_core::lifecycle::{Event, sql_states};

/// The columns of a job, as `crate::row::job` decodes them. JSON columns are
/// read as text so they come back exactly as stored.
const JOB_COLUMNS: &str = "j.id, j.tenant, j.queue, j.kind, j.args::text AS args, j.priority, j.state, \
     j.attempt, j.max_attempts, j.run_at, j.created_at, j.attempted_at, j.finished_at, j.expires_at, \
     j.unique_key, j.timeout_ms, j.tags::text AS tags, j.meta::text AS meta, j.retry::text AS retry, \
     j.progress::text AS progress, j.result::text AS result, j.errors::text AS errors, j.lease_owner, \
     j.lease_token, j.lease_expires_at, j.cancel_requested";

macro_rules! statements {
    ($($name:ident),* $(,)?) => {
        /// Every statement, rendered for one schema.
        #[derive(Debug)]
        pub(crate) struct Sql {
            $(pub(crate) $name: String,)*
        }

        impl Sql {
            pub(crate) fn new(schema: &str) -> Self {
                Sql {
                    $($name: render(include_str!(concat!("../sql/", stringify!($name), ".sql")), schema),)*
                }
            }
        }
    };
}

statements!(
    insert_jobs,
    insert_jobs_lock_keys,
    insert_jobs_find_unique,
    claim_available,
    complete_batch,
    extend_leases,
    cancel_requests,
    report_progress,
    lapsed_leases,
    rescue_lapsed,
    promote_due,
    expire_due,
    prune_finished,
    next_due_at,
    get_job,
    list_jobs,
    cancel_job,
    retry_job,
    retry_job_key,
    retry_job_holder,
    discard_job,
    set_queue_paused,
    clear_queue,
    queues_with_available_jobs,
    remove_queue,
    list_queues,
    list_queues_counts,
    list_queues_oldest,
    elect_leader,
    resign_leader,
    sync_schedules_lock,
    sync_schedules_upsert,
    sync_schedules_remove,
    fire_schedule_ticks_lock,
    fire_schedule_ticks_advance,
    fire_schedule_ticks_record,
    fire_schedule_ticks_done,
    list_schedules,
);

/// The schema as a quoted identifier. Schema names are checked to be
/// `[a-z_][a-z0-9_]*` before they get here, so quoting cannot be escaped.
pub(crate) fn quoted_schema(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// The channel a schema's store notifies and listens on. Channels are per
/// database, so the schema is part of the name.
pub(crate) fn channel(schema: &str) -> String {
    format!("errand_{schema}")
}

/// A template with its placeholders filled in for `schema`.
pub(crate) fn render(template: &str, schema: &str) -> String {
    template
        .replace("__SCHEMA__", &quoted_schema(schema))
        .replace("__CHANNEL__", &format!("'{}'", channel(schema)))
        .replace("__JOB__", JOB_COLUMNS)
        .replace("__CANCEL_FROM__", &sql_states(Event::Cancel))
        .replace("__RETRY_FROM__", &sql_states(Event::OperatorRetry))
        .replace("__DISCARD_FROM__", &sql_states(Event::OperatorDiscard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_in_the_order_the_column_list_gives() {
        let names: Vec<&str> = JOB_COLUMNS
            .split(',')
            .map(|c| {
                let c = c.trim();
                c.rsplit(' ').next().expect("a column").trim_start_matches("j.")
            })
            .collect();
        assert_eq!(names, crate::row::JOB_COLUMN_NAMES);
    }

    #[test]
    fn every_placeholder_is_filled() {
        let sql = Sql::new("s1");
        let all = format!("{sql:?}");
        assert!(!all.contains("__"), "unfilled placeholder in {all}");
        assert!(sql.claim_available.contains("\"s1\".jobs"));
        assert!(sql.complete_batch.contains("'errand_s1'"));
        assert!(sql.get_job.contains("j.args::text AS args"));
    }
}
