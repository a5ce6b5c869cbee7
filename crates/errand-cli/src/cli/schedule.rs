//! `errand schedule …`: inspect and translate schedules, manage a crontab block.
//!
//! A failure is a [`Failure`] with a stable code; `main` reports it and
//! picks its exit code, as for every other error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use errand_core::ErrorCode;
use errand_core::schedule::crontab::{self, CronZone};
use errand_core::schedule::{Action, Schedule, ScheduleFile, Timing, zone};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// `errand schedule` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ScheduleCmd {
    /// Print the next fire times of a cron expression or a readable schedule.
    Next(NextArgs),
    /// Print the cron lines of a readable (whenever-style) schedule.
    Translate(TranslateArgs),
    /// Validate a schedule file and show each schedule's next three fire times.
    Check(CheckArgs),
    /// Print the `command` schedules as crontab lines, or manage errand's block in a crontab.
    Crontab(CrontabArgs),
    /// List the schedules known to the store: next and last fire, last job and its outcome.
    List,
}

impl ScheduleCmd {
    /// Whether the command reads the store (the others are pure).
    pub(crate) fn needs_store(&self) -> bool {
        matches!(self, ScheduleCmd::List)
    }
}

/// `errand schedule next`.
#[derive(Debug, clap::Args)]
pub(crate) struct NextArgs {
    /// A cron expression (5 fields, or 6 with seconds first, or a macro such as @daily).
    #[arg(required_unless_present = "every", conflicts_with = "every")]
    cron: Option<String>,
    /// A readable schedule instead: "5 minutes", "day", "monday, friday", …
    #[arg(long, value_name = "PHRASE")]
    every: Option<String>,
    /// With --every: when ("4:30 am", "noon", "15th at 4am", an integer, or a list).
    #[arg(long, value_name = "AT", requires = "every")]
    at: Option<String>,
    /// IANA time zone the schedule runs in.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    tz: String,
    /// Print fire times strictly after this instant (RFC 3339; default now).
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
    /// How many fire times to print.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    count: u32,
}

/// `errand schedule translate`.
#[derive(Debug, clap::Args)]
pub(crate) struct TranslateArgs {
    /// The readable schedule: "5 minutes", "day", "monday, friday", …
    #[arg(long, value_name = "PHRASE")]
    every: String,
    /// When ("4:30 am", "noon", "15th at 4am", an integer, or a list).
    #[arg(long, value_name = "AT")]
    at: Option<String>,
}

/// `errand schedule check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The schedule file.
    #[arg(default_value = "errand.toml")]
    file: PathBuf,
}

/// `errand schedule crontab`.
#[derive(Debug, clap::Args)]
pub(crate) struct CrontabArgs {
    /// The schedule file.
    #[arg(default_value = "errand.toml")]
    file: PathBuf,
    /// Names the block in the crontab (default: the file's absolute path).
    #[arg(long, value_name = "ID")]
    identifier: Option<String>,
    /// Replace errand's block in the crontab (or append it), keeping every other line.
    #[arg(long, group = "mode")]
    update: bool,
    /// Replace the whole crontab with errand's block.
    #[arg(long, group = "mode")]
    write: bool,
    /// Remove errand's block from the crontab.
    #[arg(long, group = "mode")]
    clear: bool,
    /// Export only the command schedules of these queues, and those without a queue (whenever's --roles): e.g. --queues app,db.
    #[arg(long, value_name = "QUEUE,…", value_delimiter = ',', num_args = 1..)]
    queues: Option<Vec<String>>,
    /// Whose crontab (`crontab -u USER`).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// The lines are in UTC: the block starts with CRON_TZ=UTC, and every exported schedule must be in UTC (others are refused, each named).
    #[arg(long)]
    utc: bool,
}

/// Runs a `schedule` subcommand that needs no store. Its error is reported
/// by `main` like any other, with the [`Failure`]'s `issues` (every problem
/// of a file that does not validate) in the `--json` form.
pub(crate) fn run(cmd: ScheduleCmd, as_json: bool) -> Result<(), Failure> {
    match cmd {
        ScheduleCmd::Next(args) => next(args, as_json),
        ScheduleCmd::Translate(args) => translate(args, as_json),
        ScheduleCmd::Check(args) => check(args, as_json),
        ScheduleCmd::Crontab(args) => crontab_cmd(args, as_json),
        ScheduleCmd::List => Err(Failure::invalid(None, "schedule list needs the store")),
    }
}

/// Why a schedule command failed: a stable code for scripts, the field or
/// argument at fault, and the problems of a file. Its exit code follows
/// from its code (`main`'s `classify`).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) field: Option<String>,
    message: String,
    pub(crate) issues: Vec<serde_json::Value>,
}

impl Failure {
    /// Invalid input (`invalid_argument`).
    pub(crate) fn invalid(field: Option<&str>, message: impl Into<String>) -> Failure {
        Failure {
            code: ErrorCode::InvalidArgument,
            field: field.map(str::to_owned),
            message: message.into(),
            issues: Vec::new(),
        }
    }

    /// The crontab program failed, or the crontab is not ours to change.
    pub(crate) fn crontab(message: impl Into<String>) -> Failure {
        Failure {
            code: ErrorCode::CrontabFailed,
            field: None,
            message: message.into(),
            issues: Vec::new(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Writing to stdout failed (a closed pipe).
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            code: ErrorCode::IoError,
            field: None,
            message: format!("cannot write the output: {e}"),
            issues: Vec::new(),
        }
    }
}

/// `errand schedule list`: every schedule the store knows, removed ones last.
pub(crate) async fn list(errand: &errand::Errand, as_json: bool) -> anyhow::Result<()> {
    use errand_core::store::ScheduleOutcome;

    use super::output::{self, Table, opt_time};

    let mut all = errand.store().list_schedules(&errand_core::Scope::All).await?;
    all.sort_by_key(|s| s.removed_at.is_some());
    let status = |s: &errand_core::store::ScheduleState| match (s.removed_at, s.enabled) {
        (Some(_), _) => "removed",
        (None, false) => "disabled",
        (None, true) => "active",
    };
    if as_json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                let outcome = match s.last_outcome {
                    ScheduleOutcome::Never => None,
                    ScheduleOutcome::Job(state) => Some(state.as_str()),
                    ScheduleOutcome::Pruned => Some("pruned"),
                    ScheduleOutcome::SkippedOverlap => Some("skipped_overlap"),
                };
                serde_json::json!({
                    "name": s.name,
                    "spec": s.spec,
                    "status": status(s),
                    "next_fire": s.next_fire,
                    "last_fire": s.last_fire,
                    "last_job_id": s.last_job,
                    "last_outcome": outcome,
                    "removed_at": s.removed_at,
                })
            })
            .collect();
        return output::json(&rows);
    }
    let mut t = Table::new(vec![
        "NAME",
        "STATUS",
        "NEXT FIRE",
        "LAST FIRE",
        "LAST JOB",
        "LAST OUTCOME",
        "SPEC",
    ]);
    for s in &all {
        t.row(vec![
            s.name.clone(),
            status(s).into(),
            opt_time(s.next_fire),
            opt_time(s.last_fire),
            s.last_job.map_or_else(|| "-".into(), |id| id.to_string()),
            s.last_outcome.to_string(),
            s.spec.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// The `[[schedule]]` entries of the configuration file, for `serve` and
/// `work`; `None` without a configuration file (then no scheduler runs, and
/// the stored schedules are left alone). A file that does not validate is an
/// error naming every problem.
pub(crate) fn from_config(file: Option<&Path>) -> anyhow::Result<Option<ScheduleFile>> {
    let Some(path) = file else {
        return Ok(None);
    };
    let text = read_file(path)?;
    let parsed = ScheduleFile::parse(&text).with_context(|| format!("schedules in {}", path.display()))?;
    Ok(Some(parsed))
}

fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Prints one JSON document on stdout.
fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    writeln!(std::io::stdout().lock(), "{value}")?;
    Ok(())
}

fn next(args: NextArgs, as_json: bool) -> Result<(), Failure> {
    let tz = zone(&args.tz).map_err(|e| Failure::invalid(Some("tz"), format!("--tz: {e}")))?;
    let schedule = match (&args.cron, &args.every) {
        (Some(expr), _) => {
            Schedule::parse_cron(expr).map_err(|e| Failure::invalid(Some("cron"), e.to_string()))?
        }
        (None, Some(every)) => Schedule::from_every(every, args.at.as_deref())
            .map_err(|e| Failure::invalid(Some(e.field), e.to_string()))?,
        (None, None) => return Err(Failure::invalid(None, "give a cron expression or --every")),
    };
    let from = match &args.from {
        Some(s) => s.parse::<Timestamp>().map_err(|e| {
            Failure::invalid(
                Some("from"),
                format!(
                    "--from: {s:?} is not an RFC 3339 time with an offset (e.g. 2026-03-08T01:00:00-05:00): {e}"
                ),
            )
        })?,
        None => Timestamp::now(),
    };
    let reboot = schedule == Schedule::Reboot;
    let times: Vec<String> = schedule
        .upcoming(from, &tz)
        .take(args.count as usize)
        .map(|t| rfc3339(t, &tz))
        .collect();
    if as_json {
        return print_json(&serde_json::json!({
            "cron": args.cron,
            "every": args.every,
            "at": args.at,
            "timezone": args.tz,
            "from": rfc3339(from, &tz),
            "reboot": reboot,
            "fire_times": times,
        }));
    }
    if reboot {
        eprintln!("note: @reboot fires once each time the scheduler starts, never on the clock");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for t in &times {
        writeln!(out, "{t}")?;
    }
    if times.len() < args.count as usize {
        eprintln!(
            "note: the schedule fires only {} more time(s) before year 9999",
            times.len()
        );
    }
    Ok(())
}

fn translate(args: TranslateArgs, as_json: bool) -> Result<(), Failure> {
    let lines: Vec<String> = match Schedule::from_every(&args.every, args.at.as_deref())
        .map_err(|e| Failure::invalid(Some(e.field), e.to_string()))?
    {
        Schedule::Reboot => vec!["@reboot".to_string()],
        Schedule::Cron(exprs) => exprs
            .iter()
            .map(|e| {
                e.five_field().ok_or_else(|| {
                    Failure::invalid(
                        Some("every"),
                        format!(
                            "{e:?} has a seconds field, so it has no five-field equivalent",
                            e = e.as_str()
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if as_json {
        return print_json(&serde_json::json!({
            "every": args.every,
            "at": args.at,
            "cron": lines,
        }));
    }
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and validates a schedule file as `errand work --config FILE` does:
/// the `[[schedule]]` entries and the rest of the configuration, so both
/// give a file the same verdict. Every problem is printed as `FILE:LINE: …`
/// (under `--json`, they go in the one error object instead).
fn load(path: &Path, as_json: bool) -> Result<ScheduleFile, Failure> {
    let text = read_file(path).map_err(|e| Failure::invalid(Some("file"), format!("{e:#}")))?;
    let mut problems: Vec<(String, serde_json::Value)> = Vec::new();
    let (parsed, toml_ok) = match ScheduleFile::parse(&text) {
        Ok(f) => (Some(f), true),
        Err(e) => {
            let toml_ok = !e.issues.iter().any(|i| i.field == "file");
            for issue in &e.issues {
                let who = issue
                    .schedule
                    .as_deref()
                    .map(|n| format!(" schedule {n:?}:"))
                    .unwrap_or_default();
                problems.push((
                    format!(
                        "{}:{}:{who} {}: {}",
                        path.display(),
                        issue.line,
                        issue.field,
                        issue.message
                    ),
                    serde_json::json!({
                        "line": issue.line,
                        "schedule": issue.schedule,
                        "field": issue.field,
                        "message": issue.message,
                    }),
                ));
            }
            (None, toml_ok)
        }
    };
    // The rest of the file (unknown top-level keys, bad settings), unless
    // the TOML itself is broken, which was reported above.
    if toml_ok && let Err(e) = super::config::validate_file(path) {
        let message = format!("{e:#}");
        problems.push((
            message.clone(),
            serde_json::json!({ "line": null, "schedule": null, "field": "config", "message": message }),
        ));
    }
    match parsed {
        Some(f) if problems.is_empty() => Ok(f),
        _ => {
            let summary = format!("{} has {} problem(s)", path.display(), problems.len());
            if !as_json {
                for (line, _) in &problems {
                    eprintln!("{line}");
                }
            }
            let field = problems
                .first()
                .and_then(|(_, j)| j["field"].as_str().map(str::to_owned));
            let message = if as_json {
                let all: Vec<&str> = problems.iter().map(|(l, _)| l.as_str()).collect();
                format!("{summary}: {}", all.join("; "))
            } else {
                summary
            };
            Err(Failure {
                code: ErrorCode::ConfigInvalid,
                field,
                message,
                issues: problems.into_iter().map(|(_, j)| j).collect(),
            })
        }
    }
}

fn check(args: CheckArgs, as_json: bool) -> Result<(), Failure> {
    let file = load(&args.file, as_json)?;
    let now = Timestamp::now();
    if as_json {
        let schedules: Vec<serde_json::Value> = file
            .schedules
            .iter()
            .map(|def| {
                let (cron, every, at) = match &def.timing {
                    Timing::Cron(c) => (Some(c), None, None),
                    Timing::Every { every, at } => (None, Some(every), at.as_ref()),
                };
                let action = match &def.action {
                    Action::Enqueue { kind, queue, .. } => {
                        serde_json::json!({ "kind": kind, "queue": queue })
                    }
                    Action::Command { argv, .. } => serde_json::json!({ "command": argv }),
                };
                let times: Vec<String> = def
                    .schedule
                    .upcoming(now, &def.timezone)
                    .take(3)
                    .map(|t| rfc3339(t, &def.timezone))
                    .collect();
                serde_json::json!({
                    "name": def.name,
                    "line": def.line,
                    "cron": cron,
                    "every": every,
                    "at": at,
                    "timezone": def.timezone_name,
                    "enabled": def.enabled,
                    "reboot": def.schedule == Schedule::Reboot,
                    "action": action,
                    "next_fire_times": times,
                })
            })
            .collect();
        return print_json(&serde_json::json!({
            "file": args.file.display().to_string(),
            "valid": true,
            "schedules": schedules,
        }));
    }
    let mut out = std::io::stdout().lock();
    for def in &file.schedules {
        let timing = match &def.timing {
            Timing::Cron(c) => format!("cron {c:?}"),
            Timing::Every { every, at: Some(at) } => format!("every {every:?} at {at:?}"),
            Timing::Every { every, at: None } => format!("every {every:?}"),
        };
        let disabled = if def.enabled { "" } else { " (disabled)" };
        writeln!(out, "{}: {timing} in {}{disabled}", def.name, def.timezone_name)?;
        if def.schedule == Schedule::Reboot {
            writeln!(out, "  @reboot (when the scheduler starts)")?;
        }
        for t in def.schedule.upcoming(now, &def.timezone).take(3) {
            writeln!(out, "  {}", rfc3339(t, &def.timezone))?;
        }
    }
    Ok(())
}

/// The zone this machine's cron reads crontab lines in, by IANA name.
fn machine_zone() -> Result<String, Failure> {
    let tz = TimeZone::system();
    if let Some(name) = tz.iana_name() {
        return Ok(name.to_string());
    }
    if tz == TimeZone::UTC {
        return Ok("UTC".into());
    }
    Err(Failure::invalid(
        None,
        "cannot tell this machine's time zone by IANA name; set TZ (e.g. TZ=Europe/Paris) or use --utc",
    ))
}

fn crontab_program() -> String {
    std::env::var("ERRAND_CRONTAB_PROGRAM")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "crontab".into())
}

fn crontab_base(user: Option<&str>) -> Command {
    let mut cmd = Command::new(crontab_program());
    if let Some(u) = user {
        cmd.arg("-u").arg(u);
    }
    cmd
}

/// `crontab -l`; a user with no crontab yet has an empty one.
fn read_crontab(user: Option<&str>) -> Result<String, Failure> {
    let output = crontab_base(user)
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::crontab(format!("cannot run {}: {e}", crontab_program())))?;
    if output.status.success() {
        return String::from_utf8(output.stdout)
            .map_err(|_| Failure::crontab("the crontab is not UTF-8; fix it by hand"));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.to_ascii_lowercase().contains("no crontab") {
        return Ok(String::new());
    }
    Err(Failure::crontab(format!(
        "{} -l failed ({}): {}",
        crontab_program(),
        output.status,
        stderr.trim()
    )))
}

/// `crontab -` with the new text on standard input.
fn write_crontab(user: Option<&str>, text: &str) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::crontab(format!("cannot run {}: {e}", crontab_program()));
    let mut child = crontab_base(user)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    child
        .stdin
        .take()
        .ok_or_else(|| Failure::crontab("no stdin for crontab"))?
        .write_all(text.as_bytes())
        .map_err(failed)?;
    let output = child.wait_with_output().map_err(failed)?;
    if !output.status.success() {
        return Err(Failure::crontab(format!(
            "{} - failed ({}): {}",
            crontab_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// The block's default identifier: the schedule file's canonical absolute
/// path (symbolic links, `.` and `..` resolved), so `../errand.toml` from a
/// subdirectory and `errand.toml` from the parent name one block. A file
/// that does not exist (`--clear` after it was deleted) is resolved through
/// its directory, or lexically.
fn default_identifier(file: &Path) -> Result<String, Failure> {
    let unresolvable =
        |e: std::io::Error| Failure::invalid(Some("file"), format!("cannot resolve {}: {e}", file.display()));
    if let Ok(p) = std::fs::canonicalize(file) {
        return Ok(p.display().to_string());
    }
    let absolute = std::path::absolute(file).map_err(unresolvable)?;
    if let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name())
        && let Ok(dir) = std::fs::canonicalize(parent)
    {
        return Ok(dir.join(name).display().to_string());
    }
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out.display().to_string())
}

/// With the default identifier, removes the blocks an earlier errand wrote
/// for the same schedule file under another spelling of its path (before
/// paths were resolved, `sub/../errand.toml` and `errand.toml` made two
/// blocks, so their commands ran twice). Returns the crontab without them
/// and their identifiers. An identifier given with `--identifier` is taken
/// as it is: nothing else is removed.
fn drop_aliases(
    current: &str,
    identifier: &str,
    by_default: bool,
) -> Result<(String, Vec<String>), crontab::CrontabError> {
    let mut text = current.to_string();
    let mut removed = Vec::new();
    if !by_default {
        return Ok((text, removed));
    }
    for id in crontab::block_identifiers(current) {
        let same_file = id != identifier
            && Path::new(&id).is_absolute()
            && default_identifier(Path::new(&id)).is_ok_and(|resolved| resolved == identifier);
        if same_file {
            text = crontab::clear(&text, &id)?;
            removed.push(id);
        }
    }
    Ok((text, removed))
}

fn crontab_cmd(args: CrontabArgs, as_json: bool) -> Result<(), Failure> {
    let raw_id = match &args.identifier {
        Some(id) => id.clone(),
        None => default_identifier(&args.file)?,
    };
    let identifier = crontab::identifier(&raw_id)
        .map_err(|e| Failure::invalid(Some("identifier"), e.to_string()))?
        .to_string();
    let by_default = args.identifier.is_none();
    let user = args.user.as_deref();
    // A crontab errand cannot safely change (Begin without End, two blocks).
    let not_ours = |e: crontab::CrontabError| Failure {
        code: ErrorCode::CrontabInvalid,
        field: None,
        message: e.to_string(),
        issues: Vec::new(),
    };
    let done = |action: &str,
                export: Option<&crontab::Export>,
                aliases: &[String],
                text: String|
     -> Result<(), Failure> {
        if as_json {
            let left_out: Option<Vec<serde_json::Value>> = export.map(|e| {
                e.left_out
                    .iter()
                    .map(|l| serde_json::json!({ "schedule": l.name, "line": l.line, "reason": l.reason }))
                    .collect()
            });
            print_json(&serde_json::json!({
                "action": action,
                "identifier": identifier,
                "lines": export.map(|e| &e.lines),
                "left_out": left_out,
                "aliases_removed": aliases,
            }))
        } else {
            eprintln!("{text}");
            for a in aliases {
                eprintln!(
                    "note: also removed block {a:?}, written earlier for the same file under another path"
                );
            }
            Ok(())
        }
    };
    if args.clear {
        let current = read_crontab(user)?;
        let (rest, aliases) = drop_aliases(&current, &identifier, by_default).map_err(not_ours)?;
        let new = crontab::clear(&rest, &identifier).map_err(not_ours)?;
        if new == current {
            return done(
                "unchanged",
                None,
                &aliases,
                format!("[clear] no crontab block {identifier:?}; nothing removed"),
            );
        }
        write_crontab(user, &new)?;
        return done(
            "cleared",
            None,
            &aliases,
            format!("[clear] crontab block {identifier:?} removed"),
        );
    }
    for q in args.queues.iter().flatten() {
        errand_core::validate::queue_name("queues", q)
            .map_err(|e| Failure::invalid(Some("queues"), format!("--queues: {}", e.message)))?;
    }
    let file = load(&args.file, as_json)?;
    let cron_zone = if args.utc {
        CronZone::utc()
    } else {
        CronZone::machine(&machine_zone()?)
    };
    let export = match crontab::render(&file, &cron_zone, args.queues.as_deref()) {
        Ok(export) => export,
        Err(crontab::CrontabError::Refused(errors)) => {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {e}", args.file.display()))
                .collect();
            if !as_json {
                for l in &lines {
                    eprintln!("{l}");
                }
            }
            let summary = format!(
                "{} schedule(s) cannot go in a crontab exactly; nothing was exported",
                lines.len()
            );
            return Err(Failure {
                code: ErrorCode::NotExportable,
                field: Some("schedule".into()),
                message: if as_json {
                    format!("{summary}: {}", lines.join("; "))
                } else {
                    summary
                },
                issues: errors
                    .iter()
                    .map(|e| match e {
                        crontab::CrontabError::Unexportable { name, line, message } => {
                            serde_json::json!({ "line": line, "schedule": name, "message": message })
                        }
                        other => serde_json::json!({ "message": other.to_string() }),
                    })
                    .collect(),
            });
        }
        Err(e) => return Err(Failure::invalid(None, e.to_string())),
    };
    let commands = export.lines.len() - usize::from(args.utc);
    if !as_json {
        for l in &export.left_out {
            eprintln!(
                "note: {}:{}: schedule {:?} left out: {}",
                args.file.display(),
                l.line,
                l.name,
                l.reason
            );
        }
        if commands == 0 {
            eprintln!(
                "note: {} has no enabled command schedule; the block has no crontab line",
                args.file.display()
            );
        }
    }
    let lines = &export.lines;
    let export = Some(&export);
    if args.update {
        let current = read_crontab(user)?;
        let (rest, aliases) = drop_aliases(&current, &identifier, by_default).map_err(not_ours)?;
        let new = crontab::update(&rest, &identifier, lines).map_err(not_ours)?;
        if new == current {
            return done(
                "unchanged",
                export,
                &aliases,
                "[update] crontab already up to date".into(),
            );
        }
        write_crontab(user, &new)?;
        return done(
            "updated",
            export,
            &aliases,
            format!("[update] crontab block {identifier:?} updated with {commands} line(s)"),
        );
    }
    if args.write {
        let new = crontab::write(&identifier, lines).map_err(not_ours)?;
        write_crontab(user, &new)?;
        return done(
            "written",
            export,
            &[],
            format!("[write] crontab replaced by block {identifier:?} with {commands} line(s)"),
        );
    }
    if as_json {
        return done("printed", export, &[], String::new());
    }
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    eprintln!("note: your crontab was not changed; use --update, --write or --clear to change it");
    Ok(())
}
