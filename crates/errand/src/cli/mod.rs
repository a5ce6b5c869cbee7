//! The `errand` command line.

pub(crate) mod schedule;
