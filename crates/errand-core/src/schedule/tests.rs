//! Fire-time tests: daylight saving in three zones, and properties against an
//! independent brute-force scan.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::{CronExpr, Schedule, zone};

fn tz(name: &str) -> TimeZone {
    zone(name).expect("zone in the database")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("RFC 3339 timestamp")
}

/// The next `n` fire times after `from`, as RFC 3339 in the zone.
fn fires(expr: &str, zone_name: &str, from: &str, n: usize) -> Vec<String> {
    let z = tz(zone_name);
    let s = Schedule::parse_cron(expr).expect("valid expression");
    s.upcoming(ts(from), &z)
        .take(n)
        .map(|t| t.to_zoned(z.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect()
}

#[test]
fn new_york_spring_forward_fixed_time_fires_at_the_jump() {
    assert_eq!(
        fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 3),
        [
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00"
        ]
    );
    // Several skipped times collapse into one fire; 03:00 itself is the same instant.
    assert_eq!(
        fires(
            "0,30 2,3 * * *",
            "America/New_York",
            "2026-03-08T01:00:00-05:00",
            3
        ),
        [
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:30:00-04:00",
            "2026-03-09T02:00:00-04:00"
        ]
    );
}

#[test]
fn new_york_spring_forward_interval_skips_missing_times() {
    assert_eq!(
        fires("*/30 * * * *", "America/New_York", "2026-03-08T01:00:00-05:00", 3),
        [
            "2026-03-08T01:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:30:00-04:00"
        ]
    );
    // Minute is a wildcard: an interval schedule, so nothing fires on the day 02:xx does not exist.
    assert_eq!(
        fires("* 2 * * *", "America/New_York", "2026-03-08T01:59:00-05:00", 1),
        ["2026-03-09T02:00:00-04:00"]
    );
}

#[test]
fn new_york_fall_back_fixed_fires_once_interval_fires_twice() {
    assert_eq!(
        fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
    assert_eq!(
        fires("*/30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00", 5),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ]
    );
    // Starting inside the second pass of the repeated hour.
    assert_eq!(
        fires("*/30 * * * *", "America/New_York", "2026-11-01T01:10:00-05:00", 2),
        ["2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]
    );
    assert_eq!(
        fires("30 1 * * *", "America/New_York", "2026-11-01T01:10:00-05:00", 1),
        ["2026-11-02T01:30:00-05:00"]
    );
}

#[test]
fn london_both_transitions() {
    assert_eq!(
        fires("30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"]
    );
    assert_eq!(
        fires("30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
    );
    assert_eq!(
        fires("15 * * * *", "Europe/London", "2026-10-24T23:00:00Z", 4),
        [
            "2026-10-25T00:15:00+01:00",
            "2026-10-25T01:15:00+01:00",
            "2026-10-25T01:15:00+00:00",
            "2026-10-25T02:15:00+00:00",
        ]
    );
    assert_eq!(
        fires("15 * * * *", "Europe/London", "2026-03-29T00:00:00Z", 2),
        ["2026-03-29T00:15:00+00:00", "2026-03-29T02:15:00+01:00"]
    );
}

#[test]
fn lord_howe_half_hour_shifts() {
    // Spring forward: 02:00 +10:30 becomes 02:30 +11:00.
    assert_eq!(
        fires(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T12:00:00+10:30",
            2
        ),
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]
    );
    assert_eq!(
        fires(
            "*/10 * * * *",
            "Australia/Lord_Howe",
            "2026-10-04T01:45:00+10:30",
            2
        ),
        ["2026-10-04T01:50:00+10:30", "2026-10-04T02:30:00+11:00"]
    );
    // Fall back: 02:00 +11:00 becomes 01:30 +10:30.
    assert_eq!(
        fires(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T12:00:00+11:00",
            2
        ),
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
    );
    assert_eq!(
        fires(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-05T01:20:00+11:00",
            5
        ),
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ]
    );
}

#[test]
fn seconds_field_and_strictly_after() {
    assert_eq!(
        fires("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-01T00:00:20+00:00",
            "2026-01-01T00:00:40+00:00",
            "2026-01-01T00:01:00+00:00"
        ]
    );
    assert_eq!(
        fires("0 0 * * *", "UTC", "2026-01-01T00:00:00.5Z", 1),
        ["2026-01-02T00:00:00+00:00"]
    );
    assert_eq!(
        fires("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00+00:00"]
    );
    assert_eq!(
        fires("0 12 ? * FRI#2", "UTC", "2026-03-01T00:00:00Z", 1),
        ["2026-03-13T12:00:00+00:00"]
    );
}

#[test]
fn union_of_lines_and_reboot() {
    let s = Schedule::from_every("monday, friday", Some("6pm")).expect("valid");
    let z = tz("UTC");
    let got: Vec<_> = s.upcoming(ts("2026-03-02T00:00:00Z"), &z).take(3).collect();
    assert_eq!(
        got,
        [
            ts("2026-03-02T18:00:00Z"),
            ts("2026-03-06T18:00:00Z"),
            ts("2026-03-09T18:00:00Z")
        ]
    );
    assert_eq!(
        Schedule::parse_cron("@reboot")
            .expect("valid")
            .next_after(ts("2026-01-01T00:00:00Z"), &z),
        None
    );
}

#[test]
fn whole_day_skipped_in_apia() {
    // Samoa skipped 2011-12-30 entirely: a fixed-time job fires once at the jump.
    assert_eq!(
        fires("0 12 * * *", "Pacific/Apia", "2011-12-29T13:00:00-10:00", 2),
        ["2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"]
    );
}

// ---------------------------------------------------------------------------
// Brute force: an independent, deliberately simple statement of the rule.

/// Fires at `t` (a whole minute) if the wall clock there matches and either
/// the schedule is an interval one or this is the first time that wall time
/// occurs; or, for fixed-time schedules, if the clock just jumped forward
/// over a matching wall time.
fn brute_fires_at(e: &CronExpr, z: &TimeZone, t: Timestamp) -> bool {
    let civil = z.to_datetime(t);
    let m = |dt: jiff::civil::DateTime| {
        e.matches(
            i32::from(dt.year()),
            dt.month() as u32,
            dt.day() as u32,
            dt.hour() as u32,
            dt.minute() as u32,
            dt.second() as u32,
        )
    };
    if m(civil) {
        if e.is_interval() {
            return true;
        }
        let first = z
            .to_ambiguous_zoned(civil)
            .earlier()
            .expect("earlier instant")
            .timestamp();
        if first == t {
            return true;
        }
    }
    if e.is_interval() {
        return false;
    }
    let before = z.to_offset(t - SignedDuration::from_secs(60));
    let now = z.to_offset(t);
    let jump = i64::from(now.seconds() - before.seconds());
    if jump <= 0 {
        return false;
    }
    // The wall-clock minutes that were skipped: [civil - jump, civil).
    (1..=jump / 60).any(|k| m(civil - SignedDuration::from_secs(60 * k)))
}

fn brute_next(e: &CronExpr, z: &TimeZone, after: Timestamp, minutes: i64) -> Option<Timestamp> {
    let secs = after.as_second();
    let first = Timestamp::from_second(secs - secs.rem_euclid(60) + 60).expect("in range");
    (0..minutes)
        .map(|i| first + SignedDuration::from_secs(60 * i))
        .find(|&t| brute_fires_at(e, z, t))
}

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/St_Johns",
    "Europe/Berlin",
    "Antarctica/Troll",
    "America/Santiago",
    "Asia/Tehran",
];

fn field(lo: u32, hi: u32, hot: u32) -> impl Strategy<Value = String> {
    let v = move || prop_oneof![lo..=hi, Just(hot), Just(hot.saturating_sub(1).max(lo))];
    prop_oneof![
        Just("*".to_string()),
        (2..=(hi - lo + 1).min(20)).prop_map(|s| format!("*/{s}")),
        v().prop_map(|a| a.to_string()),
        (v(), v()).prop_map(|(a, b)| format!("{},{}", a.min(b), a.max(b))),
        (v(), v()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (v(), v(), 2..7u32).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
    ]
}

fn dom() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("*".to_string()),
        2 => (1..=31u32).prop_map(|d| d.to_string()),
        1 => (1..=28u32, 1..=31u32).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => Just("L".to_string()),
        1 => Just("LW".to_string()),
        1 => (1..=31u32).prop_map(|d| format!("{d}W")),
        1 => Just("?".to_string()),
        1 => (1..=31u32, 2..5u32).prop_map(|(d, s)| format!("{d}/{s}")),
    ]
}

fn month() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("*".to_string()),
        1 => (1..=12u32).prop_map(|m| m.to_string()),
        1 => Just("MAR,APR,OCT,NOV".to_string()),
        1 => Just("*/2".to_string()),
    ]
}

fn dow() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("*".to_string()),
        1 => (0..=7u32).prop_map(|d| d.to_string()),
        1 => Just("MON-FRI".to_string()),
        1 => Just("sun,sat".to_string()),
        1 => (0..=6u32).prop_map(|d| format!("{d}L")),
        1 => (0..=6u32, 1..=5u32).prop_map(|(d, n)| format!("{d}#{n}")),
        1 => Just("*/2".to_string()),
    ]
}

fn expression() -> impl Strategy<Value = CronExpr> {
    (field(0, 59, 30), field(0, 23, 2), dom(), month(), dow())
        .prop_filter_map("never fires", |(mi, h, d, mo, w)| {
            CronExpr::parse(&format!("{mi} {h} {d} {mo} {w}")).ok()
        })
}

/// An instant near one of the zone's transitions (or anywhere in the year).
fn instant_near_transition() -> impl Strategy<Value = (&'static str, Timestamp)> {
    (
        0..ZONES.len(),
        1995..2040i16,
        0..4u32,
        prop_oneof![-150i64..150, -2_000i64..600],
        0..365i64,
    )
        .prop_map(|(zi, year, pick, minutes, day)| {
            let name = ZONES[zi];
            let z = tz(name);
            let start = jiff::civil::date(year, 1, 1)
                .to_zoned(TimeZone::UTC)
                .expect("valid")
                .timestamp();
            let transitions: Vec<Timestamp> = z.following(start).take(2).map(|t| t.timestamp()).collect();
            let base = match transitions.get(pick as usize % 2) {
                Some(&t) if pick < 3 => t,
                _ => start + SignedDuration::from_hours(24 * day),
            };
            (name, base + SignedDuration::from_secs(60 * minutes + 17))
        })
}

const WINDOW_MINUTES: i64 = 3 * 24 * 60;

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn next_equals_brute_force_scan(e in expression(), (name, after) in instant_near_transition()) {
        let z = tz(name);
        let fast = e.next_after(after, &z);
        match brute_next(&e, &z, after, WINDOW_MINUTES) {
            Some(b) => prop_assert_eq!(fast, Some(b), "{} in {} after {}", e, name, after),
            None => {
                let horizon = after + SignedDuration::from_secs(60 * WINDOW_MINUTES);
                prop_assert!(fast.is_none_or(|f| f >= horizon), "{} in {} after {}: {:?}", e, name, after, fast);
            }
        }
    }

    #[test]
    fn fire_times_match_and_strictly_increase(
        e in expression(),
        sec in prop_oneof![Just("0"), Just("*/15"), Just("5,40")],
        (name, after) in instant_near_transition(),
    ) {
        let z = tz(name);
        let six = CronExpr::parse(&format!("{sec} {}", e.as_str())).expect("six fields");
        let mut prev = after;
        for t in Schedule::Cron(vec![six.clone()]).upcoming(after, &z).take(30) {
            prop_assert!(t > prev, "{} not after {}", t, prev);
            let c = z.to_datetime(t);
            let matches = six.matches(
                i32::from(c.year()), c.month() as u32, c.day() as u32,
                c.hour() as u32, c.minute() as u32, c.second() as u32,
            );
            // Otherwise it must be a jump over a gap, for a fixed-time schedule.
            let jumped = z.to_offset(t - SignedDuration::from_nanos(1)) != z.to_offset(t);
            prop_assert!(matches || (jumped && !six.is_interval()), "{} fired at {} in {}", six, t, name);
            prev = t;
        }
    }

    #[test]
    fn cron_parser_never_panics(s in "\\PC{0,40}") {
        let _ = CronExpr::parse(&s);
        let _ = Schedule::parse_cron(&s);
    }

    #[test]
    fn cron_parser_never_panics_on_cron_like_input(s in "[0-9*/,LW#?A-Za-z@ -]{0,30}") {
        if let Ok(e) = CronExpr::parse(&s) {
            let _ = e.next_after(Timestamp::UNIX_EPOCH, &TimeZone::UTC);
        }
    }

    #[test]
    fn every_parser_never_panics(every in "\\PC{0,30}", at in proptest::option::of("\\PC{0,30}")) {
        let _ = Schedule::from_every(&every, at.as_deref());
    }

    #[test]
    fn every_parser_never_panics_on_plausible_input(
        every in "(every |)[0-9]{0,3} ?(minute|hour|day|week|month|year|monday|weekday|reboot|daily)s?",
        at in proptest::option::of("[0-9]{0,3}(:[0-9]{1,3})? ?(am|pm|)(, ?[0-9]{1,2}(st|th)?)?( at)?"),
    ) {
        if let Ok(s) = Schedule::from_every(&every, at.as_deref()) {
            let _ = s.next_after(Timestamp::UNIX_EPOCH, &TimeZone::UTC);
        }
    }
}
