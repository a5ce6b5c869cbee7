//! Next-fire computation in an IANA time zone, with Vixie cron's
//! daylight-saving rules.
//!
//! # The rule
//!
//! A cron expression is matched against the zone's wall clock. Each matching
//! wall-clock time becomes zero, one or two instants:
//!
//! - **It exists once** (the usual case): it fires at that instant.
//! - **It falls in a gap** (the clock jumps forward over it, e.g. 02:30 on
//!   spring-forward day in `America/New_York`):
//!   - a *fixed-time* schedule fires once at the instant of the jump (the
//!     first wall-clock time after the gap: 03:00 EDT). Several skipped
//!     matches collapse into that single fire, and a match exactly at the gap's
//!     end is the same fire.
//!   - an *interval* schedule does not fire for it: the time never happened.
//! - **It happens twice** (the clock goes back over it, e.g. 01:30 on
//!   fall-back day):
//!   - a *fixed-time* schedule fires at the first occurrence only;
//!   - an *interval* schedule fires at both occurrences, so every real
//!     minute of the repeated hour is covered once.
//!
//! An *interval* schedule is one whose minute or hour field starts with `*`
//! (`*/15 * * * *`, `0 * * * *`, `30 */2 * * *`, `@hourly`), or is errand's
//! `start/step` form (`5/15`): exactly Vixie cron's `MIN_STAR | HR_STAR`
//! flags, which are set when the field's text begins with `*`. Everything
//! else (`30 2 * * *`, `0 9-17 * * *`, `0-59/5 2 * * *`) is *fixed-time*.
//!
//! This is what Vixie/Debian cron's main loop does: when the clock jumps
//! forward by more than a few minutes it runs the "wildcard" jobs for the
//! current minute only, then runs the fixed-time jobs for every skipped
//! minute right away; when the clock goes back it runs only the wildcard
//! jobs until wall-clock time catches up with where it was, so fixed-time jobs
//! do not repeat. Being an instant, errand's fire time cannot repeat, so two
//! skipped matches give one fire where cron would start the job twice in the
//! same minute. The rule holds for any transition size, including
//! `Australia/Lord_Howe`'s 30-minute shifts.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::cron::{CronExpr, days_in_month};

/// A civil (wall-clock) time at second precision. Fields may overflow by one
/// (second 60, day 32, …) while searching; the search normalises them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Civil {
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
}

impl Civil {
    fn from_datetime(dt: DateTime) -> Civil {
        Civil {
            y: dt.year() as i32,
            mo: dt.month() as u32,
            d: dt.day() as u32,
            h: dt.hour() as u32,
            mi: dt.minute() as u32,
            s: dt.second() as u32,
        }
    }

    fn to_datetime(self) -> Option<DateTime> {
        DateTime::new(
            i16::try_from(self.y).ok()?,
            self.mo as i8,
            self.d as i8,
            self.h as i8,
            self.mi as i8,
            self.s as i8,
            0,
        )
        .ok()
    }

    fn succ(self) -> Civil {
        Civil {
            s: self.s + 1,
            ..self
        }
    }

    fn next_month(self) -> Civil {
        let (y, mo) = if self.mo >= 12 {
            (self.y + 1, 1)
        } else {
            (self.y, self.mo + 1)
        };
        Civil {
            y,
            mo,
            d: 1,
            h: 0,
            mi: 0,
            s: 0,
        }
    }
}

/// The lowest set bit of `mask` at or above `from`.
fn first_from(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let m = mask & (!0u64 << from);
    (m != 0).then(|| m.trailing_zeros())
}

/// How many years the civil search looks ahead before giving up. The
/// Gregorian calendar repeats every 400 years, so nothing is lost.
const SEARCH_YEARS: i32 = 401;

/// The latest year jiff represents.
const MAX_YEAR: i32 = 9999;

impl CronExpr {
    /// The earliest matching civil time at or after `from`.
    fn next_civil(&self, from: Civil) -> Option<Civil> {
        let limit = from.y.saturating_add(SEARCH_YEARS).min(MAX_YEAR);
        let mut c = from;
        loop {
            if c.y > limit {
                return None;
            }
            if c.mo > 12 || !self.month_matches(c.mo) {
                c = c.next_month();
                continue;
            }
            let Some(d) = first_from(self.day_mask(c.y, c.mo) as u64, c.d) else {
                c = c.next_month();
                continue;
            };
            if d != c.d {
                c = Civil {
                    d,
                    h: 0,
                    mi: 0,
                    s: 0,
                    ..c
                };
            }
            let Some(h) = first_from(self.hours_mask(), c.h) else {
                c = Civil {
                    d: c.d + 1,
                    h: 0,
                    mi: 0,
                    s: 0,
                    ..c
                };
                continue;
            };
            if h != c.h {
                c = Civil { h, mi: 0, s: 0, ..c };
            }
            let Some(mi) = first_from(self.minutes_mask(), c.mi) else {
                c = Civil {
                    h: c.h + 1,
                    mi: 0,
                    s: 0,
                    ..c
                };
                continue;
            };
            if mi != c.mi {
                c = Civil { mi, s: 0, ..c };
            }
            let Some(s) = first_from(self.seconds_mask(), c.s) else {
                c = Civil {
                    mi: c.mi + 1,
                    s: 0,
                    ..c
                };
                continue;
            };
            debug_assert!(c.d <= days_in_month(c.y, c.mo));
            return Some(Civil { s, ..c });
        }
    }

    /// The first fire time strictly after `after`, in zone `tz`, following
    /// the daylight-saving rule of the [`next`](crate::schedule::next) module. `None` when
    /// the expression never fires again before year 9999.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let interval = self.is_interval();
        let after_civil = Civil::from_datetime(tz.to_datetime(after));

        // Stream A: each matching civil time at its first (or only) instant;
        // gap times at the jump for fixed-time schedules. Monotone in civil
        // time, so the first hit past `after` is the earliest.
        let mut start = after_civil;
        let recent_fold = fold_at_or_before(tz, after).filter(|f| after < f.end());
        if let Some(f) = recent_fold {
            // `after` is in the second pass of a fold: the first occurrences
            // of the repeated times are all behind us.
            start = start.max(Civil::from_datetime(f.before.to_datetime(f.at)));
        }
        let a = self.stream_first(start, after, tz, interval);

        if !interval {
            return a;
        }
        // Stream B: second occurrences of repeated times, for interval
        // schedules. Only folds that begin before the stream-A candidate can
        // contribute something earlier.
        let mut best = a;
        let mut folds: Vec<Fold> = recent_fold.into_iter().collect();
        if let Some(limit) = a {
            for tr in tz.following(after) {
                if tr.timestamp() >= limit {
                    break;
                }
                if let Some(f) = Fold::from_transition(tz, tr.timestamp(), tr.offset()) {
                    folds.push(f);
                }
            }
        }
        for f in folds {
            if best.is_some_and(|b| b <= f.at) {
                break;
            }
            let window_start = Civil::from_datetime(f.after.to_datetime(f.at));
            let window_end = Civil::from_datetime(f.before.to_datetime(f.at));
            let mut c = if after >= f.at {
                window_start.max(after_civil)
            } else {
                window_start
            };
            while let Some(m) = self.next_civil(c) {
                if m >= window_end {
                    break;
                }
                let Some(t) = m.to_datetime().and_then(|dt| f.after.to_timestamp(dt).ok()) else {
                    break;
                };
                if t > after {
                    if best.is_none_or(|b| t < b) {
                        best = Some(t);
                    }
                    break;
                }
                c = m.succ();
            }
        }
        best
    }

    fn stream_first(
        &self,
        start: Civil,
        after: Timestamp,
        tz: &TimeZone,
        interval: bool,
    ) -> Option<Timestamp> {
        let mut c = start;
        loop {
            let m = self.next_civil(c)?;
            let dt = m.to_datetime()?;
            let t = match tz.to_ambiguous_timestamp(dt).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok()?,
                AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok()?,
                AmbiguousOffset::Gap { after: post, .. } => {
                    // The jump is the first transition after this wall time
                    // read with the post-gap offset (which lands before it).
                    let probe = post.to_timestamp(dt).ok()?;
                    let jump = tz.following(probe).next()?.timestamp();
                    if !interval && jump > after {
                        return Some(jump);
                    }
                    // Nothing more can come out of this gap: resume at its end.
                    c = Civil::from_datetime(tz.to_datetime(jump)).max(m.succ());
                    continue;
                }
            };
            if t > after {
                return Some(t);
            }
            c = m.succ();
        }
    }
}

/// A transition where the clock goes back, repeating wall-clock times.
#[derive(Debug, Clone, Copy)]
struct Fold {
    /// The instant of the transition.
    at: Timestamp,
    /// The offset before it (the larger one).
    before: Offset,
    /// The offset after it.
    after: Offset,
}

impl Fold {
    fn from_transition(tz: &TimeZone, at: Timestamp, after: Offset) -> Option<Fold> {
        let before = tz.to_offset(at.checked_sub(SignedDuration::from_nanos(1)).ok()?);
        (before.seconds() > after.seconds()).then_some(Fold { at, before, after })
    }

    /// The end of the second pass: when the wall clock reaches where it was
    /// at the transition.
    fn end(&self) -> Timestamp {
        let len = i64::from(self.before.seconds() - self.after.seconds());
        self.at
            .saturating_add(SignedDuration::from_secs(len))
            .unwrap_or(self.at)
    }
}

/// The last transition at or before `t`, if it is a fold.
fn fold_at_or_before(tz: &TimeZone, t: Timestamp) -> Option<Fold> {
    let probe = t.checked_add(SignedDuration::from_nanos(1)).ok()?;
    let tr = tz.preceding(probe).next()?;
    Fold::from_transition(tz, tr.timestamp(), tr.offset())
}
