//! An injectable clock: domain code takes `now` from a [`Clock`], tests freeze and advance it.

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Now, truncated to the microsecond: the precision stores keep, so a
    /// time read back equals the time written (in rows and in JSON alike).
    fn now(&self) -> Timestamp {
        from_micros(to_micros(Timestamp::now()))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = add(*now, by);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `t + d`, saturating at the largest representable timestamp.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// `t - d`, saturating at the smallest representable timestamp.
pub fn sub(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

/// Microseconds since the Unix epoch: the representation stores use.
pub fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// The inverse of [`to_micros`]; out-of-range values saturate.
pub fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(if us < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_only_when_told() {
        let start = Timestamp::from_second(1_000).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(to_micros(clock.now()), 1_001_500_000);
    }

    #[test]
    fn micros_round_trip() {
        let t = Timestamp::from_microsecond(1_700_000_000_123_456).unwrap();
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
