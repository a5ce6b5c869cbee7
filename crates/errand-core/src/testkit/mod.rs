//! The store conformance suite: one set of scenarios that every backend runs.
//!
//! A backend instantiates it in its own tests with
//! [`store_conformance!`](crate::store_conformance), passing an async
//! function that returns a fresh, empty store for each scenario:
//!
//! ```text
//! // crates/errand-mystore/tests/conformance.rs
//! async fn fresh_store() -> std::sync::Arc<dyn errand_core::Store> {
//!     std::sync::Arc::new(MyStore::open_empty().await.unwrap())
//! }
//! errand_core::store_conformance!(fresh_store);
//! ```
//!
//! The expansion is one `#[tokio::test]` per scenario in
//! [`scenarios`], so the backend crate needs `tokio` (with the `macros`
//! and `rt-multi-thread` features) among its dev-dependencies, and
//! `errand-core` with the `testkit` feature. A failing test names the
//! scenario; its panic message names the broken expectation.
//!
//! A behaviour that passes on one backend and fails on another is a bug in
//! the store, never in the suite.

pub mod scenarios;
mod support;

/// The teardown of [`store_conformance!`](crate::store_conformance) when
/// none is given: the store is dropped and that is all.
pub async fn no_teardown(_store: std::sync::Arc<dyn crate::Store>) {}

#[cfg(test)]
mod memory;

/// Expands to one `#[tokio::test]` per conformance scenario, each given a
/// fresh store by `$make` (an `async fn() -> Arc<dyn Store>`).
///
/// With `teardown = $path` (an `async fn(Arc<dyn Store>)`), each scenario
/// that passes hands its store to it afterwards, to remove what the store
/// left behind (a database schema, a key prefix). A failed scenario leaves
/// its data for inspection.
///
/// Scenarios that race tasks against each other run on a multi-threaded
/// runtime with two workers; the rest on the default current-thread one.
#[macro_export]
macro_rules! store_conformance {
    (@tests $make:path, $teardown:path; single: [$($s:ident),* $(,)?]; multi: [$($m:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $s() {
                let store = $make().await;
                $crate::testkit::scenarios::$s(store.clone()).await;
                $teardown(store).await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $m() {
                let store = $make().await;
                $crate::testkit::scenarios::$m(store.clone()).await;
                $teardown(store).await;
            }
        )*
    };
    ($make:path) => {
        $crate::store_conformance! { $make, teardown = $crate::testkit::no_teardown }
    };
    ($make:path, teardown = $teardown:path) => {
        $crate::store_conformance! { @tests $make, $teardown;
            single: [
                // ── JobQueue (the hot path) ──
                // insert_jobs
                bulk_insert_returns_ids_in_input_order,
                bulk_insert_keeps_each_jobs_own_fields,
                insert_makes_due_jobs_available_and_future_jobs_scheduled,
                inserted_job_round_trips_every_field,
                insert_creates_queues_on_first_use,
                // unique keys
                unique_key_while_unfinished_returns_the_existing_job,
                unique_key_while_unfinished_is_free_once_the_job_finished,
                unique_key_with_period_holds_whatever_the_state,
                unique_keys_are_scoped_by_tenant,
                duplicate_keys_inside_one_batch_make_one_job,
                // claim_available
                claim_orders_by_priority_then_run_at_then_id,
                claim_takes_at_most_limit_jobs,
                claim_skips_scheduled_foreign_paused_early_and_expired_jobs,
                claim_starts_an_attempt_under_a_lease,
                reclaimed_job_gets_a_larger_lease_token,
                // complete_batch
                complete_stores_the_result_and_finishes_the_job,
                retry_appends_the_error_and_sets_the_next_run_at,
                discard_appends_the_error_and_finishes_the_job,
                snooze_reschedules_and_gives_the_attempt_back,
                defer_reschedules_gives_the_attempt_back_and_keeps_its_note,
                hand_back_makes_the_job_available_with_the_attempt_given_back,
                cancel_finish_records_the_reason_and_finishes_the_job,
                expire_finish_marks_the_claimed_job_expired,
                completion_with_a_wrong_token_is_refused_for_that_item_only,
                completing_twice_is_refused_the_second_time,
                result_less_successes_in_one_batch_are_fenced_one_by_one,
                every_finish_in_one_batch_lands_on_its_own_job,
                complete_and_delete_removes_the_job_and_counts_it,
                // extend_leases, report_progress; Housekeeping: lapsed_leases, rescue_lapsed
                extend_leases_moves_the_lease_deadline,
                extend_leases_reports_leases_no_longer_held,
                extend_leases_reports_cancel_requests,
                report_progress_is_stored_for_the_lease_holder,
                rescue_makes_expired_leases_retryable_with_an_error,
                rescue_picks_the_kind_then_the_queue_policy,
                rescue_discards_jobs_out_of_attempts_and_honours_its_limit,
                stale_completion_after_rescue_is_refused,
                // ── Housekeeping (maintenance primitives) ──
                // promote_due, next_due_at, expire_due, prune_finished
                promote_due_makes_due_scheduled_and_retryable_jobs_available,
                next_due_at_is_the_earliest_scheduled_or_retryable_run_at,
                expire_due_expires_unstarted_jobs_past_their_deadline,
                prune_finished_deletes_only_jobs_finished_before_the_horizon,
                prune_finished_targets_queues_and_honours_its_limit,
                queue_totals_count_outcomes_and_survive_pruning,
                // ── Operator (tenant-scoped reads and actions) ──
                // get_job, list_jobs
                get_job_hides_other_tenants_jobs,
                list_jobs_filters_by_state_queue_kind_and_tenant,
                list_jobs_pagination_visits_every_job_once_newest_first,
                list_jobs_caps_a_page_at_1000,
                // cancel_job, retry_job
                cancel_job_cancels_unstarted_jobs_at_once,
                cancel_job_flags_a_running_job,
                cancel_requests_names_the_flagged_running_jobs,
                cancel_job_refuses_finished_jobs,
                operators_cannot_touch_other_tenants_jobs,
                retry_job_revives_an_exhausted_job_with_one_more_attempt,
                retry_job_makes_unfinished_and_cancelled_jobs_available_now,
                retry_job_refuses_completed_and_running_jobs,
                retry_job_refuses_to_revive_a_unique_key_another_job_holds,
                discard_job_discards_unstarted_jobs_and_counts_them,
                a_tenant_scope_sees_its_own_counts_and_cannot_act_on_whole_queues,
                // queues; ── Leadership ──
                set_queue_paused_creates_and_flags_the_queue,
                set_queue_paused_without_create_refuses_an_unknown_queue,
                clear_queue_deletes_only_waiting_jobs_in_scope,
                queues_with_available_jobs_names_only_those,
                remove_queue_refuses_a_busy_queue_and_forgets_an_empty_one,
                list_queues_counts_jobs_per_state_and_the_oldest_wait,
                list_queues_oldest_wait_starts_when_a_job_became_available,
                leader_role_is_exclusive_while_its_ttl_lasts,
                resigned_leader_role_is_free_at_once,
                // ── Schedules ──
                sync_registers_schedules_and_lists_them_by_name,
                fire_schedule_tick_enqueues_the_job_and_records_the_run,
                second_fire_of_a_tick_is_already_fired,
                stale_removed_or_disabled_schedules_are_superseded,
                sync_keeps_progress_unless_the_spec_changes,
                overlapping_tick_is_skipped_while_the_last_run_is_unfinished,
                dropping_ticks_moves_only_the_next_fire_time,
                last_outcome_of_a_pruned_job_is_pruned,
                fire_schedule_ticks_answers_each_tick_in_input_order,
                // the state machine
                every_state_and_event_moves_a_job_as_the_lifecycle_says,
            ];
            multi: [
                concurrent_inserts_of_one_key_make_one_job,
                concurrent_fires_of_one_tick_make_one_job,
                concurrent_batch_fires_make_one_job_per_tick,
                concurrent_claimers_never_share_a_job,
                wait_for_change_returns_within_its_timeout,
            ]
        }
    };
}

/// The suite run against a small in-memory model of the contract, so the
/// scenarios themselves are checked (each can pass) without a database.
#[cfg(test)]
mod self_check {
    crate::store_conformance!(super::memory::fresh);

    /// Every `pub async fn` in `scenarios/` is listed in the macro, so no
    /// scenario is written and then silently never run.
    #[test]
    fn every_scenario_is_instantiated_by_the_macro() {
        let macro_text = include_str!("mod.rs");
        let sources = [
            include_str!("scenarios/claim.rs"),
            include_str!("scenarios/complete.rs"),
            include_str!("scenarios/insert.rs"),
            include_str!("scenarios/lease.rs"),
            include_str!("scenarios/maintenance.rs"),
            include_str!("scenarios/operator.rs"),
            include_str!("scenarios/queues.rs"),
            include_str!("scenarios/read.rs"),
            include_str!("scenarios/schedules.rs"),
            include_str!("scenarios/transitions.rs"),
            include_str!("scenarios/unique.rs"),
        ];
        let mut n = 0;
        for src in sources {
            for line in src.lines() {
                let Some(rest) = line.strip_prefix("pub async fn ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                n += 1;
                assert!(
                    macro_text.contains(&format!("                {name},\n")),
                    "scenario {name} is not listed in store_conformance!"
                );
            }
        }
        let listed = macro_text
            .lines()
            .skip_while(|l| !l.contains("single: ["))
            .take_while(|l| !l.trim_start().starts_with("/// The suite run against"))
            .filter(|l| l.trim_end().ends_with(',') && !l.contains(':') && !l.contains("//"))
            .count();
        assert_eq!(
            listed, n,
            "the macro lists {listed} scenarios, the sources define {n}"
        );
    }
}
