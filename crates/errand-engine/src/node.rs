//! The composition root: the services one process runs over one
//! [`Errand`], started and stopped in one order.
//!
//! ```no_run
//! # async fn demo(errand: errand_engine::Errand) -> Result<(), Box<dyn std::error::Error>> {
//! let worker = errand.worker().queue("default", 10).build()?;
//! let node = errand.node().worker(worker).start()?;
//! // … until the process is told to stop:
//! let report = node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Start order: the worker (which registers its retry policies with the
//! runtime), then the maintenance (whose rescues use those policies), then
//! the scheduler. Shutdown order: the worker stops claiming and drains its
//! running jobs within its grace period (handing back the rest), then the
//! scheduler and the maintenance stop (the leader resigns).

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use errand_core::validate::ValidationError;

use crate::maintenance::MaintenanceConfig;
use crate::runtime::Errand;
use crate::scheduler::Scheduler;
use crate::worker::{Readiness, RunningWorker, ShutdownReport, Worker};

/// What a [`Node`] runs; made by [`Errand::node`]. By default it runs the
/// maintenance with [`MaintenanceConfig::default`], and no worker or
/// scheduler.
#[must_use]
pub struct NodeBuilder {
    rt: Errand,
    worker: Option<Worker>,
    maintenance: Option<MaintenanceConfig>,
    scheduler: Option<Scheduler>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("worker", &self.worker)
            .field("maintenance", &self.maintenance)
            .field("scheduler", &self.scheduler.is_some())
            .finish()
    }
}

impl NodeBuilder {
    pub(crate) fn new(rt: Errand) -> Self {
        NodeBuilder {
            rt,
            worker: None,
            maintenance: Some(MaintenanceConfig::default()),
            scheduler: None,
        }
    }

    /// Runs `worker` (built from the same [`Errand`]).
    pub fn worker(mut self, worker: Worker) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Runs the maintenance with `config` instead of the default settings.
    /// Every process may run it: a leader lease makes one do the work.
    pub fn maintenance(mut self, config: MaintenanceConfig) -> Self {
        self.maintenance = Some(config);
        self
    }

    /// Runs no maintenance (another process of the fleet must, or lapsed
    /// leases are never rescued and scheduled jobs never promoted).
    pub fn without_maintenance(mut self) -> Self {
        self.maintenance = None;
        self
    }

    /// Runs `scheduler` (from [`Errand::scheduler`] of the same runtime).
    /// Its set of schedules is authoritative: stored schedules it does not
    /// name are marked removed.
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Checks the maintenance settings, then starts the services on the
    /// current tokio runtime in the order the module documents.
    pub fn start(self) -> Result<Node, ValidationError> {
        if let Some(config) = &self.maintenance {
            config.check()?;
        }
        let worker = self.worker.map(Worker::start);
        let stop = CancellationToken::new();
        let maintenance = self
            .maintenance
            .map(|config| tokio::spawn(self.rt.maintenance(config).run(stop.clone())));
        let scheduler = self
            .scheduler
            .map(|scheduler| tokio::spawn(scheduler.run(stop.clone())));
        Ok(Node {
            worker,
            stop,
            maintenance,
            scheduler,
        })
    }
}

/// The running services of one process. [`Node::shutdown`] stops them.
#[derive(Debug)]
pub struct Node {
    worker: Option<RunningWorker>,
    stop: CancellationToken,
    maintenance: Option<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
}

impl Node {
    /// The running worker, if the node runs one.
    pub fn worker(&self) -> Option<&RunningWorker> {
        self.worker.as_ref()
    }

    /// Whether the node can do its work: the worker's latest store calls
    /// succeeded (see [`RunningWorker::readiness`]). A node without a
    /// worker is ready.
    pub fn readiness(&self) -> Readiness {
        self.worker
            .as_ref()
            .map_or(Readiness::Ready, RunningWorker::readiness)
    }

    /// Stops gracefully: the worker claims nothing more and waits for its
    /// running jobs up to its grace period, handing back the rest; then the
    /// scheduler and the maintenance stop.
    pub async fn shutdown(self) -> ShutdownReport {
        self.shutdown_or(std::future::pending()).await
    }

    /// As [`Node::shutdown`], but when `hurry` resolves during the grace
    /// period the running jobs are handed back at once (a second Ctrl-C).
    pub async fn shutdown_or(self, hurry: impl Future<Output = ()>) -> ShutdownReport {
        let report = match self.worker {
            Some(worker) => worker.shutdown_or(hurry).await,
            None => ShutdownReport {
                graceful: true,
                handed_back: 0,
            },
        };
        self.stop.cancel();
        for task in [self.scheduler, self.maintenance].into_iter().flatten() {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a service of this process ended abnormally");
            }
        }
        report
    }
}
