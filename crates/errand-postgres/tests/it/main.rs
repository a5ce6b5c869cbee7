//! PostgreSQL-specific integration tests (the shared behaviour is in the
//! conformance suite, `tests/conformance.rs`). One binary, one module per concern.

#[path = "../support/mod.rs"]
mod support;

mod connect;
mod jobs;
mod leader;
mod listener;
mod migrations;
mod outage;
mod refused;
mod transactions;

use errand_core::validate::{Limits, validate};
use errand_core::{NewJob, Timestamp, ValidJob};

/// 2027-01-15 08:00:00.123456 UTC: a fixed instant with a sub-second part.
fn t0() -> Timestamp {
    Timestamp::from_microsecond(1_800_000_000_123_456).unwrap()
}

/// `secs` after [`t0`].
fn at(secs: i64) -> Timestamp {
    t0().checked_add(jiff::SignedDuration::from_secs(secs)).unwrap()
}

fn valid(job: NewJob, now: Timestamp) -> ValidJob {
    validate(job, &Limits::default(), now).expect("test job validates")
}
