//! The `errand` binary.

use std::process::ExitCode;

use clap::Parser;

use errand::Errand;
use errand_core::StoreError;
use errand_core::validate::ValidationError;

mod cli;

use cli::config::{Config, LogFormat};
use cli::{Cli, Command};

/// Exit codes: 0 success; 1 failure (store unreachable, I/O…); 2 invalid
/// input (bad argument, bad config, validation error); 3 the job is not
/// found or not in a state that allows the action.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<ValidationError>().is_some() {
            return 2;
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return match s {
                StoreError::NotFound(_) | StoreError::InvalidState { .. } => 3,
                StoreError::InvalidConfig(_) => 2,
                _ => 1,
            };
        }
        if let Some(errand_engine::EnqueueError::Invalid(_)) =
            cause.downcast_ref::<errand_engine::EnqueueError>()
        {
            return 2;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return 2;
        }
        if cause.downcast_ref::<errand_core::schedule::FileError>().is_some() {
            return 2;
        }
    }
    1
}

/// A configuration error (exit code 2).
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn init_logs(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ERRAND_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        // Colour only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(&cli.command, Command::Schedule(cmd) if !cmd.needs_store())
        && let Command::Schedule(cmd) = cli.command
    {
        return match cli::schedule::run(cmd) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = cli.global.overrides();
    if let Command::Serve(a) | Command::Work(a) = &cli.command {
        overrides.queues = a.queues.clone();
        overrides.shutdown_grace = a.shutdown_grace.clone();
    }
    let config = Config::load(&overrides).map_err(|e| ConfigError(format!("{e:#}")))?;
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Work(_));
    init_logs(config.log_format, if long_running { "info" } else { "warn" });
    let new_job = cli::jobs::check_before_open(&cli.command)?;
    let store_wait = match &cli.command {
        Command::Serve(a) | Command::Work(a) => a.store_wait()?,
        _ => None,
    };
    // Only these create a store; the others refuse a missing one (a typo in
    // --database must not leave an empty database behind).
    let mut store_options = config.store.clone();
    store_options.must_exist = !matches!(
        cli.command,
        Command::Serve(_) | Command::Work(_) | Command::Migrate
    );
    let schedules = if long_running {
        cli::schedule::from_config(config.file.as_deref())?
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        if let Command::Bench(a) = &cli.command {
            return match &a.what {
                Some(cli::BenchWhat::Schedule(s)) => {
                    cli::bench_schedule::run(s, &config, cli.global.json).await
                }
                None => cli::bench::run(&a.jobs, &config, cli.global.json).await,
            };
        }
        let store = if long_running {
            match cli::run::open_store_waiting(&config.database, &store_options, store_wait).await? {
                Some(store) => store,
                None => return Ok(()),
            }
        } else {
            errand::open_store_with(&config.database, &store_options).await?
        };
        let errand = Errand::new(store);
        let as_json = cli.global.json;
        match &cli.command {
            Command::Serve(_) => cli::run::run(errand, &config, schedules, "serve").await,
            Command::Work(_) => cli::run::run(errand, &config, schedules, "work").await,
            Command::Migrate => {
                if as_json {
                    cli::output::json(
                        &serde_json::json!({ "migrated": true, "backend": errand.store().backend() }),
                    )
                } else {
                    println!("schema is up to date ({})", errand.store().backend());
                    Ok(())
                }
            }
            Command::Enqueue(_) => {
                let job = new_job.expect("check_before_open made the job");
                cli::jobs::enqueue(&errand, job, as_json).await
            }
            Command::Jobs(cmd) => cli::jobs::jobs(&errand, cmd, as_json).await,
            Command::Queues(cmd) => cli::jobs::queues(&errand, cmd, as_json).await,
            Command::Schedule(_) => cli::schedule::list(&errand, as_json).await,
            Command::Bench(_) => unreachable!("handled above"),
        }
    })
}
