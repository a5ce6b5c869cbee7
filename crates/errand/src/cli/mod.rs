//! The `errand` command line: arguments (clap), configuration, and one
//! module per command family.

pub(crate) mod bench;
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

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The store: sqlite://PATH (default sqlite://errand.db) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "ERRAND_DATABASE_URL")]
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

/// `errand bench [schedule]`.
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
