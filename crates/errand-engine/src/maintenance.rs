//! The maintenance service: the housekeeping that must run somewhere, once.
//!
//! Every process may run it; a leader lease in the store makes one of them
//! do the work at a time, and a leader that dies is replaced once its lease
//! runs out. Each pass is a [`Maintenance::tick`] that tests can call
//! directly; every step works in bounded batches so a huge backlog never
//! becomes one huge transaction.

use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use errand_core::clock::{add, sub};
use errand_core::lifecycle;
use errand_core::store::PruneRequest;
use errand_core::validate::{self, ValidationError};
use errand_core::{CompletionResult, ErrorCode, StoreError};

use crate::runtime::Errand;

/// How long finished jobs of one queue are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRetention {
    /// The queue.
    pub queue: String,
    /// Finished jobs older than this are deleted.
    pub keep: Duration,
}

/// Maintenance settings.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// This process's id as a leader candidate; generated when `None`.
    pub id: Option<String>,
    /// The longest pause between passes (shorter when a scheduled job is due sooner).
    pub interval: Duration,
    /// How long leadership lasts without renewal. A leader that dies is
    /// replaced once this has passed since its last pass (plus up to one
    /// `interval`, how often the others ask).
    pub leader_ttl: Duration,
    /// The most rows one step touches per store call.
    pub batch: usize,
    /// How long finished jobs are kept, unless their queue says otherwise.
    pub retention: Duration,
    /// Per-queue retention.
    pub queue_retention: Vec<QueueRetention>,
    /// How often pruning runs.
    pub prune_interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            id: None,
            interval: Duration::from_secs(1),
            leader_ttl: Duration::from_secs(15),
            batch: 1000,
            retention: Duration::from_secs(24 * 3600),
            queue_retention: Vec::new(),
            prune_interval: Duration::from_secs(60),
        }
    }
}

/// The shortest pause between maintenance passes.
pub const MIN_MAINTENANCE_INTERVAL: Duration = Duration::from_millis(10);

impl MaintenanceConfig {
    /// Checks the settings and how they relate; the error names the field
    /// (`interval`, `leader_ttl`, `prune_interval`, `batch`) and the rule.
    pub fn check(&self) -> Result<(), ValidationError> {
        let fmt = errand_core::lifecycle::fmt_duration;
        let err = |field: &'static str, message: String| ValidationError {
            field,
            code: ErrorCode::SettingOutOfRange,
            message,
            index: None,
        };
        if self.interval < MIN_MAINTENANCE_INTERVAL {
            return Err(err(
                "interval",
                format!(
                    "must be at least {} (got {})",
                    fmt(MIN_MAINTENANCE_INTERVAL),
                    fmt(self.interval)
                ),
            ));
        }
        // The leader renews every interval; two renewals must fit in its
        // lease, or a live leader loses the role between passes.
        if self.leader_ttl < self.interval * 2 || self.leader_ttl < Duration::from_secs(1) {
            return Err(err(
                "leader_ttl",
                format!(
                    "must be at least 1s and at least twice the interval ({}) (got {})",
                    fmt(self.interval * 2),
                    fmt(self.leader_ttl)
                ),
            ));
        }
        if self.prune_interval < self.interval {
            return Err(err(
                "prune_interval",
                format!(
                    "must be at least the interval ({}) (got {})",
                    fmt(self.interval),
                    fmt(self.prune_interval)
                ),
            ));
        }
        if self.batch == 0 {
            return Err(err("batch", "must be at least 1".into()));
        }
        for r in &self.queue_retention {
            validate::queue_name("queue_retention", &r.queue)?;
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this process was the leader (if not, nothing else was done).
    pub leader: bool,
    /// Jobs rescued from lapsed leases.
    pub rescued: u64,
    /// Queues that received promoted jobs.
    pub promoted_queues: Vec<String>,
    /// Jobs expired.
    pub expired: u64,
    /// Finished jobs pruned.
    pub pruned: u64,
}

/// The maintenance service; from [`Errand::maintenance`].
pub struct Maintenance {
    rt: Errand,
    config: MaintenanceConfig,
    id: String,
    last_prune: Option<Timestamp>,
    /// Whether the last election made this process the leader.
    leading: bool,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance").field("id", &self.id).finish()
    }
}

const ROLE: &str = "maintenance";

impl Maintenance {
    pub(crate) fn new(rt: Errand, config: MaintenanceConfig) -> Self {
        let id = config
            .id
            .clone()
            .unwrap_or_else(|| format!("maint:{}:{:04x}", std::process::id(), rand::random::<u16>()));
        Maintenance {
            rt,
            config,
            id,
            last_prune: None,
            leading: false,
        }
    }

    /// This process's candidate id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// One pass: renew or take leadership; if leader, rescue, expire,
    /// promote (waking local workers), the store's upkeep and, when due, prune.
    pub async fn tick(&mut self) -> Result<TickReport, StoreError> {
        let store = self.rt.store.clone();
        let now = self.rt.clock.now();
        let mut report = TickReport {
            leader: store
                .elect_leader(ROLE, &self.id, self.config.leader_ttl, now)
                .await?,
            ..Default::default()
        };
        if report.leader != self.leading {
            self.leading = report.leader;
            if report.leader {
                tracing::info!(candidate = %self.id, "this process is now the maintenance leader");
            } else {
                tracing::info!(candidate = %self.id, "this process is no longer the maintenance leader");
            }
        }
        if !report.leader {
            return Ok(report);
        }
        let batch = self.config.batch.max(1);
        // A job whose worker died is retried as a failed attempt would have
        // been: the policies its workers registered decide
        // ([`lifecycle::rescue_completion`]); the store only reports and writes.
        let policies = self.rt.retry_policies();
        loop {
            let lapsed = store.lapsed_leases(now, batch).await?;
            let items = lapsed
                .iter()
                .map(|l| lifecycle::rescue_completion(l, &policies, now))
                .collect();
            let written = store.rescue_lapsed(items, now).await?;
            for (lease, result) in lapsed.iter().zip(&written) {
                if *result == CompletionResult::Done {
                    report.rescued += 1;
                    tracing::warn!(job_id = lease.id.0, queue = %lease.queue, kind = %lease.kind,
                        attempt = lease.attempt, worker = lease.owner.as_deref().unwrap_or("(unknown)"),
                        "rescued a job whose lease lapsed: its worker stopped heartbeating");
                }
            }
            if lapsed.len() < batch {
                break;
            }
        }
        loop {
            let n = store.expire_due(now, batch).await?;
            report.expired += n;
            if (n as usize) < batch {
                break;
            }
        }
        loop {
            let queues = store.promote_due(now, batch).await?;
            for q in &queues {
                self.rt.hub.wake(q);
            }
            let more = !queues.is_empty() && store.next_due_at().await?.is_some_and(|t| t <= now);
            for q in queues {
                if !report.promoted_queues.contains(&q) {
                    report.promoted_queues.push(q);
                }
            }
            if !more {
                break;
            }
        }
        store.upkeep().await?;
        if self
            .last_prune
            .is_none_or(|t| add(t, self.config.prune_interval) <= now)
        {
            self.last_prune = Some(now);
            report.pruned = self.prune(now).await?;
        }
        Ok(report)
    }

    async fn prune(&self, now: Timestamp) -> Result<u64, StoreError> {
        let batch = self.config.batch.max(1);
        let mut requests: Vec<PruneRequest> = self
            .config
            .queue_retention
            .iter()
            .map(|r| PruneRequest {
                finished_before: sub(now, r.keep),
                queue: Some(r.queue.clone()),
                except_queues: Vec::new(),
                limit: batch,
            })
            .collect();
        requests.push(PruneRequest {
            finished_before: sub(now, self.config.retention),
            queue: None,
            except_queues: self
                .config
                .queue_retention
                .iter()
                .map(|r| r.queue.clone())
                .collect(),
            limit: batch,
        });
        let mut total = 0;
        for req in requests {
            // Bounded: at most 100 batches per queue per pass, the rest next time.
            for _ in 0..100 {
                let n = self.rt.store.prune_finished(&req).await?;
                total += n;
                if (n as usize) < batch {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Runs passes until `stop` fires, then gives up leadership.
    /// Settings that [`MaintenanceConfig::check`] refuses stop it at once
    /// with an error logged.
    pub async fn run(mut self, stop: CancellationToken) {
        if let Err(e) = self.config.check() {
            tracing::error!(error = %e, "maintenance not started: invalid settings");
            return;
        }
        loop {
            let pause = match self.tick().await {
                Ok(r) if r.leader => self.pause_until_next_due().await,
                // A follower asks again every interval, so a leader that
                // died is replaced about one interval after its lease runs out.
                Ok(_) => self.config.interval.min(self.config.leader_ttl / 3),
                Err(e) => {
                    tracing::warn!(error = %e, "maintenance pass failed; retrying");
                    self.config.interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {},
                _ = stop.cancelled() => break,
            }
        }
        match self.rt.store.resign_leader(ROLE, &self.id).await {
            Ok(()) if self.leading => {
                tracing::info!(candidate = %self.id, "resigned the maintenance leadership");
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "cannot resign maintenance leadership"),
        }
    }

    /// The interval, or less when a scheduled job falls due sooner.
    async fn pause_until_next_due(&self) -> Duration {
        let max = self.config.interval;
        match self.rt.store.next_due_at().await {
            Ok(Some(t)) => {
                let until = t.duration_since(self.rt.clock.now());
                let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
                until.clamp(Duration::from_millis(1), max)
            }
            _ => max,
        }
    }
}
