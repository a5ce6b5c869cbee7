//! The shared runtime of one process.

use std::sync::Arc;

use errand_core::validate::Limits;
use errand_core::{Clock, Store, SystemClock};

use crate::Client;
use crate::hub::Hub;
use crate::maintenance::{Maintenance, MaintenanceConfig};
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
        }
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
