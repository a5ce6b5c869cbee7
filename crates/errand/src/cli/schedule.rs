//! `errand schedule …`: inspect and translate schedules, manage a crontab block.
//!
//! Exit codes: 0 success; 1 the crontab program failed; 2 invalid input (an
//! expression, a phrase, a zone, a schedule file that does not validate).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, anyhow, bail};
use errand_core::schedule::crontab::{self, CronZone};
use errand_core::schedule::{Schedule, ScheduleFile, Timing, zone};
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
    /// Whose crontab (`crontab -u USER`).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// The lines are in UTC: the block starts with CRON_TZ=UTC, and only UTC schedules are exported.
    #[arg(long)]
    utc: bool,
}

/// Runs a `schedule` subcommand; returns the process exit code.
pub(crate) fn run(cmd: ScheduleCmd) -> anyhow::Result<i32> {
    match cmd {
        ScheduleCmd::Next(args) => next(args),
        ScheduleCmd::Translate(args) => translate(args),
        ScheduleCmd::Check(args) => check(args),
        ScheduleCmd::Crontab(args) => crontab_cmd(args),
        ScheduleCmd::List => bail!("schedule list needs the store"),
    }
}

/// `errand schedule list`: every schedule the store knows, removed ones last.
pub(crate) async fn list(errand: &errand::Errand, as_json: bool) -> anyhow::Result<()> {
    use errand_core::store::ScheduleOutcome;

    use super::output::{self, Table, opt_time};

    let mut all = errand.store().list_schedules().await?;
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

fn next(args: NextArgs) -> anyhow::Result<i32> {
    let tz = zone(&args.tz).map_err(|e| anyhow!("--tz: {e}"))?;
    let schedule = match (&args.cron, &args.every) {
        (Some(expr), _) => Schedule::parse_cron(expr)?,
        (None, Some(every)) => Schedule::from_every(every, args.at.as_deref())?,
        (None, None) => bail!("give a cron expression or --every"),
    };
    let from = match &args.from {
        Some(s) => s.parse::<Timestamp>().map_err(|e| {
            anyhow!(
                "--from: {s:?} is not an RFC 3339 time with an offset (e.g. 2026-03-08T01:00:00-05:00): {e}"
            )
        })?,
        None => Timestamp::now(),
    };
    if schedule == Schedule::Reboot {
        eprintln!("note: @reboot fires once each time the scheduler starts, never on the clock");
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let mut printed = 0;
    for t in schedule.upcoming(from, &tz).take(args.count as usize) {
        writeln!(out, "{}", rfc3339(t, &tz))?;
        printed += 1;
    }
    if printed < args.count {
        eprintln!("note: the schedule fires only {printed} more time(s) before year 9999");
    }
    Ok(0)
}

fn translate(args: TranslateArgs) -> anyhow::Result<i32> {
    let lines = match Schedule::from_every(&args.every, args.at.as_deref())? {
        Schedule::Reboot => vec!["@reboot".to_string()],
        Schedule::Cron(exprs) => exprs
            .iter()
            .map(|e| {
                e.five_field().ok_or_else(|| {
                    anyhow!(
                        "{e:?} has a seconds field, so it has no five-field equivalent",
                        e = e.as_str()
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(0)
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Parses a schedule file, printing every problem as `FILE:LINE: …`.
fn load(path: &Path) -> anyhow::Result<Option<ScheduleFile>> {
    let text = read_file(path)?;
    match ScheduleFile::parse(&text) {
        Ok(f) => Ok(Some(f)),
        Err(e) => {
            for issue in &e.issues {
                let who = issue
                    .schedule
                    .as_deref()
                    .map(|n| format!(" schedule {n:?}:"))
                    .unwrap_or_default();
                eprintln!(
                    "{}:{}:{who} {}: {}",
                    path.display(),
                    issue.line,
                    issue.field,
                    issue.message
                );
            }
            eprintln!("error: {} has {} problem(s)", path.display(), e.issues.len());
            Ok(None)
        }
    }
}

fn check(args: CheckArgs) -> anyhow::Result<i32> {
    let Some(file) = load(&args.file)? else {
        return Ok(2);
    };
    let now = Timestamp::now();
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
    Ok(0)
}

/// The zone this machine's cron reads crontab lines in, by IANA name.
fn machine_zone() -> anyhow::Result<String> {
    let tz = TimeZone::system();
    if let Some(name) = tz.iana_name() {
        return Ok(name.to_string());
    }
    if tz == TimeZone::UTC {
        return Ok("UTC".into());
    }
    bail!("cannot tell this machine's time zone by IANA name; set TZ (e.g. TZ=Europe/Paris) or use --utc")
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
fn read_crontab(user: Option<&str>) -> anyhow::Result<String> {
    let output = crontab_base(user)
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", crontab_program()))?;
    if output.status.success() {
        return String::from_utf8(output.stdout).context("the crontab is not UTF-8");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.to_ascii_lowercase().contains("no crontab") {
        return Ok(String::new());
    }
    bail!(
        "{} -l failed ({}): {}",
        crontab_program(),
        output.status,
        stderr.trim()
    )
}

/// `crontab -` with the new text on standard input.
fn write_crontab(user: Option<&str>, text: &str) -> anyhow::Result<()> {
    let mut child = crontab_base(user)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", crontab_program()))?;
    child
        .stdin
        .take()
        .context("no stdin for crontab")?
        .write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{} - failed ({}): {}",
            crontab_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn crontab_cmd(args: CrontabArgs) -> anyhow::Result<i32> {
    let identifier = match &args.identifier {
        Some(id) => id.clone(),
        None => std::path::absolute(&args.file)
            .with_context(|| format!("cannot resolve {}", args.file.display()))?
            .display()
            .to_string(),
    };
    let user = args.user.as_deref();
    if args.clear {
        let current = match read_crontab(user) {
            Ok(c) => c,
            Err(e) => return io_failure(e),
        };
        let new = crontab::clear(&current, &identifier)?;
        if new != current
            && let Err(e) = write_crontab(user, &new)
        {
            return io_failure(e);
        }
        eprintln!("[clear] crontab block {identifier:?} removed");
        return Ok(0);
    }
    let Some(file) = load(&args.file)? else {
        return Ok(2);
    };
    let cron_zone = if args.utc {
        CronZone::utc()
    } else {
        CronZone::machine(&machine_zone()?)
    };
    let lines = crontab::render(&file, &cron_zone)?;
    if args.update || args.write {
        let new = if args.update {
            let current = match read_crontab(user) {
                Ok(c) => c,
                Err(e) => return io_failure(e),
            };
            let new = crontab::update(&current, &identifier, &lines)?;
            if new == current {
                eprintln!("[update] crontab already up to date");
                return Ok(0);
            }
            new
        } else {
            crontab::write(&identifier, &lines)?
        };
        if let Err(e) = write_crontab(user, &new) {
            return io_failure(e);
        }
        let action = if args.update { "updated" } else { "written" };
        eprintln!(
            "[write] crontab {action}: block {identifier:?} with {} line(s)",
            lines.len()
        );
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    for l in &lines {
        writeln!(out, "{l}")?;
    }
    eprintln!("note: your crontab was not changed; use --update, --write or --clear to change it");
    Ok(0)
}

fn io_failure(e: anyhow::Error) -> anyhow::Result<i32> {
    eprintln!("error: {e:#}");
    Ok(1)
}
