//! The `errand` command line: arguments (clap), configuration, and one
//! module per command family.

pub(crate) mod batch;
pub(crate) mod bench;
pub(crate) mod bench_admin;
pub(crate) mod bench_baseline;
pub(crate) mod bench_schedule;
pub(crate) mod config;
pub(crate) mod jobs;
pub(crate) mod output;
pub(crate) mod retry;
pub(crate) mod run;
pub(crate) mod schedule;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// errand: durable background jobs and schedules.
///
/// With no configuration it keeps its jobs in ./errand.db (SQLite).
#[derive(Debug, Parser)]
#[command(name = "errand", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The heading of the options every command takes, apart from its own.
const GLOBAL_HEADING: &str = "Global options";

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub(crate) struct Global {
    /// The store: sqlite://PATH (default sqlite://errand.db) or postgres://USER@HOST/DB.
    // Its value may hold a password: `--help` must not show it.
    #[arg(long, global = true, env = "ERRAND_DATABASE_URL", hide_env_values = true)]
    pub(crate) database: Option<String>,
    /// The configuration file (default: ./errand.toml when it exists).
    #[arg(long, global = true, env = "ERRAND_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// SQLite commit durability: normal (survives process crashes) or full (also power loss).
    #[arg(long, global = true, env = "ERRAND_DURABILITY")]
    pub(crate) durability: Option<String>,
    /// The PostgreSQL schema holding errand's tables (default errand).
    #[arg(long, global = true, env = "ERRAND_POSTGRES_SCHEMA")]
    pub(crate) postgres_schema: Option<String>,
    /// Log format: text or json (logs go to stderr).
    #[arg(long, global = true, env = "ERRAND_LOG_FORMAT")]
    pub(crate) log_format: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run workers, maintenance and the scheduler (and, later, the HTTP API).
    Serve(run::RunArgs),
    /// Run workers, maintenance and the scheduler (no HTTP API).
    Work(run::RunArgs),
    /// Create or upgrade the store's schema.
    Migrate,
    /// Enqueue a job.
    Enqueue(Box<jobs::EnqueueArgs>),
    /// Inspect and operate on jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCmd),
    /// Inspect, pause and resume queues.
    #[command(subcommand)]
    Queues(jobs::QueuesCmd),
    /// Measure enqueue and processing throughput and latency (`bench schedule`: the scheduler).
    Bench(BenchCmd),
    /// Schedules: next fire times, translation to cron, crontab management.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
}

/// `errand bench [schedule | admin]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchCmd {
    #[command(subcommand)]
    pub(crate) what: Option<BenchWhat>,
    #[command(flatten)]
    pub(crate) jobs: bench::BenchArgs,
}

/// What `errand bench` measures besides jobs.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchWhat {
    /// Next-fire computation, and the scheduler with many active schedules.
    Schedule(bench_schedule::ScheduleBenchArgs),
    /// Operator reads (queue figures, job lists, one job) over a long history.
    Admin(bench_admin::AdminBenchArgs),
}

/// The options only commands that open the store use.
const STORE_OPTIONS: [&str; 3] = ["database", "durability", "postgres_schema"];

/// The `schedule` subcommands that never open the store (see
/// [`schedule::ScheduleCmd::needs_store`]).
const PURE_SCHEDULE_COMMANDS: [&str; 4] = ["next", "translate", "check", "crontab"];

/// The command line's definition: the derived one, with the store options
/// hidden from the help of commands that do not use them.
pub(crate) fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Propagates the global options to every subcommand, so that they can
    // be hidden where they do not apply.
    cmd.build();
    cmd.mut_subcommand("schedule", |schedule| {
        PURE_SCHEDULE_COMMANDS.iter().fold(schedule, |schedule, name| {
            // In place: after `build`, moving an argument (as `mut_arg`
            // does) would break the index of the built command.
            schedule.mut_subcommand(name, |sub| {
                sub.mut_args(|a| {
                    let store_option = STORE_OPTIONS.contains(&a.get_id().as_str());
                    if store_option { a.hide(true) } else { a }
                })
            })
        })
    })
}

/// Parses the process's arguments.
pub(crate) fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
}

impl Global {
    pub(crate) fn overrides(&self) -> config::Overrides {
        config::Overrides {
            config: self.config.clone(),
            database: self.database.clone(),
            durability: self.durability.clone(),
            postgres_schema: self.postgres_schema.clone(),
            log_format: self.log_format.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(path: &[&str]) -> String {
        let mut cmd = command();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).expect("a subcommand");
        }
        sub.render_long_help().to_string()
    }

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn global_options_have_their_own_heading() {
        let text = help(&["jobs", "list"]);
        let heading = text.find("Global options:").expect("a global heading");
        let own = text.find("--state").expect("its own option");
        let global = text.find("--database").expect("a global option");
        assert!(own < heading && heading < global, "{text}");
    }

    #[test]
    fn pure_schedule_commands_do_not_list_store_options() {
        for name in PURE_SCHEDULE_COMMANDS {
            let text = help(&["schedule", name]);
            assert!(!text.contains("--database"), "{name}: {text}");
            assert!(!text.contains("--postgres-schema"), "{name}: {text}");
        }
        assert!(help(&["schedule", "list"]).contains("--database"));
    }

    #[test]
    fn hidden_options_still_parse_and_help_still_works() {
        let parse = |args: &[&str]| {
            command()
                .try_get_matches_from(args)
                .map(|_| ())
                .map_err(|e| e.kind())
        };
        assert_eq!(
            parse(&["errand", "schedule", "next", "--help"]),
            Err(clap::error::ErrorKind::DisplayHelp)
        );
        assert_eq!(
            parse(&["errand", "--database", "x.db", "schedule", "next", "* * * * *"]),
            Ok(())
        );
        assert_eq!(
            parse(&["errand", "schedule", "next", "--durability", "full", "@daily"]),
            Ok(())
        );
    }
}
