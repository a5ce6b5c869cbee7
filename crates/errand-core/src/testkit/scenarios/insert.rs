//! `insert_jobs`: ids, initial states, field round-trips, queue creation.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{Job, JobId, JobState, NewJob};
use crate::retry::RetryPolicy;
use crate::store::{JobFilter, Store};
use crate::testkit::support::*;

/// A bulk insert returns one result per job, in input order: result `i`
/// names the job built from input `i`. Ids grow in input order, so a batch
/// keeps its FIFO order among jobs of equal priority and `run_at`.
pub async fn bulk_insert_returns_ids_in_input_order(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let kinds = ["first", "second", "third", "fourth", "fifth"];
    let jobs = kinds.iter().map(|k| NewJob::new(*k, "{}")).collect();
    let out = insert(s, jobs, now).await;
    for (i, ins) in out.iter().enumerate() {
        assert!(
            !ins.duplicate,
            "result {i} of a batch without unique keys is a duplicate: {ins:?}"
        );
        assert_eq!(
            ins.state,
            JobState::Available,
            "result {i}: a due job is available"
        );
        let job = get(s, ins.id).await;
        assert_eq!(job.kind, kinds[i], "result {i} names the job of another input");
    }
    let ids: Vec<JobId> = out.iter().map(|i| i.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids must grow in input order: {ids:?}"
    );

    // A later single insert gets a larger id than anything before it.
    let later = add(s, NewJob::new("sixth", "{}"), at(1)).await;
    assert!(
        later > ids[4],
        "a later insert got id {later}, not above {}",
        ids[4]
    );
}

/// A job due now (or in the past) is available; one whose `run_at` is even
/// a microsecond in the future is scheduled. [`Inserted::state`](crate::Inserted)
/// says which.
pub async fn insert_makes_due_jobs_available_and_future_jobs_scheduled(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let out = insert(
        s,
        vec![
            NewJob::new("due_now", "{}"),
            NewJob::new("overdue", "{}").run_at(at(-3600)),
            NewJob::new("soon", "{}").run_at(plus(now, Duration::from_micros(1))),
            NewJob::new("later", "{}").delay(secs(3600)),
        ],
        now,
    )
    .await;
    let want = [
        JobState::Available,
        JobState::Available,
        JobState::Scheduled,
        JobState::Scheduled,
    ];
    for (i, (ins, want)) in out.iter().zip(want).enumerate() {
        assert_eq!(ins.state, want, "Inserted.state of input {i}");
        assert_eq!(state_of(s, ins.id).await, want, "stored state of input {i}");
    }
    assert_eq!(
        get(s, out[1].id).await.run_at,
        at(-3600),
        "a past run_at is kept as given"
    );
}

/// Every field of a job survives the store: what `get_job` returns is what
/// was enqueued, with the lifecycle fields of a fresh job. JSON texts (args,
/// meta) are compared by value, since a store may re-format them.
pub async fn inserted_job_round_trips_every_field(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let run_at = plus(at(90), Duration::from_micros(7));
    let expires_at = plus(at(7200), Duration::from_micros(11));
    let policy = RetryPolicy::exponential(Duration::from_millis(1500), 2.0, secs(600)).with_jitter(0.25);
    let full = NewJob::new(
        "reports.build",
        r#"{"to":"a@example.com","n":[1,2.5,null],"ok":true}"#,
    )
    .queue("reports")
    .priority(7)
    .max_attempts(3)
    .run_at(run_at)
    .expires_at(expires_at)
    .tenant("acme")
    .unique_key("report:2027-01")
    .timeout(Duration::from_millis(90_500))
    .tag("monthly")
    .tag("billing/eu")
    .meta(r#"{"request_id":"req-1","nested":{"a":1}}"#)
    .retry(policy.clone());
    let id = add(s, full, now).await;
    let job = get(s, id).await;
    assert_eq!(job.id, id);
    assert_eq!(job.tenant.as_deref(), Some("acme"), "tenant");
    assert_eq!(job.queue, "reports", "queue");
    assert_eq!(job.kind, "reports.build", "kind");
    assert_json_eq(
        "args",
        &job.args,
        r#"{"to":"a@example.com","n":[1,2.5,null],"ok":true}"#,
    );
    assert_eq!(job.priority, 7, "priority");
    assert_eq!(job.max_attempts, 3, "max_attempts");
    assert_eq!(job.run_at, run_at, "run_at (microsecond precision)");
    assert_eq!(
        job.expires_at,
        Some(expires_at),
        "expires_at (microsecond precision)"
    );
    assert_eq!(job.created_at, now, "created_at is the insert's now");
    assert_eq!(job.unique_key.as_deref(), Some("report:2027-01"), "unique_key");
    assert_eq!(job.timeout, Some(Duration::from_millis(90_500)), "timeout");
    assert_eq!(
        job.tags,
        vec!["monthly".to_owned(), "billing/eu".to_owned()],
        "tags, in order"
    );
    assert_json_eq("meta", &job.meta, r#"{"request_id":"req-1","nested":{"a":1}}"#);
    assert_eq!(job.retry, Some(policy), "retry policy");
    assert_eq!(job.state, JobState::Scheduled, "state");
    assert_eq!(job.attempt, 0, "attempt of a fresh job");
    assert_eq!(job.attempted_at, None, "attempted_at of a fresh job");
    assert_eq!(job.finished_at, None, "finished_at of a fresh job");
    assert_eq!(job.progress, None, "progress of a fresh job");
    assert_eq!(job.result, None, "result of a fresh job");
    assert!(job.errors.is_empty(), "errors of a fresh job: {:?}", job.errors);
    assert_eq!(job.lease, None, "lease of a fresh job");
    assert!(!job.cancel_requested, "cancel_requested of a fresh job");

    // A job that sets nothing gets the validated defaults, stored as such.
    let id = add(s, NewJob::new("plain", "42"), now).await;
    let job = get(s, id).await;
    assert_eq!(job.tenant, None, "tenant");
    assert_eq!(job.queue, "default", "queue");
    assert_json_eq("args", &job.args, "42");
    assert_eq!(job.priority, crate::validate::DEFAULT_PRIORITY, "priority");
    assert_eq!(
        job.max_attempts,
        crate::validate::DEFAULT_MAX_ATTEMPTS,
        "max_attempts"
    );
    assert_eq!(job.run_at, now, "run_at");
    assert_eq!(job.expires_at, None, "expires_at");
    assert_eq!(job.unique_key, None, "unique_key");
    assert_eq!(job.timeout, None, "timeout");
    assert!(job.tags.is_empty(), "tags: {:?}", job.tags);
    assert_json_eq("meta", &job.meta, "{}");
    assert_eq!(job.retry, None, "retry policy");
    assert_eq!(job.state, JobState::Available, "state");
}

/// A queue exists once a job is inserted into it: `list_queues` shows it,
/// unpaused, with the job counted.
pub async fn insert_creates_queues_on_first_use(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let before = ok("list_queues", s.queue_stats(&Scope::All, now).await);
    assert!(
        before.iter().all(|q| q.name != "imports"),
        "a fresh store already lists queue \"imports\": {before:?}"
    );
    insert(s, vec![job_in("imports", "csv"), job_in("imports", "csv")], now).await;
    let q = queue_stats(s, "imports", now).await;
    assert!(!q.paused, "a queue created by an insert is not paused");
    assert_eq!(
        q.counts.get(&JobState::Available),
        Some(&2),
        "counts: {:?}",
        q.counts
    );
    let n = ok("list_queues", s.queue_stats(&Scope::All, now).await)
        .iter()
        .filter(|q| q.name == "imports")
        .count();
    assert_eq!(n, 1, "a queue is listed once");
    let listed = list_all(
        s,
        &JobFilter {
            queue: Some("imports".into()),
            ..JobFilter::default()
        },
    )
    .await;
    assert_eq!(listed.len(), 2, "both jobs are stored");
}

/// A job's stored fields do not depend on its batch-mates: each job of a
/// batch whose jobs share some fields and differ in others is stored
/// exactly as the same job inserted alone.
pub async fn bulk_insert_keeps_each_jobs_own_fields(store: Arc<dyn Store>) {
    let s = &*store;
    let now = t0();
    let policy = RetryPolicy::linear(secs(5), secs(5), secs(60));
    let batch = || {
        vec![
            NewJob::new("mail.send", r#"{"to":"a@example.com"}"#)
                .queue("mail")
                .tenant("acme")
                .priority(3)
                .max_attempts(4)
                .run_at(at(30))
                .expires_at(at(600))
                .timeout(Duration::from_millis(1500))
                .tag("x")
                .meta(r#"{"m":1}"#)
                .retry(policy.clone()),
            NewJob::new("mail.send", "[]").queue("mail"),
            NewJob::new("mail.bounce", r#"{"n":2}"#)
                .queue("mail")
                .tenant("globex")
                .priority(3)
                .tag("x")
                .tag("y")
                .meta(r#"{"m":2}"#),
            NewJob::new("report", "7").queue("reports").priority(900),
        ]
    };
    // Two tuples: the standard traits stop at twelve elements.
    let fields = |j: &Job| {
        let json = |what: &str, text: &str| {
            serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|e| panic!("{what}: {e}"))
        };
        (
            (
                j.tenant.clone(),
                j.queue.clone(),
                j.kind.clone(),
                json("args", &j.args),
                j.priority,
                j.max_attempts,
                j.state,
            ),
            (
                j.run_at,
                j.expires_at,
                j.timeout,
                j.tags.clone(),
                json("meta", &j.meta),
                j.retry.clone(),
            ),
        )
    };
    let together = insert(s, batch(), now).await;
    for (i, (ins, alone)) in together.iter().zip(batch()).enumerate() {
        let alone = add(s, alone, now).await;
        assert_eq!(
            fields(&get(s, ins.id).await),
            fields(&get(s, alone).await),
            "job {i} of the batch is stored differently from the same job alone"
        );
    }
}
