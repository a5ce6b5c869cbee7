//! `errand bench admin`: how fast the operator reads stay with a long history.
//!
//! Seeds a scratch store (SQLite; PostgreSQL too when `--database
//! postgres://…` is given) through the store's own hot path with
//! `--finished` finished jobs in queue `bulk` (one in a hundred discarded,
//! the rest completed) and `--per-state` jobs in each unfinished state
//! (scheduled, available, running, retryable) and in discarded and
//! cancelled, in queue `admin`; then times `--samples` calls of each
//! operator read the CLI makes (`queues list`, `jobs list --state
//! discarded`, `jobs list --queue admin`, `jobs show ID`) and reports p50,
//! p99 and max in milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::{Value, json};

use errand_core::{
    ClaimRequest, Completion, ErrorRecord, Finish, JobFilter, JobId, JobState, Limits, NewJob, Scope, Store,
    Timestamp, validate::validate,
};

use super::config::Config;

/// `errand bench admin`.
#[derive(Debug, Args)]
pub(crate) struct AdminBenchArgs {
    /// Finished jobs seeded before measuring (the target figure is 10,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    finished: usize,
    /// Jobs seeded in each other state.
    #[arg(long, default_value_t = 2_000)]
    per_state: usize,
    /// Calls timed per read.
    #[arg(long, default_value_t = 200)]
    samples: usize,
}

const BATCH: usize = 10_000;

fn job(queue: &str) -> NewJob {
    NewJob::new("bench.admin", r#"{"n":1}"#).queue(queue)
}

async fn insert(store: &dyn Store, jobs: Vec<NewJob>) -> anyhow::Result<Vec<JobId>> {
    let now = Timestamp::now();
    let valid = jobs
        .into_iter()
        .map(|j| validate(j, &Limits::default(), now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(store
        .insert_jobs(valid, now)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

/// Claims up to `n` jobs of `queue` and finishes each as `finish(i)` says
/// (`None`: leaves it running).
async fn claim_and_finish(
    store: &dyn Store,
    queue: &str,
    n: usize,
    finish: impl Fn(usize) -> Option<Finish>,
) -> anyhow::Result<()> {
    let mut done = 0;
    while done < n {
        let claimed = store
            .claim_available(ClaimRequest {
                queue: queue.to_owned(),
                limit: (n - done).min(BATCH),
                owner: "bench-admin".into(),
                lease_for: Duration::from_secs(3600),
                now: Timestamp::now(),
            })
            .await?;
        if claimed.is_empty() {
            bail!("seeding: queue {queue} ran out of available jobs");
        }
        let items: Vec<Completion> = claimed
            .iter()
            .enumerate()
            .filter_map(|(i, j)| {
                Some(Completion {
                    id: j.id,
                    lease_token: j.lease.as_ref()?.token,
                    finish: finish(done + i)?,
                })
            })
            .collect();
        done += claimed.len();
        if !items.is_empty() {
            store.complete_batch(items, Timestamp::now()).await?;
        }
    }
    Ok(())
}

fn error() -> ErrorRecord {
    ErrorRecord {
        attempt: 1,
        at: Timestamp::now(),
        message: "bench".into(),
        worker: None,
    }
}

/// Seeds the history and the live jobs; returns the ids of the live ones.
async fn seed(store: &dyn Store, a: &AdminBenchArgs) -> anyhow::Result<Vec<JobId>> {
    let mut left = a.finished;
    while left > 0 {
        let n = left.min(BATCH);
        insert(store, (0..n).map(|_| job("bulk")).collect()).await?;
        claim_and_finish(store, "bulk", n, |i| {
            Some(if i % 100 == 0 {
                Finish::Discard { error: error() }
            } else {
                Finish::Complete { result: None }
            })
        })
        .await?;
        left -= n;
    }
    let n = a.per_state;
    let mut ids = Vec::new();
    // running, retryable, discarded, then cancelled, scheduled and available.
    for finish in [
        None,
        Some(Finish::Retry {
            at: errand_core::clock::add(Timestamp::now(), Duration::from_secs(3600)),
            error: error(),
        }),
        Some(Finish::Discard { error: error() }),
    ] {
        ids.extend(insert(store, (0..n).map(|_| job("admin")).collect()).await?);
        claim_and_finish(store, "admin", n, |_| finish.clone()).await?;
    }
    let cancelled = insert(store, (0..n).map(|_| job("admin")).collect()).await?;
    for id in &cancelled {
        store.cancel_job(*id, &Scope::All, Timestamp::now()).await?;
    }
    ids.extend(cancelled);
    ids.extend(
        insert(
            store,
            (0..n)
                .map(|_| job("admin").delay(Duration::from_secs(3600)))
                .collect(),
        )
        .await?,
    );
    ids.extend(insert(store, (0..n).map(|_| job("admin")).collect()).await?);
    Ok(ids)
}

/// p50, p99 and max of `samples` timed calls of `f`, in milliseconds.
async fn time<F, Fut>(samples: usize, mut f: F) -> anyhow::Result<Value>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut ms = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        f(i).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Ok(json!({ "p50": at(0.5), "p99": at(0.99), "max": at(1.0) }))
}

async fn measure(store: Arc<dyn Store>, a: &AdminBenchArgs) -> anyhow::Result<Value> {
    let started = Instant::now();
    let live = seed(&*store, a).await?;
    let seeded = started.elapsed().as_secs_f64();
    let s = &*store;
    let list = |filter: JobFilter| async move {
        s.list_jobs(&filter).await?;
        anyhow::Ok(())
    };
    let queues = time(a.samples, |_| async {
        s.queue_stats(&Scope::All, Timestamp::now()).await?;
        Ok(())
    })
    .await?;
    let discarded = time(a.samples, |_| {
        list(JobFilter {
            states: vec![JobState::Discarded],
            ..Default::default()
        })
    })
    .await?;
    let by_queue = time(a.samples, |_| {
        list(JobFilter {
            queue: Some("admin".into()),
            ..Default::default()
        })
    })
    .await?;
    let show = time(a.samples, |i| {
        let id = live[(i * 7919) % live.len()];
        async move {
            s.get_job(id, &Scope::All).await?;
            Ok(())
        }
    })
    .await?;
    Ok(json!({
        "finished": a.finished,
        "per_state": a.per_state,
        "seed_seconds": seeded,
        "queues_list_ms": queues,
        "jobs_list_state_discarded_ms": discarded,
        "jobs_list_queue_ms": by_queue,
        "jobs_show_ms": show,
    }))
}

pub(crate) async fn run(a: &AdminBenchArgs, config: &Config, as_json: bool) -> anyhow::Result<()> {
    if a.samples == 0 || a.per_state == 0 {
        bail!("--samples and --per-state must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let mut report = serde_json::Map::new();
    let sqlite = errand::open_store(&format!("sqlite://{}", dir.path().join("admin.db").display())).await?;
    report.insert("sqlite".into(), measure(sqlite, a).await?);
    if config.database.starts_with("postgres") {
        let schema = format!("errand_bench_admin_{}", std::process::id());
        let pg = errand::PostgresStore::open(
            errand::PostgresConfig::from_url(config.database.clone()).schema(schema.clone()),
        )
        .await?;
        let r = measure(Arc::new(pg), a).await;
        super::bench_schedule::drop_schema(&config.database, &schema).await;
        report.insert("postgres".into(), r?);
    }
    if as_json {
        println!("{}", Value::Object(report));
    } else {
        for (backend, r) in &report {
            println!(
                "{backend}: {} finished + {} per other state, seeded in {:.0} s",
                r["finished"],
                r["per_state"],
                r["seed_seconds"].as_f64().unwrap_or(0.0)
            );
            for key in [
                "queues_list_ms",
                "jobs_list_state_discarded_ms",
                "jobs_list_queue_ms",
                "jobs_show_ms",
            ] {
                println!(
                    "  {key:<30} p50 {:>8.2}  p99 {:>8.2}  max {:>8.2}",
                    r[key]["p50"].as_f64().unwrap_or(f64::NAN),
                    r[key]["p99"].as_f64().unwrap_or(f64::NAN),
                    r[key]["max"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
    Ok(())
}
