//! The job lifecycle as pure functions.
//!
//! [`transition`] is the whole state machine: every store write that changes a
//! job's state is one of its [`Event`]s, and the stores guard their SQL with
//! the same source states (the conformance suite checks that they agree).
//! [`resolve`] turns what a handler answered into the [`Finish`] to write.
//!
//! ```text
//!  insert ──► scheduled ──promote──► available ──claim──► running ──► completed
//!     └──────────────────────────────► ▲    ▲                │ ├──► retryable ──promote──┐
//!                                      │    └──hand back─────┘ ├──► discarded           │
//!                                      └─────────────────────────────────────────────────┘
//!  scheduled/available/retryable ──► cancelled | expired;   running ──► cancelled | expired
//!  discarded/cancelled/expired ──operator retry──► available
//!  scheduled/available/retryable ──operator discard──► discarded
//! ```

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::job::{ErrorRecord, Finish, JobState, Outcome};
use crate::retry::RetryPolicy;

/// Something that happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Enqueued; `due` when its `run_at` is not in the future.
    Insert {
        /// Whether it may run now.
        due: bool,
    },
    /// Its `run_at` arrived (scheduled or retryable → available).
    Promote,
    /// A worker claimed it.
    Claim,
    /// Its attempt ended successfully.
    Complete,
    /// Its attempt failed; `attempts_left` decides between retryable and discarded.
    Fail {
        /// Whether another attempt is allowed.
        attempts_left: bool,
    },
    /// Its attempt failed permanently.
    Discard,
    /// Its handler asked to run again later without spending the attempt.
    Snooze,
    /// A worker gave it back unstarted or unfinished (shutdown).
    HandBack,
    /// Its worker's lease lapsed; like [`Event::Fail`].
    Rescue {
        /// Whether another attempt is allowed.
        attempts_left: bool,
    },
    /// Cancelled by an operator or its handler.
    Cancel,
    /// Its `expires_at` passed before it started.
    Expire,
    /// An operator retried it.
    OperatorRetry,
    /// An operator discarded it before it started.
    OperatorDiscard,
}

impl Event {
    /// Every event, once (the two values of each flag included).
    pub const ALL: [Event; 16] = [
        Event::Insert { due: true },
        Event::Insert { due: false },
        Event::Promote,
        Event::Claim,
        Event::Complete,
        Event::Fail { attempts_left: true },
        Event::Fail { attempts_left: false },
        Event::Discard,
        Event::Snooze,
        Event::HandBack,
        Event::Rescue { attempts_left: true },
        Event::Rescue { attempts_left: false },
        Event::Cancel,
        Event::Expire,
        Event::OperatorRetry,
        Event::OperatorDiscard,
    ];
}

/// An event that is not allowed in the job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct IllegalTransition {
    /// The state the job was in (`None`: not yet inserted).
    pub from: Option<JobState>,
    /// The event.
    pub event: Event,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.from {
            Some(s) => write!(f, "{:?} is not allowed for a {s} job", self.event),
            None => write!(f, "{:?} is not allowed for a job that does not exist", self.event),
        }
    }
}

/// The state after `event`, or why it cannot happen.
pub fn transition(from: Option<JobState>, event: Event) -> Result<JobState, IllegalTransition> {
    use JobState::*;
    let illegal = Err(IllegalTransition { from, event });
    let Some(from) = from else {
        return match event {
            Event::Insert { due: true } => Ok(Available),
            Event::Insert { due: false } => Ok(Scheduled),
            _ => illegal,
        };
    };
    match (from, event) {
        (Scheduled | Retryable, Event::Promote) => Ok(Available),
        (Available, Event::Claim) => Ok(Running),
        (Running, Event::Complete) => Ok(Completed),
        (Running, Event::Fail { attempts_left } | Event::Rescue { attempts_left }) => {
            Ok(if attempts_left { Retryable } else { Discarded })
        }
        (Running, Event::Discard) => Ok(Discarded),
        (Running, Event::Snooze) => Ok(Scheduled),
        (Running, Event::HandBack) => Ok(Available),
        (Scheduled | Available | Retryable | Running, Event::Cancel) => Ok(Cancelled),
        (Scheduled | Available | Retryable | Running, Event::Expire) => Ok(Expired),
        (Scheduled | Retryable | Discarded | Cancelled | Expired, Event::OperatorRetry) => Ok(Available),
        (Scheduled | Available | Retryable, Event::OperatorDiscard) => Ok(Discarded),
        _ => illegal,
    }
}

/// The states `event` is allowed from, in [`JobState::ALL`] order: the
/// guard of the store write that records it. Stores build their state
/// lists from this (see [`sql_states`]) instead of typing them again.
pub fn sources(event: Event) -> Vec<JobState> {
    JobState::ALL
        .into_iter()
        .filter(|s| transition(Some(*s), event).is_ok())
        .collect()
}

/// [`sources`] as an SQL list of string literals (`'scheduled', 'available'`),
/// to splice into a statement's `state IN (…)` guard.
pub fn sql_states(event: Event) -> String {
    sources(event)
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rescue the engine writes for a lapsed lease (see
/// [`Housekeeping::rescue_lapsed`](crate::store::Housekeeping::rescue_lapsed)):
/// [`rescue`] with the policy `policies` picks for the job (its own, else
/// its kind's, else its queue's, else the default).
pub fn rescue_completion(
    lapsed: &crate::store::LapsedLease,
    policies: &crate::RetryPolicies,
    now: Timestamp,
) -> crate::Completion {
    crate::Completion {
        id: lapsed.id,
        lease_token: lapsed.lease_token,
        finish: rescue(
            lapsed.attempt,
            lapsed.max_attempts,
            lapsed.owner.as_deref(),
            policies.pick(lapsed.retry.as_ref(), &lapsed.queue, &lapsed.kind),
            now,
        ),
    }
}

/// The error an operator's discard adds to the job's history.
pub fn operator_discard_error(attempt: i32, now: Timestamp) -> ErrorRecord {
    ErrorRecord {
        attempt,
        at: now,
        message: "discarded by an operator".to_owned(),
        worker: None,
    }
}

/// The event a [`Finish`] write records.
pub fn finish_event(finish: &Finish) -> Event {
    match finish {
        Finish::Complete { .. } | Finish::CompleteAndDelete => Event::Complete,
        Finish::Retry { .. } => Event::Fail { attempts_left: true },
        Finish::Discard { .. } => Event::Discard,
        Finish::Snooze { .. } | Finish::Defer { .. } => Event::Snooze,
        Finish::Cancel { .. } => Event::Cancel,
        Finish::Expire => Event::Expire,
        Finish::HandBack => Event::HandBack,
    }
}

/// What the engine knows about the attempt being resolved.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The attempt number (1-based) that just ended.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The worker that ran it.
    pub worker: Option<&'a str>,
}

/// Turns a handler's [`Outcome`] into the write that records it.
///
/// `unit` is a random fraction in `[0, 1)` for the backoff's jitter, passed
/// in so this stays a pure function.
pub fn resolve(
    attempt: Attempt<'_>,
    outcome: Outcome,
    policy: &RetryPolicy,
    now: Timestamp,
    unit: f64,
) -> Finish {
    let record = |message: String| ErrorRecord {
        attempt: attempt.attempt,
        at: now,
        message,
        worker: attempt.worker.map(str::to_owned),
    };
    let retry_or_discard = |message: String| {
        if attempt.attempt < attempt.max_attempts {
            let at = crate::clock::add(now, policy.delay(attempt.attempt, unit));
            Finish::Retry {
                at,
                error: record(message),
            }
        } else {
            Finish::Discard {
                error: record(message),
            }
        }
    };
    match outcome {
        Outcome::Completed { result } => Finish::Complete { result },
        Outcome::Retryable { error } => retry_or_discard(error),
        Outcome::TimedOut { after } => retry_or_discard(format!("timed out after {}", fmt_duration(after))),
        Outcome::Permanent { error } => Finish::Discard { error: record(error) },
        Outcome::Snooze { delay } => Finish::Snooze {
            at: crate::clock::add(now, delay),
        },
        Outcome::Cancelled { reason } => Finish::Cancel {
            error: record(reason),
        },
    }
}

/// The write that rescues a running job whose lease lapsed: a retryable
/// failure naming the worker that stopped heartbeating, retried with
/// `policy` (the job's own, else the caller's default) while attempts remain,
/// discarded after the last. Draws the jitter from a thread-local random source.
pub fn rescue(
    attempt: i32,
    max_attempts: i32,
    owner: Option<&str>,
    policy: &RetryPolicy,
    now: Timestamp,
) -> Finish {
    let error = format!(
        "lease expired: worker {} stopped heartbeating",
        owner.unwrap_or("(unknown)")
    );
    let unit = if policy.jitter > 0.0 {
        rand::random::<f64>()
    } else {
        0.5
    };
    resolve(
        Attempt {
            attempt,
            max_attempts,
            worker: owner,
        },
        Outcome::Retryable { error },
        policy,
        now,
        unit,
    )
}

/// A short human form of a duration ("1.5s", "250ms", "3m").
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;
    use proptest::prelude::*;

    fn events() -> impl Strategy<Value = Event> {
        prop_oneof![
            any::<bool>().prop_map(|due| Event::Insert { due }),
            Just(Event::Promote),
            Just(Event::Claim),
            Just(Event::Complete),
            any::<bool>().prop_map(|attempts_left| Event::Fail { attempts_left }),
            Just(Event::Discard),
            Just(Event::Snooze),
            Just(Event::HandBack),
            any::<bool>().prop_map(|attempts_left| Event::Rescue { attempts_left }),
            Just(Event::Cancel),
            Just(Event::Expire),
            Just(Event::OperatorRetry),
            Just(Event::OperatorDiscard),
        ]
    }

    proptest! {
        /// Drive random event sequences; whatever is accepted must keep the invariants.
        #[test]
        fn no_illegal_transition_is_reachable(seq in proptest::collection::vec(events(), 1..60)) {
            let mut state: Option<JobState> = None;
            for ev in seq {
                match transition(state, ev) {
                    Ok(next) => {
                        // Only an insert creates a job, and only once.
                        prop_assert_eq!(state.is_none(), matches!(ev, Event::Insert { .. }));
                        // Leaving a finished state takes an operator, and completed is never left.
                        if let Some(s) = state.filter(|s| s.is_finished()) {
                            prop_assert_eq!(ev, Event::OperatorRetry);
                            prop_assert_ne!(s, Completed);
                            prop_assert_eq!(next, Available);
                        }
                        // Only a claim starts a job, and only from available.
                        if next == Running {
                            prop_assert_eq!((state, ev), (Some(Available), Event::Claim));
                        }
                        // Outcomes of an attempt come only from running.
                        if matches!(ev, Event::Complete | Event::Fail { .. } | Event::Discard
                            | Event::Snooze | Event::HandBack | Event::Rescue { .. }) {
                            prop_assert_eq!(state, Some(Running));
                        }
                        state = Some(next);
                    }
                    Err(e) => {
                        prop_assert_eq!(e.from, state);
                    }
                }
            }
        }
    }

    #[test]
    fn rescue_retries_while_attempts_remain_and_names_the_lost_worker() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let policy = RetryPolicy::fixed(Duration::from_secs(7));
        match rescue(2, 5, Some("w9"), &policy, now) {
            Finish::Retry { at, error } => {
                assert_eq!(at, crate::clock::add(now, Duration::from_secs(7)));
                assert_eq!(error.message, "lease expired: worker w9 stopped heartbeating");
                assert_eq!((error.attempt, error.worker.as_deref()), (2, Some("w9")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(rescue(5, 5, None, &policy, now), Finish::Discard { .. }));
    }

    #[test]
    fn completed_is_final_even_for_operators() {
        for ev in [
            Event::OperatorRetry,
            Event::Cancel,
            Event::Claim,
            Event::Expire,
            Event::Promote,
        ] {
            assert!(transition(Some(Completed), ev).is_err(), "{ev:?}");
        }
    }

    #[test]
    fn a_failure_with_attempts_left_is_retryable_else_discarded() {
        assert_eq!(
            transition(Some(Running), Event::Fail { attempts_left: true }),
            Ok(Retryable)
        );
        assert_eq!(
            transition(Some(Running), Event::Fail { attempts_left: false }),
            Ok(Discarded)
        );
    }

    #[test]
    fn resolve_retries_until_attempts_run_out() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let policy = RetryPolicy::fixed(Duration::from_secs(10));
        let a = |attempt| Attempt {
            attempt,
            max_attempts: 3,
            worker: Some("w1"),
        };
        let err = || Outcome::Retryable { error: "boom".into() };
        match resolve(a(2), err(), &policy, now, 0.5) {
            Finish::Retry { at, error } => {
                assert_eq!(at, crate::clock::add(now, Duration::from_secs(10)));
                assert_eq!(error.attempt, 2);
                assert_eq!(error.worker.as_deref(), Some("w1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve(a(3), err(), &policy, now, 0.5),
            Finish::Discard { .. }
        ));
        assert!(matches!(
            resolve(
                a(1),
                Outcome::Permanent { error: "bad".into() },
                &policy,
                now,
                0.5
            ),
            Finish::Discard { .. }
        ));
        match resolve(
            a(1),
            Outcome::TimedOut {
                after: Duration::from_millis(1500),
            },
            &policy,
            now,
            0.5,
        ) {
            Finish::Retry { error, .. } => assert_eq!(error.message, "timed out after 1.500s"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            resolve(
                a(1),
                Outcome::Snooze {
                    delay: Duration::from_secs(5)
                },
                &policy,
                now,
                0.5
            ),
            Finish::Snooze {
                at: crate::clock::add(now, Duration::from_secs(5))
            }
        );
    }

    proptest! {
        #[test]
        fn every_resolved_finish_is_a_legal_transition_from_running(
            attempt in 1i32..50, max in 1i32..50, kind in 0u8..6, unit in 0.0f64..1.0,
        ) {
            let outcome = match kind {
                0 => Outcome::Completed { result: None },
                1 => Outcome::Retryable { error: "e".into() },
                2 => Outcome::Permanent { error: "e".into() },
                3 => Outcome::Snooze { delay: Duration::from_secs(1) },
                4 => Outcome::Cancelled { reason: "c".into() },
                _ => Outcome::TimedOut { after: Duration::from_secs(1) },
            };
            let now = Timestamp::from_second(1_000).unwrap();
            let finish = resolve(Attempt { attempt, max_attempts: max, worker: None }, outcome, &RetryPolicy::default(), now, unit);
            let next = transition(Some(Running), finish_event(&finish)).unwrap();
            prop_assert_eq!(next, finish.target_state());
            if let Finish::Retry { at, .. } = finish {
                prop_assert!(attempt < max);
                prop_assert!(at >= now);
            }
        }
    }
}
