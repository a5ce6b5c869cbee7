//! The conformance scenarios, one `pub async fn` each, grouped by the
//! [`Store`](crate::Store) methods they exercise.
//!
//! Every scenario takes a fresh, empty store, drives it with explicit
//! `now` instants (whole microseconds, never the system clock) and panics
//! with a message naming the broken expectation. None sleeps;
//! [`wait_for_change_returns_within_its_timeout`] is the only one that
//! waits, for a short timeout. Where the trait's docs leave a choice, the
//! scenario's doc comment states the behaviour expected (what a River,
//! Oban or Sidekiq user would assume).

mod claim;
mod complete;
mod insert;
mod lease;
mod maintenance;
mod operator;
mod queues;
mod read;
mod schedules;
mod transitions;
mod unique;

pub use claim::*;
pub use complete::*;
pub use insert::*;
pub use lease::*;
pub use maintenance::*;
pub use operator::*;
pub use queues::*;
pub use read::*;
pub use schedules::*;
pub use transitions::*;
pub use unique::*;
