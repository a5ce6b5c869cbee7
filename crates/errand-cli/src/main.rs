//! The `errand` binary.

use std::process::ExitCode;

use errand::Errand;
use errand_core::validate::ValidationError;
use errand_core::{ErrorCode, StoreError};

mod cli;

use cli::config::{Config, LogFormat};
use cli::{Cli, Command};

/// How an error is reported: its stable machine-readable code (which
/// gives the exit code, [`exit_code`]), and the field at fault when one is
/// known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    code: ErrorCode,
    field: Option<String>,
}

impl Class {
    fn new(code: ErrorCode, field: Option<String>) -> Self {
        Class { code, field }
    }
}

/// The one place that maps error codes to exit codes: 0 success; 1 failure
/// (the store unreachable, damaged or failing, I/O…); 2 invalid input (a bad
/// argument, configuration or job); 3 the job or queue is not found, or
/// not in a state that allows the action. docs/ERRORS.md lists each code
/// under its exit code (a test checks they agree).
pub(crate) fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::NotFound
        | ErrorCode::InvalidState
        | ErrorCode::UniqueKeyHeld
        | ErrorCode::LeaseLost
        | ErrorCode::Forbidden => 3,
        ErrorCode::StoreUnavailable
        | ErrorCode::StoreUninitialized
        | ErrorCode::StoreUnusable
        | ErrorCode::StoreError
        | ErrorCode::CrontabFailed
        | ErrorCode::IoError
        | ErrorCode::Failed => 1,
        // Every other code is a rule some input broke.
        _ => 2,
    }
}

/// The one place that classifies errors (docs/ERRORS.md): a
/// [`ValidationError`]'s own code, a [`StoreError`]'s ([`StoreError::code`]),
/// a schedule command's own code, else `invalid_argument` (what the
/// argument parser refuses), `config_invalid`, `io_error` or `failed`.
fn classify(e: &anyhow::Error) -> Class {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<clap::Error>() {
            return Class::new(ErrorCode::InvalidArgument, argument_field(c));
        }
        if let Some(f) = cause.downcast_ref::<cli::schedule::Failure>() {
            return Class::new(f.code, f.field.clone());
        }
        if let Some(v) = cause.downcast_ref::<ValidationError>() {
            return Class::new(v.code, Some(v.field.to_owned()));
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return Class::new(s.code(), None);
        }
        match cause.downcast_ref::<errand_engine::EnqueueError>() {
            Some(errand_engine::EnqueueError::Invalid(v)) => {
                return Class::new(v.code, Some(v.field.to_owned()));
            }
            Some(errand_engine::EnqueueError::Store(s)) => return Class::new(s.code(), None),
            _ => {}
        }
        if let Some(c) = cause.downcast_ref::<ConfigError>() {
            return Class::new(ErrorCode::ConfigInvalid, c.field());
        }
        if cause.downcast_ref::<errand_core::schedule::FileError>().is_some() {
            return Class::new(ErrorCode::ConfigInvalid, Some("schedule".to_owned()));
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return Class::new(ErrorCode::IoError, None);
        }
    }
    Class::new(ErrorCode::Failed, None)
}

/// The error and its causes as one line, `context: cause: …`, like
/// anyhow's `{:#}`, but ending at a store error: its message already says
/// what its sources (the store's and the driver's errors) said.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
        let store = cause.is::<StoreError>()
            || matches!(
                cause.downcast_ref::<errand_engine::EnqueueError>(),
                Some(errand_engine::EnqueueError::Store(_))
            );
        if store {
            break;
        }
    }
    out
}

/// The process's exit status: 0 on success, else the one [`exit_code`]
/// gives the code [`classify`] found. Every exit status of the binary is
/// made here.
fn exit_status(failure: Option<&Class>) -> ExitCode {
    match failure {
        None => ExitCode::SUCCESS,
        Some(class) => ExitCode::from(exit_code(class.code)),
    }
}

/// Prints `e` on stderr: one line of text, or under `--json` one JSON
/// object `{"error":{"code","message","field"}}` (a schedule command adds
/// `issues`); returns the exit code. Secrets (database URLs) and control
/// characters are taken out of the text form; the JSON form escapes control
/// characters itself.
fn report(e: &anyhow::Error, as_json: bool) -> ExitCode {
    let issues = e
        .chain()
        .find_map(|c| c.downcast_ref::<cli::schedule::Failure>())
        .map_or(&[][..], |f| &f.issues[..]);
    emit(&classify(e), &message(e), issues, as_json)
}

/// Prints one error (see [`report`]).
fn emit(class: &Class, message: &str, issues: &[serde_json::Value], as_json: bool) -> ExitCode {
    let message = errand::redact_text(message);
    if as_json {
        /// `{"error": {"code", "message", "field", "issues"}}`, in this
        /// order; `issues` only when there are some.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            code: ErrorCode,
            message: &'a str,
            field: Option<&'a str>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            issues: &'a [serde_json::Value],
        }
        #[derive(serde::Serialize)]
        struct Report<'a> {
            error: Body<'a>,
        }
        let report = Report {
            error: Body {
                code: class.code,
                message: &message,
                field: class.field.as_deref(),
                issues,
            },
        };
        match serde_json::to_string(&report) {
            Ok(line) => eprintln!("{line}"),
            Err(_) => eprintln!("error: {}", cli::output::escape(&message)),
        }
    } else {
        eprintln!("error: {}", cli::output::escape(&message));
    }
    exit_status(Some(class))
}

/// A configuration error (exit code 2).
#[derive(Debug)]
pub(crate) struct ConfigError(pub(crate) String);

impl ConfigError {
    /// The setting a message starts with (`worker.lease: …`), if any.
    fn field(&self) -> Option<String> {
        let (head, _) = self.0.split_once(": ")?;
        let setting = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
        setting.then(|| head.to_owned())
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The log filter: `ERRAND_LOG` (else `RUST_LOG`), else `default_level`
/// (an empty variable counts as unset).
fn log_filter(default_level: &str) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
    let from_env = ["ERRAND_LOG", "RUST_LOG"].into_iter().find_map(|var| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v))
    });
    match from_env {
        Some((var, value)) => parse_log_filter(var, &value),
        None => Ok(tracing_subscriber::EnvFilter::new(default_level)),
    }
}

/// Parses the log filter `value` of the variable `var`. A directive is a
/// level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or
/// `TARGET=LEVEL`; anything else is refused, naming the variable, rather
/// than silently logging nothing (a bare word would be read as a target).
fn parse_log_filter(var: &str, value: &str) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
    let bad = |why: String| {
        ConfigError(format!(
            "{var}: {:?} is not a log filter: {why} (use a level such as info or debug, \
             or TARGET=LEVEL, comma-separated)",
            cli::output::escape(value)
        ))
    };
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(bad(format!("{level:?} is not a level")));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(value)
        .map_err(|e| bad(e.to_string()))
}

fn init_logs(format: LogFormat, default_level: &str) -> Result<(), ConfigError> {
    let filter = log_filter(default_level)?;
    let builder = tracing_subscriber::fmt()
        // Colour only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Text logs escape control characters in every field, so a value
        // cannot forge a log line or drive the terminal.
        LogFormat::Text => builder.fmt_fields(cli::output::escaping_fields()).try_init(),
    };
    Ok(())
}

/// Whether `--json` is among the arguments (for errors found before or
/// while parsing them).
fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// The field a refused argument names: `--priority <PRIORITY>` or `<ID>`
/// gives `priority` or `id`.
fn argument_field(e: &clap::Error) -> Option<String> {
    e.get(clap::error::ContextKind::InvalidArg).map(|v| {
        let arg = v.to_string();
        let name = arg.trim_start_matches('-').split(' ').next().unwrap_or("");
        name.trim_matches(['<', '>'])
            .to_ascii_lowercase()
            .replace('-', "_")
    })
}

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // Help and version go to stdout; a closed pipe is no failure.
                let _ = e.print();
                return exit_status(None);
            }
            let rendered = e.render().to_string();
            let class = classify(&anyhow::Error::new(e));
            if !json_requested() {
                // clap quotes the offending argument as it was given: escape
                // it like any other text shown to people.
                let lines: Vec<String> = rendered
                    .lines()
                    .map(|l| cli::output::escape(l).into_owned())
                    .collect();
                eprintln!("{}", lines.join("\n").trim_end());
                return exit_status(Some(&class));
            }
            let message = rendered
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            return emit(&class, message, &[], true);
        }
    };
    let as_json = cli.global.json;
    if matches!(&cli.command, Command::Schedule(cmd) if !cmd.needs_store())
        && let Command::Schedule(cmd) = cli.command
    {
        return match cli::schedule::run(cmd, as_json) {
            Ok(()) => exit_status(None),
            Err(f) => report(&anyhow::Error::new(f), as_json),
        };
    }
    match run(cli) {
        Ok(()) => exit_status(None),
        Err(e) => report(&e, as_json),
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
    init_logs(config.log_format, if long_running { "info" } else { "warn" })?;
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
                Some(cli::BenchWhat::Admin(s)) => cli::bench_admin::run(s, &config, cli.global.json).await,
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
        let outcome = match &cli.command {
            Command::Serve(_) => cli::run::run(errand.clone(), &config, schedules, "serve").await,
            Command::Work(_) => cli::run::run(errand.clone(), &config, schedules, "work").await,
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
            Command::Enqueue(a) => match (&a.batch, new_job) {
                (Some(source), _) => cli::batch::run(&errand, source, a.batch_size as usize, as_json).await,
                (None, Some(job)) => cli::jobs::enqueue(&errand, job, as_json).await,
                (None, None) => unreachable!("check_before_open made the job"),
            },
            Command::Jobs(cmd) => cli::jobs::jobs(&errand, cmd, as_json).await,
            Command::Queues(cmd) => cli::jobs::queues(&errand, cmd, as_json).await,
            Command::Schedule(_) => cli::schedule::list(&errand, as_json).await,
            Command::Bench(_) => unreachable!("handled above"),
        };
        // The wake-ups of what this process enqueued or retried go out
        // before it exits (PostgreSQL sends them after the commit).
        errand.store().flush().await;
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters_are_levels_or_target_levels() {
        for good in [
            "info",
            "DEBUG",
            "warn,errand_engine=debug",
            "errand::cli=trace, off",
            "sqlx=warn",
        ] {
            assert!(parse_log_filter("ERRAND_LOG", good).is_ok(), "{good}");
        }
        for bad in [
            "verbose",
            "errand_engine",
            "info,loud",
            "errand=loud",
            "=",
            "a=b=c",
        ] {
            let e = parse_log_filter("ERRAND_LOG", bad).unwrap_err();
            assert!(e.0.starts_with("ERRAND_LOG: "), "{bad}: {e}");
            assert_eq!(e.field().as_deref(), Some("ERRAND_LOG"), "{bad}");
        }
    }

    #[test]
    fn errors_are_classified_in_one_place() {
        let v = anyhow::Error::new(ValidationError {
            field: "queue",
            code: ErrorCode::QueueNameInvalid,
            message: "bad".into(),
            index: None,
        });
        assert_eq!(
            classify(&v),
            Class::new(ErrorCode::QueueNameInvalid, Some("queue".into()))
        );
        let nf = anyhow::Error::new(StoreError::NotFound(errand::JobId(9)));
        assert_eq!(classify(&nf), Class::new(ErrorCode::NotFound, None));
        let down = anyhow::Error::new(StoreError::Connect(errand_core::BackendError::transient("x")))
            .context("opening");
        assert_eq!(classify(&down), Class::new(ErrorCode::StoreUnavailable, None));
        let cfg = anyhow::Error::new(ConfigError("worker.lease: not a duration".into()));
        assert_eq!(
            classify(&cfg),
            Class::new(ErrorCode::ConfigInvalid, Some("worker.lease".into()))
        );
        let io = anyhow::Error::new(std::io::Error::other("disk"));
        assert_eq!(classify(&io), Class::new(ErrorCode::IoError, None));
        assert_eq!(
            classify(&anyhow::anyhow!("?")),
            Class::new(ErrorCode::Failed, None)
        );
    }

    #[test]
    fn parser_and_schedule_failures_are_classified_in_the_same_place() {
        let parse = |args: &[&str]| {
            let e = cli::command().try_get_matches_from(args).unwrap_err();
            classify(&anyhow::Error::new(e))
        };
        assert_eq!(
            parse(&["errand", "jobs", "list", "--limit", "many"]),
            Class::new(ErrorCode::InvalidArgument, Some("limit".into()))
        );
        assert_eq!(
            parse(&["errand", "--no-such-flag"]),
            Class::new(ErrorCode::InvalidArgument, Some("no_such_flag".into()))
        );
        let schedule = |f: cli::schedule::Failure| classify(&anyhow::Error::new(f));
        assert_eq!(
            schedule(cli::schedule::Failure::invalid(Some("tz"), "no such zone")),
            Class::new(ErrorCode::InvalidArgument, Some("tz".into()))
        );
        assert_eq!(
            schedule(cli::schedule::Failure::crontab("crontab exited with 1")),
            Class::new(ErrorCode::CrontabFailed, None)
        );
        assert_eq!(
            schedule(std::io::Error::other("closed pipe").into()),
            Class::new(ErrorCode::IoError, None)
        );
    }

    #[test]
    fn exit_statuses_come_from_the_code() {
        assert_eq!(exit_status(None), ExitCode::SUCCESS);
        let class = Class::new(ErrorCode::NotFound, None);
        assert_eq!(exit_status(Some(&class)), ExitCode::from(3));
    }

    #[test]
    fn exit_codes_keep_their_meaning() {
        for (code, exit) in [
            (ErrorCode::InvalidArgument, 2),
            (ErrorCode::ConfigInvalid, 2),
            (ErrorCode::QueueNameInvalid, 2),
            (ErrorCode::NotFound, 3),
            (ErrorCode::InvalidState, 3),
            (ErrorCode::UniqueKeyHeld, 3),
            (ErrorCode::StoreUnavailable, 1),
            (ErrorCode::StoreError, 1),
            (ErrorCode::IoError, 1),
            (ErrorCode::Failed, 1),
        ] {
            assert_eq!(exit_code(code), exit, "{code}");
        }
    }

    /// docs/ERRORS.md lists each code in the section of its exit code.
    #[test]
    fn every_code_is_documented_under_its_exit_code() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ERRORS.md"))
            .expect("docs/ERRORS.md");
        let mut exit = None;
        let mut seen = 0;
        for line in doc.lines() {
            if line.starts_with("## ") {
                exit = line
                    .split_once("(exit ")
                    .and_then(|(_, rest)| rest.split(')').next())
                    .and_then(|n| n.parse::<u8>().ok());
            } else if let Some(code) = line
                .strip_prefix("| `")
                .and_then(|rest| rest.split('`').next())
                .and_then(|c| c.parse::<ErrorCode>().ok())
            {
                let exit = exit.unwrap_or_else(|| panic!("{code} is listed outside an exit code's section"));
                assert_eq!(exit_code(code), exit, "{code} is documented under exit {exit}");
                seen += 1;
            }
        }
        assert_eq!(seen, ErrorCode::ALL.len(), "every code is in a section");
    }

    /// A store error's message already holds what its sources said: they
    /// are not printed again.
    #[test]
    fn a_store_error_is_printed_once_with_its_context() {
        let source = std::io::Error::other("disk on fire");
        let store = StoreError::from(
            errand_core::BackendError::transient("writing failed: disk on fire").with_source(source),
        );
        let e = anyhow::Error::new(store).context("enqueueing");
        assert_eq!(
            message(&e),
            "enqueueing: store backend error: writing failed: disk on fire"
        );
        let e = anyhow::Error::new(std::io::Error::other("gone")).context("reading jobs.jsonl");
        assert_eq!(message(&e), "reading jobs.jsonl: gone");
    }
}
