//! Schedule bookkeeping: `sync_schedules`, `fire_schedule_tick(s)`, `list_schedules`.

use std::sync::Arc;

use jiff::Timestamp;

use crate::job::{Finish, JobState, NewJob};
use crate::store::{
    JobFilter, PruneRequest, ScheduleOutcome, ScheduleRegistration, ScheduleState, ScheduleTick, Store,
    TickResult,
};
use crate::testkit::support::*;

fn reg(name: &str, spec: &str, fingerprint: &str, next: Option<Timestamp>) -> ScheduleRegistration {
    ScheduleRegistration {
        name: name.to_owned(),
        spec: spec.to_owned(),
        fingerprint: fingerprint.to_owned(),
        enabled: true,
        next_fire: next,
    }
}

/// A tick of `name` (fingerprint `fp`) at `fire`, expecting the stored next
/// fire time to be `fire`, moving it to `next`, enqueueing a job in queue `sched`.
fn tick(name: &str, fp: &str, fire: Timestamp, next: Timestamp) -> ScheduleTick {
    ScheduleTick {
        schedule: name.to_owned(),
        fingerprint: fp.to_owned(),
        expected_next: Some(fire),
        fire_at: fire,
        job: Some(valid(
            NewJob::new("report", format!(r#"{{"schedule":"{name}"}}"#))
                .queue("sched")
                .run_at(fire),
            fire,
        )),
        skip_while_running: false,
        next_fire: Some(next),
    }
}

async fn sync(s: &dyn Store, regs: Vec<ScheduleRegistration>, now: Timestamp) {
    ok("sync_schedules", s.sync_schedules(regs, now).await);
}

async fn fire(s: &dyn Store, t: ScheduleTick, now: Timestamp) -> TickResult {
    ok("fire_schedule_tick", s.fire_schedule_tick(t, now).await)
}

async fn listed(s: &dyn Store) -> Vec<ScheduleState> {
    let all = ok("list_schedules", s.list_schedules(&Scope::All).await);
    let names: Vec<&str> = all.iter().map(|x| x.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "list_schedules must be ordered by name");
    all
}

async fn state(s: &dyn Store, name: &str) -> ScheduleState {
    listed(s)
        .await
        .into_iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("schedule {name:?} is missing from list_schedules"))
}

async fn job_count(s: &dyn Store) -> usize {
    list_all(s, &JobFilter::default()).await.len()
}

/// Registered schedules are listed by name with their spec, fingerprint and
/// first fire time, and no run yet.
pub async fn sync_registers_schedules_and_lists_them_by_name(store: Arc<dyn Store>) {
    let s = &*store;
    sync(
        s,
        vec![
            reg("b-nightly", "cron 0 3 * * * in UTC", "fp-b", Some(at(3600))),
            reg("a-minutely", "cron * * * * * in UTC", "fp-a", Some(at(60))),
        ],
        at(0),
    )
    .await;
    let all = listed(s).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let a = &all[0];
    assert_eq!(
        (a.name.as_str(), a.spec.as_str(), a.fingerprint.as_str()),
        ("a-minutely", "cron * * * * * in UTC", "fp-a")
    );
    assert!(a.enabled && a.removed_at.is_none(), "{a:?}");
    assert_eq!(a.next_fire, Some(at(60)), "next fire time as registered");
    assert_eq!((a.last_fire, a.last_job), (None, None));
    assert_eq!(a.last_outcome, ScheduleOutcome::Never);
    assert_eq!(all[1].next_fire, Some(at(3600)));
}

/// Firing a tick enqueues its job, moves the next fire time and records the
/// run; the last outcome follows the job's state.
pub async fn fire_schedule_tick_enqueues_the_job_and_records_the_run(store: Arc<dyn Store>) {
    let s = &*store;
    sync(s, vec![reg("r", "every minute", "fp", Some(at(60)))], at(0)).await;
    let now = plus(at(60), secs(0));
    let out = fire(s, tick("r", "fp", at(60), at(120)), now).await;
    let TickResult::Enqueued(ins) = out else {
        panic!("expected Enqueued, got {out:?}");
    };
    assert!(!ins.duplicate);
    assert_eq!(ins.state, JobState::Available);
    let job = get(s, ins.id).await;
    assert_eq!((job.kind.as_str(), job.queue.as_str()), ("report", "sched"));
    assert_json_eq("args", &job.args, r#"{"schedule":"r"}"#);
    let st = state(s, "r").await;
    assert_eq!(st.next_fire, Some(at(120)), "next fire time moved");
    assert_eq!(st.last_fire, Some(at(60)));
    assert_eq!(st.last_job, Some(ins.id));
    assert_eq!(st.last_outcome, ScheduleOutcome::Job(JobState::Available));

    run_to_completion(s, "sched", ins.id, at(61)).await;
    assert_eq!(
        state(s, "r").await.last_outcome,
        ScheduleOutcome::Job(JobState::Completed),
        "the outcome is the job's current state"
    );
}

/// A tick fired twice (a second scheduler holding the same stale view)
/// makes one job: the second attempt is `AlreadyFired` and names the
/// store's next fire time.
pub async fn second_fire_of_a_tick_is_already_fired(store: Arc<dyn Store>) {
    let s = &*store;
    sync(s, vec![reg("r", "every minute", "fp", Some(at(60)))], at(0)).await;
    let first = fire(s, tick("r", "fp", at(60), at(120)), at(60)).await;
    assert!(matches!(first, TickResult::Enqueued(_)), "{first:?}");
    let second = fire(s, tick("r", "fp", at(60), at(120)), at(60)).await;
    assert_eq!(
        second,
        TickResult::AlreadyFired {
            next_fire: Some(at(120))
        }
    );
    assert_eq!(job_count(s).await, 1, "one job for one tick");
    let st = state(s, "r").await;
    assert_eq!((st.next_fire, st.last_fire), (Some(at(120)), Some(at(60))));

    // A tick recorded once is never fired again, even when the next fire
    // time points at it again (a spec change restarted the schedule there).
    sync(s, vec![reg("r", "every 2 minutes", "fp2", Some(at(60)))], at(61)).await;
    let again = fire(s, tick("r", "fp2", at(60), at(180)), at(61)).await;
    assert!(
        matches!(again, TickResult::AlreadyFired { .. }),
        "a recorded (schedule, fire time) must not fire twice: {again:?}"
    );
    assert_eq!(job_count(s).await, 1, "still one job");
}

/// Many schedulers racing to fire one tick make exactly one job.
pub async fn concurrent_fires_of_one_tick_make_one_job(store: Arc<dyn Store>) {
    sync(&*store, vec![reg("r", "every minute", "fp", Some(at(60)))], at(0)).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .fire_schedule_tick(tick("r", "fp", at(60), at(120)), at(60))
                .await
        }));
    }
    let mut enqueued = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(TickResult::Enqueued(_)) => enqueued += 1,
            Ok(TickResult::AlreadyFired { next_fire }) => assert_eq!(next_fire, Some(at(120))),
            other => panic!("racing fire: {other:?}"),
        }
    }
    assert_eq!(enqueued, 1, "exactly one racer fires the tick");
    assert_eq!(job_count(&*store).await, 1, "one job for one tick");
}

/// A scheduler whose definition is stale (another fingerprint), or whose
/// schedule was removed, disabled or never registered, fires nothing.
pub async fn stale_removed_or_disabled_schedules_are_superseded(store: Arc<dyn Store>) {
    let s = &*store;
    let mut off = reg("off", "every minute", "fp-off", None);
    off.enabled = false;
    sync(
        s,
        vec![reg("r", "every minute", "fp-new", Some(at(60))), off],
        at(0),
    )
    .await;
    let stale = fire(s, tick("r", "fp-old", at(60), at(120)), at(60)).await;
    assert_eq!(stale, TickResult::Superseded, "another fingerprint");
    let mut t = tick("off", "fp-off", at(60), at(120));
    t.expected_next = None;
    assert_eq!(fire(s, t, at(60)).await, TickResult::Superseded, "disabled");
    let unknown = fire(s, tick("nope", "fp", at(60), at(120)), at(60)).await;
    assert_eq!(unknown, TickResult::Superseded, "never registered");
    sync(s, vec![], at(30)).await;
    let removed = fire(s, tick("r", "fp-new", at(60), at(120)), at(60)).await;
    assert_eq!(removed, TickResult::Superseded, "removed");
    assert_eq!(job_count(s).await, 0, "nothing was enqueued");
    let st = state(s, "off").await;
    assert!(!st.enabled, "{st:?}");
}

/// Re-syncing keeps a schedule's progress unless its spec or enabled flag
/// changed; a schedule left out is marked removed (and keeps its history),
/// and registering it again restarts it.
pub async fn sync_keeps_progress_unless_the_spec_changes(store: Arc<dyn Store>) {
    let s = &*store;
    sync(s, vec![reg("r", "every minute", "fp1", Some(at(60)))], at(0)).await;
    fire(s, tick("r", "fp1", at(60), at(120)), at(60)).await;
    // A restart with the same spec (another action: new fingerprint) keeps the progress.
    sync(s, vec![reg("r", "every minute", "fp2", Some(at(300)))], at(250)).await;
    let st = state(s, "r").await;
    assert_eq!(
        st.next_fire,
        Some(at(120)),
        "same spec: the missed tick stays due"
    );
    assert_eq!(st.fingerprint, "fp2");
    assert_eq!(st.last_fire, Some(at(60)));
    // A new spec restarts it.
    sync(
        s,
        vec![reg("r", "every 5 minutes", "fp3", Some(at(300)))],
        at(250),
    )
    .await;
    let st = state(s, "r").await;
    assert_eq!(st.next_fire, Some(at(300)), "changed spec: restarted");
    assert_eq!(st.spec, "every 5 minutes");
    // Left out: removed, history kept.
    sync(
        s,
        vec![reg("other", "every hour", "fpo", Some(at(3600)))],
        at(260),
    )
    .await;
    let st = state(s, "r").await;
    assert_eq!(st.removed_at, Some(at(260)));
    assert_eq!(st.next_fire, None, "a removed schedule has no next fire time");
    assert_eq!(st.last_fire, Some(at(60)), "history is kept");
    assert!(state(s, "other").await.removed_at.is_none());
    // Back again: restarted at the registered time.
    sync(
        s,
        vec![reg("r", "every 5 minutes", "fp3", Some(at(600)))],
        at(500),
    )
    .await;
    let st = state(s, "r").await;
    assert_eq!((st.removed_at, st.next_fire), (None, Some(at(600))));
    assert!(state(s, "other").await.removed_at.is_some());
}

/// With `skip_while_running`, a tick is recorded as skipped while the last
/// run's job is unfinished (no job is written, the last job stays), and
/// fires again once that job finished.
pub async fn overlapping_tick_is_skipped_while_the_last_run_is_unfinished(store: Arc<dyn Store>) {
    let s = &*store;
    sync(s, vec![reg("r", "every minute", "fp", Some(at(60)))], at(0)).await;
    let TickResult::Enqueued(first) = fire(s, tick("r", "fp", at(60), at(120)), at(60)).await else {
        panic!("the first tick fires");
    };
    let job = claim_id(s, "sched", first.id, at(61)).await;
    let mut second = tick("r", "fp", at(120), at(180));
    second.skip_while_running = true;
    let out = fire(s, second, at(120)).await;
    assert_eq!(out, TickResult::SkippedOverlap { running: first.id });
    assert_eq!(job_count(s).await, 1, "a skipped tick writes no job");
    let st = state(s, "r").await;
    assert_eq!(st.last_outcome, ScheduleOutcome::SkippedOverlap);
    assert_eq!(st.last_fire, Some(at(120)));
    assert_eq!(st.last_job, Some(first.id), "the running job stays the last run");
    assert_eq!(st.next_fire, Some(at(180)));

    finish(s, &job, Finish::Complete { result: None }, at(150)).await;
    let mut third = tick("r", "fp", at(180), at(240));
    third.skip_while_running = true;
    let out = fire(s, third, at(180)).await;
    assert!(
        matches!(out, TickResult::Enqueued(_)),
        "the previous run finished: {out:?}"
    );
    // Without the flag, overlapping runs are allowed.
    let out = fire(s, tick("r", "fp", at(240), at(300)), at(240)).await;
    assert!(matches!(out, TickResult::Enqueued(_)), "{out:?}");
    assert_eq!(job_count(s).await, 3);
}

/// A tick without a job drops the ticks up to it: the next fire time moves
/// and nothing else changes.
pub async fn dropping_ticks_moves_only_the_next_fire_time(store: Arc<dyn Store>) {
    let s = &*store;
    sync(s, vec![reg("r", "every minute", "fp", Some(at(60)))], at(0)).await;
    let mut t = tick("r", "fp", at(600), at(660));
    t.expected_next = Some(at(60));
    t.job = None;
    assert_eq!(fire(s, t, at(630)).await, TickResult::Dropped);
    let st = state(s, "r").await;
    assert_eq!(st.next_fire, Some(at(660)));
    assert_eq!((st.last_fire, st.last_job), (None, None));
    assert_eq!(st.last_outcome, ScheduleOutcome::Never);
    assert_eq!(job_count(s).await, 0);
}

/// Once the last run's job is pruned, the outcome says so.
pub async fn last_outcome_of_a_pruned_job_is_pruned(store: Arc<dyn Store>) {
    let s = &*store;
    sync(s, vec![reg("r", "every minute", "fp", Some(at(60)))], at(0)).await;
    let TickResult::Enqueued(ins) = fire(s, tick("r", "fp", at(60), at(120)), at(60)).await else {
        panic!("the tick fires");
    };
    run_to_completion(s, "sched", ins.id, at(61)).await;
    let n = ok(
        "prune_finished",
        s.prune_finished(&PruneRequest {
            finished_before: at(100),
            queue: None,
            except_queues: Vec::new(),
            limit: 10,
        })
        .await,
    );
    assert_eq!(n, 1);
    let st = state(s, "r").await;
    assert_eq!(st.last_outcome, ScheduleOutcome::Pruned);
    assert_eq!(st.last_job, Some(ins.id));
}

/// One batch of mixed ticks: each result is what firing them one by one in
/// input order gives, in input order. A later tick of a schedule sees what
/// an earlier tick of the batch wrote (its chained next fire time, its job
/// for the overlap check, its recorded fire time).
pub async fn fire_schedule_ticks_answers_each_tick_in_input_order(store: Arc<dyn Store>) {
    let s = &*store;
    sync(
        s,
        vec![
            reg("busy", "every minute", "fp", Some(at(60))),
            reg("chain", "every minute", "fp", Some(at(60))),
            reg("done", "every minute", "fp", Some(at(60))),
            reg("drop", "every minute", "fp", Some(at(60))),
            reg("stale", "every minute", "fp-new", Some(at(60))),
        ],
        at(0),
    )
    .await;
    // Before the batch: `busy` has a running job, `done`'s tick at 60 was fired.
    let TickResult::Enqueued(busy_job) = fire(s, tick("busy", "fp", at(60), at(120)), at(60)).await else {
        panic!("busy's first tick fires");
    };
    claim_id(s, "sched", busy_job.id, at(61)).await;
    let TickResult::Enqueued(done_job) = fire(s, tick("done", "fp", at(60), at(120)), at(60)).await else {
        panic!("done's first tick fires");
    };
    let before = job_count(s).await;

    let mut busy = tick("busy", "fp", at(120), at(180));
    busy.skip_while_running = true;
    let mut dropped = tick("drop", "fp", at(120), at(180));
    dropped.expected_next = Some(at(60));
    dropped.job = None;
    let mut chain_overlap = tick("chain", "fp", at(180), at(240));
    chain_overlap.skip_while_running = true;
    let batch = vec![
        tick("chain", "fp", at(60), at(120)),
        tick("done", "fp", at(60), at(120)),
        busy,
        tick("stale", "fp-old", at(60), at(120)),
        tick("chain", "fp", at(120), at(180)),
        dropped,
        tick("chain", "fp", at(120), at(180)),
        chain_overlap,
    ];
    let out = ok("fire_schedule_ticks", s.fire_schedule_ticks(batch, at(200)).await);
    assert_eq!(out.len(), 8, "one result per tick: {out:?}");
    let TickResult::Enqueued(c1) = &out[0] else {
        panic!("chain@60 is enqueued: {out:?}");
    };
    assert_eq!(
        out[1],
        TickResult::AlreadyFired {
            next_fire: Some(at(120))
        },
        "done@60 was fired before the batch"
    );
    assert_eq!(
        out[2],
        TickResult::SkippedOverlap { running: busy_job.id },
        "busy's last run is running"
    );
    assert_eq!(out[3], TickResult::Superseded, "stale fingerprint");
    let TickResult::Enqueued(c2) = &out[4] else {
        panic!("chain@120 follows chain@60 in the same batch: {out:?}");
    };
    assert_eq!(out[5], TickResult::Dropped);
    assert_eq!(
        out[6],
        TickResult::AlreadyFired {
            next_fire: Some(at(180))
        },
        "chain@120 a second time in the batch"
    );
    assert_eq!(
        out[7],
        TickResult::SkippedOverlap { running: c2.id },
        "chain@180 sees the job chain@120 wrote in the same batch"
    );
    assert!(!c1.duplicate && !c2.duplicate && c1.id != c2.id, "{c1:?} {c2:?}");
    assert_eq!(job_count(s).await, before + 2, "two jobs written by the batch");
    assert_eq!(get(s, c2.id).await.run_at, at(120));

    let chain = state(s, "chain").await;
    assert_eq!(chain.next_fire, Some(at(240)));
    assert_eq!(chain.last_fire, Some(at(180)));
    assert_eq!(chain.last_job, Some(c2.id), "a skipped tick keeps the last job");
    assert_eq!(chain.last_outcome, ScheduleOutcome::SkippedOverlap);
    let busy = state(s, "busy").await;
    assert_eq!(
        (busy.next_fire, busy.last_fire, busy.last_job),
        (Some(at(180)), Some(at(120)), Some(busy_job.id))
    );
    let done = state(s, "done").await;
    assert_eq!(
        (done.next_fire, done.last_job),
        (Some(at(120)), Some(done_job.id)),
        "an already fired tick writes nothing"
    );
    let dropped = state(s, "drop").await;
    assert_eq!((dropped.next_fire, dropped.last_fire), (Some(at(180)), None));
    let stale = state(s, "stale").await;
    assert_eq!((stale.next_fire, stale.last_fire), (Some(at(60)), None));

    let empty = ok(
        "fire_schedule_ticks",
        s.fire_schedule_ticks(Vec::new(), at(200)).await,
    );
    assert!(empty.is_empty(), "an empty batch answers nothing: {empty:?}");
}

/// Schedulers racing to fire the same batch of ticks (in different orders)
/// make exactly one job per tick.
pub async fn concurrent_batch_fires_make_one_job_per_tick(store: Arc<dyn Store>) {
    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    sync(
        &*store,
        names
            .iter()
            .map(|n| reg(n, "every minute", "fp", Some(at(60))))
            .collect(),
        at(0),
    )
    .await;
    let mut tasks = Vec::new();
    for k in 0..6 {
        let store = Arc::clone(&store);
        let mut batch: Vec<ScheduleTick> = names.iter().map(|n| tick(n, "fp", at(60), at(120))).collect();
        if k % 2 == 1 {
            batch.reverse();
        }
        batch.rotate_left(k * 3);
        tasks.push(tokio::spawn(async move {
            let order: Vec<String> = batch.iter().map(|t| t.schedule.clone()).collect();
            (order, store.fire_schedule_ticks(batch, at(60)).await)
        }));
    }
    let mut enqueued = std::collections::BTreeMap::new();
    for t in tasks {
        let (order, out) = t.await.expect("task");
        let out = ok("racing fire_schedule_ticks", out);
        assert_eq!(out.len(), order.len(), "one result per tick");
        for (name, r) in order.into_iter().zip(out) {
            match r {
                TickResult::Enqueued(ins) => {
                    assert!(
                        enqueued.insert(name.clone(), ins.id).is_none(),
                        "tick of {name} enqueued twice"
                    );
                }
                TickResult::AlreadyFired { next_fire } => assert_eq!(next_fire, Some(at(120))),
                other => panic!("racing batch fire of {name}: {other:?}"),
            }
        }
    }
    assert_eq!(enqueued.len(), names.len(), "every tick was fired: {enqueued:?}");
    assert_eq!(job_count(&*store).await, names.len(), "one job per tick");
    for n in &names {
        let st = state(&*store, n).await;
        assert_eq!(st.next_fire, Some(at(120)));
        assert_eq!(st.last_job, enqueued.get(n).copied(), "{n}");
    }
}
