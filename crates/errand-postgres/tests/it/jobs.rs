//! Job behaviour where PostgreSQL's concurrency matters: disjoint claims
//! across processes, batch round trips, fencing, totals that survive pruning.

use errand_core::prelude::*;
use std::collections::HashSet;
use std::time::Duration;

use errand_core::store::{ClaimRequest, CompletionResult, PruneRequest, Scope};
use errand_core::{Completion, ErrorRecord, Finish, Job, JobState, NewJob, Progress, RetryPolicy};
use errand_postgres::{PostgresStore, sqlx};

use crate::support;
use crate::{at, t0, valid};

fn claim_req(queue: &str, limit: usize, owner: &str, now: errand_core::Timestamp) -> ClaimRequest {
    ClaimRequest {
        queue: queue.into(),
        limit,
        owner: owner.into(),
        lease_for: Duration::from_micros(30_000_001),
        now,
    }
}

fn done(job: &Job, finish: Finish) -> Completion {
    Completion {
        id: job.id,
        lease_token: job.lease.as_ref().unwrap().token,
        finish,
    }
}

#[tokio::test]
async fn every_field_round_trips_with_microsecond_precision() {
    let Some(store) = support::store().await else {
        return;
    };
    let now = t0();
    let job = NewJob::new("report.build", "{ \"spaced\" : [1, 2.50] }")
        .queue("heavy")
        .priority(7)
        .tenant("acme")
        .delay(Duration::from_micros(1_500_001))
        .expires_in(Duration::from_secs(3600))
        .max_attempts(4)
        .timeout(Duration::from_millis(1234))
        .tag("a")
        .tag("b/c")
        .meta(r#"{"request_id":"r-1"}"#)
        .unique_for("rep-1", Duration::from_secs(60))
        .retry(RetryPolicy::fixed(Duration::from_secs(2)));
    let v = valid(job, now);
    let ins = store.insert_jobs(vec![v.clone()], now).await.unwrap();
    assert_eq!(ins[0].state, JobState::Scheduled);
    let got = store.get_job(ins[0].id, &Scope::All).await.unwrap();
    assert_eq!(
        got.args, "{ \"spaced\" : [1, 2.50] }",
        "args come back byte for byte"
    );
    assert_eq!(got.meta, r#"{"request_id":"r-1"}"#);
    assert_eq!(got.run_at, v.run_at);
    assert_eq!(got.expires_at, v.expires_at);
    assert_eq!(got.created_at, now);
    assert_eq!(got.tenant.as_deref(), Some("acme"));
    assert_eq!(
        (got.queue.as_str(), got.priority, got.max_attempts),
        ("heavy", 7, 4)
    );
    assert_eq!(got.timeout, Some(Duration::from_millis(1234)));
    assert_eq!(got.tags, vec!["a".to_owned(), "b/c".to_owned()]);
    assert_eq!(got.unique_key.as_deref(), Some("rep-1"));
    assert_eq!(got.retry, v.retry);
    assert!(got.lease.is_none() && got.errors.is_empty() && got.progress.is_none());
    // Tenant scope hides it from other tenants.
    assert!(
        store
            .get_job(ins[0].id, &Scope::Tenant("other".into()))
            .await
            .is_err()
    );
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn concurrent_claimers_in_several_processes_take_disjoint_jobs_in_order() {
    let Some(config) = support::config().await else {
        return;
    };
    let producer = support::open(config.clone()).await;
    let jobs: Vec<_> = (0..400)
        .map(|i| valid(NewJob::new("k", format!("{i}")).priority(i % 3), at(0)))
        .collect();
    producer.insert_jobs(jobs, at(0)).await.unwrap();
    let mut workers = Vec::new();
    for w in 0..4 {
        let store: PostgresStore = support::open(config.clone()).await;
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_available(claim_req("default", 7, &format!("w{w}"), at(1)))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                // Each batch comes in priority, run_at, id order.
                let keys: Vec<_> = batch.iter().map(|j| (j.priority, j.run_at, j.id)).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                assert_eq!(keys, sorted);
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for w in workers {
        for id in w.await.unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 400);
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn a_batch_of_mixed_completions_is_fenced_per_job_and_counted() {
    let Some(store) = support::store().await else {
        return;
    };
    let jobs: Vec<_> = (0..6)
        .map(|i| valid(NewJob::new("k", format!("{i}")).max_attempts(1 + i), at(0)))
        .collect();
    store.insert_jobs(jobs, at(0)).await.unwrap();
    let c = store
        .claim_available(claim_req("default", 10, "w", at(1)))
        .await
        .unwrap();
    assert_eq!(c.len(), 6);
    assert!(
        c.iter()
            .all(|j| j.lease.as_ref().unwrap().token == 1 && j.attempt == 1)
    );
    let err = |m: &str| ErrorRecord {
        attempt: 1,
        at: at(2),
        message: m.into(),
        worker: Some("w".into()),
    };
    store
        .report_progress(
            c[0].id,
            1,
            Progress {
                percent: 42.5,
                message: Some("half".into()),
            },
        )
        .await
        .unwrap();
    let items = vec![
        done(
            &c[0],
            Finish::Complete {
                result: Some(r#"{"rows":3}"#.into()),
            },
        ),
        done(
            &c[1],
            Finish::Retry {
                at: at(30),
                error: err("flaky"),
            },
        ),
        done(
            &c[2],
            Finish::Discard {
                error: err("bad input"),
            },
        ),
        done(&c[3], Finish::Snooze { at: at(60) }),
        done(&c[4], Finish::HandBack),
        // A stale token: refused.
        Completion {
            id: c[5].id,
            lease_token: 0,
            finish: Finish::Complete { result: None },
        },
        // The same job twice in one batch: only the first counts.
        done(&c[0], Finish::Discard { error: err("late") }),
    ];
    let out = store.complete_batch(items, at(2)).await.unwrap();
    use CompletionResult::*;
    assert_eq!(out, vec![Done, Done, Done, Done, Done, LeaseLost, LeaseLost]);
    let get = |i: usize| store.get_job(c[i].id, &Scope::All);
    let j0 = get(0).await.unwrap();
    assert_eq!(
        (j0.state, j0.result.as_deref()),
        (JobState::Completed, Some(r#"{"rows":3}"#))
    );
    assert_eq!(j0.finished_at, Some(at(2)));
    assert_eq!(
        j0.progress,
        Some(Progress {
            percent: 42.5,
            message: Some("half".into())
        })
    );
    let j1 = get(1).await.unwrap();
    assert_eq!(
        (j1.state, j1.run_at, j1.attempt),
        (JobState::Retryable, at(30), 1)
    );
    assert_eq!(j1.errors, vec![err("flaky")]);
    let j2 = get(2).await.unwrap();
    assert_eq!((j2.state, j2.errors.len()), (JobState::Discarded, 1));
    let j3 = get(3).await.unwrap();
    assert_eq!(
        (j3.state, j3.run_at, j3.attempt),
        (JobState::Scheduled, at(60), 0)
    );
    let j4 = get(4).await.unwrap();
    assert_eq!((j4.state, j4.attempt), (JobState::Available, 0));
    assert!(j4.lease.is_none());
    assert_eq!(get(5).await.unwrap().state, JobState::Running);
    let q = &store.queue_stats(&errand_core::Scope::All, at(3)).await.unwrap()[0];
    assert_eq!(
        (q.completed_total, q.failed_total, q.discarded_total),
        (Some(1), Some(2), Some(1))
    );
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn a_result_that_is_not_json_is_kept_as_a_json_string() {
    let Some(store) = support::store().await else {
        return;
    };
    store
        .insert_jobs(vec![valid(NewJob::new("k", "1"), at(0))], at(0))
        .await
        .unwrap();
    let c = store
        .claim_available(claim_req("default", 1, "w", at(1)))
        .await
        .unwrap();
    let out = store
        .complete_batch(
            vec![done(
                &c[0],
                Finish::Complete {
                    result: Some("plain text".into()),
                },
            )],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(out, vec![CompletionResult::Done]);
    let j = store.get_job(c[0].id, &Scope::All).await.unwrap();
    assert_eq!(j.result.as_deref(), Some("\"plain text\""));
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn totals_survive_pruning_and_pruning_is_bounded() {
    let Some(store) = support::store().await else {
        return;
    };
    let jobs: Vec<_> = (0..25).map(|_| valid(NewJob::new("k", "{}"), at(0))).collect();
    store.insert_jobs(jobs, at(0)).await.unwrap();
    let c = store
        .claim_available(claim_req("default", 25, "w", at(1)))
        .await
        .unwrap();
    let items = c
        .iter()
        .map(|j| done(j, Finish::Complete { result: None }))
        .collect();
    store.complete_batch(items, at(2)).await.unwrap();
    let req = PruneRequest {
        finished_before: at(3),
        queue: None,
        except_queues: vec![],
        limit: 10,
    };
    assert_eq!(store.prune_finished(&req).await.unwrap(), 10);
    assert_eq!(store.prune_finished(&req).await.unwrap(), 10);
    assert_eq!(store.prune_finished(&req).await.unwrap(), 5);
    assert_eq!(store.prune_finished(&req).await.unwrap(), 0);
    let q = &store.queue_stats(&errand_core::Scope::All, at(4)).await.unwrap()[0];
    assert_eq!(q.completed_total, Some(25));
    assert!(q.counts.is_empty(), "{:?}", q.counts);
    support::drop_schema(store.schema()).await;
}

#[tokio::test]
async fn completers_in_several_processes_add_to_the_same_totals() {
    let Some(config) = support::config().await else {
        return;
    };
    let producer = support::open(config.clone()).await;
    let jobs: Vec<_> = (0..200).map(|_| valid(NewJob::new("k", "{}"), at(0))).collect();
    producer.insert_jobs(jobs, at(0)).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = support::open(config.clone()).await;
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = store
                    .claim_available(claim_req("default", 10, &format!("w{w}"), at(1)))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return;
                }
                let items: Vec<_> = batch
                    .iter()
                    .map(|j| done(j, Finish::Complete { result: None }))
                    .collect();
                let out = store.complete_batch(items, at(2)).await.unwrap();
                assert!(out.iter().all(|r| *r == CompletionResult::Done));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let q = &producer
        .queue_stats(&errand_core::Scope::All, at(3))
        .await
        .unwrap()[0];
    assert_eq!(q.completed_total, Some(200));
    assert_eq!(q.counts.get(&JobState::Completed), Some(&200));
    support::drop_schema(config.schema_name()).await;
}

#[tokio::test]
async fn claiming_reads_the_partial_fetch_index_even_with_much_finished_history() {
    let Some(store) = support::store().await else {
        return;
    };
    let s = store.schema();
    // 20,000 finished rows and a few available ones.
    sqlx::raw_sql(&format!(
        r#"INSERT INTO "{s}".jobs (queue, kind, args, priority, state, attempt, max_attempts, run_at, created_at, finished_at)
           SELECT 'default', 'k', '{{}}', 100, 'completed', 1, 25, 0, 0, 1 FROM generate_series(1, 20000);
           ANALYZE "{s}".jobs;"#
    ))
    .execute(store.pool())
    .await
    .unwrap();
    store
        .insert_jobs(
            (0..5).map(|_| valid(NewJob::new("k", "{}"), at(0))).collect(),
            at(0),
        )
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        r#"EXPLAIN SELECT id FROM "{s}".jobs WHERE state = 'available' AND queue = 'default' AND run_at <= 1
           AND (expires_at IS NULL OR expires_at > 1) ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED"#
    ))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("jobs_fetch"),
        "the claim does not use jobs_fetch:\n{plan}"
    );
    assert_eq!(
        store
            .claim_available(claim_req("default", 10, "w", at(1)))
            .await
            .unwrap()
            .len(),
        5
    );
    support::drop_schema(store.schema()).await;
}

/// The statement in `sql/{name}.sql`, with its placeholders filled in for `schema`.
fn statement(name: &str, schema: &str) -> String {
    let template = match name {
        "complete_batch" => include_str!("../../sql/complete_batch.sql"),
        "extend_leases" => include_str!("../../sql/extend_leases.sql"),
        other => panic!("no statement {other}"),
    };
    template
        .replace("__SCHEMA__", &format!("\"{schema}\""))
        .replace("__CHANNEL__", "'test'")
}

/// Regression: with statistics saying no job runs (taken before a burst of
/// claims) and a generic plan, the fenced writes once scanned every running
/// job through the lease index for each id of the batch — 80 ms per batch
/// with a million finished rows. They must look the batch up by primary key.
/// And driven by the batch: with `id = ANY (ids)` beside the join, the
/// generic plan read the jobs by the array and rescanned the whole batch for
/// each of them (quadratic: 0.7 s for 2000 completions, a minute for a
/// heartbeat holding 20,000 jobs).
#[tokio::test]
async fn fenced_writes_look_jobs_up_by_primary_key_even_with_stale_statistics() {
    let Some(store) = support::store().await else {
        return;
    };
    let s = store.schema();
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::raw_sql(&format!(
        r#"INSERT INTO "{s}".jobs (queue, kind, args, priority, state, attempt, max_attempts, run_at, created_at, finished_at)
           SELECT 'default', 'k', '{{}}', 100, 'completed', 1, 25, 0, 0, 1 FROM generate_series(1, 20000);
           ANALYZE "{s}".jobs;
           INSERT INTO "{s}".jobs (queue, kind, args, priority, state, attempt, max_attempts, run_at, created_at,
                                   lease_owner, lease_token, lease_expires_at)
           SELECT 'default', 'k', '{{}}', 100, 'running', 1, 25, 0, 0, 'w', 1, 100 FROM generate_series(1, 2000);
           SET plan_cache_mode = force_generic_plan;"#
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    for (name, alias, types, args) in [
        (
            "complete_batch",
            "i,i_1",
            "int8, int8[], int8[], text[], int8[], text[], text[], bool[], bool[], bool[]",
            "1, '{20001}', '{1}', '{completed}', '{NULL}', '{NULL}', '{NULL}', '{f}', '{f}', '{f}'",
        ),
        (
            "extend_leases",
            "h",
            "text, int8, int8[], int8[]",
            "'w', 200, '{20001}', '{1}'",
        ),
    ] {
        let prepare = format!("PREPARE {name}({types}) AS {}", statement(name, s));
        sqlx::raw_sql(&prepare).execute(&mut *conn).await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({args})"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("jobs_pkey") && !plan.contains("jobs_leases"),
            "{name} does not look jobs up by primary key:\n{plan}"
        );
        // complete_batch writes twice, through the input under two aliases
        // (kept jobs updated, the rest deleted): both must be driven by the batch.
        assert!(
            alias
                .split(',')
                .all(|a| plan.contains(&format!("Index Cond: (id = {a}.id)")))
                && !plan.contains("Join Filter"),
            "{name} is not driven by its batch:\n{plan}"
        );
    }
    sqlx::raw_sql("DEALLOCATE ALL; RESET plan_cache_mode")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    support::drop_schema(store.schema()).await;
}

/// With autovacuum off for the jobs table, the store's upkeep vacuums it
/// once enough rows are dead, and not before.
#[tokio::test]
async fn upkeep_vacuums_the_jobs_table_when_autovacuum_is_off() {
    let Some(store) = support::store().await else {
        return;
    };
    let s = store.schema();
    let last_vacuum = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'",
        )
        .bind(s)
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    let mut conn = support::connect().await;
    sqlx::raw_sql(&format!(
        r#"ALTER TABLE "{s}".jobs SET (autovacuum_enabled = false)"#
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // Inserts and deletes `n` jobs, and has the counts published at once.
    async fn leave_dead_rows(conn: &mut sqlx::PgConnection, s: &str, n: u32) {
        sqlx::raw_sql(&format!(
            r#"INSERT INTO "{s}".jobs (queue, kind, args, priority, state, attempt, max_attempts, run_at, created_at)
               SELECT 'default', 'k', '{{}}', 100, 'available', 0, 25, 0, 0 FROM generate_series(1, {n});
               DELETE FROM "{s}".jobs;"#
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    // 500 dead rows: under the threshold (1000 plus 1% of the live rows).
    leave_dead_rows(&mut conn, s, 500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.upkeep().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!last_vacuum().await, "vacuumed with only 500 dead rows");

    leave_dead_rows(&mut conn, s, 3000).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        store.upkeep().await.unwrap();
        if last_vacuum().await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the jobs table was never vacuumed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(conn);
    support::drop_schema(store.schema()).await;
}
