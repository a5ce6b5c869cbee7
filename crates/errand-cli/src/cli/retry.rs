//! Retry policies written as settings: `[queue.NAME.retry]`,
//! `[kind.NAME.retry]` and `[worker.retry]` in the config file, and the
//! `--retry-*` flags of `errand enqueue`. One reading for both.

use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use errand_core::RetryPolicy;

use super::config::parse_duration;

/// A retry policy as written (every field optional).
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    /// Retry backoff: fixed, linear or exponential (default exponential).
    #[arg(long = "retry-backoff", value_name = "CURVE")]
    pub(crate) backoff: Option<String>,
    /// Retry: the delay after the first failure (fixed: after every one); default 15s.
    #[arg(long = "retry-base", value_name = "DURATION")]
    pub(crate) base: Option<String>,
    /// Retry (linear): added for each further failure (default: the base).
    #[arg(long = "retry-step", value_name = "DURATION")]
    pub(crate) step: Option<String>,
    /// Retry (exponential): growth per failure, at least 1 (default 2).
    #[arg(long = "retry-factor", value_name = "N")]
    pub(crate) factor: Option<f64>,
    /// Retry: no delay is longer than this (default 24h; fixed: the base).
    #[arg(long = "retry-max-delay", value_name = "DURATION")]
    pub(crate) max_delay: Option<String>,
    /// Retry: spread as a fraction of the delay, 0 to 1 (default 0.1 for exponential, else 0).
    #[arg(long = "retry-jitter", value_name = "FRACTION", allow_negative_numbers = true)]
    pub(crate) jitter: Option<f64>,
}

impl RawRetry {
    /// Whether anything is set.
    pub(crate) fn is_set(&self) -> bool {
        self.backoff.is_some()
            || self.base.is_some()
            || self.step.is_some()
            || self.factor.is_some()
            || self.max_delay.is_some()
            || self.jitter.is_some()
    }

    /// The policy, or a message naming the key under `prefix`
    /// (`queue.mail.retry.base: …`) and the rule.
    pub(crate) fn policy(&self, prefix: &str) -> Result<RetryPolicy, String> {
        let duration = |key: &str, v: &Option<String>| -> Result<Option<Duration>, String> {
            v.as_deref()
                .map(|s| {
                    parse_duration(s)
                        .map_err(|_| format!("{prefix}.{key}: {s:?} is not a duration (like 30s, 5m, 2h)"))
                })
                .transpose()
        };
        let base = duration("base", &self.base)?.unwrap_or(Duration::from_secs(15));
        let step = duration("step", &self.step)?;
        let max_delay = duration("max_delay", &self.max_delay)?;
        let only = |key: &str, set: bool, curve: &str| -> Result<(), String> {
            if set {
                Err(format!("{prefix}.{key}: applies only to {curve} backoff"))
            } else {
                Ok(())
            }
        };
        let policy = match self.backoff.as_deref().unwrap_or("exponential") {
            "fixed" => {
                only("step", step.is_some(), "linear")?;
                only("factor", self.factor.is_some(), "exponential")?;
                RetryPolicy {
                    max_delay: max_delay.unwrap_or(base),
                    ..RetryPolicy::fixed(base)
                }
            }
            "linear" => {
                only("factor", self.factor.is_some(), "exponential")?;
                RetryPolicy::linear(
                    base,
                    step.unwrap_or(base),
                    max_delay.unwrap_or(Duration::from_secs(24 * 3600)),
                )
            }
            "exponential" => {
                only("step", step.is_some(), "linear")?;
                let factor = self.factor.unwrap_or(2.0);
                if !factor.is_finite() || factor < 1.0 {
                    return Err(format!(
                        "{prefix}.factor: must be a number of at least 1 (got {factor})"
                    ));
                }
                let p = RetryPolicy::exponential(
                    base,
                    factor,
                    max_delay.unwrap_or(Duration::from_secs(24 * 3600)),
                );
                RetryPolicy { jitter: 0.1, ..p }
            }
            other => {
                return Err(format!(
                    "{prefix}.backoff: {other:?} is not a backoff; use fixed, linear or exponential"
                ));
            }
        };
        let policy = match self.jitter {
            Some(j) if !(0.0..=1.0).contains(&j) => {
                return Err(format!("{prefix}.jitter: must be between 0 and 1 (got {j})"));
            }
            Some(j) => RetryPolicy { jitter: j, ..policy },
            None => policy,
        };
        if policy.max_delay < base {
            return Err(format!(
                "{prefix}.max_delay: must not be shorter than the base delay"
            ));
        }
        errand_core::validate::retry_policy(&policy).map_err(|e| format!("{prefix}: {}", e.message))?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawRetry {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn each_curve_reads_as_written() {
        let p = raw("backoff = \"fixed\"\nbase = \"1m\"").policy("r").unwrap();
        assert_eq!(p, RetryPolicy::fixed(Duration::from_secs(60)));
        let p = raw("backoff = \"linear\"\nbase = \"10s\"\nstep = \"5s\"\nmax_delay = \"1h\"")
            .policy("r")
            .unwrap();
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(20));
        let p = raw("base = \"1s\"\nfactor = 3.0\njitter = 0.0")
            .policy("r")
            .unwrap();
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(9));
        assert_eq!(raw("").policy("r").unwrap().jitter, 0.1);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("backoff = \"random\"", "r.backoff"),
            ("base = \"soon\"", "r.base"),
            ("factor = 0.5", "r.factor"),
            ("jitter = 2.0", "r.jitter"),
            ("backoff = \"fixed\"\nfactor = 2.0", "r.factor"),
            ("backoff = \"exponential\"\nstep = \"1s\"", "r.step"),
            ("base = \"1h\"\nmax_delay = \"1m\"", "r.max_delay"),
        ] {
            let e = raw(text).policy("r").unwrap_err();
            assert!(e.starts_with(key), "{text}: {e}");
        }
        assert!(
            toml::from_str::<RawRetry>("strategy = \"fixed\"").is_err(),
            "unknown keys are refused"
        );
    }
}
