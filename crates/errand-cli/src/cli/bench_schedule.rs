//! `errand bench schedule`: the schedule engine's two costs.
//!
//! 1. next-fire computation: `--expressions` distinct cron expressions
//!    (minute, hour, day and weekday fields varied, with steps, lists, `L`
//!    and `#`) spread over a dozen IANA zones, each asked for its next
//!    `--fires` fire times; reported as fire times computed per second.
//! 2. the scheduler: `--schedules` schedules that all fire at the same
//!    instants (`--cron`, default every 10 s) on a scratch SQLite store, and
//!    on a scratch PostgreSQL schema when `--database postgres://…` is
//!    given, run by the real [`Scheduler::run`] loop on the system clock for
//!    `--seconds`; reported: ticks fired, jobs per tick, how late each job
//!    was inserted after its fire time (p50, p99, max), and the process's
//!    CPU time over the phase (from /proc/self/stat) as a share of one core.
//! 3. the schedule file: a file of `--file-schedules` schedules (cron and
//!    `every` + `at`, enqueue and command, with a few comments) is parsed
//!    and validated; reported as seconds and schedules per second. Parsing
//!    is linear in the file's size, so 20,000 schedules take well under a
//!    second in a release build.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use errand::Errand;
use errand_core::schedule::{Schedule, ScheduleFile, zone};
use errand_core::{JobFilter, Store, Timestamp};
use errand_engine::SchedulerConfig;
use tokio_util::sync::CancellationToken;

use super::config::Config;

/// `errand bench schedule`.
#[derive(Debug, Args)]
pub(crate) struct ScheduleBenchArgs {
    /// Distinct cron expressions for the next-fire phase.
    #[arg(long, default_value_t = 10_000)]
    expressions: usize,
    /// Fire times computed per expression.
    #[arg(long, default_value_t = 10)]
    fires: usize,
    /// Active schedules for the scheduler phase.
    #[arg(long, default_value_t = 10_000)]
    schedules: usize,
    /// When every schedule fires (6 fields: seconds first).
    #[arg(long, default_value = "*/10 * * * * *")]
    cron: String,
    /// How long the scheduler phase runs.
    #[arg(long, default_value_t = 35)]
    seconds: u64,
    /// Schedules in the file of the file-parse phase (0 skips it).
    #[arg(long, default_value_t = 20_000)]
    file_schedules: usize,
    /// Skip the scheduler phase.
    #[arg(long)]
    next_fire_only: bool,
}

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Paris",
    "Europe/Moscow",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
];

/// The `i`-th of a family of distinct expressions.
fn expression(i: usize) -> String {
    let minute = i % 60;
    let hour = (i / 60) % 24;
    match (i / 1440) % 7 {
        0 => format!("{minute} {hour} * * *"),
        1 => format!("{minute} {hour} * * MON-FRI"),
        2 => format!("{minute} {hour}/{} * * *", 1 + (i / 1440) % 5),
        3 => format!("{minute} {hour} 1,15 * *"),
        4 => format!("{minute} {hour} L * *"),
        5 => format!("{minute} {hour} * * FRI#2"),
        _ => format!("{minute} {hour} */2 * SAT,SUN"),
    }
}

/// Seconds of CPU (user + system) this process has used.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux the kernel ABI supports for /proc.
    Some(ticks / 100.0)
}

fn next_fire_phase(args: &ScheduleBenchArgs) -> anyhow::Result<Value> {
    let zones: Vec<_> = ZONES
        .iter()
        .map(|z| zone(z).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<_>>()?;
    let parsed: Vec<Schedule> = (0..args.expressions)
        .map(|i| Schedule::parse_cron(&expression(i)).with_context(|| expression(i)))
        .collect::<anyhow::Result<_>>()?;
    let distinct: std::collections::HashSet<String> = (0..args.expressions).map(expression).collect();
    let from: Timestamp = "2026-01-01T00:00:00Z".parse()?;
    let started = Instant::now();
    let mut computed = 0u64;
    let mut checksum = 0i64;
    for (i, s) in parsed.iter().enumerate() {
        for t in s.upcoming(from, &zones[i % zones.len()]).take(args.fires) {
            computed += 1;
            checksum ^= t.as_second();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "expressions": args.expressions,
        "distinct": distinct.len(),
        "zones": ZONES.len(),
        "fire_times": computed,
        "seconds": secs,
        "fire_times_per_second": computed as f64 / secs,
        "expressions_per_second": args.expressions as f64 / secs,
        "checksum": checksum,
    }))
}

/// A schedule file of `n` varied schedules, as users write them.
fn schedule_file(n: usize) -> String {
    let mut text = String::from("database = \"sqlite://errand.db\"\n\n");
    for i in 0..n {
        let timing = match i % 4 {
            0 => format!("cron = \"{}\"", expression(i)),
            1 => format!("every = \"{} minutes\"\nat = {}", 5 + i % 20, i % 5),
            2 => format!("every = \"day\"\nat = \"{}:{:02}am\"", 1 + i % 12, i % 60),
            _ => "every = [\"monday\", \"friday\"]\nat = [\"9am\", \"5:30pm\"]".to_string(),
        };
        let action = if i % 3 == 0 {
            format!("command = [\"/usr/bin/task\", \"--n\", \"{i}\"]\nenv = {{ LANG = \"C\" }}")
        } else {
            format!(
                "kind = \"bench.job\"\nqueue = \"q{}\"\nargs = {{ n = {i}, tags = [\"a\", \"b\"] }}",
                i % 7
            )
        };
        text.push_str(&format!(
            "# schedule {i}\n[[schedule]]\nname = \"s{i:06}\"\n{timing}\ntimezone = \"{}\"\n{action}\n\n",
            ZONES[i % ZONES.len()]
        ));
    }
    text
}

fn file_phase(n: usize) -> anyhow::Result<Value> {
    let text = schedule_file(n);
    let started = Instant::now();
    let parsed = ScheduleFile::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if parsed.schedules.len() != n {
        bail!("parsed {} schedules of {n}", parsed.schedules.len());
    }
    Ok(json!({
        "schedules": n,
        "bytes": text.len(),
        "seconds": secs,
        "schedules_per_second": n as f64 / secs,
    }))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn scheduler_phase(
    store: std::sync::Arc<dyn Store>,
    args: &ScheduleBenchArgs,
) -> anyhow::Result<Value> {
    let mut file = String::new();
    for i in 0..args.schedules {
        file.push_str(&format!(
            "[[schedule]]\nname = \"s{i:05}\"\ncron = \"{}\"\nkind = \"bench.tick\"\nqueue = \"bench_sched\"\n",
            args.cron
        ));
    }
    let defs = ScheduleFile::parse(&file)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .schedules;
    let errand = Errand::new(store.clone());
    let stop = CancellationToken::new();
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let started: Timestamp = errand.clock().now();
    let task = tokio::spawn(
        errand
            .scheduler(defs, SchedulerConfig::default())
            .run(stop.clone()),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.cancel();
    task.await?;
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    // Lateness: insert time minus fire time (jobs run at their fire time).
    let mut late_ms = Vec::new();
    let mut per_tick: std::collections::BTreeMap<Timestamp, usize> = Default::default();
    let mut filter = JobFilter {
        queue: Some("bench_sched".into()),
        limit: 1000,
        ..JobFilter::default()
    };
    loop {
        let page = store.list_jobs(&filter).await?;
        for j in &page.jobs {
            late_ms.push(j.created_at.duration_since(j.run_at).as_secs_f64() * 1000.0);
            *per_tick.entry(j.run_at).or_default() += 1;
        }
        match page.next_cursor {
            Some(c) => filter.before_id = Some(c),
            None => break,
        }
    }
    late_ms.sort_by(f64::total_cmp);
    let complete = per_tick.values().filter(|n| **n == args.schedules).count();
    let within_1s = late_ms.iter().filter(|l| **l <= 1000.0).count();
    Ok(json!({
        "schedules": args.schedules,
        "cron": args.cron,
        "started": started.to_string(),
        "seconds": wall,
        "ticks": per_tick.len(),
        "ticks_with_every_schedule": complete,
        "jobs": late_ms.len(),
        "jobs_within_1s": within_1s,
        "lateness_ms": {
            "p50": percentile(&late_ms, 0.5),
            "p99": percentile(&late_ms, 0.99),
            "max": late_ms.last().copied().unwrap_or(f64::NAN),
        },
        "cpu_seconds": cpu,
        "cpu_share_of_one_core": cpu.map(|c| c / wall),
    }))
}

pub(crate) async fn run(args: &ScheduleBenchArgs, config: &Config, as_json: bool) -> anyhow::Result<()> {
    let mut report = serde_json::Map::new();
    let nf = next_fire_phase(args)?;
    if !as_json {
        println!(
            "next-fire: {} expressions ({} distinct) over {} zones, {} fire times in {:.3} s: {:.0} fire times/s",
            nf["expressions"],
            nf["distinct"],
            nf["zones"],
            nf["fire_times"],
            nf["seconds"].as_f64().unwrap_or(0.0),
            nf["fire_times_per_second"].as_f64().unwrap_or(0.0)
        );
    }
    report.insert("next_fire".into(), nf);
    if args.file_schedules > 0 {
        let f = file_phase(args.file_schedules)?;
        if !as_json {
            println!(
                "schedule file: {} schedules ({} bytes) parsed and validated in {:.3} s: {:.0} schedules/s",
                f["schedules"],
                f["bytes"],
                f["seconds"].as_f64().unwrap_or(0.0),
                f["schedules_per_second"].as_f64().unwrap_or(0.0)
            );
        }
        report.insert("schedule_file".into(), f);
    }
    if !args.next_fire_only {
        if args.schedules == 0 {
            bail!("--schedules must be at least 1");
        }
        let dir = tempfile::tempdir()?;
        let mut stores: Vec<(&str, std::sync::Arc<dyn Store>)> = vec![(
            "sqlite",
            errand::open_store(&format!("sqlite://{}", dir.path().join("bench.db").display())).await?,
        )];
        let pg_schema = format!("errand_bench_sched_{}", std::process::id());
        if config.database.starts_with("postgres") {
            let pg = errand::PostgresStore::open(
                errand::PostgresConfig::from_url(config.database.clone()).schema(pg_schema.clone()),
            )
            .await?;
            stores.push(("postgres", std::sync::Arc::new(pg)));
        }
        for (name, store) in stores {
            let r = scheduler_phase(store.clone(), args).await;
            if name == "postgres" {
                drop_schema(&config.database, &pg_schema).await;
            }
            let r = r?;
            if !as_json {
                println!(
                    "scheduler on {name}: {} schedules ({}), {} ticks ({} with every schedule), {} jobs, \
                     {} within 1 s; lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; CPU {:.2} s = {:.0}% of one core",
                    r["schedules"],
                    r["cron"].as_str().unwrap_or(""),
                    r["ticks"],
                    r["ticks_with_every_schedule"],
                    r["jobs"],
                    r["jobs_within_1s"],
                    r["lateness_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
                    r["lateness_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
                    r["lateness_ms"]["max"].as_f64().unwrap_or(f64::NAN),
                    r["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
                    r["cpu_share_of_one_core"].as_f64().unwrap_or(f64::NAN) * 100.0,
                );
            }
            report.insert(format!("scheduler_{name}"), r);
        }
    }
    if as_json {
        println!("{}", Value::Object(report));
    }
    Ok(())
}

/// Drops the bench's scratch PostgreSQL schema.
pub(crate) async fn drop_schema(url: &str, schema: &str) {
    use errand_postgres::sqlx::{self, Connection};
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await;
    }
}
