//! Engine integration tests, on the SQLite store.

mod command;
mod completer;
mod harness;
mod maintenance;
mod scheduler;
mod worker;
