//! The state machine: every (state, event) pair driven through the store,
//! compared with [`lifecycle::transition`], so a store's state lists can
//! never drift from the one in core.

use std::sync::Arc;

use crate::job::{Completion, Finish, Job, JobId, JobState, NewJob};
use crate::lifecycle::{self, Event};
use crate::retry::{RetryPolicies, RetryPolicy};
use crate::store::{CompletionResult, Scope, Store};
use crate::testkit::support::*;

/// How a pair's job is made: its options depend on the event tried on it.
fn job_for(queue: &str, event: Event, t: crate::Timestamp) -> NewJob {
    let mut job = job_in(queue, "transition").max_attempts(match event {
        // The last attempt: a failure or a rescue discards.
        Event::Fail { attempts_left: false } | Event::Rescue { attempts_left: false } => 1,
        _ => 5,
    });
    if event == Event::Expire {
        // Past at the event's time, not yet when the state is set up.
        job = job.expires_at(plus(t, secs(5400)));
    }
    job
}

/// Puts a new job in `state` at `t`; returns it and the lease token it
/// last held (0: never claimed).
async fn job_in_state(
    s: &dyn Store,
    queue: &str,
    state: JobState,
    event: Event,
    t: crate::Timestamp,
) -> (Job, i64) {
    let new = job_for(queue, event, t);
    let id = match state {
        JobState::Scheduled => add(s, new.run_at(plus(t, secs(3600))), t).await,
        JobState::Expired => add(s, new.expires_at(plus(t, secs(10))), t).await,
        _ => add(s, new, t).await,
    };
    let mut token = 0;
    let claimed = |t| async move {
        let job = claim_id(s, queue, id, t).await;
        (token_of(&job), job)
    };
    match state {
        JobState::Scheduled | JobState::Available => {}
        JobState::Running => token = claimed(t).await.0,
        JobState::Retryable | JobState::Completed | JobState::Discarded => {
            let (tk, job) = claimed(t).await;
            token = tk;
            let f = match state {
                JobState::Retryable => Finish::Retry {
                    at: plus(t, secs(3600)),
                    error: failure(1, t, "setup"),
                },
                JobState::Completed => Finish::Complete { result: None },
                _ => Finish::Discard {
                    error: failure(1, t, "setup"),
                },
            };
            assert_eq!(
                finish(s, &job, f, t).await,
                CompletionResult::Done,
                "setting up {state}"
            );
        }
        JobState::Cancelled => {
            ok("cancel_job", s.cancel_job(id, &Scope::All, t).await);
        }
        JobState::Expired => {
            ok("expire_due", s.expire_due(plus(t, secs(20)), 100).await);
        }
    }
    let job = get(s, id).await;
    assert_eq!(job.state, state, "setting up a {state} job: {job:?}");
    (job, token)
}

fn token_of(job: &Job) -> i64 {
    job.lease.as_ref().map_or(0, |l| l.token)
}

/// Tries `event` on `job` (last lease token `token`) at `u` through the
/// store call that records it. Operator calls that refuse must say
/// [`crate::StoreError::InvalidState`].
async fn apply(s: &dyn Store, job: &Job, token: i64, event: Event, u: crate::Timestamp) {
    let id = job.id;
    let running = job.state == JobState::Running;
    let by_worker = |finish: Finish| async move {
        ok(
            "complete_batch",
            s.complete_batch(
                vec![Completion {
                    id,
                    lease_token: token,
                    finish,
                }],
                u,
            )
            .await,
        );
    };
    let operator = |what: &str, r: Result<Job, crate::StoreError>| {
        let allowed = lifecycle::transition(Some(job.state), event).is_ok();
        match (allowed, r) {
            (true, Ok(_)) => {}
            (false, Err(crate::StoreError::InvalidState { state, .. })) => {
                assert_eq!(state, job.state, "{what} of a {} job names its state", job.state)
            }
            (allowed, r) => panic!(
                "{what} of a {} job: the lifecycle says {}, the store answered {r:?}",
                job.state,
                if allowed {
                    "allowed"
                } else {
                    "refused (invalid_state)"
                }
            ),
        }
    };
    let error = || failure(job.attempt.max(1), u, "event");
    match event {
        Event::Insert { .. } => unreachable!("not an event of a stored job"),
        Event::Promote => {
            ok("promote_due", s.promote_due(u, 100).await);
        }
        Event::Claim => {
            ok(
                "claim_available",
                s.claim_available(claim_request(&job.queue, u)).await,
            );
        }
        Event::Complete => by_worker(Finish::Complete { result: None }).await,
        Event::Fail { attempts_left: true } => {
            by_worker(Finish::Retry {
                at: u,
                error: error(),
            })
            .await
        }
        Event::Fail { attempts_left: false } | Event::Discard => {
            by_worker(Finish::Discard { error: error() }).await
        }
        Event::Snooze => by_worker(Finish::Snooze { at: u }).await,
        Event::HandBack => by_worker(Finish::HandBack).await,
        Event::Rescue { .. } => {
            let lapsed = ok("lapsed_leases", s.lapsed_leases(u, 100).await);
            let policies = RetryPolicies::from(RetryPolicy::fixed(secs(1)));
            let mut items: Vec<Completion> = lapsed
                .iter()
                .map(|l| lifecycle::rescue_completion(l, &policies, u))
                .collect();
            if running {
                assert_eq!(
                    lapsed.iter().map(|l| l.id).collect::<Vec<JobId>>(),
                    vec![id],
                    "the running job's lease lapsed: lapsed_leases names it (and nothing else)"
                );
            } else {
                assert!(
                    lapsed.is_empty(),
                    "a {} job has no lease to lapse: {lapsed:?}",
                    job.state
                );
                // A rescue written anyway is fenced out.
                items.push(Completion {
                    id,
                    lease_token: token,
                    finish: Finish::Retry {
                        at: u,
                        error: error(),
                    },
                });
            }
            ok("rescue_lapsed", s.rescue_lapsed(items, u).await);
        }
        Event::Cancel if running => by_worker(Finish::Cancel { error: error() }).await,
        Event::Cancel => operator("cancel_job", s.cancel_job(id, &Scope::All, u).await),
        Event::Expire if running => by_worker(Finish::Expire).await,
        Event::Expire => {
            ok("expire_due", s.expire_due(u, 100).await);
        }
        Event::OperatorRetry => operator("retry_job", s.retry_job(id, &Scope::All, u).await),
        Event::OperatorDiscard => operator("discard_job", s.discard_job(id, &Scope::All, u).await),
    }
}

fn claim_request(queue: &str, now: crate::Timestamp) -> crate::store::ClaimRequest {
    crate::store::ClaimRequest {
        queue: queue.to_owned(),
        limit: 10,
        owner: WORKER.to_owned(),
        lease_for: LEASE,
        now,
    }
}

/// Leaves `id` finished, so that the store-wide calls of later pairs
/// (promote, expire, rescue) find nothing of it.
async fn finish_off(s: &dyn Store, id: JobId, u: crate::Timestamp) {
    let job = get(s, id).await;
    match job.state {
        JobState::Running => {
            let done = finish_with(s, id, token_of(&job), Finish::Complete { result: None }, u).await;
            assert_eq!(done, CompletionResult::Done, "finishing off {job:?}");
        }
        s2 if !s2.is_finished() => {
            ok("cancel_job", s.cancel_job(id, &Scope::All, u).await);
        }
        _ => {}
    }
}

/// For every state a stored job can be in and every event but insert, the
/// store call that records the event moves the job exactly as
/// [`lifecycle::transition`] says: to its state when allowed, nowhere
/// (refused, or matched by nothing) when not. Events of an attempt come
/// from the worker (a fenced completion, or a rescue of a lapsed lease);
/// promote and expire from the maintenance; cancel, retry and discard of
/// an unstarted or finished job from an operator.
pub async fn every_state_and_event_moves_a_job_as_the_lifecycle_says(store: Arc<dyn Store>) {
    let s = &*store;
    let mut pair = 0i64;
    for state in JobState::ALL {
        for event in Event::ALL {
            if matches!(event, Event::Insert { .. }) {
                continue;
            }
            pair += 1;
            let queue = format!("transition_{pair}");
            // Each pair has its own hours: the event comes two hours after
            // the set-up, past every run_at, expiry and lease it made.
            let t = at(pair * 10_000);
            let u = plus(t, secs(7200));
            let (job, token) = job_in_state(s, &queue, state, event, t).await;
            apply(s, &job, token, event, u).await;
            let got = get(s, job.id).await;
            match lifecycle::transition(Some(state), event) {
                Ok(next) => assert_eq!(
                    got.state, next,
                    "{event:?} of a {state} job must leave it {next} (lifecycle::transition): {got:?}"
                ),
                Err(_) => assert_eq!(
                    got.state, state,
                    "{event:?} is not allowed for a {state} job: it must stay {state}: {got:?}"
                ),
            }
            finish_off(s, job.id, u).await;
        }
    }
}
