//! The shared runtime of one process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use errand_core::validate::{Limits, ValidationError};
use errand_core::{Clock, RetryPolicies, Store, SystemClock};

use crate::Client;
use crate::executor::{self, Executor};
use crate::hub::Hub;
use crate::maintenance::{Maintenance, MaintenanceConfig};
use crate::node::NodeBuilder;
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::worker::WorkerBuilder;

/// What every service of one process shares: the store, the clock, the
/// enqueue limits and the in-process wake-ups. Cheap to clone.
#[derive(Clone)]
pub struct Errand {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) hub: Arc<Hub>,
    /// Executors whose [`Executor::check_args`] enqueues run, by kind.
    pub(crate) args_checks: Arc<RwLock<HashMap<String, Arc<dyn Executor>>>>,
    /// The retry policies workers apply, registered when they start; the
    /// maintenance rescues lapsed leases with them.
    pub(crate) retry: Arc<RwLock<RetryPolicies>>,
}

impl std::fmt::Debug for Errand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Errand")
            .field("backend", &self.store.backend())
            .finish()
    }
}

impl Errand {
    /// A runtime over `store` with the system clock and default limits.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Errand {
            store,
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
            hub: Arc::new(Hub::default()),
            args_checks: Arc::new(RwLock::new(
                executor::builtin()
                    .into_iter()
                    .map(|(kind, e)| (kind.to_owned(), e))
                    .collect(),
            )),
            retry: Arc::new(RwLock::new(RetryPolicies::default())),
        }
    }

    /// The retry policies of this process: the default, and those by queue
    /// and by kind that its workers registered when they started. The
    /// maintenance rescues a job whose worker died with the policy a failed
    /// attempt would have had ([`RetryPolicies::pick`]).
    pub fn retry_policies(&self) -> RetryPolicies {
        self.retry.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds a worker's policies to the registry: its queues' and kinds'
    /// (a later worker's replace an earlier one's for the same name) and its
    /// default. A started [`Worker`](crate::Worker) registers its own; a
    /// process that runs the maintenance without the workers of some queues
    /// registers theirs here, or their rescued jobs wait as the default
    /// policy says.
    pub fn register_retry_policies(&self, policies: &RetryPolicies) {
        let mut r = self.retry.write().unwrap_or_else(|e| e.into_inner());
        r.default = policies.default.clone();
        r.queues.extend(policies.queues.clone());
        r.kinds.extend(policies.kinds.clone());
    }

    /// Makes enqueues of `kind` run `executor`'s [`Executor::check_args`],
    /// in this runtime and its clones. A worker does this for every
    /// executor it registers; the `command` kind's check is built in.
    pub fn check_args_with(&self, kind: impl Into<String>, executor: Arc<dyn Executor>) {
        self.args_checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind.into(), executor);
    }

    /// Runs the registered args check of each job's kind; the error names
    /// the job's index. Takes the registry's lock once for the batch.
    pub(crate) fn check_all_args(&self, jobs: &[errand_core::ValidJob]) -> Result<(), ValidationError> {
        let checks = self.args_checks.read().unwrap_or_else(|e| e.into_inner());
        for (i, j) in jobs.iter().enumerate() {
            if let Some(executor) = checks.get(&j.kind) {
                executor.check_args(&j.args).map_err(|e| e.at(i))?;
            }
        }
        Ok(())
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `limits` for enqueue validation.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A producer and operator client.
    pub fn client(&self) -> Client {
        Client::new(self.clone())
    }

    /// Starts configuring a worker.
    pub fn worker(&self) -> WorkerBuilder {
        WorkerBuilder::new(self.clone())
    }

    /// The composition root of a process: a worker, the maintenance and a
    /// scheduler over this runtime, started and stopped in one order.
    pub fn node(&self) -> NodeBuilder {
        NodeBuilder::new(self.clone())
    }

    /// The maintenance service.
    pub fn maintenance(&self, config: MaintenanceConfig) -> Maintenance {
        Maintenance::new(self.clone(), config)
    }

    /// The scheduler service for `schedules` (from a schedule file).
    pub fn scheduler(
        &self,
        schedules: Vec<errand_core::schedule::ScheduleDef>,
        config: SchedulerConfig,
    ) -> Scheduler {
        Scheduler::new(self.clone(), schedules, config)
    }
}
