//! `errand serve` and `errand work`: run until SIGINT or SIGTERM, then shut
//! down gracefully.

use clap::Args;
use tokio_util::sync::CancellationToken;

use errand::{Errand, MaintenanceConfig};
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
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops errand");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
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
    // Jobs rescued from a dead worker wait as a failed attempt would here.
    let maintenance_config = MaintenanceConfig {
        rescue_policies: worker.retry_policies(),
        ..config.maintenance.clone()
    };
    let running = worker.start();
    let stop = CancellationToken::new();
    let maintenance = tokio::spawn(errand.maintenance(maintenance_config).run(stop.clone()));
    // With a configuration file its [[schedule]] set is authoritative (an
    // empty one removes the stored schedules); without one, none runs.
    let scheduler = schedules.map(|file| {
        tracing::info!(schedules = file.schedules.len(), "scheduler started");
        let scheduler = errand.scheduler(file.schedules, SchedulerConfig::default());
        // A schedule aimed at a queue no worker serves fills it silently.
        for (schedule, queue) in scheduler.target_queues() {
            if !config.queues.iter().any(|q| q.name == queue) {
                tracing::warn!(schedule, queue,
                    "this schedule enqueues into a queue this process does not work; another worker must serve it");
            }
        }
        tokio::spawn(scheduler.run(stop.clone()))
    });
    shutdown_signal().await;
    tracing::info!(grace = ?config.worker.shutdown_grace,
        "shutting down: no new jobs are claimed (a second Ctrl-C or SIGTERM hands running jobs back at once)");
    // A second signal during the grace period hands the running jobs back now.
    let report = running.shutdown_or(shutdown_signal()).await;
    stop.cancel();
    let _ = maintenance.await;
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    tracing::info!(
        graceful = report.graceful,
        handed_back = report.handed_back,
        "errand stopped"
    );
    Ok(())
}
