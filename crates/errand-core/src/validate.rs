//! Input validation. Every rule has a stable code, and every error names the
//! field it is about, so CLI and API users can tell exactly what to fix.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::code::ErrorCode;
use crate::job::{NewJob, UniqueMode};
use crate::retry::RetryPolicy;

/// Size and range limits applied to every enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest `args` JSON text, in bytes (default 1 MiB).
    pub max_args_bytes: usize,
    /// Largest `meta` JSON text, in bytes (default 64 KiB).
    pub max_meta_bytes: usize,
    /// Most jobs in one bulk insert (default 10,000).
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1024 * 1024,
            max_meta_bytes: 64 * 1024,
            max_batch: 10_000,
        }
    }
}

/// The lowest (most urgent) priority.
pub const PRIORITY_MIN: i32 = 0;
/// The highest (least urgent) priority.
pub const PRIORITY_MAX: i32 = 1000;
/// The priority of a job that sets none.
pub const DEFAULT_PRIORITY: i32 = 100;
/// Attempts allowed when a job sets none.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 25;
/// The most attempts a job may allow.
pub const MAX_ATTEMPTS_LIMIT: i32 = 10_000;
/// The queue of a job that names none.
pub const DEFAULT_QUEUE: &str = "default";
/// The most tags a job may carry.
pub const MAX_TAGS: usize = 32;
/// The longest timeout a job may set (7 days).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// An input that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ValidationError {
    /// The field at fault (`queue`, `args`, `priority`, …).
    pub field: &'static str,
    /// The rule's stable machine-readable code (`queue_name_invalid`,
    /// `args_too_large`, …); serialized as its text.
    pub code: ErrorCode,
    /// What is wrong and what is allowed.
    pub message: String,
    /// In a bulk insert, the position (0-based) of the offending job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.index {
            write!(f, "job #{i}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl ValidationError {
    fn new(field: &'static str, code: ErrorCode, message: impl Into<String>) -> Self {
        ValidationError {
            field,
            code,
            message: message.into(),
            index: None,
        }
    }

    /// The same error, located at `index` in a batch.
    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
}

/// A job that passed validation, with every default applied and every
/// relative time made absolute. Only [`validate`] and [`validate_batch`] make one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ValidJob {
    /// Kind.
    pub kind: String,
    /// Args, JSON text.
    pub args: String,
    /// Queue.
    pub queue: String,
    /// Priority.
    pub priority: i32,
    /// When it may run.
    pub run_at: Timestamp,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Tenant.
    pub tenant: Option<String>,
    /// Unique key and mode.
    pub unique: Option<(String, UniqueMode)>,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Tags.
    pub tags: Vec<String>,
    /// Metadata, a JSON object as text (`{}` when unset).
    pub meta: String,
    /// The job's own retry policy.
    pub retry: Option<RetryPolicy>,
}

fn name_ok(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || extra.contains(&b))
}

/// Checks a queue name: 1–128 ASCII letters, digits, `_ - . :`, starting with a letter or digit.
pub fn queue_name(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if name_ok(s, 128, b":") {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            ErrorCode::QueueNameInvalid,
            format!(
                "{s:?} is not a valid queue name: use 1-128 ASCII letters, digits, '_', '-', '.', ':', starting with a letter or digit"
            ),
        ))
    }
}

/// Checks a job kind: 1–255 ASCII letters, digits, `_ - . : /`, starting with a letter or digit.
pub fn kind_name(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if name_ok(s, 255, b":/") {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            ErrorCode::KindInvalid,
            format!(
                "{s:?} is not a valid job kind: use 1-255 ASCII letters, digits, '_', '-', '.', ':', '/', starting with a letter or digit"
            ),
        ))
    }
}

/// Checks a tenant id: 1–128 ASCII letters, digits, `_ - . :`, starting with a letter or digit.
pub fn tenant_id(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if name_ok(s, 128, b":") {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            ErrorCode::TenantInvalid,
            format!(
                "{s:?} is not a valid tenant id: use 1-128 ASCII letters, digits, '_', '-', '.', ':', starting with a letter or digit"
            ),
        ))
    }
}

fn json_text(
    field: &'static str,
    code_prefix: &'static str,
    s: &str,
    max: usize,
    object: bool,
) -> Result<(), ValidationError> {
    let (too_large, invalid) = match code_prefix {
        "args" => (ErrorCode::ArgsTooLarge, ErrorCode::ArgsInvalidJson),
        _ => (ErrorCode::MetaTooLarge, ErrorCode::MetaInvalid),
    };
    if s.len() > max {
        return Err(ValidationError::new(
            field,
            too_large,
            format!("is {} bytes; the limit is {max} bytes", s.len()),
        ));
    }
    if object {
        match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(ValidationError::new(field, invalid, "must be a JSON object")),
            Err(e) => Err(ValidationError::new(
                field,
                invalid,
                format!("is not valid JSON: {e}"),
            )),
        }
    } else {
        serde_json::from_str::<serde::de::IgnoredAny>(s)
            .map(|_| ())
            .map_err(|e| ValidationError::new(field, invalid, format!("is not valid JSON: {e}")))
    }
}

/// Validates one job against `limits`, resolving relative times against `now`.
pub fn validate(job: NewJob, limits: &Limits, now: Timestamp) -> Result<ValidJob, ValidationError> {
    kind_name("kind", &job.kind)?;
    json_text("args", "args", &job.args, limits.max_args_bytes, false)?;
    let queue = job.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
    queue_name("queue", &queue)?;
    let priority = job.priority.unwrap_or(DEFAULT_PRIORITY);
    if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&priority) {
        return Err(ValidationError::new(
            "priority",
            ErrorCode::PriorityOutOfRange,
            format!("{priority} is out of range: use {PRIORITY_MIN} (most urgent) to {PRIORITY_MAX}"),
        ));
    }
    let max_attempts = job.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
        return Err(ValidationError::new(
            "max_attempts",
            ErrorCode::MaxAttemptsOutOfRange,
            format!("{max_attempts} is out of range: use 1 to {MAX_ATTEMPTS_LIMIT}"),
        ));
    }
    if let Some(t) = &job.tenant {
        tenant_id("tenant", t)?;
    }
    let run_at = match (job.run_at, job.delay) {
        (Some(at), _) => at,
        (None, Some(d)) => checked_add(now, d, "delay")?,
        (None, None) => now,
    };
    let expires_at = match (job.expires_at, job.expires_in) {
        (Some(at), _) => Some(at),
        (None, Some(d)) => Some(checked_add(now, d, "expires_in")?),
        (None, None) => None,
    };
    if let Some(exp) = expires_at {
        let field = if job.expires_at.is_some() {
            "expires_at"
        } else {
            "expires_in"
        };
        if exp <= now {
            return Err(ValidationError::new(
                field,
                ErrorCode::ExpiryInPast,
                "must be in the future",
            ));
        }
        if exp <= run_at {
            return Err(ValidationError::new(
                field,
                ErrorCode::ExpiryBeforeRunAt,
                format!("the job would expire ({exp}) before it may run ({run_at})"),
            ));
        }
    }
    if let Some((key, mode)) = &job.unique {
        if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "unique_key",
                ErrorCode::UniqueKeyInvalid,
                "must be 1-255 bytes with no control characters",
            ));
        }
        if let UniqueMode::Period { period } = mode
            && period.is_zero()
        {
            return Err(ValidationError::new(
                "unique_period",
                ErrorCode::UniquePeriodInvalid,
                "must be longer than zero",
            ));
        }
    }
    if let Some(t) = job.timeout
        && (t.is_zero() || t > MAX_TIMEOUT)
    {
        return Err(ValidationError::new(
            "timeout",
            ErrorCode::TimeoutOutOfRange,
            format!(
                "must be longer than zero and at most {} days",
                MAX_TIMEOUT.as_secs() / 86_400
            ),
        ));
    }
    if job.tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            "tags",
            ErrorCode::TooManyTags,
            format!("{} tags; the limit is {MAX_TAGS}", job.tags.len()),
        ));
    }
    for tag in &job.tags {
        if !name_ok(tag, 64, b":/") {
            return Err(ValidationError::new(
                "tags",
                ErrorCode::TagInvalid,
                format!(
                    "{tag:?} is not a valid tag: use 1-64 ASCII letters, digits, '_', '-', '.', ':', '/'"
                ),
            ));
        }
    }
    let meta = job.meta.unwrap_or_else(|| "{}".to_owned());
    json_text("meta", "meta", &meta, limits.max_meta_bytes, true)?;
    if let Some(p) = &job.retry {
        retry_policy(p)?;
    }
    Ok(ValidJob {
        kind: job.kind,
        args: job.args,
        queue,
        priority,
        run_at,
        expires_at,
        max_attempts,
        tenant: job.tenant,
        unique: job.unique,
        timeout: job.timeout,
        tags: job.tags,
        meta,
        retry: job.retry,
    })
}

/// Validates a whole batch: all or nothing. The error names the first bad job's index.
pub fn validate_batch(
    jobs: Vec<NewJob>,
    limits: &Limits,
    now: Timestamp,
) -> Result<Vec<ValidJob>, ValidationError> {
    if jobs.len() > limits.max_batch {
        return Err(ValidationError::new(
            "jobs",
            ErrorCode::BatchTooLarge,
            format!(
                "{} jobs in one batch; the limit is {}",
                jobs.len(),
                limits.max_batch
            ),
        ));
    }
    jobs.into_iter()
        .enumerate()
        .map(|(i, j)| validate(j, limits, now).map_err(|e| e.at(i)))
        .collect()
}

/// Checks a retry policy's numbers.
pub fn retry_policy(p: &RetryPolicy) -> Result<(), ValidationError> {
    if !(p.jitter.is_finite() && (0.0..=1.0).contains(&p.jitter)) {
        return Err(ValidationError::new(
            "retry.jitter",
            ErrorCode::RetryInvalid,
            "must be between 0 and 1",
        ));
    }
    if let crate::retry::Backoff::Exponential { factor, .. } = p.backoff
        && !(factor.is_finite() && (1.0..=100.0).contains(&factor))
    {
        return Err(ValidationError::new(
            "retry.factor",
            ErrorCode::RetryInvalid,
            "must be between 1 and 100",
        ));
    }
    Ok(())
}

fn checked_add(now: Timestamp, d: Duration, field: &'static str) -> Result<Timestamp, ValidationError> {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|sd| now.checked_add(sd).ok())
        .filter(|t| t.as_second() < 253_402_300_799) // 9999-12-31
        .ok_or_else(|| ValidationError::new(field, ErrorCode::TimeOutOfRange, "is too far in the future"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn check(job: NewJob) -> Result<ValidJob, ValidationError> {
        validate(job, &Limits::default(), now())
    }

    #[test]
    fn defaults_are_applied() {
        let v = check(NewJob::new("email.send", "{}")).unwrap();
        assert_eq!(v.queue, "default");
        assert_eq!(v.priority, DEFAULT_PRIORITY);
        assert_eq!(v.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(v.run_at, now());
        assert_eq!(v.meta, "{}");
    }

    #[test]
    fn relative_times_become_absolute() {
        let v = check(
            NewJob::new("k", "1")
                .delay(Duration::from_secs(60))
                .expires_in(Duration::from_secs(120)),
        )
        .unwrap();
        assert_eq!(v.run_at, crate::clock::add(now(), Duration::from_secs(60)));
        assert_eq!(
            v.expires_at,
            Some(crate::clock::add(now(), Duration::from_secs(120)))
        );
    }

    #[test]
    fn each_bad_input_names_its_field_and_rule() {
        let big = format!("\"{}\"", "x".repeat(1024 * 1024));
        let past = Timestamp::from_second(1_000).unwrap();
        let cases: Vec<(NewJob, &str, &str)> = vec![
            (NewJob::new("", "{}"), "kind", "kind_invalid"),
            (NewJob::new("bad kind", "{}"), "kind", "kind_invalid"),
            (NewJob::new("k", "{not json"), "args", "args_invalid_json"),
            (NewJob::new("k", big), "args", "args_too_large"),
            (
                NewJob::new("k", "{}").queue("no spaces"),
                "queue",
                "queue_name_invalid",
            ),
            (NewJob::new("k", "{}").queue(""), "queue", "queue_name_invalid"),
            (
                NewJob::new("k", "{}").queue("x".repeat(129)),
                "queue",
                "queue_name_invalid",
            ),
            (
                NewJob::new("k", "{}").priority(-1),
                "priority",
                "priority_out_of_range",
            ),
            (
                NewJob::new("k", "{}").priority(1001),
                "priority",
                "priority_out_of_range",
            ),
            (
                NewJob::new("k", "{}").max_attempts(0),
                "max_attempts",
                "max_attempts_out_of_range",
            ),
            (NewJob::new("k", "{}").tenant("a b"), "tenant", "tenant_invalid"),
            (
                NewJob::new("k", "{}").expires_at(past),
                "expires_at",
                "expiry_in_past",
            ),
            (
                NewJob::new("k", "{}")
                    .delay(Duration::from_secs(60))
                    .expires_in(Duration::from_secs(30)),
                "expires_in",
                "expiry_before_run_at",
            ),
            (
                NewJob::new("k", "{}").unique_key(""),
                "unique_key",
                "unique_key_invalid",
            ),
            (
                NewJob::new("k", "{}").unique_for("k", Duration::ZERO),
                "unique_period",
                "unique_period_invalid",
            ),
            (
                NewJob::new("k", "{}").timeout(Duration::ZERO),
                "timeout",
                "timeout_out_of_range",
            ),
            (NewJob::new("k", "{}").tag("white space"), "tags", "tag_invalid"),
            (NewJob::new("k", "{}").meta("[1]"), "meta", "meta_invalid"),
            (
                NewJob::new("k", "{}").delay(Duration::from_secs(u64::MAX / 4)),
                "delay",
                "time_out_of_range",
            ),
            (
                NewJob::new("k", "{}").retry(RetryPolicy::default().with_jitter(0.0).clone_with_jitter(2.0)),
                "retry.jitter",
                "retry_invalid",
            ),
        ];
        for (job, field, code) in cases {
            let err = check(job.clone()).expect_err(&format!("{job:?} should be refused"));
            assert_eq!((err.field, err.code.as_str()), (field, code), "{job:?}: {err}");
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn a_bad_job_rejects_the_whole_batch_and_is_named() {
        let jobs = vec![
            NewJob::new("k", "{}"),
            NewJob::new("k", "{}"),
            NewJob::new("k", "nope"),
        ];
        let err = validate_batch(jobs, &Limits::default(), now()).unwrap_err();
        assert_eq!(err.index, Some(2));
        assert_eq!(err.field, "args");
        assert!(err.to_string().starts_with("job #2: args:"));
    }

    impl RetryPolicy {
        fn clone_with_jitter(&self, jitter: f64) -> RetryPolicy {
            RetryPolicy {
                jitter,
                ..self.clone()
            }
        }
    }
}
