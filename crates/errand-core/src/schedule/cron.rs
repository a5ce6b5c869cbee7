//! Cron expressions: parsing and matching against civil (wall-clock) time.
//!
//! Five fields (`minute hour day-of-month month day-of-week`) or six with
//! seconds first. Each field is a comma-separated list of items:
//!
//! | item | meaning |
//! | --- | --- |
//! | `*` | every value (`?` too, in day-of-month and day-of-week) |
//! | `5`, `MON`, `jan` | one value; names are case-insensitive, day-of-week 7 is Sunday |
//! | `1-5`, `MON-FRI` | an inclusive range (start ≤ end) |
//! | `*/15`, `10-40/7`, `5/15` | a step over `*`, a range, or from a start to the field's maximum |
//! | `L` | day-of-month: the last day of the month |
//! | `15W`, `LW` | day-of-month: the weekday (Mon–Fri) nearest the 15th / the last weekday, never leaving the month |
//! | `5L`, `FRIL` | day-of-week: the last Friday of the month |
//! | `FRI#2` | day-of-week: the second Friday of the month (1–5) |
//!
//! Macros: `@yearly`/`@annually` (`0 0 1 1 *`), `@monthly` (`0 0 1 * *`),
//! `@weekly` (`0 0 * * 0`), `@daily`/`@midnight` (`0 0 * * *`), `@hourly`
//! (`0 * * * *`). `@reboot` is not a time pattern; see
//! [`Schedule`](super::Schedule).
//!
//! Day matching follows Vixie cron exactly: when the day-of-month field and
//! the day-of-week field both start with something other than `*` (or `?`),
//! a day matches if *either* field matches; otherwise both must match. Like
//! Vixie cron, a field such as `*/2` starts with `*` and so counts as
//! unrestricted for this rule (`0 0 */2 * MON` runs on odd days that are
//! Mondays).

use std::fmt;

/// One field of a cron expression, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CronField {
    /// The expression as a whole (field count, macros).
    Expression,
    /// Seconds (0–59), only in six-field expressions.
    Second,
    /// Minutes (0–59).
    Minute,
    /// Hours (0–23).
    Hour,
    /// Day of month (1–31).
    DayOfMonth,
    /// Month (1–12 or JAN–DEC).
    Month,
    /// Day of week (0–7 or SUN–SAT; 0 and 7 are Sunday).
    DayOfWeek,
}

impl CronField {
    /// The field's name as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Expression => "expression",
            CronField::Second => "second",
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        }
    }

    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Second | CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
            CronField::Expression => (0, 0),
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cron expression that cannot be parsed, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expression:?}: {field}: {message}")]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// The field at fault.
    pub field: CronField,
    /// What is wrong and what is allowed.
    pub message: String,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The day-of-month field: plain days plus the `L`/`W` forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct DomSpec {
    /// Bit `d` set: day `d` (1–31) matches.
    days: u32,
    /// `L`: the last day of the month.
    last: bool,
    /// `LW`: the last weekday of the month.
    last_weekday: bool,
    /// Bit `d` set: `dW`, the weekday nearest day `d`.
    nearest_weekday: u32,
}

/// The day-of-week field: plain weekdays plus `nL` and `n#k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct DowSpec {
    /// Bit `w` set (0 = Sunday): that weekday matches.
    days: u8,
    /// Bit `w` set: the last such weekday of the month matches.
    last: u8,
    /// `nth[w]` bit `k` set (1–5): the k-th such weekday of the month matches.
    nth: [u8; 7],
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CronExpr {
    source: String,
    has_seconds: bool,
    seconds: u64,
    minutes: u64,
    hours: u32,
    dom: DomSpec,
    months: u16,
    dow: DowSpec,
    dom_star: bool,
    dow_star: bool,
    minute_star: bool,
    hour_star: bool,
}

impl CronExpr {
    /// Parses a 5- or 6-field expression or a macro (`@daily`, …). `@reboot`
    /// is refused here: it has no fire times (see [`super::Schedule::parse_cron`]).
    pub fn parse(expression: &str) -> Result<CronExpr, CronError> {
        let err = |field: CronField, message: String| CronError {
            expression: expression.to_string(),
            field,
            message,
        };
        let trimmed = expression.trim();
        if let Some(name) = trimmed.strip_prefix('@') {
            let expanded = match name.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                "reboot" => {
                    return Err(err(
                        CronField::Expression,
                        "@reboot fires when the scheduler starts and has no fire times".into(),
                    ));
                }
                _ => {
                    return Err(err(
                        CronField::Expression,
                        format!(
                            "unknown macro @{name}; expected one of @yearly, @annually, @monthly, \
                             @weekly, @daily, @midnight, @hourly, @reboot"
                        ),
                    ));
                }
            };
            let mut expr = CronExpr::parse(expanded).map_err(|mut e| {
                e.expression = expression.to_string();
                e
            })?;
            expr.source = trimmed.to_string();
            return Ok(expr);
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let (has_seconds, sec, rest) = match fields.len() {
            5 => (false, "0", &fields[..]),
            6 => (true, fields[0], &fields[1..]),
            0 => return Err(err(CronField::Expression, "the expression is empty".into())),
            n => {
                return Err(err(
                    CronField::Expression,
                    format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds \
                         first), found {n}"
                    ),
                ));
            }
        };
        let simple = |field: CronField, text: &str| -> Result<u64, CronError> {
            parse_simple_field(field, text).map_err(|m| err(field, m))
        };
        let seconds = simple(CronField::Second, sec)?;
        let minutes = simple(CronField::Minute, rest[0])?;
        let hours = simple(CronField::Hour, rest[1])? as u32;
        let dom = parse_dom(rest[2]).map_err(|m| err(CronField::DayOfMonth, m))?;
        let months = simple(CronField::Month, rest[3])? as u16;
        let dow = parse_dow(rest[4]).map_err(|m| err(CronField::DayOfWeek, m))?;
        let is_star = |t: &str| t.starts_with('*') || t.starts_with('?');
        let expr = CronExpr {
            source: fields.join(" "),
            has_seconds,
            seconds,
            minutes,
            hours,
            dom,
            months,
            dow,
            dom_star: is_star(rest[2]),
            dow_star: is_star(rest[4]),
            minute_star: is_every(rest[0]),
            hour_star: is_every(rest[1]),
        };
        if !expr.can_ever_fire() {
            return Err(err(
                CronField::DayOfMonth,
                "no month selected by the month field has the days selected, so it never fires".into(),
            ));
        }
        Ok(expr)
    }

    /// The expression as written (whitespace normalised; macros kept).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the expression has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// True when this is an *interval* schedule in Vixie cron's sense: its
    /// minute field starts with `*` or its hour field starts with `*` (or is a
    /// `start/step` without an end). Interval schedules keep real-time spacing
    /// across daylight-saving changes; all others are *fixed-time* schedules.
    /// See [`super::next`] for the rule.
    pub fn is_interval(&self) -> bool {
        self.minute_star || self.hour_star
    }

    /// True when the expression uses only what Vixie cron understands
    /// (no seconds, `L`, `W`, `#` or `?`), so it can go in a crontab.
    pub fn is_vixie_compatible(&self) -> bool {
        let d = self.dom;
        let w = self.dow;
        !self.has_seconds
            && !d.last
            && !d.last_weekday
            && d.nearest_weekday == 0
            && w.last == 0
            && w.nth.iter().all(|&n| n == 0)
            && !self.source.contains('?')
            && !self.source.starts_with('@')
            // Vixie cron has no `start/step` without an end.
            && self.source.split_whitespace().all(|f| {
                f.split(',').all(|item| match item.split_once('/') {
                    Some((base, _)) => base == "*" || base.contains('-'),
                    None => true,
                })
            })
    }

    /// The five-field form of this expression (macros expanded), or `None`
    /// when it has a seconds field other than `0`.
    pub fn five_field(&self) -> Option<String> {
        if self.source.starts_with('@') {
            return Some(
                match self.source.to_ascii_lowercase().as_str() {
                    "@yearly" | "@annually" => "0 0 1 1 *",
                    "@monthly" => "0 0 1 * *",
                    "@weekly" => "0 0 * * 0",
                    "@hourly" => "0 * * * *",
                    _ => "0 0 * * *",
                }
                .to_string(),
            );
        }
        if !self.has_seconds {
            return Some(self.source.clone());
        }
        let mut parts = self.source.split_whitespace();
        let sec = parts.next()?;
        (sec == "0" || sec == "00").then(|| parts.collect::<Vec<_>>().join(" "))
    }

    pub(crate) fn seconds_mask(&self) -> u64 {
        self.seconds
    }

    pub(crate) fn minutes_mask(&self) -> u64 {
        self.minutes
    }

    pub(crate) fn hours_mask(&self) -> u64 {
        u64::from(self.hours)
    }

    /// The expression as Vixie cron writes it, for a crontab: five fields,
    /// `start/step` spelled `start-max/step`; `None` when Vixie cron cannot
    /// express it (seconds, `L`, `W`, `#`, `?`).
    pub fn vixie_form(&self) -> Option<String> {
        let five = self.five_field()?;
        let fields = [
            CronField::Minute,
            CronField::Hour,
            CronField::DayOfMonth,
            CronField::Month,
            CronField::DayOfWeek,
        ];
        let rewritten: Vec<String> = five
            .split_whitespace()
            .zip(fields)
            .map(|(text, field)| {
                text.split(',')
                    .map(|item| match item.split_once('/') {
                        Some((base, step)) if base != "*" && !base.contains('-') => {
                            format!("{base}-{}/{step}", field.bounds().1)
                        }
                        _ => item.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let line = rewritten.join(" ");
        CronExpr::parse(&line)
            .ok()
            .filter(CronExpr::is_vixie_compatible)
            .map(|_| line)
    }

    /// True when the time of day matches (hour, minute, second).
    pub(crate) fn time_matches(&self, h: u32, mi: u32, s: u32) -> bool {
        bit(self.hours as u64, h) && bit(self.minutes, mi) && bit(self.seconds, s)
    }

    /// True when the month matches.
    pub(crate) fn month_matches(&self, month: u32) -> bool {
        bit(self.months as u64, month)
    }

    /// True when the civil date matches the day-of-month, month and
    /// day-of-week fields (Vixie's either-or rule included).
    pub fn date_matches(&self, year: i32, month: u32, day: u32) -> bool {
        self.month_matches(month) && bit(self.day_mask(year, month) as u64, day)
    }

    /// True when the civil date and time matches every field.
    pub fn matches(&self, year: i32, month: u32, day: u32, h: u32, mi: u32, s: u32) -> bool {
        self.date_matches(year, month, day) && self.time_matches(h, mi, s)
    }

    /// Bit `d` set: day `d` of that month matches.
    pub(crate) fn day_mask(&self, year: i32, month: u32) -> u32 {
        let len = days_in_month(year, month);
        let all: u32 = ((1u64 << (len + 1)) - 2) as u32;
        let first_wd = weekday(year, month, 1);
        let dom_mask = self.dom_mask(len, first_wd) & all;
        let dow_mask = self.dow_mask(len, first_wd) & all;
        if self.dom_star || self.dow_star {
            dom_mask & dow_mask
        } else {
            dom_mask | dow_mask
        }
    }

    fn dom_mask(&self, len: u32, first_wd: u32) -> u32 {
        let d = self.dom;
        let mut mask = d.days;
        let wd_of = |day: u32| (first_wd + day - 1) % 7;
        if d.last {
            mask |= 1 << len;
        }
        if d.last_weekday {
            let mut day = len;
            while matches!(wd_of(day), 0 | 6) {
                day -= 1;
            }
            mask |= 1 << day;
        }
        let mut nw = d.nearest_weekday;
        while nw != 0 {
            let n = nw.trailing_zeros();
            nw &= nw - 1;
            if n > len {
                continue;
            }
            let target = match wd_of(n) {
                6 if n == 1 => 3,       // Saturday the 1st: Monday the 3rd.
                6 => n - 1,             // Saturday: the Friday before.
                0 if n == len => n - 2, // Sunday the last day: the Friday before.
                0 => n + 1,             // Sunday: the Monday after.
                _ => n,
            };
            mask |= 1 << target;
        }
        mask
    }

    fn dow_mask(&self, len: u32, first_wd: u32) -> u32 {
        let w = self.dow;
        let mut mask = 0u32;
        for day in 1..=len {
            let wd = (first_wd + day - 1) % 7;
            let nth = (day - 1) / 7 + 1;
            if w.days & (1 << wd) != 0
                || w.nth[wd as usize] & (1 << nth) != 0
                || (w.last & (1 << wd) != 0 && day + 7 > len)
            {
                mask |= 1 << day;
            }
        }
        mask
    }

    /// Whether any date at all can match: the check that rejects
    /// `0 0 30 2 *`. Weekday forms always match some month eventually (every
    /// month with 29 or more days has a fifth occurrence of some weekday,
    /// and over the years every weekday takes its turn).
    fn can_ever_fire(&self) -> bool {
        let w = self.dow;
        let dow_any = w.days != 0 || w.last != 0 || w.nth.iter().any(|&n| n != 0);
        let d = self.dom;
        let max_len = |m: u32| if m == 2 { 29 } else { days_in_month(2001, m) };
        let dom_any_in = |m: u32| {
            let len = max_len(m);
            d.last || d.last_weekday || (d.days | d.nearest_weekday) & (((1u64 << (len + 1)) - 2) as u32) != 0
        };
        let months = (1..=12).filter(|&m| self.month_matches(m));
        if self.dom_star || self.dow_star {
            // Both must match: dow restricted by `*`-prefixed steps is still
            // any weekday set, which every month contains.
            months.into_iter().any(dom_any_in) && dow_any
        } else {
            months.into_iter().any(|m| dom_any_in(m) || dow_any)
        }
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for CronExpr {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

/// Vixie cron's `MIN_STAR`/`HR_STAR` test (the field starts with `*`),
/// extended to errand's `start/step` form, which means "every step from start".
fn is_every(field: &str) -> bool {
    field.starts_with('*') || (field.contains('/') && !field.contains([',', '-']))
}

fn bit(mask: u64, i: u32) -> bool {
    i < 64 && mask & (1u64 << i) != 0
}

/// Days in a month of the proleptic Gregorian calendar.
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Weekday of a date, 0 = Sunday (days-from-civil arithmetic).
pub(crate) fn weekday(year: i32, month: u32, day: u32) -> u32 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468; // days since 1970-01-01, a Thursday
    (days + 4).rem_euclid(7) as u32
}

fn name_value(field: CronField, text: &str) -> Option<u32> {
    let names: &[&str] = match field {
        CronField::Month => &MONTH_NAMES,
        CronField::DayOfWeek => &DAY_NAMES,
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    let i = names.iter().position(|n| *n == lower)? as u32;
    Some(if field == CronField::Month { i + 1 } else { i })
}

/// Parses one value: a number in range or a name.
fn parse_value(field: CronField, text: &str) -> Result<u32, String> {
    let (lo, hi) = field.bounds();
    if text.is_empty() {
        return Err("a value is missing".into());
    }
    if let Some(v) = name_value(field, text) {
        return Ok(v);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        let hint = match field {
            CronField::Month => " (use 1-12 or JAN-DEC)",
            CronField::DayOfWeek => " (use 0-7 or SUN-SAT)",
            _ => "",
        };
        return Err(format!("{text:?} is not a number{hint}"));
    }
    match text.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("{text} is out of range {lo}-{hi}")),
    }
}

/// Parses `*`, `a`, `a-b`, each with an optional `/step`, into a bit mask.
fn parse_range_item(field: CronField, item: &str) -> Result<u64, String> {
    let (lo, hi) = field.bounds();
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(format!("step {s:?} in {item:?} is not a positive number"));
            }
            let span = hi - lo + 1;
            match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= span => (b, Some(n)),
                _ => return Err(format!("step {s} in {item:?} must be between 1 and {span}")),
            }
        }
        None => (item, None),
    };
    let (start, end) =
        if base == "*" || (base == "?" && matches!(field, CronField::DayOfMonth | CronField::DayOfWeek)) {
            (lo, hi)
        } else if let Some((a, b)) = base.split_once('-') {
            let a = parse_value(field, a)?;
            let b = parse_value(field, b)?;
            if a > b {
                return Err(format!("range {base:?} starts after it ends"));
            }
            (a, b)
        } else {
            let a = parse_value(field, base)?;
            match step {
                Some(_) => (a, hi),
                None => (a, a),
            }
        };
    let step = step.unwrap_or(1);
    let mut mask = 0u64;
    let mut v = start;
    while v <= end {
        mask |= 1 << v;
        v += step;
    }
    if field == CronField::DayOfWeek && mask & (1 << 7) != 0 {
        mask = (mask & !(1 << 7)) | 1;
    }
    Ok(mask)
}

fn list_items(text: &str) -> Result<Vec<&str>, String> {
    if text.is_empty() {
        return Err("the field is empty".into());
    }
    let items: Vec<&str> = text.split(',').collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(format!("{text:?} has an empty list item"));
    }
    Ok(items)
}

fn parse_simple_field(field: CronField, text: &str) -> Result<u64, String> {
    let mut mask = 0;
    for item in list_items(text)? {
        mask |= parse_range_item(field, item).map_err(|m| {
            let upper = item.to_ascii_uppercase();
            if item == "?" || upper == "L" || upper.ends_with('W') || upper.contains('#') {
                format!("{item:?}: ?, L, W and # are only allowed in day-of-month and day-of-week")
            } else {
                m
            }
        })?;
    }
    Ok(mask)
}

fn parse_dom(text: &str) -> Result<DomSpec, String> {
    let mut spec = DomSpec::default();
    for item in list_items(text)? {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            spec.last = true;
        } else if upper == "LW" || upper == "WL" {
            spec.last_weekday = true;
        } else if let Some(day) = upper.strip_suffix('W') {
            let d = parse_value(CronField::DayOfMonth, day)
                .map_err(|m| format!("{item:?}: W needs a day of month before it: {m}"))?;
            spec.nearest_weekday |= 1 << d;
        } else if upper.contains(['L', 'W', '#']) {
            return Err(format!(
                "{item:?}: in day-of-month use L (last day), LW (last weekday) or nW (weekday nearest day n)"
            ));
        } else {
            spec.days |= parse_range_item(CronField::DayOfMonth, item)? as u32;
        }
    }
    Ok(spec)
}

fn parse_dow(text: &str) -> Result<DowSpec, String> {
    let mut spec = DowSpec::default();
    let weekday = |t: &str, item: &str| -> Result<u32, String> {
        parse_value(CronField::DayOfWeek, t)
            .map(|v| v % 7)
            .map_err(|m| format!("{item:?}: {m}"))
    };
    for item in list_items(text)? {
        if let Some((day, nth)) = item.split_once('#') {
            let wd = weekday(day, item)?;
            let n = match nth.parse::<u32>() {
                Ok(n) if (1..=5).contains(&n) && nth.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{item:?}: the number after # must be 1-5")),
            };
            spec.nth[wd as usize] |= 1 << n;
        } else if item.len() > 1
            && (item.ends_with('L') || item.ends_with('l'))
            && name_value(CronField::DayOfWeek, item).is_none()
        {
            let wd = weekday(&item[..item.len() - 1], item)?;
            spec.last |= 1 << wd;
        } else if item.eq_ignore_ascii_case("L") {
            return Err("L alone is ambiguous in day-of-week; write 5L for the last Friday".into());
        } else {
            spec.days |= parse_range_item(CronField::DayOfWeek, item)? as u8;
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CronExpr {
        CronExpr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> CronError {
        CronExpr::parse(s).expect_err(s)
    }

    #[test]
    fn weekday_arithmetic_agrees_with_known_dates() {
        assert_eq!(weekday(1970, 1, 1), 4);
        assert_eq!(weekday(2000, 2, 29), 2);
        assert_eq!(weekday(2026, 3, 8), 0);
        assert_eq!(weekday(1600, 1, 1), 6);
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let e = p("*/5 * * * *");
        assert!(bit(e.minutes, 0) && bit(e.minutes, 55) && !bit(e.minutes, 1));
        assert_eq!(err("0 10-40/7 * * *").field, CronField::Hour);
        let e = p("5/15 * * * *");
        assert_eq!(e.minutes, (1 << 5) | (1 << 20) | (1 << 35) | (1 << 50));
        let e = p("10-40/7 * * * *");
        assert_eq!(
            e.minutes,
            (1 << 10) | (1 << 17) | (1 << 24) | (1 << 31) | (1 << 38)
        );
        let e = p("0 0 * JAN-MAR,DEC MON-FRI");
        assert_eq!(e.months, 0b1_0000_0000_1110);
        assert_eq!(e.dow.days, 0b011_1110);
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        assert_eq!(p("0 0 * * 7").dow.days, 1);
        assert_eq!(p("0 0 * * 5-7").dow.days, 0b110_0001);
        assert_eq!(p("0 0 * * sun").dow.days, 1);
    }

    #[test]
    fn vixie_either_or_rule() {
        // 2026-03-01 is a Sunday.
        let e = p("30 4 1,15 * 5");
        assert!(e.date_matches(2026, 3, 1)); // the 1st
        assert!(e.date_matches(2026, 3, 6)); // a Friday
        assert!(!e.date_matches(2026, 3, 7));
        // Star-prefixed dom: both must match.
        let e = p("0 0 */2 * 1");
        assert!(!e.date_matches(2026, 3, 2)); // Monday but even day
        assert!(e.date_matches(2026, 3, 9)); // Monday and odd day
        assert!(!e.date_matches(2026, 3, 3));
        let e = p("0 0 ? * 1");
        assert!(e.date_matches(2026, 3, 2) && !e.date_matches(2026, 3, 3));
    }

    #[test]
    fn last_nearest_and_nth() {
        let e = p("0 0 L * *");
        assert!(e.date_matches(2024, 2, 29) && !e.date_matches(2024, 2, 28));
        assert!(e.date_matches(2023, 2, 28));
        // 2026-02-15 is a Sunday: 15W is Monday the 16th.
        let e = p("0 0 15W * *");
        assert!(e.date_matches(2026, 2, 16) && !e.date_matches(2026, 2, 15));
        // 2026-08-01 is a Saturday: 1W is Monday the 3rd, not July 31st.
        let e = p("0 0 1W * *");
        assert!(e.date_matches(2026, 8, 3));
        // 2026-05-31 is a Sunday: LW is Friday the 29th.
        let e = p("0 0 LW * *");
        assert!(e.date_matches(2026, 5, 29) && !e.date_matches(2026, 5, 31));
        // 31W never matches in a 30-day month.
        let e = p("0 0 31W * *");
        assert!((1..=30).all(|d| !e.date_matches(2026, 4, d)));
        let e = p("0 0 ? * FRI#2");
        assert!(e.date_matches(2026, 3, 13) && !e.date_matches(2026, 3, 6));
        let e = p("0 0 ? * 5L");
        assert!(e.date_matches(2026, 3, 27) && !e.date_matches(2026, 3, 20));
        let e = p("0 0 ? * friL");
        assert!(e.date_matches(2026, 3, 27));
    }

    #[test]
    fn macros_and_seconds() {
        assert_eq!(p("@daily").five_field().as_deref(), Some("0 0 * * *"));
        assert_eq!(p("@ANNUALLY").five_field().as_deref(), Some("0 0 1 1 *"));
        let e = p("*/10 * * * * *");
        assert!(e.has_seconds() && e.time_matches(0, 0, 50) && !e.time_matches(0, 0, 51));
        assert_eq!(e.five_field(), None);
        assert_eq!(p("0 5 * * * *").five_field().as_deref(), Some("5 * * * *"));
        assert!(err("@reboot").message.contains("scheduler starts"));
    }

    #[test]
    fn interval_classification_follows_vixie_star_flags() {
        assert!(p("*/15 * * * *").is_interval());
        assert!(p("0 * * * *").is_interval());
        assert!(p("30 */2 * * *").is_interval());
        assert!(p("@hourly").is_interval());
        assert!(!p("30 2 * * *").is_interval());
        assert!(!p("0-59/5 2 * * *").is_interval());
        assert!(!p("@daily").is_interval());
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let e = err("60 * * * *");
        assert_eq!(e.field, CronField::Minute);
        assert!(e.message.contains("out of range 0-59"), "{e}");
        assert_eq!(err("* * * *").field, CronField::Expression);
        assert_eq!(err("* 24 * * *").field, CronField::Hour);
        assert_eq!(err("* * 0 * *").field, CronField::DayOfMonth);
        assert_eq!(err("* * * 13 *").field, CronField::Month);
        assert_eq!(err("* * * FOO *").field, CronField::Month);
        assert_eq!(err("* * * * 8").field, CronField::DayOfWeek);
        assert!(err("*/0 * * * *").message.contains("step"));
        assert!(err("5-3 * * * *").message.contains("starts after it ends"));
        assert!(err("1,,2 * * * *").message.contains("empty"));
        assert_eq!(err("? * * * *").field, CronField::Minute);
        assert_eq!(err("* * * * FRI#6").field, CronField::DayOfWeek);
        assert_eq!(err("* * * * L").field, CronField::DayOfWeek);
        assert_eq!(err("L * * * *").field, CronField::Minute);
        assert!(err("0 0 30 2 *").message.contains("never fires"));
        assert!(err("0 0 31 4,6,9,11 *").message.contains("never fires"));
        assert!(
            err("99999999999999999999 * * * *")
                .message
                .contains("out of range")
        );
        assert!(err("@weird").message.contains("unknown macro"));
        let e = err("1 2 3");
        assert!(e.to_string().contains("expected 5 fields"), "{e}");
    }

    #[test]
    fn feb_29_and_rare_days_still_parse() {
        p("0 0 29 2 *");
        p("0 0 31 1-12 *");
        p("0 0 30 2 MON"); // either-or: every Monday in February
    }

    #[test]
    fn vixie_compatibility() {
        assert!(p("*/5 1-5 1,15 * MON-FRI").is_vixie_compatible());
        assert!(!p("0 0 L * *").is_vixie_compatible());
        assert!(!p("0 0 ? * 1").is_vixie_compatible());
        assert!(!p("5/15 * * * *").is_vixie_compatible());
        assert!(!p("0 0 0 * * *").is_vixie_compatible());
    }
}
