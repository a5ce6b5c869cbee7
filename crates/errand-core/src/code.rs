//! The stable machine-readable codes of every error errand reports.
//!
//! A code names what went wrong in a way programs can rely on: the CLI
//! prints it under `--json` and maps it to its exit code, and the HTTP API
//! serves the same codes. Messages are for people and may change; a code
//! does not change within a major version. `docs/ERRORS.md` lists them all
//! (a test keeps that page and [`ErrorCode::ALL`] equal).

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// A stable machine-readable error code (`queue_name_invalid`,
        /// `not_found`, …). Shown and serialized as its snake_case text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of `docs/ERRORS.md`'s sections.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code's text (`queue_name_invalid`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    // Invalid input.
    /// The command line is malformed (an unknown flag, a missing value).
    InvalidArgument = "invalid_argument",
    /// The configuration (a file, an environment variable, a flag, a
    /// store's settings) breaks a rule.
    ConfigInvalid = "config_invalid",
    /// A worker or maintenance setting is outside its range.
    SettingOutOfRange = "setting_out_of_range",
    /// The heartbeat is more than half the lease.
    HeartbeatTooSlow = "heartbeat_too_slow",
    /// A worker was given no queue to serve.
    NoQueues = "no_queues",
    /// A queue name is not a valid name.
    QueueNameInvalid = "queue_name_invalid",
    /// A job kind is not a valid name.
    KindInvalid = "kind_invalid",
    /// A tenant id is not a valid name.
    TenantInvalid = "tenant_invalid",
    /// The args are not valid JSON.
    ArgsInvalidJson = "args_invalid_json",
    /// The args exceed the size limit.
    ArgsTooLarge = "args_too_large",
    /// The args' file or stream could not be read.
    ArgsUnreadable = "args_unreadable",
    /// A `command` job's args break a rule.
    CommandArgsInvalid = "command_args_invalid",
    /// The metadata is not a JSON object.
    MetaInvalid = "meta_invalid",
    /// The metadata exceeds the size limit.
    MetaTooLarge = "meta_too_large",
    /// The priority is out of range.
    PriorityOutOfRange = "priority_out_of_range",
    /// Max attempts is out of range.
    MaxAttemptsOutOfRange = "max_attempts_out_of_range",
    /// The timeout is zero or too long.
    TimeoutOutOfRange = "timeout_out_of_range",
    /// A time is not RFC 3339.
    TimeInvalid = "time_invalid",
    /// A time or delay is too far in the future.
    TimeOutOfRange = "time_out_of_range",
    /// A duration is malformed.
    DurationInvalid = "duration_invalid",
    /// A duration is negative.
    DurationNegative = "duration_negative",
    /// The expiry has already passed.
    ExpiryInPast = "expiry_in_past",
    /// The job would expire before it may run.
    ExpiryBeforeRunAt = "expiry_before_run_at",
    /// The unique key is malformed.
    UniqueKeyInvalid = "unique_key_invalid",
    /// The unique period is zero or too long.
    UniquePeriodInvalid = "unique_period_invalid",
    /// A unique period was given without a unique key.
    UniqueForWithoutKey = "unique_for_without_key",
    /// A tag is malformed.
    TagInvalid = "tag_invalid",
    /// More tags than allowed.
    TooManyTags = "too_many_tags",
    /// A retry policy breaks a rule.
    RetryInvalid = "retry_invalid",
    /// A job state name is unknown.
    StateInvalid = "state_invalid",
    /// A job id is not a positive integer.
    IdInvalid = "id_invalid",
    /// A page size is out of range.
    LimitOutOfRange = "limit_out_of_range",
    /// A batch holds more jobs than allowed.
    BatchTooLarge = "batch_too_large",
    /// A batch enqueue was given single-job flags.
    BatchWithJobFlags = "batch_with_job_flags",
    /// A line of a batch file is not a job object.
    LineInvalid = "line_invalid",
    /// A line of a batch file is too long.
    LineTooLong = "line_too_long",
    /// A benchmark names no store backend.
    BackendInvalid = "backend_invalid",
    /// A PostgreSQL benchmark was given no database.
    DatabaseRequired = "database_required",
    /// A benchmark figure is out of range.
    OutOfRange = "out_of_range",
    /// A benchmark beside finished jobs was asked to delete them.
    FinishedNeedsKeptJobs = "finished_needs_kept_jobs",
    /// A schedule cannot be written as a crontab line.
    NotExportable = "not_exportable",
    /// The crontab holds a malformed errand block.
    CrontabInvalid = "crontab_invalid",
    /// Reserved for the HTTP API: the request carries no valid credentials.
    Unauthorized = "unauthorized",

    // Not found, or not allowed now.
    /// No such job (or outside the caller's tenant), or no such queue.
    NotFound = "not_found",
    /// The job's or the queue's state does not allow the action.
    InvalidState = "invalid_state",
    /// Retrying the job would revive a unique key another unfinished job holds.
    UniqueKeyHeld = "unique_key_held",
    /// The caller's lease on the job is gone: another attempt owns it, or it finished.
    LeaseLost = "lease_lost",
    /// The caller's scope or credentials do not allow the action: a
    /// tenant-scoped caller pausing, resuming or removing a queue every
    /// tenant shares; later, an HTTP token whose role lacks the right.
    Forbidden = "forbidden",

    // Failures.
    /// The store cannot be reached or opened, is closed, or is newer than this errand.
    StoreUnavailable = "store_unavailable",
    /// The store has no errand schema.
    StoreUninitialized = "store_uninitialized",
    /// The store is damaged or cannot be written.
    StoreUnusable = "store_unusable",
    /// The store failed otherwise.
    StoreError = "store_error",
    /// The `crontab` program failed.
    CrontabFailed = "crontab_failed",
    /// Reading or writing a file or stream failed.
    IoError = "io_error",
    /// Any other failure.
    Failed = "failed",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not one of errand's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an errand error code")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                !text.is_empty()
                    && text.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    && !text.starts_with('_')
                    && !text.ends_with('_'),
                "{text} is not snake_case"
            );
            assert_eq!(code.to_string(), text);
            assert_eq!(text.parse::<ErrorCode>(), Ok(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert!("no_such_code".parse::<ErrorCode>().is_err());
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
    }
}
