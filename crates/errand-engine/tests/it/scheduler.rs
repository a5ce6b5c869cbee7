//! The scheduler, stepped with a manual clock: exactly one job per tick with
//! two schedulers racing on one store, the missed-run and overlap policies,
//! and changes to the schedule file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use errand_core::schedule::ScheduleFile;
use errand_core::store::{ClaimRequest, ScheduleOutcome, ScheduleState};
use errand_core::{Clock, Finish, Job, JobFilter, JobState, ManualClock, Timestamp};
use errand_engine::{Errand, Scheduler, SchedulerConfig};

use crate::harness::env;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn defs(toml: &str) -> Vec<errand_core::schedule::ScheduleDef> {
    ScheduleFile::parse(toml)
        .unwrap_or_else(|e| panic!("test schedule file: {e}"))
        .schedules
}

fn clocked(errand: &Errand, start: &str) -> (Errand, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(ts(start)));
    (errand.clone().with_clock(clock.clone()), clock)
}

/// Every job in the store, oldest first.
async fn all_jobs(errand: &Errand) -> Vec<Job> {
    let mut out = Vec::new();
    let mut filter = JobFilter {
        limit: 1000,
        ..JobFilter::default()
    };
    loop {
        let page = errand.store().list_jobs(&filter).await.unwrap();
        out.extend(page.jobs);
        match page.next_cursor {
            Some(c) => filter.before_id = Some(c),
            None => break,
        }
    }
    out.reverse();
    out
}

/// The fire times of each schedule's jobs, from the jobs' metadata.
async fn fires_by_schedule(errand: &Errand) -> BTreeMap<String, Vec<Timestamp>> {
    let mut out: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    for job in all_jobs(errand).await {
        let meta: serde_json::Value = serde_json::from_str(&job.meta).unwrap();
        let name = meta["schedule"].as_str().expect("meta.schedule").to_owned();
        let fire: Timestamp = meta["fire_at"].as_str().expect("meta.fire_at").parse().unwrap();
        out.entry(name).or_default().push(fire);
    }
    out
}

async fn schedule_state(errand: &Errand, name: &str) -> ScheduleState {
    errand
        .store()
        .list_schedules(&errand_core::Scope::All)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("schedule {name} is not listed"))
}

fn expected_fires(
    def: &errand_core::schedule::ScheduleDef,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Timestamp> {
    def.schedule
        .upcoming(from, &def.timezone)
        .take_while(|t| *t <= to)
        .collect()
}

const DAY: &str = r#"
[[schedule]]
name = "every-minute"
cron = "* * * * *"
kind = "tick"

[[schedule]]
name = "ny-2-30"
cron = "30 2 * * *"
timezone = "America/New_York"
kind = "tick"

[[schedule]]
name = "london-hourly-at-1-15"
every = "hour"
at = "15"
timezone = "Europe/London"
kind = "tick"
jitter = "20s"
"#;

#[tokio::test]
async fn two_schedulers_over_a_dst_day_fire_every_tick_exactly_once() {
    let env = env().await;
    // New York springs forward at 2026-03-08 02:00 EST: 02:30 does not exist.
    let start = "2026-03-08T04:00:00Z";
    let (errand, clock) = clocked(&env.errand, start);
    let mut a = errand.scheduler(defs(DAY), SchedulerConfig::default());
    // b fires in small batches, so batches of each size race.
    let small = SchedulerConfig {
        batch_size: 2,
        concurrency: 2,
        ..SchedulerConfig::default()
    };
    let mut b = errand.scheduler(defs(DAY), small);
    a.start().await.unwrap();
    b.start().await.unwrap();
    let end = ts("2026-03-09T04:00:00Z");
    let mut already = 0;
    let mut step = 0u64;
    while clock.now() < end {
        // Uneven steps, so ticks are seen at different lags.
        clock.advance(Duration::from_secs(7 + step % 23));
        step += 1;
        let (ra, rb) = tokio::join!(a.tick(), b.tick());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.failed.is_empty() && rb.failed.is_empty());
        assert_eq!(ra.dropped + rb.dropped, 0, "nothing is late in this run");
        already += ra.already_fired + rb.already_fired;
    }
    let now = clock.now();
    let fires = fires_by_schedule(&errand).await;
    for def in defs(DAY) {
        let want = expected_fires(&def, ts(start), now);
        let got = fires.get(&def.name).cloned().unwrap_or_default();
        assert_eq!(got, want, "{}: one job per tick, none missed", def.name);
    }
    assert_eq!(
        fires["every-minute"].len(),
        1440,
        "04:01 through 04:00 the next day"
    );
    assert_eq!(
        fires["ny-2-30"],
        vec![ts("2026-03-08T07:00:00Z")],
        "the skipped 02:30 fires once, at 03:00 EDT"
    );
    assert!(already > 0, "the schedulers did race for ticks");

    // Each job was enqueued within one step of its fire time and runs at it
    // (plus the schedule's jitter, which every scheduler computes alike).
    for job in all_jobs(&errand).await {
        let meta: serde_json::Value = serde_json::from_str(&job.meta).unwrap();
        let fire: Timestamp = meta["fire_at"].as_str().unwrap().parse().unwrap();
        let lag = job.created_at.duration_since(fire);
        assert!(
            lag >= jiff::SignedDuration::ZERO && lag <= jiff::SignedDuration::from_secs(30),
            "job {} created {lag:?} after its tick",
            job.id
        );
        let jitter = job.run_at.duration_since(fire);
        let bound = if meta["schedule"] == "london-hourly-at-1-15" {
            20
        } else {
            0
        };
        assert!(
            jitter >= jiff::SignedDuration::ZERO && jitter <= jiff::SignedDuration::from_secs(bound),
            "job {} jitter {jitter:?}",
            job.id
        );
    }
    let st = schedule_state(&errand, "every-minute").await;
    assert_eq!(st.last_outcome, ScheduleOutcome::Job(JobState::Available));
    assert!(st.next_fire.is_some_and(|t| t > now));
}

const MISSED: &str = r#"
[[schedule]]
name = "skip"
cron = "* * * * *"
kind = "tick"

[[schedule]]
name = "once"
cron = "* * * * *"
kind = "tick"
on_missed = "once"

[[schedule]]
name = "all"
cron = "* * * * *"
kind = "tick"
on_missed = "all"
missed_cap = 3
"#;

async fn counts(errand: &Errand) -> BTreeMap<String, usize> {
    fires_by_schedule(errand)
        .await
        .into_iter()
        .map(|(k, v)| (k, v.len()))
        .collect()
}

#[tokio::test]
async fn missed_ticks_after_downtime_follow_each_policy() {
    let env = env().await;
    // A minute schedule always has a tick less than 60 s old: with the
    // default late_after that one is on time. 20 s makes it late below.
    let config = SchedulerConfig {
        late_after: Duration::from_secs(20),
        ..SchedulerConfig::default()
    };
    let (errand, clock) = clocked(&env.errand, "2026-01-01T00:00:30Z");
    let mut s = errand.scheduler(defs(MISSED), config.clone());
    s.start().await.unwrap();
    clock.set(ts("2026-01-01T00:01:05Z"));
    s.tick().await.unwrap();
    assert_eq!(
        counts(&errand).await,
        BTreeMap::from([("all".into(), 1), ("once".into(), 1), ("skip".into(), 1)])
    );

    // Down from 00:01:05 until 00:12:30: ticks 00:02 … 00:12 are due, and
    // the latest (00:12) is 30 s old, later than late_after: all missed.
    drop(s);
    clock.set(ts("2026-01-01T00:12:30Z"));
    let mut s = errand.scheduler(defs(MISSED), config);
    let r = s.tick().await.unwrap();
    let fires = fires_by_schedule(&errand).await;
    assert_eq!(fires["skip"].len(), 1, "skip: every missed tick is dropped");
    assert_eq!(
        fires["once"][1..],
        [ts("2026-01-01T00:12:00Z")],
        "once: one run, for the latest due tick"
    );
    assert_eq!(
        fires["all"][1..],
        [
            ts("2026-01-01T00:10:00Z"),
            ts("2026-01-01T00:11:00Z"),
            ts("2026-01-01T00:12:00Z")
        ],
        "all with cap 3: the latest three missed ticks, oldest first"
    );
    // 00:02 … 00:12 is 11 ticks each: skip drops 11, once 10, all 8.
    assert_eq!(r.dropped, 11 + 10 + 8);

    // Back on schedule: each fires the next tick once.
    clock.set(ts("2026-01-01T00:13:01Z"));
    s.tick().await.unwrap();
    let fires = fires_by_schedule(&errand).await;
    for name in ["skip", "once", "all"] {
        assert_eq!(
            fires[name].last(),
            Some(&ts("2026-01-01T00:13:00Z")),
            "{name} fires on time again"
        );
    }
    assert_eq!(
        counts(&errand).await,
        BTreeMap::from([("all".into(), 5), ("once".into(), 3), ("skip".into(), 2)])
    );
}

#[tokio::test]
async fn an_on_time_tick_fires_after_downtime_whatever_the_policy() {
    let env = env().await;
    let (errand, clock) = clocked(&env.errand, "2026-01-01T00:00:30Z");
    let mut s = errand.scheduler(defs(MISSED), SchedulerConfig::default());
    s.start().await.unwrap();
    // Down until 00:10:20: 00:01 … 00:10 are due; 00:10 is 20 s old, on time.
    clock.set(ts("2026-01-01T00:10:20Z"));
    s.tick().await.unwrap();
    let fires = fires_by_schedule(&errand).await;
    assert_eq!(fires["skip"], [ts("2026-01-01T00:10:00Z")]);
    assert_eq!(fires["once"], [ts("2026-01-01T00:10:00Z")]);
    assert_eq!(
        fires["all"],
        [
            ts("2026-01-01T00:07:00Z"),
            ts("2026-01-01T00:08:00Z"),
            ts("2026-01-01T00:09:00Z"),
            ts("2026-01-01T00:10:00Z")
        ],
        "all: three missed ticks, then the on-time one"
    );
}

#[tokio::test]
async fn overlapping_run_is_skipped_while_the_previous_one_is_unfinished() {
    let env = env().await;
    let file = r#"
[[schedule]]
name = "slow"
cron = "* * * * *"
kind = "slow"
queue = "slow"
on_overlap = "skip"

[[schedule]]
name = "fast"
cron = "* * * * *"
kind = "fast"
queue = "fast"
"#;
    let (errand, clock) = clocked(&env.errand, "2026-01-01T00:00:30Z");
    let mut s = errand.scheduler(defs(file), SchedulerConfig::default());
    s.start().await.unwrap();
    clock.set(ts("2026-01-01T00:01:01Z"));
    let r = s.tick().await.unwrap();
    assert_eq!(r.enqueued.len(), 2);
    let store = errand.store().clone();
    let claimed = store
        .claim_available(ClaimRequest {
            queue: "slow".into(),
            limit: 1,
            owner: "w".into(),
            lease_for: Duration::from_secs(600),
            now: clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    clock.set(ts("2026-01-01T00:02:01Z"));
    let r = s.tick().await.unwrap();
    assert_eq!(
        r.skipped_overlap,
        vec![("slow".to_owned(), ts("2026-01-01T00:02:00Z"))]
    );
    assert_eq!(r.enqueued.len(), 1, "the allow schedule runs again");
    let st = schedule_state(&errand, "slow").await;
    assert_eq!(st.last_outcome, ScheduleOutcome::SkippedOverlap);
    assert_eq!(st.last_job, Some(claimed[0].id));
    assert_eq!(st.last_fire, Some(ts("2026-01-01T00:02:00Z")));

    let lease = claimed[0].lease.as_ref().unwrap().token;
    store
        .complete_batch(
            vec![errand_core::Completion {
                id: claimed[0].id,
                lease_token: lease,
                finish: Finish::Complete { result: None },
            }],
            clock.now(),
        )
        .await
        .unwrap();
    clock.set(ts("2026-01-01T00:03:01Z"));
    let r = s.tick().await.unwrap();
    assert!(r.skipped_overlap.is_empty());
    assert_eq!(r.enqueued.len(), 2, "the previous run finished: slow runs again");
    let fires = fires_by_schedule(&errand).await;
    assert_eq!(
        fires["slow"],
        [ts("2026-01-01T00:01:00Z"), ts("2026-01-01T00:03:00Z")]
    );
    assert_eq!(fires["fast"].len(), 3);
}

#[tokio::test]
async fn a_restart_with_a_changed_file_applies_it_and_removed_schedules_stop() {
    let env = env().await;
    let v1 = r#"
[[schedule]]
name = "keep"
cron = "* * * * *"
kind = "k"

[[schedule]]
name = "change"
cron = "* * * * *"
kind = "c"

[[schedule]]
name = "remove"
cron = "* * * * *"
kind = "r"
"#;
    let v2 = r#"
[[schedule]]
name = "keep"
cron = "* * * * *"
kind = "k"

[[schedule]]
name = "change"
cron = "*/5 * * * *"
kind = "c"
"#;
    let (errand, clock) = clocked(&env.errand, "2026-01-01T00:00:30Z");
    let mut old = errand.scheduler(defs(v1), SchedulerConfig::default());
    old.start().await.unwrap();
    clock.set(ts("2026-01-01T00:01:01Z"));
    assert_eq!(old.tick().await.unwrap().enqueued.len(), 3);

    // Another process starts with the new file while the old one still runs.
    let mut new = errand.scheduler(defs(v2), SchedulerConfig::default());
    new.start().await.unwrap();
    let removed = schedule_state(&errand, "remove").await;
    assert!(removed.removed_at.is_some() && removed.next_fire.is_none());
    for minute in 2..=10 {
        clock.set(ts(&format!("2026-01-01T00:{minute:02}:01Z")));
        let (ro, rn) = tokio::join!(old.tick(), new.tick());
        let (ro, _) = (ro.unwrap(), rn.unwrap());
        if minute == 2 {
            let mut superseded = ro.superseded.clone();
            superseded.sort();
            assert_eq!(
                superseded,
                ["change", "remove"],
                "the old scheduler stops firing them"
            );
        }
    }
    let fires = fires_by_schedule(&errand).await;
    assert_eq!(
        fires["remove"],
        [ts("2026-01-01T00:01:00Z")],
        "removed: fires no more"
    );
    assert_eq!(
        fires["change"],
        [
            ts("2026-01-01T00:01:00Z"),
            ts("2026-01-01T00:05:00Z"),
            ts("2026-01-01T00:10:00Z")
        ],
        "changed: the new spec applies"
    );
    assert_eq!(fires["keep"].len(), 10, "unchanged: every minute, once");
    let distinct: BTreeSet<_> = fires["keep"].iter().collect();
    assert_eq!(distinct.len(), 10);
}

#[tokio::test]
async fn reboot_schedules_fire_once_per_start_and_commands_become_command_jobs() {
    let env = env().await;
    let file = r#"
[[schedule]]
name = "warm-up"
every = "reboot"
command = ["/bin/echo", "hello"]
env = { LANG = "C" }
dir = "/tmp"
"#;
    let (errand, clock) = clocked(&env.errand, "2026-01-01T00:00:00Z");
    let mut s = errand.scheduler(defs(file), SchedulerConfig::default());
    let r = s.tick().await.unwrap();
    assert_eq!(r.enqueued.len(), 1, "fires when the scheduler starts");
    clock.advance(Duration::from_secs(3600));
    assert!(s.tick().await.unwrap().enqueued.is_empty(), "and only then");
    assert_eq!(s.next_fire(), None);
    let mut again: Scheduler = errand.scheduler(defs(file), SchedulerConfig::default());
    assert_eq!(
        again.start().await.unwrap().enqueued.len(),
        1,
        "a new start fires again"
    );

    let jobs = all_jobs(&errand).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].kind, "command");
    let args: serde_json::Value = serde_json::from_str(&jobs[0].args).unwrap();
    assert_eq!(
        args,
        serde_json::json!({"argv": ["/bin/echo", "hello"], "env": {"LANG": "C"}, "dir": "/tmp"})
    );
    let parsed: errand_engine::executor::command::CommandArgs = serde_json::from_value(args).unwrap();
    parsed.check().unwrap();
}

/// whenever's `roles`, errand's way: a command schedule's job goes to its
/// queue, so only the workers of that queue run it.
#[tokio::test]
async fn a_command_schedule_with_a_queue_enqueues_its_job_there() {
    let env = env().await;
    let file = r#"
[[schedule]]
name = "on-app"
every = "reboot"
command = ["/bin/true"]
queue = "app"

[[schedule]]
name = "anywhere"
every = "reboot"
command = ["/bin/true"]
"#;
    let (errand, _clock) = clocked(&env.errand, "2026-01-01T00:00:00Z");
    let mut s = errand.scheduler(defs(file), SchedulerConfig::default());
    assert_eq!(s.tick().await.unwrap().enqueued.len(), 2);
    let mut queues: Vec<(String, String)> = all_jobs(&errand)
        .await
        .into_iter()
        .map(|j| (j.kind, j.queue))
        .collect();
    queues.sort();
    assert_eq!(
        queues,
        [
            ("command".to_string(), "app".to_string()),
            ("command".to_string(), "default".to_string())
        ]
    );
}

#[tokio::test]
async fn disabled_schedules_are_listed_and_never_fire() {
    let env = env().await;
    let file = r#"
[[schedule]]
name = "off"
cron = "* * * * *"
kind = "k"
enabled = false
"#;
    let (errand, clock) = clocked(&env.errand, "2026-01-01T00:00:30Z");
    let mut s = errand.scheduler(defs(file), SchedulerConfig::default());
    s.start().await.unwrap();
    clock.advance(Duration::from_secs(600));
    let r = s.tick().await.unwrap();
    assert!(r.enqueued.is_empty() && r.dropped == 0);
    let st = schedule_state(&errand, "off").await;
    assert!(!st.enabled);
    assert_eq!(st.next_fire, None);
    assert!(all_jobs(&errand).await.is_empty());
}
