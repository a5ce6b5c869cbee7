//! Engine integration tests, on the SQLite store.

mod command;
mod harness;
mod maintenance;
mod scheduler;
mod worker;
