//! `errand schedule …`: inspect and translate schedules, manage a crontab block.

/// `errand schedule` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ScheduleCmd {}

/// Runs a `schedule` subcommand; returns the process exit code.
pub(crate) fn run(cmd: ScheduleCmd) -> anyhow::Result<i32> {
    match cmd {}
}
