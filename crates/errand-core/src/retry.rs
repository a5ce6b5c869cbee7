//! Retry policies: how long a failed job waits before its next attempt.
//!
//! A policy can be set per job, per kind (on the handler) or per queue; the
//! most specific one wins (see [`RetryPolicy::pick`]). The delay is a pure
//! function of the attempt number and a random fraction, so it is testable
//! without a random source.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shape of the delay curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Backoff {
    /// The same delay after every failure.
    Fixed {
        /// The delay.
        #[serde(with = "crate::job::duration_ms", rename = "delay_ms")]
        delay: Duration,
    },
    /// `initial + step × (attempt − 1)`.
    Linear {
        /// Delay after the first failure.
        #[serde(with = "crate::job::duration_ms", rename = "initial_ms")]
        initial: Duration,
        /// Added for each further failure.
        #[serde(with = "crate::job::duration_ms", rename = "step_ms")]
        step: Duration,
    },
    /// `initial × factor^(attempt − 1)`.
    Exponential {
        /// Delay after the first failure.
        #[serde(with = "crate::job::duration_ms", rename = "initial_ms")]
        initial: Duration,
        /// Growth per failure; at least 1.
        factor: f64,
    },
}

/// A backoff curve with a cap and jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The curve.
    pub backoff: Backoff,
    /// No delay is longer than this (after jitter).
    #[serde(with = "crate::job::duration_ms", rename = "max_delay_ms")]
    pub max_delay: Duration,
    /// Spread, as a fraction of the delay: 0.1 draws uniformly from ±10 %.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Exponential from 15 s, doubling, capped at 24 h, ±10 % jitter: 25 attempts span about two weeks.
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff::Exponential {
                initial: Duration::from_secs(15),
                factor: 2.0,
            },
            max_delay: Duration::from_secs(24 * 3600),
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// A fixed delay, no jitter.
    pub fn fixed(delay: Duration) -> Self {
        RetryPolicy {
            backoff: Backoff::Fixed { delay },
            max_delay: delay,
            jitter: 0.0,
        }
    }

    /// A linear curve capped at `max_delay`, no jitter.
    pub fn linear(initial: Duration, step: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            backoff: Backoff::Linear { initial, step },
            max_delay,
            jitter: 0.0,
        }
    }

    /// An exponential curve capped at `max_delay`, no jitter.
    pub fn exponential(initial: Duration, factor: f64, max_delay: Duration) -> Self {
        RetryPolicy {
            backoff: Backoff::Exponential { initial, factor },
            max_delay,
            jitter: 0.0,
        }
    }

    /// The same policy with `jitter` (a fraction, clamped to 0..=1).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The most specific policy: the job's, else the kind's, else the queue's, else the default.
    pub fn pick<'a>(
        job: Option<&'a RetryPolicy>,
        kind: Option<&'a RetryPolicy>,
        queue: Option<&'a RetryPolicy>,
        default: &'a RetryPolicy,
    ) -> &'a RetryPolicy {
        job.or(kind).or(queue).unwrap_or(default)
    }

    /// The delay before the attempt after `failed_attempt` (1-based), with
    /// `unit` a random fraction in `[0, 1)` that positions the jitter.
    pub fn delay(&self, failed_attempt: i32, unit: f64) -> Duration {
        let n = failed_attempt.max(1) as f64;
        let cap = self.max_delay.as_secs_f64();
        let base = match &self.backoff {
            Backoff::Fixed { delay } => delay.as_secs_f64(),
            Backoff::Linear { initial, step } => initial.as_secs_f64() + step.as_secs_f64() * (n - 1.0),
            Backoff::Exponential { initial, factor } => {
                let factor = if factor.is_finite() { factor.max(1.0) } else { 1.0 };
                initial.as_secs_f64() * factor.powf(n - 1.0)
            }
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let spread = 1.0 + jitter * (2.0 * unit - 1.0);
        let secs = (base.min(cap) * spread).min(cap);
        if secs.is_finite() && secs > 0.0 {
            Duration::from_secs_f64(secs)
        } else {
            Duration::ZERO
        }
    }

    /// [`RetryPolicy::delay`] with a thread-local random fraction.
    pub fn delay_random(&self, failed_attempt: i32) -> Duration {
        let unit = if self.jitter > 0.0 {
            rand::random::<f64>()
        } else {
            0.5
        };
        self.delay(failed_attempt, unit)
    }
}

/// Every retry policy a process knows, for writes made away from the worker
/// that ran the attempt: the rescuer, which fails the attempts of workers that
/// stopped heartbeating, picks from these as the worker would have picked for
/// a failed attempt (see [`RetryPolicies::pick`]).
///
/// A kind's policy is known only where its handler is registered, so a
/// process that rescues without the handler falls back to the queue's
/// policy, then to the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryPolicies {
    /// The policy when neither the job, its kind nor its queue sets one.
    pub default: RetryPolicy,
    /// Per job kind (the handlers' policies).
    pub kinds: HashMap<String, RetryPolicy>,
    /// Per queue.
    pub queues: HashMap<String, RetryPolicy>,
}

impl RetryPolicies {
    /// The policy for a job of `kind` in `queue` whose own policy is `job`:
    /// the job's, else the kind's, else the queue's, else the default.
    pub fn pick<'a>(&'a self, job: Option<&'a RetryPolicy>, queue: &str, kind: &str) -> &'a RetryPolicy {
        RetryPolicy::pick(job, self.kinds.get(kind), self.queues.get(queue), &self.default)
    }
}

impl From<RetryPolicy> for RetryPolicies {
    /// One policy for every job that sets none of its own.
    fn from(default: RetryPolicy) -> Self {
        RetryPolicies {
            default,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn fixed_linear_and_exponential_curves() {
        assert_eq!(RetryPolicy::fixed(S(5)).delay(7, 0.3), S(5));
        let lin = RetryPolicy::linear(S(10), S(5), S(3600));
        assert_eq!(lin.delay(1, 0.5), S(10));
        assert_eq!(lin.delay(3, 0.5), S(20));
        let exp = RetryPolicy::exponential(S(1), 2.0, S(60));
        assert_eq!(exp.delay(1, 0.5), S(1));
        assert_eq!(exp.delay(4, 0.5), S(8));
        assert_eq!(exp.delay(30, 0.5), S(60), "capped");
    }

    #[test]
    fn pick_prefers_the_most_specific_policy() {
        let (j, k, q, d) = (
            RetryPolicy::fixed(S(1)),
            RetryPolicy::fixed(S(2)),
            RetryPolicy::fixed(S(3)),
            RetryPolicy::default(),
        );
        assert_eq!(RetryPolicy::pick(Some(&j), Some(&k), Some(&q), &d), &j);
        assert_eq!(RetryPolicy::pick(None, Some(&k), Some(&q), &d), &k);
        assert_eq!(RetryPolicy::pick(None, None, Some(&q), &d), &q);
        assert_eq!(RetryPolicy::pick(None, None, None, &d), &d);
    }

    #[test]
    fn policies_pick_as_the_worker_does_and_fall_back_for_unknown_names() {
        let mut p = RetryPolicies::from(RetryPolicy::fixed(S(9)));
        p.kinds.insert("mail".into(), RetryPolicy::fixed(S(2)));
        p.queues.insert("slow".into(), RetryPolicy::fixed(S(3)));
        let own = RetryPolicy::fixed(S(1));
        assert_eq!(p.pick(Some(&own), "slow", "mail"), &own);
        assert_eq!(p.pick(None, "slow", "mail"), &RetryPolicy::fixed(S(2)));
        assert_eq!(p.pick(None, "slow", "resize"), &RetryPolicy::fixed(S(3)));
        assert_eq!(p.pick(None, "default", "resize"), &RetryPolicy::fixed(S(9)));
    }

    #[test]
    fn policy_serializes_readably() {
        let json = serde_json::to_string(&RetryPolicy::fixed(S(2))).unwrap();
        assert_eq!(
            json,
            r#"{"backoff":{"kind":"fixed","delay_ms":2000},"max_delay_ms":2000,"jitter":0.0}"#
        );
        let back: RetryPolicy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, RetryPolicy::fixed(S(2)));
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_the_cap_and_stays_within_jitter(
            attempt in -5i32..200, unit in 0.0f64..1.0, jitter in 0.0f64..1.0,
            initial_ms in 0u64..100_000, factor in 1.0f64..10.0, cap_s in 1u64..1_000_000,
        ) {
            let p = RetryPolicy::exponential(Duration::from_millis(initial_ms), factor, S(cap_s)).with_jitter(jitter);
            let d = p.delay(attempt, unit);
            prop_assert!(d <= S(cap_s));
            let unjittered = RetryPolicy { jitter: 0.0, ..p.clone() }.delay(attempt, unit).as_secs_f64();
            prop_assert!(d.as_secs_f64() <= unjittered * (1.0 + jitter) + 1e-6);
            prop_assert!(d.as_secs_f64() >= unjittered * (1.0 - jitter) - 1e-6);
        }

        #[test]
        fn unjittered_delays_never_shrink_as_attempts_grow(
            attempt in 1i32..100, initial_ms in 0u64..100_000, step_ms in 0u64..100_000, factor in 1.0f64..4.0,
        ) {
            let cap = S(86_400);
            for p in [
                RetryPolicy::linear(Duration::from_millis(initial_ms), Duration::from_millis(step_ms), cap),
                RetryPolicy::exponential(Duration::from_millis(initial_ms), factor, cap),
            ] {
                prop_assert!(p.delay(attempt, 0.5) <= p.delay(attempt + 1, 0.5));
            }
        }
    }
}
