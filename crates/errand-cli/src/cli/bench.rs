//! `errand bench`: enqueue (single and bulk), processing throughput, and
//! enqueue-to-start latency of no-op jobs, on a scratch store.
//!
//! Phases, each on its own queue so they do not disturb each other:
//! 1. single enqueue: `--producers` tasks each enqueue one job at a time;
//! 2. bulk enqueue: `--jobs` jobs in batches of 1000;
//! 3. processing: a worker with `--concurrency` slots works the bulk jobs;
//! 4. latency: jobs enqueued one by one, 2 ms apart, onto the idle queue;
//! 5. with `--finished M`: M finished jobs are added and phase 3 is repeated,
//!    to show claiming does not slow down as history grows;
//! 6. with `--baseline`: raw SQLite inserts (rusqlite, one row per commit and
//!    1000 rows per commit, see [`super::bench_baseline`]), measured in the
//!    same run for ratios.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use errand::{Errand, Executor, JobContext, NewJob, QueueConfig, WorkerConfig};
use errand_core::ErrorCode;
use errand_core::Outcome;

use super::config::Config;

/// `errand bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The store to measure: sqlite (a scratch file) or postgres (a scratch schema; needs --database).
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Jobs per phase.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker slots for the processing phase.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Concurrent producers for the single-enqueue phase.
    #[arg(long, default_value_t = 10)]
    producers: usize,
    /// Latency samples.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Add this many finished jobs, then measure processing again.
    #[arg(long)]
    finished: Option<usize>,
    /// Also measure raw SQLite insert rates in the same run.
    #[arg(long)]
    baseline: bool,
    /// Where the scratch database goes (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Work the processing phase with this many separate worker processes
    /// (each with --concurrency slots) instead of one in-process worker.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Whether the bench queue keeps its completed jobs. `false` deletes each
    /// in the write that records its success (`keep_completed = false`), as
    /// peers that remove finished jobs do.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    keep_completed: bool,
    /// Internal: run as one of those worker processes (until stdin closes).
    #[arg(long, hide = true)]
    worker_process: bool,
}

/// Invalid input to `bench` (exit code 2, like every invalid input).
fn invalid_input(field: &'static str, code: ErrorCode, message: String) -> anyhow::Error {
    errand_core::validate::ValidationError {
        field,
        code,
        message,
        index: None,
    }
    .into()
}

/// A no-op job that can record its enqueue-to-start latency.
struct Noop {
    record: AtomicBool,
    latencies: Mutex<Vec<f64>>,
}

#[async_trait]
impl Executor for Noop {
    async fn execute(&self, ctx: &JobContext, _args: &str) -> Outcome {
        if self.record.load(Ordering::Relaxed) {
            let waited = jiff::Timestamp::now().duration_since(ctx.created_at());
            self.latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(waited.as_secs_f64() * 1000.0);
        }
        Outcome::Completed { result: None }
    }
}

/// Delegates to a shared `Noop`, so the bench keeps a handle on it.
struct Shared(Arc<Noop>);

#[async_trait]
impl Executor for Shared {
    async fn execute(&self, ctx: &JobContext, args: &str) -> Outcome {
        self.0.execute(ctx, args).await
    }
}

#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            bar: enabled.then(|| {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} ({per_sec})")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar
            }),
        }
    }
    fn phase(&self, name: &str, len: usize) {
        if let Some(b) = &self.bar {
            b.reset();
            b.set_length(len as u64);
            b.set_position(0);
            b.set_message(name.to_owned());
        }
    }
    fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }
    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kb / 1024.0))
}

pub(crate) async fn run(a: &BenchArgs, config: &Config, as_json: bool) -> anyhow::Result<()> {
    for (field, n) in [
        ("jobs", a.jobs),
        ("concurrency", a.concurrency),
        ("producers", a.producers),
        ("processes", a.processes),
    ] {
        if n == 0 {
            return Err(invalid_input(
                field,
                ErrorCode::OutOfRange,
                "must be at least 1".to_owned(),
            ));
        }
    }
    if a.finished.is_some() && !a.keep_completed {
        return Err(invalid_input(
            "finished",
            ErrorCode::FinishedNeedsKeptJobs,
            "--finished measures claiming beside kept completed jobs: it needs --keep-completed true"
                .to_owned(),
        ));
    }
    if a.worker_process {
        return worker_process(a, config).await;
    }
    let dir = match &a.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("cannot create a scratch directory")?;
    let mut pg_schema: Option<(errand::PostgresStore, String)> = None;
    // How a worker process reaches the same store: database URL and schema.
    let child_store: (String, Option<String>);
    let store: Arc<dyn errand::Store> = match a.backend.as_str() {
        "sqlite" => {
            let path = dir.path().join("bench.db");
            child_store = (format!("sqlite://{}", path.display()), None);
            let cfg = errand::SqliteConfig::new(path).durability(config.store.durability);
            Arc::new(errand::SqliteStore::open(cfg).await?)
        }
        "postgres" => {
            let url = match errand::StoreUrl::parse(&config.database)? {
                errand::StoreUrl::Postgres(url) => url,
                errand::StoreUrl::Sqlite(_) => {
                    return Err(invalid_input(
                        "database",
                        ErrorCode::DatabaseRequired,
                        "--backend postgres needs the server: give --database postgres://USER@HOST/DB"
                            .to_owned(),
                    ));
                }
            };
            let schema = format!(
                "errand_bench_{}_{}",
                std::process::id(),
                jiff::Timestamp::now().as_second()
            );
            child_store = (url.clone(), Some(schema.clone()));
            let store =
                errand::PostgresStore::open(errand::PostgresConfig::from_url(url).schema(schema.clone()))
                    .await?;
            pg_schema = Some((store.clone(), schema));
            Arc::new(store)
        }
        other => {
            return Err(invalid_input(
                "backend",
                ErrorCode::BackendInvalid,
                format!("{other:?} is not a backend: use sqlite or postgres"),
            ));
        }
    };
    let errand = Errand::new(store);
    let client = errand.client();
    let progress = Progress::new(!as_json && std::io::stderr().is_terminal());
    let mut out = Map::new();
    out.insert("backend".into(), json!(a.backend));
    out.insert("jobs".into(), json!(a.jobs));
    out.insert("concurrency".into(), json!(a.concurrency));
    out.insert("producers".into(), json!(a.producers));
    out.insert("keep_completed".into(), json!(a.keep_completed));
    if a.backend == "sqlite" {
        out.insert(
            "durability".into(),
            json!(format!("{:?}", config.store.durability).to_lowercase()),
        );
    }

    // 1. Single enqueue, concurrent producers.
    progress.phase("enqueue (single)", a.jobs);
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..a.producers {
        let client = client.clone();
        let done = done.clone();
        let n = a.jobs / a.producers + usize::from(p < a.jobs % a.producers);
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                client
                    .enqueue(NewJob::new("noop", format!("{{\"n\":{i}}}")).queue("bench_single"))
                    .await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let ticker = {
        let done = done.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                progress.set(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    for t in tasks {
        t.await??;
    }
    // Timed when the last producer is done, not at the next progress tick.
    let single = a.jobs as f64 / started.elapsed().as_secs_f64();
    ticker.abort();
    out.insert("enqueue_single_per_sec".into(), json!(round(single)));

    // 2. Bulk enqueue, 1000 per batch.
    let bulk = enqueue_bulk(&client, a.jobs, "bench", &progress, "enqueue (bulk)").await?;
    out.insert("enqueue_bulk_per_sec".into(), json!(round(bulk)));

    // 3. Processing, from a vacuumed and analyzed table, as the peers'
    // drivers start theirs.
    vacuum_jobs(&pg_schema).await?;
    let noop = Arc::new(Noop {
        record: AtomicBool::new(false),
        latencies: Mutex::new(Vec::new()),
    });
    if a.processes > 1 {
        let rate = process_with_children(a, &child_store, &progress).await?;
        out.insert("processes".into(), json!(a.processes));
        out.insert("processed_per_sec_multi_process".into(), json!(round(rate)));
        enqueue_bulk(&client, a.jobs, "bench", &progress, "enqueue (bulk, again)").await?;
        vacuum_jobs(&pg_schema).await?;
    }
    let queue = bench_queue(a);
    let worker = errand
        .worker()
        .config(WorkerConfig {
            poll_interval: Duration::from_secs(5),
            ..WorkerConfig::default()
        })
        .queue_config(queue)
        .executor("noop", Shared(noop.clone()))
        .build()?
        .start();
    let processed = wait_processed(&worker, a.jobs as u64, &progress, "process").await?;
    out.insert("processed_per_sec".into(), json!(round(processed)));

    // 4. Latency on the idle queue.
    progress.phase("latency", a.latency_samples);
    noop.record.store(true, Ordering::Relaxed);
    let before = worker.stats().completed;
    for i in 0..a.latency_samples {
        client.enqueue(NewJob::new("noop", "{}").queue("bench")).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        progress.set(i as u64 + 1);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.stats().completed < before + a.latency_samples as u64 {
        if Instant::now() > deadline {
            bail!("latency jobs did not finish within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    noop.record.store(false, Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *noop.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_by(f64::total_cmp);
    out.insert("latency_p50_ms".into(), json!(round(percentile(&lat, 50.0))));
    out.insert("latency_p99_ms".into(), json!(round(percentile(&lat, 99.0))));

    // 5. Processing again with finished history in the table.
    if let Some(m) = a.finished {
        let completed = worker.stats().completed;
        enqueue_bulk(&client, m, "bench", &progress, "history (enqueue)").await?;
        wait_processed_from(&worker, completed, m as u64, &progress, "history (work)").await?;
        noop.record.store(false, Ordering::Relaxed);
        // Paused while it refills, so the measurement starts from a full queue,
        // as the first processing phase does.
        client.pause("bench", &errand_core::Scope::All).await?;
        enqueue_bulk(&client, a.jobs, "bench", &progress, "enqueue (bulk, again)").await?;
        // The history phase just left two dead row versions per job.
        vacuum_jobs(&pg_schema).await?;
        let completed = worker.stats().completed;
        client.resume("bench", &errand_core::Scope::All).await?;
        let again =
            wait_processed_from(&worker, completed, a.jobs as u64, &progress, "process (history)").await?;
        out.insert("finished_rows".into(), json!(m + a.jobs));
        out.insert("processed_per_sec_with_finished".into(), json!(round(again)));
        out.insert("finished_vs_empty".into(), json!(round(again / processed)));
    }
    worker.shutdown().await;

    // 6. Baselines in the same run.
    if a.baseline && a.backend == "sqlite" {
        progress.phase("baseline", 3);
        let d = config.store.durability;
        let path = dir.path().to_path_buf();
        let (raw1, raw1000) = tokio::task::spawn_blocking(move || -> rusqlite::Result<(f64, f64)> {
            Ok((
                super::bench_baseline::insert_rate(&path, d, 1, 3.0)?,
                super::bench_baseline::insert_rate(&path, d, 1000, 3.0)?,
            ))
        })
        .await?
        .context("the raw SQLite baseline failed")?;
        out.insert("raw_single_commit_per_sec".into(), json!(round(raw1)));
        out.insert("raw_insert_1000_per_txn_per_sec".into(), json!(round(raw1000)));
        out.insert(
            "enqueue_single_vs_raw_single_commit".into(),
            json!(round(single / raw1)),
        );
        out.insert(
            "enqueue_bulk_vs_raw_1000_per_txn".into(),
            json!(round(bulk / raw1000)),
        );
    }
    progress.done();
    if let Some((store, schema)) = pg_schema {
        // The scratch schema goes away with the run.
        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        if let Err(e) = errand_postgres::sqlx::query(&sql).execute(store.pool()).await {
            tracing::warn!(error = %e, schema, "cannot drop the bench schema");
        }
        store.close().await;
    }
    if let Some(rss) = peak_rss_mib() {
        out.insert("peak_rss_mib".into(), json!(rss));
    }
    if as_json {
        println!("{}", Value::Object(out));
    } else {
        for (k, v) in &out {
            // Strings as they are, not as JSON strings in quotes.
            let v = match v {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            println!("{k:<40}{}", super::output::escape(&v));
        }
    }
    Ok(())
}

/// The bench queue as the processing phase works it, in or out of process.
fn bench_queue(a: &BenchArgs) -> QueueConfig {
    let mut queue = QueueConfig::new("bench", a.concurrency);
    queue.fetch_batch = a.concurrency.min(1000);
    queue.keep_completed = a.keep_completed;
    queue
}

/// `VACUUM ANALYZE` of the scratch schema's jobs table (PostgreSQL only), as
/// the peers' drivers run before each processing run: it sets the new rows'
/// hint bits, removes dead versions and gives the planner fresh statistics.
async fn vacuum_jobs(pg: &Option<(errand::PostgresStore, String)>) -> anyhow::Result<()> {
    if let Some((store, _)) = pg {
        store.vacuum_jobs().await?;
    }
    Ok(())
}

async fn enqueue_bulk(
    client: &errand::Client,
    n: usize,
    queue: &str,
    progress: &Progress,
    name: &str,
) -> anyhow::Result<f64> {
    progress.phase(name, n);
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(1000);
        let batch: Vec<NewJob> = (sent..sent + k)
            .map(|i| NewJob::new("noop", format!("{{\"n\":{i}}}")).queue(queue))
            .collect();
        client.enqueue_many(batch).await?;
        sent += k;
        progress.set(sent as u64);
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn wait_processed(
    w: &errand::RunningWorker,
    n: u64,
    progress: &Progress,
    name: &str,
) -> anyhow::Result<f64> {
    wait_processed_from(w, 0, n, progress, name).await
}

/// Waits until `n` more jobs than `from` completed; returns jobs per second
/// from the first completion to the last.
async fn wait_processed_from(
    w: &errand::RunningWorker,
    from: u64,
    n: u64,
    progress: &Progress,
    name: &str,
) -> anyhow::Result<f64> {
    progress.phase(name, n as usize);
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last_progress = Instant::now();
    let mut last_count = from;
    loop {
        let c = w.stats().completed;
        if c > from && first.is_none() {
            first = Some(Instant::now());
        }
        progress.set(c.saturating_sub(from));
        if c >= from + n {
            break;
        }
        if c != last_count {
            last_count = c;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(60) {
            bail!("processing stalled at {} of {n} jobs", c - from);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let from_first = first.unwrap_or(started).elapsed().as_secs_f64().max(1e-9);
    Ok(n as f64 / from_first)
}

/// What one worker process reports on stdout, one JSON line at a time:
/// while it works, whenever its count has moved (at most every 20 ms), and
/// once more, with `done`, when told to stop.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildReport {
    completed: u64,
    /// Microseconds since the epoch of its first and last completion.
    first_us: Option<i64>,
    last_us: Option<i64>,
    done: bool,
}

/// `--worker-process`: works the bench queue with no-op jobs until stdin
/// closes, reporting its progress as [`ChildReport`] lines. The parent
/// follows these lines instead of querying the store, so that watching the
/// run costs the database nothing while it is measured.
async fn worker_process(a: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let store = errand::open_store_with(&config.database, &config.store).await?;
    let errand = Errand::new(store);
    let noop = Arc::new(Noop {
        record: AtomicBool::new(false),
        latencies: Mutex::new(Vec::new()),
    });
    let queue = bench_queue(a);
    let worker = errand
        .worker()
        .config(WorkerConfig {
            poll_interval: Duration::from_millis(200),
            ..WorkerConfig::default()
        })
        .queue_config(queue)
        .executor("noop", Shared(noop))
        .build()?
        .start();
    let mut stdin = tokio::io::stdin();
    let mut closed = std::pin::pin!(async move {
        let mut buf = [0u8; 64];
        while tokio::io::AsyncReadExt::read(&mut stdin, &mut buf)
            .await
            .is_ok_and(|n| n > 0)
        {}
    });
    let (mut first_us, mut last_us, mut seen, mut reported) = (None, None, 0, 0);
    let mut last_report = Instant::now();
    loop {
        tokio::select! {
            _ = &mut closed => break,
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
        let c = worker.stats().completed;
        if c != seen {
            let now = jiff::Timestamp::now().as_microsecond();
            first_us.get_or_insert(now);
            last_us = Some(now);
            seen = c;
        }
        if seen != reported && last_report.elapsed() >= Duration::from_millis(20) {
            report(&ChildReport {
                completed: seen,
                first_us,
                last_us,
                done: false,
            })?;
            reported = seen;
            last_report = Instant::now();
        }
    }
    let completed = worker.stats().completed;
    worker.shutdown().await;
    report(&ChildReport {
        completed,
        first_us,
        last_us,
        done: true,
    })
}

fn report(r: &ChildReport) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(r)?)?;
    out.flush()?;
    Ok(())
}

/// Works the bench queue's backlog with `--processes` worker processes;
/// returns jobs per second from the first completion in any process to the
/// last in any.
async fn process_with_children(
    a: &BenchArgs,
    (database, schema): &(String, Option<String>),
    progress: &Progress,
) -> anyhow::Result<f64> {
    progress.phase(&format!("process ({} procs)", a.processes), a.jobs);
    let exe = std::env::current_exe().context("cannot find the errand binary")?;
    let mut children = Vec::new();
    for _ in 0..a.processes {
        let mut cmd = tokio::process::Command::new(&exe);
        // Through the environment, not the command line: the URL may hold a
        // password, and every user of the machine can read command lines.
        cmd.env("ERRAND_DATABASE_URL", database);
        match schema {
            Some(s) => cmd.env("ERRAND_POSTGRES_SCHEMA", s),
            None => cmd.env_remove("ERRAND_POSTGRES_SCHEMA"),
        };
        cmd.args([
            "bench",
            "--worker-process",
            "--concurrency",
            &a.concurrency.to_string(),
            "--keep-completed",
            &a.keep_completed.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
        children.push(cmd.spawn().context("cannot start a bench worker process")?);
    }
    // One reader per child: the latest count it reported, then its last line.
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..children.len()).map(|_| AtomicU64::new(0)).collect());
    let mut readers = Vec::new();
    let mut stdins = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        stdins.push(child.stdin.take());
        let stdout = child
            .stdout
            .take()
            .context("a bench worker process has no stdout")?;
        let counts = counts.clone();
        readers.push(tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                let r: ChildReport = serde_json::from_str(line.trim())
                    .with_context(|| format!("a bench worker process reported {line:?}"))?;
                counts[i].store(r.completed, Ordering::Relaxed);
                if r.done {
                    return Ok(r);
                }
            }
            bail!("a bench worker process exited without its report")
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: u64 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        progress.set(done);
        if done >= a.jobs as u64 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "worker processes did not finish {} jobs within 10 minutes",
                a.jobs
            );
        }
        if readers.iter().any(|r| r.is_finished()) {
            bail!("a bench worker process stopped before the backlog was worked");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stdins);
    let (mut first, mut last, mut total) = (i64::MAX, i64::MIN, 0u64);
    for reader in readers {
        let r = reader.await??;
        total += r.completed;
        first = first.min(r.first_us.unwrap_or(i64::MAX));
        last = last.max(r.last_us.unwrap_or(i64::MIN));
    }
    for mut child in children {
        child.wait().await?;
    }
    if total < a.jobs as u64 || last <= first {
        bail!("the worker processes completed {total} of {} jobs", a.jobs);
    }
    Ok(total as f64 / ((last - first) as f64 / 1e6))
}
