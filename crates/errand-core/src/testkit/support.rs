//! Small helpers the scenarios share: fixed instants, job construction, and
//! store calls that panic with the operation's name when the store errs.

use std::time::Duration;

use jiff::Timestamp;

use crate::clock;
use crate::error::StoreError;
use crate::job::{Completion, ErrorRecord, Finish, Job, JobId, JobState, NewJob};
pub(crate) use crate::store::Scope;
use crate::store::{ClaimRequest, CompletionResult, Inserted, JobFilter, QueueStats, Store};
use crate::validate::{Limits, ValidJob, validate};

/// The lease every helper claim asks for: 30 s and a few microseconds, so a
/// store that rounds to milliseconds or seconds is caught.
pub(crate) const LEASE: Duration = Duration::from_micros(30_000_250);

/// The worker id helper claims use unless a scenario names another.
pub(crate) const WORKER: &str = "worker-1";

/// A fixed instant with a sub-second part: 2027-01-15 08:00:00.123456 UTC.
pub(crate) fn t0() -> Timestamp {
    Timestamp::from_microsecond(1_800_000_000_123_456).expect("t0 is a valid instant")
}

/// `secs` seconds after [`t0`] (negative: before).
pub(crate) fn at(secs: i64) -> Timestamp {
    t0().checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("scenario instants are in range")
}

/// `t + d`.
pub(crate) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    clock::add(t, d)
}

/// `secs` whole seconds.
pub(crate) fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Validates `job` as an enqueue at `now` would.
pub(crate) fn valid(job: NewJob, now: Timestamp) -> ValidJob {
    let shown = format!("{job:?}");
    validate(job, &Limits::default(), now)
        .unwrap_or_else(|e| panic!("scenario bug: {shown} does not validate: {e}"))
}

/// Unwraps a store result, naming the operation in the panic.
pub(crate) fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

/// Inserts `jobs` at `now`.
pub(crate) async fn insert(store: &dyn Store, jobs: Vec<NewJob>, now: Timestamp) -> Vec<Inserted> {
    let n = jobs.len();
    let valid: Vec<ValidJob> = jobs.into_iter().map(|j| valid(j, now)).collect();
    let out = ok("insert_jobs", store.insert_jobs(valid, now).await);
    assert_eq!(out.len(), n, "insert_jobs must return one result per input job");
    out
}

/// Inserts one job at `now` and returns its result.
pub(crate) async fn insert1(store: &dyn Store, job: NewJob, now: Timestamp) -> Inserted {
    insert(store, vec![job], now).await.remove(0)
}

/// Inserts one job that must be new, and returns its id.
pub(crate) async fn add(store: &dyn Store, job: NewJob, now: Timestamp) -> JobId {
    let ins = insert1(store, job, now).await;
    assert!(
        !ins.duplicate,
        "a job without a taken unique key was reported as a duplicate: {ins:?}"
    );
    ins.id
}

/// A plain job of kind `kind` in `queue`.
pub(crate) fn job_in(queue: &str, kind: &str) -> NewJob {
    NewJob::new(kind, r#"{"n":1}"#).queue(queue)
}

/// Claims up to `limit` jobs of `queue` for `owner` at `now` with [`LEASE`].
pub(crate) async fn claim(
    store: &dyn Store,
    queue: &str,
    limit: usize,
    owner: &str,
    now: Timestamp,
) -> Vec<Job> {
    let jobs = ok(
        "claim_available",
        store
            .claim_available(ClaimRequest {
                queue: queue.to_owned(),
                limit,
                owner: owner.to_owned(),
                lease_for: LEASE,
                now,
            })
            .await,
    );
    assert!(
        jobs.len() <= limit,
        "claim_available returned {} jobs for limit {limit}",
        jobs.len()
    );
    jobs
}

/// Claims exactly one job of `queue` as [`WORKER`] at `now`, which must be `id`.
pub(crate) async fn claim_id(store: &dyn Store, queue: &str, id: JobId, now: Timestamp) -> Job {
    let mut jobs = claim(store, queue, 1, WORKER, now).await;
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![id], "claiming one job of queue {queue:?} at {now}");
    jobs.remove(0)
}

/// The lease token of a job a scenario just claimed.
pub(crate) fn token(job: &Job) -> i64 {
    job.lease
        .as_ref()
        .unwrap_or_else(|| panic!("claimed job {} has no lease: {job:?}", job.id))
        .token
}

/// Sends one completion for `job` under the lease it was claimed with.
pub(crate) async fn finish(store: &dyn Store, job: &Job, finish: Finish, now: Timestamp) -> CompletionResult {
    finish_with(store, job.id, token(job), finish, now).await
}

/// Sends one completion for `id` under `lease_token`.
pub(crate) async fn finish_with(
    store: &dyn Store,
    id: JobId,
    lease_token: i64,
    finish: Finish,
    now: Timestamp,
) -> CompletionResult {
    let out = ok(
        "complete_batch",
        store
            .complete_batch(
                vec![Completion {
                    id,
                    lease_token,
                    finish,
                }],
                now,
            )
            .await,
    );
    assert_eq!(
        out.len(),
        1,
        "complete_batch must return one result per completion"
    );
    out[0]
}

/// Claims `id` from `queue` at `now` and completes it successfully.
pub(crate) async fn run_to_completion(store: &dyn Store, queue: &str, id: JobId, now: Timestamp) -> Job {
    let job = claim_id(store, queue, id, now).await;
    let res = finish(store, &job, Finish::Complete { result: None }, now).await;
    assert_eq!(res, CompletionResult::Done, "completing job {id}");
    get(store, id).await
}

/// An error record for `attempt` at `now` by [`WORKER`].
pub(crate) fn failure(attempt: i32, now: Timestamp, message: &str) -> ErrorRecord {
    ErrorRecord {
        attempt,
        at: now,
        message: message.to_owned(),
        worker: Some(WORKER.to_owned()),
    }
}

/// One job, seen by an operator.
pub(crate) async fn get(store: &dyn Store, id: JobId) -> Job {
    ok(&format!("get_job({id})"), store.get_job(id, &Scope::All).await)
}

/// The state of one job.
pub(crate) async fn state_of(store: &dyn Store, id: JobId) -> JobState {
    get(store, id).await.state
}

/// Asserts `r` is [`StoreError::NotFound`] for `id`.
pub(crate) fn assert_not_found<T: std::fmt::Debug>(what: &str, id: JobId, r: Result<T, StoreError>) {
    match r {
        Err(StoreError::NotFound(got)) => assert_eq!(got, id, "{what}: NotFound names the wrong job"),
        other => panic!("{what}: expected NotFound({id}), got {other:?}"),
    }
}

/// Asserts `r` is [`StoreError::InvalidState`] for `id` in `state`.
pub(crate) fn assert_invalid_state<T: std::fmt::Debug>(
    what: &str,
    id: JobId,
    state: JobState,
    r: Result<T, StoreError>,
) {
    match r {
        Err(StoreError::InvalidState {
            id: got, state: s, ..
        }) => {
            assert_eq!(
                (got, s),
                (id, state),
                "{what}: InvalidState names the wrong job or state"
            )
        }
        other => panic!("{what}: expected InvalidState({id}, {state}), got {other:?}"),
    }
}

/// Every job matching `filter`, following cursors; asserts each page is newest first.
pub(crate) async fn list_all(store: &dyn Store, filter: &JobFilter) -> Vec<JobId> {
    let mut filter = filter.clone();
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = ok("list_jobs", store.list_jobs(&filter).await);
        let ids: Vec<JobId> = page.jobs.iter().map(|j| j.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "list_jobs must return newest (highest id) first: {ids:?}"
        );
        out.extend(ids);
        match page.next_cursor {
            Some(c) => {
                assert!(
                    !page.jobs.is_empty(),
                    "list_jobs gave a cursor with an empty page"
                );
                filter.before_id = Some(c);
            }
            None => return out,
        }
    }
    panic!("list_jobs kept returning cursors: pagination does not end");
}

/// Rescues up to `limit` lapsed leases as the engine does: the store reports
/// them, [`lifecycle::rescue_completion`](crate::lifecycle::rescue_completion)
/// decides, the store writes. Returns how many were written.
pub(crate) async fn rescue(
    store: &dyn Store,
    now: Timestamp,
    policies: &crate::RetryPolicies,
    limit: usize,
) -> Result<u64, StoreError> {
    let lapsed = store.lapsed_leases(now, limit).await?;
    let items = lapsed
        .iter()
        .map(|l| crate::lifecycle::rescue_completion(l, policies, now))
        .collect();
    let done = store.rescue_lapsed(items, now).await?;
    Ok(done.iter().filter(|r| **r == CompletionResult::Done).count() as u64)
}

/// The figures of `queue`, which must be listed.
pub(crate) async fn queue_stats(store: &dyn Store, queue: &str, now: Timestamp) -> QueueStats {
    let all = ok("list_queues", store.queue_stats(&Scope::All, now).await);
    let names: Vec<&str> = all.iter().map(|q| q.name.as_str()).collect();
    all.iter()
        .find(|q| q.name == queue)
        .cloned()
        .unwrap_or_else(|| panic!("queue {queue:?} is missing from list_queues: {names:?}"))
}

/// Compares two JSON texts by value: stores may re-format JSON (jsonb does).
pub(crate) fn assert_json_eq(what: &str, got: &str, want: &str) {
    let g: serde_json::Value =
        serde_json::from_str(got).unwrap_or_else(|e| panic!("{what}: stored text is not JSON ({e}): {got}"));
    let w: serde_json::Value = serde_json::from_str(want).expect("scenario JSON is valid");
    assert_eq!(g, w, "{what}: stored JSON differs");
}
