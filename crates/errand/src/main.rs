//! The `errand` binary.

use clap::{Parser, Subcommand};

mod cli;

/// errand: durable background jobs and schedules.
#[derive(Debug, Parser)]
#[command(name = "errand", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Schedules: next fire times, translation to cron, crontab management.
    #[command(subcommand)]
    Schedule(cli::schedule::ScheduleCmd),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Schedule(cmd) => match cli::schedule::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
    };
    std::process::exit(code);
}
