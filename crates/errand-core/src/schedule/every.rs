//! whenever's readable schedules: `every` (+ `at`) → cron lines.
//!
//! `every` is one of `minute`, `N minutes`, `hour`, `N hours`, `day`,
//! `N days`, `week`, `month`, `N months`, `year`, a weekday name or a
//! comma-separated list of them (`monday, friday`), `weekday`, `weekend`,
//! `reboot`, a shortcut (`hourly`, `daily`, `midnight`, `weekly`, `monthly`,
//! `yearly`, `annually`), or a raw cron expression. `at` is a time (`4:30 am`,
//! `4:30am`, `12pm`, `noon`, `midnight`, `16:45`), a date with a time
//! (`15th at 4am`, `May 15th at 3:30pm`, `5/15 at 9am`), a plain integer, or a
//! comma-separated list of these; each `every` item × each `at` item is one
//! cron line, as in whenever.
//!
//! The translation reproduces whenever's `Whenever::Output::Cron` (1.x) line
//! for line: a unit is converted to seconds (a month is 30 days, a year 365.25
//! days) and then classified by size, so `90 minutes` is read as whenever
//! reads it (hourly) and `45 minutes` becomes `45 * * * *`. A plain integer
//! `at` is the minute for minute- and hour-sized schedules, the hour for
//! day-sized, weekly and weekday ones, the day of month for month-sized ones,
//! and the month for yearly ones. A time given to an hour-sized schedule
//! contributes only its minute.
//!
//! Where errand differs from whenever, on purpose (also in `docs/SCHEDULES.md`):
//!
//! 1. `week` is weekly: `0 0 * * 0` (Sunday, like `@weekly`); whenever writes
//!    `0 0 1,8,15,22 * *`. `N weeks` for N ≥ 2 is refused: no cron line fires
//!    every N weeks (whenever writes days of the month).
//! 2. An `at` that cannot be parsed is an error; whenever (through Chronic)
//!    silently uses midnight.
//! 3. A time without am/pm is read on the 24-hour clock (`4:30` is 04:30);
//!    Chronic guesses 16:30.
//! 4. A day of month in a time (`15th at 4am`) is honoured by month-sized
//!    schedules; whenever ignores it unless a month name or `M/D` is present.
//! 5. A plain integer `at` is the hour for weekday schedules (`every =
//!    "monday", at = "9"` is `0 9 * * 1`); whenever ignores it.
//! 6. Shortcuts translate to five fields (`hourly` → `0 * * * *`), not to
//!    `@hourly`: the same fire times, in the one format `translate` prints.
//! 7. Inputs whenever crashes on or turns into invalid cron lines are errors:
//!    a time for a minute-sized schedule, an `at` out of range, a date without
//!    a time (Chronic reads it as noon), a day without a month for a yearly
//!    schedule, `at` with a raw cron expression, and sizes past one year.
//! 8. `midnight` on a date is the start of that day (`March 22nd at
//!    midnight` is day 22 at 00:00); Chronic moves it to the next day.
//! 9. A raw cron expression is printed with single spaces, and macros as
//!    five fields.
//! 10. Exactly one week however written (`7 days`, `168 hours`) is weekly,
//!     like `week`; whenever gives them all one line.
//! 11. Ruby syntax (`1.day`, `2.hours`, `:monday`) is an error naming
//!     errand's form (`day`, `2 hours`, `monday`).
//! 12. `start of the month` (or `beginning of month`) in `at` is day 1, and
//!     `15th of the month` day 15; `end of the month` is refused (cron's `L`
//!     has no five-field form).

use super::Schedule;
use super::cron::CronExpr;

/// A readable schedule that cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EveryError {
    /// `every` or `at`.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn every_err(message: impl Into<String>) -> EveryError {
    EveryError {
        field: "every",
        message: message.into(),
    }
}

fn at_err(message: impl Into<String>) -> EveryError {
    EveryError {
        field: "at",
        message: message.into(),
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;
const WEEK: u64 = 604_800;
const MONTH: u64 = 2_592_000;
const YEAR: u64 = 31_557_600;

const FORMS: &str = "expected minute, N minutes, hour, N hours, day, N days, week, month, N months, year, \
                     a weekday name or list (monday, friday), weekday, weekend, reboot, hourly, daily, \
                     midnight, weekly, monthly, yearly, or a cron expression";

/// One item of an `at` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// A plain integer, meaning depends on the schedule's size.
    Int(u32),
    /// A time of day, perhaps with a day and month.
    Time {
        hour: u32,
        minute: u32,
        day: Option<u32>,
        month: Option<u32>,
    },
}

/// One item of an `every` list, after classification.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Every {
    Reboot,
    Shortcut(&'static str),
    /// A duration in whenever's seconds.
    Seconds(u64),
    Week,
    /// A day-of-week field: `1-5`, `6,0` or a single day.
    Days(String),
}

/// Translates a readable schedule into the [`Schedule`] of its cron lines.
pub fn parse(every: &str, at: Option<&str>) -> Result<Schedule, EveryError> {
    let every = every.trim();
    if every.is_empty() {
        return Err(every_err(format!("the schedule is empty; {FORMS}")));
    }
    let at = at.map(str::trim).filter(|a| !a.is_empty());
    let tokens = every.split_whitespace().count();
    if every.starts_with('@') || tokens == 5 || tokens == 6 {
        if at.is_some() {
            return Err(at_err(
                "at cannot be combined with a cron expression; put the time in the expression",
            ));
        }
        return Schedule::parse_cron(every).map_err(|e| every_err(format!("{}: {}", e.field, e.message)));
    }
    let items = every
        .split(',')
        .map(parse_every_item)
        .collect::<Result<Vec<_>, _>>()?;
    if items.len() > 1 && !items.iter().all(|i| matches!(i, Every::Days(_))) {
        return Err(every_err(format!(
            "only weekday names can be listed with commas, got {every:?}"
        )));
    }
    let ats: Vec<Option<At>> = match at {
        None => vec![None],
        Some(a) => a
            .split(',')
            .map(|s| parse_at(s.trim()).map(Some))
            .collect::<Result<_, _>>()?,
    };
    if items == [Every::Reboot] {
        return if ats.iter().all(|a| a.is_none() || *a == Some(At::Int(0))) {
            Ok(Schedule::Reboot)
        } else {
            Err(at_err("at cannot be used with reboot"))
        };
    }
    let mut exprs = Vec::new();
    for item in &items {
        for a in &ats {
            let line = line_for(item, *a)?;
            let expr = CronExpr::parse(&line)
                .map_err(|e| at_err(format!("gives the invalid cron line {line:?}: {}", e.message)))?;
            exprs.push(expr);
        }
    }
    Ok(Schedule::Cron(exprs))
}

/// What a whenever user wrote in Ruby (`1.day`, `2.hours`, `:monday`)
/// written errand's way (`day`, `2 hours`, `monday`), if `s` is such a form.
fn ruby_form(s: &str) -> Option<String> {
    if let Some(symbol) = s.strip_prefix(':') {
        return Some(symbol.to_string());
    }
    let (n, unit) = s.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || unit_seconds(unit).is_none() {
        return None;
    }
    let singular = unit.strip_suffix('s').unwrap_or(unit);
    Some(if n.trim_start_matches('0') == "1" {
        singular.to_string()
    } else {
        format!("{n} {singular}s")
    })
}

fn parse_every_item(raw: &str) -> Result<Every, EveryError> {
    let s = raw.trim().to_ascii_lowercase();
    if let Some(suggestion) = ruby_form(&s) {
        // Suggest errand's form only when errand takes it (`2.weeks` has no
        // cron line either way): say why not otherwise.
        return Err(every_err(match parse_every_item(&suggestion) {
            Ok(_) => format!("{:?} is whenever's Ruby syntax; write {suggestion:?}", raw.trim()),
            Err(e) => format!(
                "{:?} is whenever's Ruby syntax, and errand's {suggestion:?} is refused too: {}",
                raw.trim(),
                e.message
            ),
        }));
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    match words.as_slice() {
        [] => Err(every_err(format!("{raw:?} has an empty list item"))),
        ["reboot"] => Ok(Every::Reboot),
        ["hourly"] => Ok(Every::Shortcut("0 * * * *")),
        ["daily"] | ["midnight"] => Ok(Every::Shortcut("0 0 * * *")),
        ["weekly"] => Ok(Every::Shortcut("0 0 * * 0")),
        ["monthly"] => Ok(Every::Shortcut("0 0 1 * *")),
        ["yearly"] | ["annually"] => Ok(Every::Shortcut("0 0 1 1 *")),
        ["weekday" | "weekdays"] => Ok(Every::Days("1-5".into())),
        ["weekend" | "weekends"] => Ok(Every::Days("6,0".into())),
        [unit] => {
            if let Some(d) = day_of_week(unit) {
                return Ok(Every::Days(d.to_string()));
            }
            unit_seconds(unit)
                .map(|(secs, week)| if week { Every::Week } else { Every::Seconds(secs) })
                .ok_or_else(|| every_err(format!("unknown schedule {:?}; {FORMS}", raw.trim())))
        }
        [n, unit] => {
            let Some((secs, week)) = unit_seconds(unit) else {
                return Err(every_err(format!(
                    "unknown unit {unit:?} in {:?}; {FORMS}",
                    raw.trim()
                )));
            };
            let n: u64 = match n.parse::<u64>() {
                Ok(v) if n.bytes().all(|b| b.is_ascii_digit()) => v,
                _ => {
                    return Err(every_err(format!(
                        "{n:?} is not a whole number in {:?}",
                        raw.trim()
                    )));
                }
            };
            if n == 0 {
                return Err(every_err("the interval must be at least 1 minute"));
            }
            if week {
                return match n {
                    1 => Ok(Every::Week),
                    _ => Err(every_err(format!(
                        "every {n} weeks cannot be written as cron lines; use \"week\" (weekly, on Sunday), \
                         a weekday name, or a cron expression"
                    ))),
                };
            }
            // One week is weekly however it is written (`7 days`, `168
            // hours`), as `week` is: whenever gives them all the same line.
            n.checked_mul(secs)
                .map(|total| {
                    if total == WEEK {
                        Every::Week
                    } else {
                        Every::Seconds(total)
                    }
                })
                .ok_or_else(|| every_err(format!("{:?} is too long", raw.trim())))
        }
        _ => Err(every_err(format!("unknown schedule {:?}; {FORMS}", raw.trim()))),
    }
}

/// Seconds in a unit, whenever's way; `true` for weeks (errand's own rule).
fn unit_seconds(unit: &str) -> Option<(u64, bool)> {
    Some(match unit {
        "minute" | "minutes" => (MINUTE, false),
        "hour" | "hours" => (HOUR, false),
        "day" | "days" => (DAY, false),
        "week" | "weeks" => (WEEK, true),
        "month" | "months" => (MONTH, false),
        "year" | "years" => (YEAR, false),
        _ => return None,
    })
}

fn day_of_week(word: &str) -> Option<u32> {
    const FULL: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let w = word
        .strip_suffix('s')
        .filter(|w| w.ends_with("day"))
        .unwrap_or(word);
    // whenever matches names by their first three letters: "tues", "thurs" and "THU" all work.
    FULL.iter()
        .position(|d| w.len() >= 3 && d.starts_with(w))
        .map(|i| i as u32)
}

/// whenever's `comma_separated_timing`: the values of a field for "every
/// `frequency`" between `start` and `max`.
fn comma_separated_timing(frequency: u64, max: u64, start: u64) -> String {
    if frequency == 0 {
        return start.to_string();
    }
    if frequency == 1 {
        return "*".into();
    }
    if frequency > (max as f64 * 0.5).ceil() as u64 {
        return frequency.to_string();
    }
    let mut first = start;
    if !(max + 1).is_multiple_of(frequency) && start == 0 {
        first += frequency;
    }
    let mut occurrences = (max as f64 / frequency as f64).round() as usize;
    if start == 0 {
        occurrences += 1;
    }
    let values: Vec<String> = (first..=max)
        .step_by(frequency as usize)
        .take(occurrences)
        .map(|v| v.to_string())
        .collect();
    values.join(",")
}

fn int_in(at: u32, lo: u32, hi: u32, what: &str) -> Result<u32, EveryError> {
    if (lo..=hi).contains(&at) {
        Ok(at)
    } else {
        Err(at_err(format!("{what} must be between {lo}-{hi}, {at} given")))
    }
}

/// The cron line of one `every` item at one `at` item.
fn line_for(every: &Every, at: Option<At>) -> Result<String, EveryError> {
    match *every {
        Every::Reboot => Err(every_err("reboot cannot be listed with other schedules")),
        Every::Shortcut(line) => match at {
            None | Some(At::Int(0)) => Ok(line.to_string()),
            Some(_) => Err(at_err(
                "at cannot be used with the shortcuts (hourly, daily, …), as in whenever; \
                 use \"hour\", \"day\", \"week\", \"month\" or \"year\" with at",
            )),
        },
        Every::Week => {
            let (minute, hour) = match at {
                None => (0, 0),
                Some(At::Int(h)) => (0, int_in(h, 0, 23, "Hour")?),
                Some(At::Time { hour, minute, .. }) => (minute, hour),
            };
            Ok(format!("{minute} {hour} * * 0"))
        }
        Every::Days(ref dow) => {
            let (minute, hour) = match at {
                None => (0, 0),
                Some(At::Int(h)) => (0, int_in(h, 0, 23, "Hour")?),
                Some(At::Time { hour, minute, .. }) => (minute, hour),
            };
            Ok(format!("{minute} {hour} * * {dow}"))
        }
        Every::Seconds(secs) if secs < MINUTE => Err(every_err("the interval must be at least 1 minute")),
        Every::Seconds(secs) if secs < HOUR => {
            let start = match at {
                None => 0,
                Some(At::Int(m)) => int_in(m, 0, 59, "Minute")?,
                Some(At::Time { .. }) => {
                    return Err(at_err(
                        "a minute-sized schedule takes a minute offset (at = \"2\"), not a time",
                    ));
                }
            };
            Ok(format!(
                "{} * * * *",
                comma_separated_timing(secs / MINUTE, 59, u64::from(start))
            ))
        }
        Every::Seconds(secs) if secs < DAY => {
            let minute = match at {
                None => 0,
                Some(At::Int(m)) => int_in(m, 0, 59, "Minute")?,
                Some(At::Time { minute, .. }) => minute,
            };
            Ok(format!(
                "{minute} {} * * *",
                comma_separated_timing(secs / HOUR, 23, 0)
            ))
        }
        Every::Seconds(secs) if secs < MONTH => {
            let (minute, hour) = match at {
                None => (0, 0),
                Some(At::Int(h)) => (0, int_in(h, 0, 23, "Hour")?),
                Some(At::Time { hour, minute, .. }) => (minute, hour),
            };
            Ok(format!(
                "{minute} {hour} {} * *",
                comma_separated_timing(secs / DAY, 31, 1)
            ))
        }
        Every::Seconds(secs) if secs < YEAR => {
            let (minute, hour, day) = match at {
                None | Some(At::Int(0)) => (0, 0, 1),
                Some(At::Int(d)) => (0, 0, int_in(d, 1, 31, "Day")?),
                Some(At::Time {
                    hour, minute, day, ..
                }) => (minute, hour, day.unwrap_or(1)),
            };
            Ok(format!(
                "{minute} {hour} {day} {} *",
                comma_separated_timing(secs / MONTH, 12, 1)
            ))
        }
        Every::Seconds(YEAR) => {
            let (minute, hour, day, month) = match at {
                None | Some(At::Int(0)) => (0, 0, 1, 1),
                Some(At::Int(m)) => (0, 0, 1, int_in(m, 1, 12, "Month")?),
                Some(At::Time {
                    hour,
                    minute,
                    day: None,
                    ..
                }) => (minute, hour, 1, 1),
                Some(At::Time {
                    hour,
                    minute,
                    day: Some(day),
                    month: Some(month),
                }) => (minute, hour, day, month),
                Some(At::Time {
                    day: Some(_),
                    month: None,
                    ..
                }) => {
                    return Err(at_err(
                        "a yearly schedule needs a month with its day, e.g. \"May 15th at 3:30pm\"",
                    ));
                }
            };
            Ok(format!("{minute} {hour} {day} {month} *"))
        }
        Every::Seconds(_) => Err(every_err(
            "longer than a month but not exactly a year: use at most 12 months, or \"year\"",
        )),
    }
}

fn parse_at(raw: &str) -> Result<At, EveryError> {
    let bad = || {
        at_err(format!(
            "cannot read {raw:?}; expected a time (4:30 am, 4:30pm, 12pm, noon, midnight, 16:45), \
             a date with a time (15th at 4am, May 15th at 3:30pm), or a whole number"
        ))
    };
    if raw.is_empty() {
        return Err(at_err("an item of the at list is empty"));
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 9999)
            .map(At::Int)
            .ok_or_else(bad);
    }
    let s = raw.to_ascii_lowercase();
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.windows(2).any(|w| w == ["end", "of"]) {
        return Err(at_err(format!(
            "{raw:?}: the last day of the month has no five-field cron form; \
             use cron = \"M H L * *\" (L is the last day) instead of every and at"
        )));
    }
    // "<date> at <time>", "<date> <time>", "<time>".
    let (date_words, time_words): (&[&str], &[&str]) = match words.iter().position(|w| *w == "at") {
        Some(i) => (&words[..i], &words[i + 1..]),
        None => {
            let split = (0..=words.len()).find(|&i| {
                (i == 0 || parse_date(&words[..i]).is_some()) && parse_time(&words[i..].concat()).is_some()
            });
            match split {
                Some(i) => (&words[..i], &words[i..]),
                None if parse_date(&words).is_some() => {
                    return Err(at_err(format!(
                        "{raw:?} has a date but no time; add one, e.g. \"{raw} at 4am\""
                    )));
                }
                None => return Err(bad()),
            }
        }
    };
    let (hour, minute) = parse_time(&time_words.concat()).ok_or_else(bad)?;
    let (day, month) = if date_words.is_empty() {
        (None, None)
    } else {
        let (d, m) = parse_date(date_words).ok_or_else(bad)?;
        (Some(d), m)
    };
    Ok(At::Time {
        hour,
        minute,
        day,
        month,
    })
}

/// `15th`, `May 15th`, `may 15`, `15 may`, `5/15`: (day, month).
fn parse_date(words: &[&str]) -> Option<(u32, Option<u32>)> {
    let month_of = |w: &str| -> Option<u32> {
        let w = w.trim_end_matches('.');
        if w.len() < 3 {
            return None;
        }
        FULL_MONTHS
            .iter()
            .position(|m| m.starts_with(w))
            .map(|i| i as u32 + 1)
    };
    let ordinal = |w: &str| -> Option<u32> {
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let suffix = &w[digits.len()..];
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let d: u32 = digits.parse().ok()?;
        let expected = match (d % 100, d % 10) {
            (11..=13, _) => "th",
            (_, 1) => "st",
            (_, 2) => "nd",
            (_, 3) => "rd",
            _ => "th",
        };
        (suffix.is_empty() || suffix == expected).then_some(d)
    };
    let valid = |d: u32, m: Option<u32>| {
        let max = m.map_or(31, |m| super::cron::days_in_month(2000, m));
        (1..=max).contains(&d).then_some((d, m))
    };
    match words {
        // "start of the month", "beginning of month", "15th of the month",
        // each also after "the".
        [first, "of", "the", "month"]
        | [first, "of", "month"]
        | ["the", first, "of", "the", "month"]
        | ["the", first, "of", "month"] => match *first {
            "start" | "beginning" => Some((1, None)),
            w => valid(ordinal(w)?, None),
        },
        [w] if w.contains('/') => {
            let (m, d) = w.split_once('/')?;
            let m: u32 = m.parse().ok().filter(|m| (1..=12).contains(m))?;
            valid(d.parse().ok()?, Some(m))
        }
        [w] if w.ends_with(|c: char| c.is_ascii_alphabetic()) => valid(ordinal(w)?, None),
        ["the", w] => valid(ordinal(w)?, None),
        [m, d] => match month_of(m) {
            Some(m) => valid(ordinal(d)?, Some(m)),
            None => valid(ordinal(m)?, Some(month_of(d)?)),
        },
        _ => None,
    }
}

const FULL_MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `4:30am`, `4:30 am` (already joined), `12pm`, `4pm`, `noon`, `midnight`,
/// `16:45`, `4:30` (24-hour clock): (hour, minute).
fn parse_time(s: &str) -> Option<(u32, u32)> {
    match s {
        "noon" | "midday" => return Some((12, 0)),
        "midnight" => return Some((0, 0)),
        _ => {}
    }
    let (clock, meridiem) = if let Some(c) = s.strip_suffix("am").or_else(|| s.strip_suffix("a.m.")) {
        (c, Some(false))
    } else if let Some(c) = s.strip_suffix("pm").or_else(|| s.strip_suffix("p.m.")) {
        (c, Some(true))
    } else {
        (s, None)
    };
    let num = |t: &str, max_len: usize| -> Option<u32> {
        (!t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())?
    };
    let (h, m) = match clock.split_once(':') {
        Some((h, m)) if m.len() == 2 => (num(h, 2)?, num(m, 2)?),
        Some(_) => return None,
        None if meridiem.is_some() => (num(clock, 2)?, 0),
        None => return None,
    };
    if m > 59 {
        return None;
    }
    match meridiem {
        Some(pm) if (1..=12).contains(&h) => Some(((h % 12) + if pm { 12 } else { 0 }, m)),
        Some(_) => None,
        None if h <= 23 => Some((h, m)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(every: &str, at: Option<&str>) -> Vec<String> {
        match parse(every, at).unwrap_or_else(|e| panic!("{every:?} at {at:?}: {e}")) {
            Schedule::Reboot => vec!["@reboot".into()],
            Schedule::Cron(exprs) => exprs.iter().map(|e| e.as_str().to_string()).collect(),
        }
    }

    fn err(every: &str, at: Option<&str>) -> EveryError {
        parse(every, at).expect_err(&format!("{every:?} at {at:?} should fail"))
    }

    /// whenever 1.x output for the same schedules (computed by hand from its
    /// algorithm and checked against its test suite's expectations).
    #[test]
    fn translation_table_matches_whenever() {
        let table: &[(&str, Option<&str>, &[&str])] = &[
            ("minute", None, &["* * * * *"]),
            ("1 minute", None, &["* * * * *"]),
            ("5 minutes", None, &["0,5,10,15,20,25,30,35,40,45,50,55 * * * *"]),
            (
                "5 minutes",
                Some("2"),
                &["2,7,12,17,22,27,32,37,42,47,52,57 * * * *"],
            ),
            ("7 minutes", None, &["7,14,21,28,35,42,49,56 * * * *"]),
            ("10 minutes", None, &["0,10,20,30,40,50 * * * *"]),
            ("30 minutes", None, &["0,30 * * * *"]),
            ("45 minutes", None, &["45 * * * *"]),
            ("hour", None, &["0 * * * *"]),
            ("hour", Some("15"), &["15 * * * *"]),
            ("2 hours", None, &["0 0,2,4,6,8,10,12,14,16,18,20,22 * * *"]),
            (
                "2 hours",
                Some("4:45pm"),
                &["45 0,2,4,6,8,10,12,14,16,18,20,22 * * *"],
            ),
            ("3 hours", Some("15"), &["15 0,3,6,9,12,15,18,21 * * *"]),
            ("5 hours", None, &["0 5,10,15,20 * * *"]),
            ("13 hours", None, &["0 13 * * *"]),
            ("90 minutes", None, &["0 * * * *"]),
            ("day", None, &["0 0 * * *"]),
            ("day", Some("4:30 am"), &["30 4 * * *"]),
            ("day", Some("4:30am, 6pm"), &["30 4 * * *", "0 18 * * *"]),
            ("day", Some("12pm"), &["0 12 * * *"]),
            ("day", Some("12am"), &["0 0 * * *"]),
            ("day", Some("noon"), &["0 12 * * *"]),
            ("day", Some("midnight"), &["0 0 * * *"]),
            ("day", Some("16:45"), &["45 16 * * *"]),
            ("day", Some("3"), &["0 3 * * *"]),
            ("24 hours", None, &["0 0 * * *"]),
            (
                "2 days",
                None,
                &["0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * *"],
            ),
            (
                "3 days",
                Some("5:15pm"),
                &["15 17 1,4,7,10,13,16,19,22,25,28 * *"],
            ),
            ("20 days", None, &["0 0 20 * *"]),
            ("month", None, &["0 0 1 * *"]),
            ("month", Some("15"), &["0 0 15 * *"]),
            ("month", Some("4am"), &["0 4 1 * *"]),
            ("2 months", None, &["0 0 1 1,3,5,7,9,11 *"]),
            ("3 months", Some("5"), &["0 0 5 1,4,7,10 *"]),
            ("7 months", None, &["0 0 1 7 *"]),
            ("12 months", None, &["0 0 1 12 *"]),
            ("30 days", None, &["0 0 1 * *"]),
            ("month", Some("May 15th at 3:30pm"), &["30 15 15 * *"]),
            ("year", None, &["0 0 1 1 *"]),
            ("year", Some("4"), &["0 0 1 4 *"]),
            ("year", Some("May 15th at 3:30pm"), &["30 15 15 5 *"]),
            ("year", Some("5/15 at 9am"), &["0 9 15 5 *"]),
            ("year", Some("4:30pm"), &["30 16 1 1 *"]),
            ("sunday", None, &["0 0 * * 0"]),
            ("Monday", Some("9:30 am"), &["30 9 * * 1"]),
            ("tues", None, &["0 0 * * 2"]),
            ("THURS", Some("5:55PM"), &["55 17 * * 4"]),
            ("Weekends", Some("6:02PM"), &["2 18 * * 6,0"]),
            ("month", Some("February 23rd at 2am"), &["0 2 23 * *"]),
            ("month", Some("Feb 11 11PM"), &["0 23 11 * *"]),
            ("hour", Some("January 21 2:01 PM"), &["1 * * * *"]),
            ("year", Some("march 22nd at 1:01 am"), &["1 1 22 3 *"]),
            ("32 minutes", None, &["32 * * * *"]),
            ("17 hours", None, &["0 17 * * *"]),
            ("4 days", None, &["0 0 1,5,9,13,17,21,25,29 * *"]),
            ("16 days", None, &["0 0 1,17 * *"]),
            ("5 months", None, &["0 0 1 1,6 *"]),
            ("monday, friday", Some("6pm"), &["0 18 * * 1", "0 18 * * 5"]),
            ("weekday", Some("9am"), &["0 9 * * 1-5"]),
            ("weekend", None, &["0 0 * * 6,0"]),
            ("reboot", None, &["@reboot"]),
            ("hourly", None, &["0 * * * *"]),
            ("daily", None, &["0 0 * * *"]),
            ("midnight", None, &["0 0 * * *"]),
            ("weekly", None, &["0 0 * * 0"]),
            ("monthly", None, &["0 0 1 * *"]),
            ("yearly", None, &["0 0 1 1 *"]),
            ("0 0 27-31 * *", None, &["0 0 27-31 * *"]),
        ];
        for (every, at, want) in table {
            assert_eq!(lines(every, *at), *want, "every {every:?} at {at:?}");
        }
    }

    #[test]
    fn errand_differs_from_whenever_where_whenever_is_wrong() {
        assert_eq!(lines("week", None), ["0 0 * * 0"]);
        assert_eq!(lines("1 week", Some("4:30am")), ["30 4 * * 0"]);
        assert!(err("2 weeks", None).message.contains("cannot be written"));
        assert_eq!(lines("day", Some("4:30")), ["30 4 * * *"]);
        assert_eq!(lines("month", Some("15th at 4am")), ["0 4 15 * *"]);
        assert_eq!(lines("monday", Some("9")), ["0 9 * * 1"]);
        let e = err("day", Some("tomorrowish"));
        assert_eq!(e.field, "at");
        assert!(e.message.contains("cannot read"), "{e}");
    }

    #[test]
    fn out_of_range_and_meaningless_inputs_are_errors() {
        assert!(
            err("5 minutes", Some("60"))
                .message
                .contains("Minute must be between 0-59")
        );
        assert!(err("hour", Some("60")).message.contains("Minute"));
        assert!(
            err("day", Some("24"))
                .message
                .contains("Hour must be between 0-23")
        );
        assert!(
            err("month", Some("32"))
                .message
                .contains("Day must be between 1-31")
        );
        assert!(
            err("year", Some("13"))
                .message
                .contains("Month must be between 1-12")
        );
        assert!(err("5 minutes", Some("4pm")).message.contains("minute offset"));
        assert_eq!(lines("day", Some("15th at 4am")), ["0 4 * * *"]); // as whenever: the date is ignored
        assert!(err("year", Some("15th at 4am")).message.contains("needs a month"));
        assert!(err("month", Some("15th")).message.contains("no time"));
        assert!(err("daily", Some("4am")).message.contains("shortcuts"));
        assert!(err("0 0 * * *", Some("4am")).message.contains("cron expression"));
        assert!(err("13 months", None).message.contains("at most 12 months"));
        assert!(err("2 years", None).message.contains("at most 12 months"));
        assert!(err("0 minutes", None).message.contains("at least 1 minute"));
        assert_eq!(err("fortnight", None).field, "every");
        assert!(err("fortnight", None).message.contains("expected minute"));
        assert!(err("day, monday", None).message.contains("only weekday names"));
        assert!(err("day", Some("13pm")).message.contains("cannot read"));
        assert!(err("day", Some("4:5")).message.contains("cannot read"));
        assert!(
            err("year", Some("Feb 30th at 1am"))
                .message
                .contains("cannot read")
        );
        assert_eq!(lines("daily", Some("0")), ["0 0 * * *"]);
        assert!(
            err("99999999999999999999 minutes", None)
                .message
                .contains("whole number")
        );
    }

    #[test]
    fn whenever_users_forms() {
        // "start of the month" is day 1, as whenever reads it.
        assert_eq!(lines("month", Some("start of the month at 3am")), ["0 3 1 * *"]);
        assert_eq!(
            lines("month", Some("beginning of month at 3:15pm")),
            ["15 15 1 * *"]
        );
        assert_eq!(
            lines("2 months", Some("15th of the month at 1am")),
            ["0 1 15 1,3,5,7,9,11 *"]
        );
        assert_eq!(lines("month", Some("the 2nd of the month 4am")), ["0 4 2 * *"]);
        assert_eq!(
            lines("month", Some("the start of the month at 3am")),
            ["0 3 1 * *"]
        );
        assert_eq!(lines("day", Some("start of the month at 3am")), ["0 3 * * *"]);
        assert!(
            err("month", Some("end of the month at 3am"))
                .message
                .contains("L * *")
        );
        assert!(
            err("year", Some("start of the month at 3am"))
                .message
                .contains("needs a month")
        );
        // Ruby syntax gets the errand form.
        for (ruby, want) in [
            ("1.day", "\"day\""),
            ("2.hours", "\"2 hours\""),
            ("1.hours", "\"hour\""),
            ("5.minute", "\"5 minutes\""),
            (":monday", "\"monday\""),
        ] {
            let e = err(ruby, None);
            assert_eq!(e.field, "every");
            assert!(e.message.ends_with(&format!("write {want}")), "{ruby}: {e}");
        }
        assert!(err("monday, :friday", None).message.contains("write \"friday\""));
        // A Ruby form errand refuses in its own spelling too is not suggested.
        for (ruby, why) in [
            ("2.weeks", "cannot be written as cron lines"),
            (":fooday", "unknown schedule"),
        ] {
            let m = err(ruby, None).message;
            assert!(m.contains("is refused too") && m.contains(why), "{ruby}: {m}");
            assert!(!m.contains("; write"), "{ruby}: {m}");
        }
        // One week is weekly however it is written.
        for week in ["7 days", "168 hours", "10080 minutes", "1 week", "week"] {
            assert_eq!(lines(week, Some("4am")), ["0 4 * * 0"], "{week}");
        }
        assert_eq!(lines("14 days", None), ["0 0 1,15 * *"]);
        assert_eq!(lines("6 days", None), ["0 0 1,7,13,19,25 * *"]);
    }

    #[test]
    fn comma_separated_timing_matches_whenever() {
        assert_eq!(comma_separated_timing(1, 59, 0), "*");
        assert_eq!(comma_separated_timing(0, 59, 3), "3");
        assert_eq!(comma_separated_timing(15, 59, 0), "0,15,30,45");
        assert_eq!(comma_separated_timing(4, 23, 0), "0,4,8,12,16,20");
        assert_eq!(comma_separated_timing(7, 31, 1), "1,8,15,22");
        assert_eq!(comma_separated_timing(14, 31, 1), "1,15");
    }

    #[test]
    fn at_forms() {
        assert_eq!(parse_time("4:30am"), Some((4, 30)));
        assert_eq!(parse_time("12pm"), Some((12, 0)));
        assert_eq!(parse_time("12:15am"), Some((0, 15)));
        assert_eq!(parse_time("0:15"), Some((0, 15)));
        assert_eq!(parse_time("0am"), None);
        assert_eq!(
            parse_at("4:30 PM"),
            Ok(At::Time {
                hour: 16,
                minute: 30,
                day: None,
                month: None
            })
        );
        assert_eq!(
            parse_at("December 31st at 11:59pm"),
            Ok(At::Time {
                hour: 23,
                minute: 59,
                day: Some(31),
                month: Some(12)
            })
        );
        assert_eq!(
            parse_at("15 may 3pm"),
            Ok(At::Time {
                hour: 15,
                minute: 0,
                day: Some(15),
                month: Some(5)
            })
        );
        assert!(parse_at("2nd at 1am").is_ok());
        assert!(parse_at("2th at 1am").is_err());
    }
}
