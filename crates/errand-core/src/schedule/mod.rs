//! The schedule language: cron expressions and whenever-style readable
//! schedules, next-fire computation in any IANA time zone, and crontab export.
//!
//! - [`cron`]: [`CronExpr`], 5- or 6-field cron expressions with names,
//!   ranges, steps, lists, `L`, `W`, `#` and macros.
//! - [`next`]: fire times in a zone, with Vixie cron's daylight-saving rule.
//! - [`every`]: whenever's readable forms (`every = "3 hours", at = "15"`)
//!   and their translation to cron lines.
//! - [`file`](mod@file): the `[[schedule]]` entries of a TOML file, validated.
//! - [`crontab`]: the marked errand block in a crontab, as pure text
//!   functions, and `command` schedules rendered as crontab lines.
//!
//! The user guide is `docs/SCHEDULES.md`. Nothing here does I/O: the time
//! zone database is jiff's (the system copy, or the one bundled into the
//! binary when the machine has none).

pub mod cron;
pub mod crontab;
pub mod every;
pub mod file;
pub mod next;

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use cron::{CronError, CronExpr, CronField};
pub use every::EveryError;
pub use file::{Action, FileError, OnMissed, OnOverlap, ScheduleDef, ScheduleFile, ScheduleIssue, Timing};

/// When a schedule fires: the union of one or more cron expressions, or
/// once when the scheduler starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `@reboot`: once each time the scheduler starts, never on the clock.
    Reboot,
    /// The union of the fire times of these expressions (never empty).
    Cron(Vec<CronExpr>),
}

impl Schedule {
    /// Parses one cron expression, `@reboot` included.
    pub fn parse_cron(expression: &str) -> Result<Schedule, CronError> {
        if expression.trim().eq_ignore_ascii_case("@reboot") {
            return Ok(Schedule::Reboot);
        }
        Ok(Schedule::Cron(vec![CronExpr::parse(expression)?]))
    }

    /// Builds the schedule of a readable `every` (+ `at`) form; see [`every`].
    pub fn from_every(every: &str, at: Option<&str>) -> Result<Schedule, EveryError> {
        every::parse(every, at)
    }

    /// The first fire time strictly after `after` in zone `tz`; `None` for
    /// `@reboot` or when nothing fires again before year 9999.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Reboot => None,
            Schedule::Cron(exprs) => exprs.iter().filter_map(|e| e.next_after(after, tz)).min(),
        }
    }

    /// The fire times strictly after `after`, in increasing order.
    pub fn upcoming<'a>(
        &'a self,
        after: Timestamp,
        tz: &'a TimeZone,
    ) -> impl Iterator<Item = Timestamp> + 'a {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_after(cursor, tz)?;
            cursor = next;
            Some(next)
        })
    }

    /// The crontab time specs whose fire times together equal this schedule
    /// (five fields each, or `@reboot`); `None` if an expression uses what
    /// Vixie cron cannot express (seconds, `L`, `W`, `#`, `?`).
    pub fn crontab_specs(&self) -> Option<Vec<String>> {
        match self {
            Schedule::Reboot => Some(vec!["@reboot".to_string()]),
            Schedule::Cron(exprs) => exprs.iter().map(CronExpr::vixie_form).collect(),
        }
    }
}

/// An unknown time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone {0:?}: use an IANA name such as \"UTC\", \"Europe/Paris\" or \"America/New_York\""
)]
pub struct ZoneError(pub String);

/// Looks up an IANA time zone by name in jiff's database.
pub fn zone(name: &str) -> Result<TimeZone, ZoneError> {
    if name.is_empty() || name.len() > 128 || name.contains(['\0', '\n']) {
        return Err(ZoneError(name.to_string()));
    }
    jiff::tz::db().get(name).map_err(|_| ZoneError(name.to_string()))
}
