//! `errand serve` and `errand work`: run until SIGINT or SIGTERM, then shut
//! down gracefully.

use clap::Args;

use errand::Errand;
use errand_core::schedule::ScheduleFile;
use errand_engine::SchedulerConfig;
use errand_engine::executor::command;

use super::config::Config;

/// Options of `serve` and `work`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Queues to work and their concurrency: `default=10,mailers=5`.
    #[arg(long, env = "ERRAND_QUEUES")]
    pub(crate) queues: Option<String>,
    /// How long shutdown waits for running jobs before handing them back (30s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) shutdown_grace: Option<String>,
    /// How long to wait at start for a store that cannot be reached (a
    /// server down, a lock held), retrying with backoff; `0s` fails at once.
    /// Default: until stopped. A damaged, read-only or too new store fails at once.
    #[arg(long, value_name = "DURATION", conflicts_with = "no_wait_for_store")]
    pub(crate) store_wait: Option<String>,
    /// Fail at once when the store cannot be reached (same as `--store-wait 0s`).
    #[arg(long)]
    pub(crate) no_wait_for_store: bool,
}

impl RunArgs {
    /// The longest wait for the store at start (`None`: until stopped).
    pub(crate) fn store_wait(&self) -> anyhow::Result<Option<std::time::Duration>> {
        if self.no_wait_for_store {
            return Ok(Some(std::time::Duration::ZERO));
        }
        self.store_wait
            .as_deref()
            .map(|s| {
                super::config::parse_duration(s).map_err(|_| {
                    anyhow::Error::new(crate::ConfigError(format!(
                        "store_wait: {s:?} is not a duration (like 0s, 30s, 5m)"
                    )))
                })
            })
            .transpose()
    }
}

/// Opens the store for `work`/`serve`, waiting while it cannot be reached:
/// retried with backoff (up to 10 s between tries), logged once when the
/// wait starts and each time the reason changes. A permanent fault
/// ([`errand::StoreError::is_permanent`]) fails at once, as does any fault
/// after `wait`. `Ok(None)`: SIGINT/SIGTERM arrived while waiting.
pub(crate) async fn open_store_waiting(
    url: &str,
    options: &errand::StoreOptions,
    wait: Option<std::time::Duration>,
) -> anyhow::Result<Option<std::sync::Arc<dyn errand::Store>>> {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut last_reason: Option<String> = None;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let error = match errand::open_store_with(url, options).await {
            Ok(store) => {
                if last_reason.is_some() {
                    tracing::info!(waited = %humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                        "the store answers: starting");
                }
                return Ok(Some(store));
            }
            Err(e) => e,
        };
        let out_of_time = wait.is_some_and(|w| started.elapsed() + delay > w);
        if error.is_permanent() || out_of_time {
            return Err(error.into());
        }
        let reason = error.to_string();
        if last_reason.as_deref() != Some(reason.as_str()) {
            // (The error names the store, without its secrets.)
            tracing::warn!(error = %reason,
                "waiting for the store: retrying with backoff until it answers (--store-wait 0s fails at once instead)");
            last_reason = Some(reason);
        } else {
            tracing::debug!(retry_in = ?delay, "the store is still unreachable; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {},
            _ = &mut stop => {
                tracing::info!("stopped while waiting for the store");
                return Ok(None);
            }
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// A future that resolves on SIGINT or SIGTERM. The signal handlers are
/// registered when this is called, not when the future is first polled, so
/// a signal sent right after (a second Ctrl-C while a log line is written)
/// is not missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
    async move {
        match streams {
            Ok((mut term, mut int)) => {
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops errand");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

pub(crate) async fn run(
    errand: Errand,
    config: &Config,
    schedules: Option<ScheduleFile>,
    what: &'static str,
) -> anyhow::Result<()> {
    let mut builder = errand
        .worker()
        .config(config.worker.clone())
        .executor(command::KIND, config.command.clone());
    for q in &config.queues {
        builder = builder.queue_config(q.clone());
    }
    for (kind, policy) in &config.kind_retry {
        builder = builder.kind_retry(kind.clone(), policy.clone());
    }
    let worker = builder.build()?;
    let queues: Vec<String> = config
        .queues
        .iter()
        .map(|q| format!("{}={}", q.name, q.concurrency))
        .collect();
    tracing::info!(
        what,
        worker = worker.id(),
        database = %errand::redact_url(&config.database),
        config = %config.file.as_deref().map_or("(none)".into(), |p| p.display().to_string()),
        queues = %queues.join(","),
        "errand started"
    );
    let mut node = errand
        .node()
        .worker(worker)
        .maintenance(config.maintenance.clone());
    // With a configuration file its [[schedule]] set is authoritative (an
    // empty one removes the stored schedules); without one, none runs.
    if let Some(file) = schedules {
        tracing::info!(schedules = file.schedules.len(), "scheduler started");
        let scheduler = errand.scheduler(file.schedules, SchedulerConfig::default());
        // A schedule aimed at a queue no worker serves fills it silently.
        for (schedule, queue) in scheduler.target_queues() {
            if !config.queues.iter().any(|q| q.name == queue) {
                tracing::warn!(
                    schedule,
                    queue,
                    "this schedule enqueues into a queue this process does not work; another worker must serve it"
                );
            }
        }
        node = node.scheduler(scheduler);
    }
    let stop = shutdown_signal();
    let node = node.start()?;
    stop.await;
    // A second signal during the grace period hands the running jobs back
    // now; listened for before the log line that invites it.
    let hurry = shutdown_signal();
    tracing::info!(grace = ?config.worker.shutdown_grace,
        "shutting down: no new jobs are claimed (a second Ctrl-C or SIGTERM hands running jobs back at once)");
    let report = node.shutdown_or(hurry).await;
    tracing::info!(
        graceful = report.graceful,
        handed_back = report.handed_back,
        "errand stopped"
    );
    Ok(())
}
