//! errand's engine: the services that move jobs through their lifecycle.
//!
//! - [`Errand`]: the shared runtime of one process (store, clock, wake-ups).
//! - [`Client`]: the producer and operator API (enqueue, list, cancel, retry, pause).
//! - [`Worker`]: claims jobs in batches, runs them, completes them in batches,
//!   heartbeats their leases, and shuts down gracefully.
//! - [`Maintenance`]: rescues lapsed leases, promotes due jobs, expires and
//!   prunes, on one elected leader at a time.
//! - [`Scheduler`]: fires the ticks of the configured schedules, exactly once
//!   per tick across any number of schedulers.
//! - [`executor`]: what runs a job — typed Rust handlers and the `command` executor.

mod client;
pub mod executor;
mod hub;
mod maintenance;
mod node;
mod runtime;
mod scheduler;
mod worker;

pub use client::{Client, EnqueueError};
pub use executor::{Executor, Handler, JobArgs, JobContext, JobError};
pub use maintenance::{MIN_MAINTENANCE_INTERVAL, Maintenance, MaintenanceConfig, QueueRetention, TickReport};
pub use node::{Node, NodeBuilder};
pub use runtime::Errand;
pub use scheduler::{FiredTick, Scheduler, SchedulerConfig, SchedulerReport};
pub use worker::{
    MAX_CONCURRENCY, MAX_FETCH_BATCH, MAX_FETCHERS, MIN_HEARTBEAT, MIN_LEASE, MIN_POLL_INTERVAL, QueueConfig,
    Readiness, RunningWorker, ShutdownReport, Worker, WorkerBuilder, WorkerConfig, WorkerStats,
};
