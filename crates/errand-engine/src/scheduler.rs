//! The scheduler service: turns the schedules of the configuration file into
//! jobs, exactly once per tick however many schedulers run.
//!
//! Every process may run one. At start it registers its schedules with the
//! store ([`Store::sync_schedules`]): new ones start at their next fire time,
//! changed ones (another spec, zone or enabled flag) restart, unchanged ones
//! keep their progress, and schedules missing from the file are marked
//! removed and stop firing. Each [`Scheduler::tick`] then fires everything
//! due in batches with [`Store::fire_schedule_ticks`], whose compare-and-set
//! on the stored next fire time makes racing schedulers produce one job per
//! tick.
//!
//! # Missed ticks
//!
//! A due tick is *on time* when it is the latest due tick and at most
//! [`SchedulerConfig::late_after`] old; every other due tick was *missed*
//! (no scheduler ran, or the store was unreachable). On time ticks always
//! fire. Missed ticks follow the schedule's `on_missed`:
//!
//! - `skip` (default, cron's behaviour): missed ticks are dropped.
//! - `once`: the latest due tick fires (one run stands for all the missed
//!   ones, and for the on-time one if there is one).
//! - `all` (with `missed_cap`): the latest `cap` missed ticks fire, oldest
//!   first, each as its own job, then the on-time tick.
//!
//! A tick's job runs at the fire time plus its jitter (a deterministic
//! fraction of `jitter`, from the schedule's name and the fire time, so every
//! scheduler computes the same one), and expires `expires_in` after that; a
//! missed tick whose job would already have expired is dropped.
//!
//! # Overlap
//!
//! With `on_overlap = "skip"`, a tick whose previous run's job is unfinished
//! (scheduled, available, running or retryable) is recorded as skipped; the
//! check and the skip are one transaction with the firing.
//!
//! `@reboot` schedules fire once each time a scheduler starts.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use futures_util::StreamExt as _;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use errand_core::clock::{add, sub, to_micros};
use errand_core::schedule::{Action, OnMissed, OnOverlap, Schedule, ScheduleDef, Timing};
use errand_core::store::{ScheduleRegistration, ScheduleTick, TickResult};
use errand_core::validate::validate;
use errand_core::{JobId, JobState, NewJob, StoreError, ValidJob};

use crate::executor::command;
use crate::runtime::Errand;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// The longest sleep between passes of [`Scheduler::run`] (it otherwise
    /// sleeps until the next fire time).
    pub max_sleep: Duration,
    /// A due tick older than this counts as missed (see the module docs).
    pub late_after: Duration,
    /// How many batches of ticks are fired concurrently in one pass.
    pub concurrency: usize,
    /// The most ticks fired in one store call ([`Store::fire_schedule_ticks`]).
    pub batch_size: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_sleep: Duration::from_secs(10),
            late_after: Duration::from_secs(60),
            concurrency: 4,
            batch_size: 1000,
        }
    }
}

/// One tick that enqueued a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredTick {
    /// The schedule.
    pub schedule: String,
    /// The tick's fire time (before jitter).
    pub fire_at: Timestamp,
    /// The job (an existing one when the schedule's unique key was taken).
    pub job: JobId,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerReport {
    /// Ticks that enqueued a job, by schedule, oldest first per schedule.
    pub enqueued: Vec<FiredTick>,
    /// Ticks skipped because the previous run was unfinished: (schedule, fire time).
    pub skipped_overlap: Vec<(String, Timestamp)>,
    /// Missed ticks dropped by their schedule's policy.
    pub dropped: u64,
    /// Ticks another scheduler had fired first.
    pub already_fired: u64,
    /// Schedules changed or removed by a later start: this scheduler no longer fires them.
    pub superseded: Vec<String>,
    /// Schedules whose ticks failed to fire (store errors); retried next pass.
    pub failed: Vec<String>,
}

impl SchedulerReport {
    fn merge(&mut self, other: SchedulerReport) {
        self.enqueued.extend(other.enqueued);
        self.skipped_overlap.extend(other.skipped_overlap);
        self.dropped += other.dropped;
        self.already_fired += other.already_fired;
        self.superseded.extend(other.superseded);
        self.failed.extend(other.failed);
    }
}

struct Entry {
    def: ScheduleDef,
    fingerprint: String,
    /// The stored next fire time as last read or written.
    cursor: Option<Timestamp>,
    superseded: bool,
}

/// The scheduler service; from [`Errand::scheduler`].
pub struct Scheduler {
    rt: Errand,
    config: SchedulerConfig,
    entries: Vec<Entry>,
    started: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedules", &self.entries.len())
            .field("started", &self.started)
            .finish()
    }
}

/// A tick of schedule `.0` handed to the store (without its job), and the
/// answer (a failed batch's error for each of its ticks).
type Handled = (usize, ScheduleTick, Result<TickResult, String>);

/// One store call planned for a schedule.
struct Step {
    tick: ScheduleTick,
    queue: Option<String>,
}

impl Scheduler {
    pub(crate) fn new(rt: Errand, schedules: Vec<ScheduleDef>, config: SchedulerConfig) -> Self {
        let entries = schedules
            .into_iter()
            .map(|def| Entry {
                fingerprint: fingerprint(&def),
                def,
                cursor: None,
                superseded: false,
            })
            .collect();
        Scheduler {
            rt,
            config,
            entries,
            started: false,
        }
    }

    /// Each enabled schedule's name and the queue its jobs go to.
    pub fn target_queues(&self) -> Vec<(String, String)> {
        let now = self.rt.clock.now();
        self.entries
            .iter()
            .filter(|e| e.def.enabled)
            .filter_map(|e| Some((e.def.name.clone(), self.job_for(&e.def, now, now).0?.queue)))
            .collect()
    }

    /// Registers the schedules with the store (removing the stored ones this
    /// scheduler does not have), reads their progress, and fires the
    /// `@reboot` ones. [`Scheduler::tick`] starts the scheduler if needed.
    pub async fn start(&mut self) -> Result<SchedulerReport, StoreError> {
        let store = self.rt.store.clone();
        let now = self.rt.clock.now();
        let regs = self
            .entries
            .iter()
            .map(|e| ScheduleRegistration {
                name: e.def.name.clone(),
                spec: spec(&e.def),
                fingerprint: e.fingerprint.clone(),
                enabled: e.def.enabled,
                next_fire: if e.def.enabled {
                    e.def.schedule.next_after(now, &e.def.timezone)
                } else {
                    None
                },
            })
            .collect();
        store.sync_schedules(regs, now).await?;
        self.reload().await?;
        self.started = true;
        let mut report = SchedulerReport::default();
        let mut reboots = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.def.enabled && e.def.schedule == Schedule::Reboot {
                let (job, queue) = self.job_for(&e.def, now, now);
                let tick = ScheduleTick {
                    schedule: e.def.name.clone(),
                    fingerprint: e.fingerprint.clone(),
                    expected_next: e.cursor,
                    fire_at: now,
                    job,
                    skip_while_running: e.def.on_overlap == OnOverlap::Skip,
                    next_fire: None,
                };
                reboots.push((i, vec![Step { tick, queue }]));
            }
        }
        report.merge(self.fire(reboots, 0).await);
        Ok(report)
    }

    /// Reads every schedule's stored next fire time.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let states = self.rt.store.list_schedules(&errand_core::Scope::All).await?;
        for e in &mut self.entries {
            e.cursor = states
                .iter()
                .find(|s| s.name == e.def.name)
                .and_then(|s| s.next_fire);
        }
        Ok(())
    }

    /// The earliest next fire time of the schedules this scheduler fires.
    pub fn next_fire(&self) -> Option<Timestamp> {
        self.entries
            .iter()
            .filter(|e| e.def.enabled && !e.superseded)
            .filter_map(|e| e.cursor)
            .min()
    }

    /// One pass at the clock's `now`: fires every due tick of every enabled
    /// schedule as its policies say (see the module docs), waking local
    /// workers of the queues that received available jobs.
    pub async fn tick(&mut self) -> Result<SchedulerReport, StoreError> {
        let mut report = if self.started {
            SchedulerReport::default()
        } else {
            self.start().await?
        };
        let now = self.rt.clock.now();
        let mut plans = Vec::new();
        let mut dropped = 0;
        for (i, e) in self.entries.iter().enumerate() {
            let Some(cursor) = e.cursor.filter(|c| *c <= now) else {
                continue;
            };
            if !e.def.enabled || e.superseded {
                continue;
            }
            let (steps, n_dropped) = self.plan(e, cursor, now);
            dropped += n_dropped;
            plans.push((i, steps));
        }
        report.merge(self.fire(plans, dropped).await);
        Ok(report)
    }

    /// The store calls that handle `e`'s ticks due at `now`, and how many
    /// missed ticks they drop.
    fn plan(&self, e: &Entry, cursor: Timestamp, now: Timestamp) -> (Vec<Step>, u64) {
        let def = &e.def;
        let keep = match def.on_missed {
            OnMissed::All { cap } => cap as usize + 1,
            _ => 1,
        };
        let due = due_ticks(&def.schedule, &def.timezone, cursor, now, keep);
        let Some(&last) = due.recent.back() else {
            return (Vec::new(), 0);
        };
        let next = def.schedule.next_after(last, &def.timezone);
        let on_time = sub(now, self.config.late_after) <= last;
        let fires: Vec<Timestamp> = match def.on_missed {
            OnMissed::Skip if on_time => vec![last],
            OnMissed::Skip => Vec::new(),
            OnMissed::Once => vec![last],
            OnMissed::All { cap } => {
                let missed = due.recent.len() - usize::from(on_time);
                let from = missed.saturating_sub(cap as usize);
                due.recent.iter().skip(from).copied().collect()
            }
        };
        let mut dropped = due.count - fires.len() as u64;
        let mut steps = Vec::new();
        let mut expected = Some(cursor);
        for (k, &fire_at) in fires.iter().enumerate() {
            let next_fire = fires.get(k + 1).copied().or(next);
            let (job, queue) = self.job_for(def, fire_at, now);
            if job.is_none() {
                dropped += 1;
            }
            steps.push(Step {
                tick: ScheduleTick {
                    schedule: def.name.clone(),
                    fingerprint: e.fingerprint.clone(),
                    expected_next: expected,
                    fire_at,
                    job,
                    skip_while_running: def.on_overlap == OnOverlap::Skip,
                    next_fire,
                },
                queue,
            });
            expected = next_fire;
        }
        if steps.is_empty() {
            steps.push(Step {
                tick: ScheduleTick {
                    schedule: def.name.clone(),
                    fingerprint: e.fingerprint.clone(),
                    expected_next: expected,
                    fire_at: last,
                    job: None,
                    skip_while_running: false,
                    next_fire: next,
                },
                queue: None,
            });
        }
        (steps, dropped)
    }

    /// The job of `def`'s tick at `fire_at`, and its queue when it runs at
    /// once; `None` when it would expire before `now`, or does not validate
    /// (logged: the schedule file was validated, so this is rare).
    fn job_for(
        &self,
        def: &ScheduleDef,
        fire_at: Timestamp,
        now: Timestamp,
    ) -> (Option<ValidJob>, Option<String>) {
        let run_at = add(fire_at, jitter(&def.name, fire_at, def.jitter));
        let meta = serde_json::json!({
            "schedule": def.name,
            "fire_at": fire_at.to_string(),
        })
        .to_string();
        let job = match &def.action {
            Action::Enqueue {
                kind,
                queue,
                args,
                priority,
                unique_key,
                expires_in,
            } => {
                let mut job = NewJob::new(kind.clone(), args.to_string()).run_at(run_at);
                if let Some(q) = queue {
                    job = job.queue(q.clone());
                }
                if let Some(p) = priority {
                    job = job.priority(*p);
                }
                if let Some(k) = unique_key {
                    job = job.unique_key(k.clone());
                }
                if let Some(d) = expires_in {
                    let expires_at = add(run_at, *d);
                    if expires_at <= now {
                        return (None, None);
                    }
                    job = job.expires_at(expires_at);
                }
                job
            }
            Action::Command {
                queue,
                argv,
                env,
                dir,
            } => {
                let mut args = serde_json::json!({ "argv": argv });
                if !env.is_empty() {
                    args["env"] = serde_json::json!(env);
                }
                if let Some(d) = dir {
                    args["dir"] = serde_json::json!(d);
                }
                let mut job = NewJob::new(command::KIND, args.to_string()).run_at(run_at);
                if let Some(q) = queue {
                    job = job.queue(q.clone());
                }
                job
            }
        };
        match validate(job.meta(meta), &self.rt.limits, now) {
            Ok(v) => {
                let queue = (v.run_at <= now).then(|| v.queue.clone());
                (Some(v), queue)
            }
            Err(e) => {
                tracing::error!(schedule = %def.name, error = %e, "a schedule's job does not validate; tick dropped");
                (None, None)
            }
        }
    }

    /// Fires the schedules' steps in rounds: round k holds the k-th step of
    /// every schedule whose earlier steps went through, fired with
    /// [`Store::fire_schedule_ticks`] in batches of at most
    /// [`SchedulerConfig::batch_size`] (up to [`SchedulerConfig::concurrency`]
    /// batches at once), so every tick due at one instant takes a few store
    /// calls. Records what happened.
    async fn fire(&mut self, plans: Vec<(usize, Vec<Step>)>, dropped: u64) -> SchedulerReport {
        let mut report = SchedulerReport {
            dropped,
            ..SchedulerReport::default()
        };
        let mut pending: Vec<(usize, std::vec::IntoIter<Step>)> = plans
            .into_iter()
            .map(|(i, steps)| (i, steps.into_iter()))
            .collect();
        while !pending.is_empty() {
            let mut round = Vec::with_capacity(pending.len());
            let mut rest = Vec::with_capacity(pending.len());
            for (i, mut steps) in pending {
                if let Some(step) = steps.next() {
                    round.push((i, step));
                    rest.push((i, steps));
                }
            }
            if round.is_empty() {
                break;
            }
            let mut went_through = std::collections::HashSet::new();
            for (i, tick, r) in self.fire_round(round).await {
                if matches!(
                    r,
                    Ok(TickResult::Enqueued(_) | TickResult::SkippedOverlap { .. } | TickResult::Dropped)
                ) {
                    went_through.insert(i);
                }
                self.record(&mut report, i, tick, r);
            }
            pending = rest
                .into_iter()
                .filter(|(i, _)| went_through.contains(i))
                .collect();
        }
        report
    }

    /// Fires one round of steps (one per schedule) in batches; returns each
    /// tick (without its job) with its answer, a failed batch's error
    /// repeated for each of its ticks.
    async fn fire_round(&self, round: Vec<(usize, Step)>) -> Vec<Handled> {
        let store = self.rt.store.clone();
        let hub = self.rt.hub.clone();
        let clock = self.rt.clock.clone();
        let size = self.config.batch_size.max(1);
        let mut batches: Vec<Vec<(usize, Step)>> = Vec::with_capacity(round.len().div_ceil(size));
        let mut round = round.into_iter().peekable();
        while round.peek().is_some() {
            batches.push(round.by_ref().take(size).collect());
        }
        let results: Vec<Vec<Handled>> = futures_util::stream::iter(batches)
            .map(|batch| {
                let (store, hub, clock) = (store.clone(), hub.clone(), clock.clone());
                async move {
                    let mut meta = Vec::with_capacity(batch.len());
                    let mut ticks = Vec::with_capacity(batch.len());
                    for (i, step) in batch {
                        let mut probe = step.tick.clone();
                        probe.job = None;
                        meta.push((i, probe, step.queue));
                        ticks.push(step.tick);
                    }
                    match store.fire_schedule_ticks(ticks, clock.now()).await {
                        Ok(answers) if answers.len() == meta.len() => meta
                            .into_iter()
                            .zip(answers)
                            .map(|((i, probe, queue), r)| {
                                if let (TickResult::Enqueued(ins), Some(q)) = (&r, &queue)
                                    && ins.state == JobState::Available
                                {
                                    hub.wake(q);
                                }
                                (i, probe, Ok(r))
                            })
                            .collect(),
                        Ok(answers) => {
                            let e = format!("the store answered {} of {} ticks", answers.len(), meta.len());
                            meta.into_iter().map(|(i, p, _)| (i, p, Err(e.clone()))).collect()
                        }
                        Err(e) => {
                            let e = e.to_string();
                            meta.into_iter().map(|(i, p, _)| (i, p, Err(e.clone()))).collect()
                        }
                    }
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().flatten().collect()
    }

    /// Applies one tick's answer to schedule `i` and the report.
    fn record(
        &mut self,
        report: &mut SchedulerReport,
        i: usize,
        tick: ScheduleTick,
        r: Result<TickResult, String>,
    ) {
        let e = &mut self.entries[i];
        match r {
            Ok(TickResult::Enqueued(ins)) => {
                e.cursor = tick.next_fire;
                report.enqueued.push(FiredTick {
                    schedule: tick.schedule,
                    fire_at: tick.fire_at,
                    job: ins.id,
                });
            }
            Ok(TickResult::SkippedOverlap { running }) => {
                e.cursor = tick.next_fire;
                tracing::info!(schedule = %tick.schedule, fire_at = %tick.fire_at, %running,
                    "tick skipped: the previous run is unfinished");
                report.skipped_overlap.push((tick.schedule, tick.fire_at));
            }
            Ok(TickResult::Dropped) => e.cursor = tick.next_fire,
            Ok(TickResult::AlreadyFired { next_fire }) => {
                e.cursor = next_fire;
                report.already_fired += 1;
            }
            Ok(TickResult::Superseded) => {
                e.superseded = true;
                tracing::warn!(schedule = %tick.schedule,
                    "schedule changed or removed by a newer scheduler; this one stops firing it (restart to apply the file)");
                report.superseded.push(tick.schedule);
            }
            Err(err) => {
                tracing::warn!(schedule = %tick.schedule, error = %err, "cannot fire a tick; retrying");
                report.failed.push(tick.schedule);
            }
        }
    }

    /// Runs passes until `stop` fires, sleeping until the next fire time
    /// (at most [`SchedulerConfig::max_sleep`]).
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let pause = match self.tick().await {
                Ok(r) if r.failed.is_empty() => self.pause(),
                Ok(_) => Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {},
                _ = stop.cancelled() => break,
            }
        }
    }

    /// How long to sleep before the next pass.
    fn pause(&self) -> Duration {
        let max = self.config.max_sleep;
        match self.next_fire() {
            Some(t) => {
                let until = t.duration_since(self.rt.clock.now());
                Duration::try_from(until)
                    .unwrap_or(Duration::ZERO)
                    .saturating_add(Duration::from_millis(1))
                    .min(max)
            }
            None => max,
        }
    }
}

/// Due ticks: how many, and the latest few.
struct Due {
    count: u64,
    recent: VecDeque<Timestamp>,
}

/// The ticks of `schedule` in `[cursor, now]` (the cursor is a tick that has
/// not been handled): how many, and the latest `keep`. After very long
/// downtime of a frequent schedule, counting stops being exact past a
/// million ticks (it jumps to the last day).
fn due_ticks(
    schedule: &Schedule,
    tz: &jiff::tz::TimeZone,
    cursor: Timestamp,
    now: Timestamp,
    keep: usize,
) -> Due {
    let mut due = Due {
        count: 0,
        recent: VecDeque::with_capacity(keep),
    };
    let mut t = Some(cursor);
    while let Some(tick) = t.filter(|t| *t <= now) {
        due.count += 1;
        if due.recent.len() == keep {
            due.recent.pop_front();
        }
        due.recent.push_back(tick);
        let from = if due.count.is_multiple_of(1_000_000) {
            tick.max(sub(now, Duration::from_secs(86_400)))
        } else {
            tick
        };
        t = schedule.next_after(from, tz);
    }
    due
}

/// A deterministic delay in `[0, max]` for the tick of `name` at `fire_at`:
/// every scheduler computes the same one.
fn jitter(name: &str, fire_at: Timestamp, max: Option<Duration>) -> Duration {
    let Some(max) = max.filter(|m| !m.is_zero()) else {
        return Duration::ZERO;
    };
    let h = fnv(&[name.as_bytes(), &to_micros(fire_at).to_le_bytes()]);
    let span = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(h % span.saturating_add(1))
}

/// 64-bit FNV-1a: stable across processes and builds.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// When the schedule fires, as written, with its zone.
fn spec(def: &ScheduleDef) -> String {
    let mut s = match &def.timing {
        Timing::Cron(c) => format!("cron {c}"),
        Timing::Every { every, at } => match at {
            Some(at) => format!("every {every} at {at}"),
            None => format!("every {every}"),
        },
    };
    let _ = write!(s, " in {}", def.timezone_name);
    s
}

/// A hash of everything that defines the schedule's behaviour (not its line
/// in the file).
fn fingerprint(def: &ScheduleDef) -> String {
    let text = format!(
        "{}|{:?}|{:?}|{:?}|{:?}|{}",
        spec(def),
        def.action,
        def.on_overlap,
        def.on_missed,
        def.jitter,
        def.enabled
    );
    format!("{:016x}", fnv(&[text.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_ticks_counts_and_keeps_the_latest() {
        let s = Schedule::parse_cron("* * * * *").unwrap();
        let due = due_ticks(
            &s,
            &jiff::tz::TimeZone::UTC,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:10:30Z"),
            3,
        );
        assert_eq!(due.count, 11);
        assert_eq!(
            due.recent,
            [
                ts("2026-01-01T00:08:00Z"),
                ts("2026-01-01T00:09:00Z"),
                ts("2026-01-01T00:10:00Z")
            ]
        );
        let none = due_ticks(
            &s,
            &jiff::tz::TimeZone::UTC,
            ts("2026-01-01T00:11:00Z"),
            ts("2026-01-01T00:10:30Z"),
            3,
        );
        assert_eq!((none.count, none.recent.len()), (0, 0));
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let t = ts("2026-01-01T00:00:00Z");
        let max = Some(Duration::from_secs(30));
        assert_eq!(jitter("a", t, max), jitter("a", t, max));
        assert!(jitter("a", t, max) <= Duration::from_secs(30));
        assert_eq!(jitter("a", t, None), Duration::ZERO);
        let spread: std::collections::HashSet<_> =
            (0..50).map(|i| jitter(&format!("s{i}"), t, max)).collect();
        assert!(spread.len() > 40, "jitter spreads schedules: {spread:?}");
    }
}
