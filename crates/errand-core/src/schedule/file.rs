//! The schedule file: `[[schedule]]` entries of a TOML document.
//!
//! ```toml
//! [[schedule]]
//! name = "nightly-report"
//! cron = "30 2 * * *"            # or: every = "day", at = "2:30am"
//! timezone = "Europe/Paris"      # IANA name; default UTC
//! kind = "report.build"          # enqueue a job …
//! queue = "reports"
//! args = { format = "pdf", recipients = ["ops@example.com"] }
//! priority = 50
//! unique_key = "nightly-report"
//! expires_in = "1h"
//! on_overlap = "skip"            # allow (default) | skip
//! on_missed = "all"              # skip (default) | once | all
//! missed_cap = 5                 # with on_missed = "all"; default 10
//! jitter = "30s"
//! enabled = true
//!
//! [[schedule]]
//! name = "rotate-logs"
//! every = "day"
//! at = "4am"
//! command = ["/usr/sbin/logrotate", "/etc/logrotate.conf"]   # … or run a command
//! env = { LANG = "C" }
//! dir = "/var/log"
//! ```
//!
//! Other top-level tables (the rest of errand's configuration) are left to
//! the CLI, which checks them too; an unknown key inside a schedule is an
//! error. `every` may be an array of phrases (`["monday", "friday"]`), a
//! command schedule may name a `queue`, and a command's program must not be
//! a `NAME=value` assignment (a shell would read it as a variable). Every problem is reported
//! (not just the first) with the schedule's name, the field and the line.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use jiff::tz::TimeZone;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Schedule, zone};
use crate::validate::{PRIORITY_MAX, PRIORITY_MIN};

/// One problem in a schedule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleIssue {
    /// The schedule's name, when known.
    pub schedule: Option<String>,
    /// The field at fault (`cron`, `timezone`, …), or `file` / `schedule`.
    pub field: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ScheduleIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        if let Some(name) = &self.schedule {
            write!(f, "schedule {name:?}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A schedule file that does not validate: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    /// The problems, in file order.
    pub issues: Vec<ScheduleIssue>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// Whether a run may start while the previous run of the schedule is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnOverlap {
    /// Start it anyway (cron's behaviour).
    #[default]
    Allow,
    /// Skip the tick while the previous run is unfinished.
    Skip,
}

/// What to do with ticks missed while no scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissed {
    /// Drop them (cron's behaviour).
    #[default]
    Skip,
    /// Run once for all of them.
    Once,
    /// Run each of them, at most `cap` (the most recent ones).
    All {
        /// The most missed ticks run.
        cap: u32,
    },
}

/// The default `missed_cap` for `on_missed = "all"`.
pub const DEFAULT_MISSED_CAP: u32 = 10;

/// What a schedule does when it fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Enqueue a job.
    Enqueue {
        /// The job kind.
        kind: String,
        /// The queue; `None` for the default one.
        queue: Option<String>,
        /// The job's arguments (a TOML table or array, as JSON).
        args: serde_json::Value,
        /// The job's priority.
        priority: Option<i32>,
        /// A unique key for the job.
        unique_key: Option<String>,
        /// How long after the fire time the job expires if not started.
        expires_in: Option<Duration>,
    },
    /// Run a command (argv, no shell), as a job of kind `command`.
    Command {
        /// The queue of the command's job; `None` for the default one. Only
        /// workers of that queue run it (whenever's `roles`, errand's way).
        queue: Option<String>,
        /// The program and its arguments.
        argv: Vec<String>,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
        /// The working directory.
        dir: Option<String>,
    },
}

/// How the schedule's timing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// `cron = "…"`.
    Cron(String),
    /// `every = "…"` with an optional `at`.
    Every {
        /// The `every` phrase.
        every: String,
        /// The `at` value, integers given as text.
        at: Option<String>,
    },
}

/// One validated schedule.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    /// Unique name.
    pub name: String,
    /// 1-based line of the `[[schedule]]` header.
    pub line: usize,
    /// The timing as written.
    pub timing: Timing,
    /// When it fires.
    pub schedule: Schedule,
    /// The IANA zone name (default `UTC`).
    pub timezone_name: String,
    /// The zone the schedule is evaluated in.
    pub timezone: TimeZone,
    /// What it does.
    pub action: Action,
    /// Overlap policy.
    pub on_overlap: OnOverlap,
    /// Missed-tick policy.
    pub on_missed: OnMissed,
    /// Random delay added to each fire time, up to this much.
    pub jitter: Option<Duration>,
    /// Disabled schedules are validated but never fire.
    pub enabled: bool,
}

/// The schedules of a file, in file order.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFile {
    /// The schedules.
    pub schedules: Vec<ScheduleDef>,
}

const KEYS: &[&str] = &[
    "name",
    "cron",
    "every",
    "at",
    "timezone",
    "kind",
    "queue",
    "args",
    "priority",
    "unique_key",
    "expires_in",
    "command",
    "env",
    "dir",
    "on_overlap",
    "on_missed",
    "missed_cap",
    "jitter",
    "enabled",
];

struct Ctx {
    /// Byte offset of the start of each line after the first, in order, so
    /// an offset's line is a binary search (counting newlines from the start
    /// for every schedule made a file of 20,000 schedules take 20 s).
    line_starts: Vec<usize>,
    issues: Vec<ScheduleIssue>,
    /// Every schedule's name and header line, valid schedule or not, so a
    /// duplicate name is reported even when one of its schedules has other errors.
    names: Vec<(String, usize)>,
}

impl Ctx {
    fn new(text: &str) -> Ctx {
        let line_starts = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        Ctx {
            line_starts,
            issues: Vec::new(),
            names: Vec::new(),
        }
    }

    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset) + 1
    }

    fn issue(&mut self, schedule: Option<&str>, field: &str, offset: usize, message: impl Into<String>) {
        let line = self.line(offset);
        self.issues.push(ScheduleIssue {
            schedule: schedule.map(str::to_string),
            field: field.to_string(),
            line,
            message: message.into(),
        });
    }
}

/// Looks a key up in a schedule table: (key offset, value).
type Getter<'f, 'v, 'i> = dyn Fn(&str) -> Option<(usize, &'v Spanned<DeValue<'i>>)> + 'f;

type Entry<'i> = (Spanned<std::borrow::Cow<'i, str>>, Spanned<DeValue<'i>>);

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl ScheduleFile {
    /// Parses and validates the `[[schedule]]` entries of a TOML document.
    pub fn parse(text: &str) -> Result<ScheduleFile, FileError> {
        let mut cx = Ctx::new(text);
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                cx.issue(None, "file", offset, format!("invalid TOML: {}", e.message()));
                return Err(FileError { issues: cx.issues });
            }
        };
        let mut schedules = Vec::new();
        if let Some(value) = root.get_ref().get("schedule") {
            match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::Table(table) => {
                                if let Some(def) = parse_one(&mut cx, item.span().start, table) {
                                    schedules.push(def);
                                }
                            }
                            other => cx.issue(
                                None,
                                "schedule",
                                item.span().start,
                                format!(
                                    "each schedule must be a table ([[schedule]]), found {}",
                                    type_name(other)
                                ),
                            ),
                        }
                    }
                }
                other => cx.issue(
                    None,
                    "schedule",
                    value.span().start,
                    format!(
                        "`schedule` must be an array of tables ([[schedule]]), found {}",
                        type_name(other)
                    ),
                ),
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (name, line) in &cx.names {
            match seen.get(name.as_str()) {
                Some(first) => cx.issues.push(ScheduleIssue {
                    schedule: Some(name.clone()),
                    field: "name".into(),
                    line: *line,
                    message: format!("duplicate name; first defined on line {first}"),
                }),
                None => {
                    seen.insert(name, *line);
                }
            }
        }
        if cx.issues.is_empty() {
            Ok(ScheduleFile { schedules })
        } else {
            cx.issues.sort_by_key(|i| i.line);
            Err(FileError { issues: cx.issues })
        }
    }
}

fn parse_one(cx: &mut Ctx, header: usize, table: &DeTable<'_>) -> Option<ScheduleDef> {
    let entries: Vec<Entry<'_>> = table.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, v)| (k.span().start, v))
    };
    let before = cx.issues.len();

    let name = match get("name") {
        Some((_, v)) => match v.get_ref() {
            DeValue::String(s)
                if !s.trim().is_empty() && s.len() <= 200 && !s.chars().any(char::is_control) =>
            {
                Some(s.to_string())
            }
            DeValue::String(_) => {
                cx.issue(
                    None,
                    "name",
                    v.span().start,
                    "must be 1-200 characters without control characters",
                );
                None
            }
            other => {
                cx.issue(
                    None,
                    "name",
                    v.span().start,
                    format!("must be a string, found {}", type_name(other)),
                );
                None
            }
        },
        None => {
            cx.issue(None, "name", header, "every schedule needs a name");
            None
        }
    };
    if let Some(name) = &name {
        let line = cx.line(header);
        cx.names.push((name.clone(), line));
    }
    let n = name.as_deref();

    for (k, _) in &entries {
        if k.get_ref() == "roles" {
            cx.issue(
                n,
                "roles",
                k.span().start,
                "errand has no server roles: a schedule fires once for the whole system, not once \
                 per server; to run its job only on some machines, set queue = \"NAME\" and run \
                 `errand work --queues NAME` on those machines, or for a crontab \
                 `errand schedule crontab --queues NAME` (see docs/SCHEDULES.md)",
            );
        } else if !KEYS.contains(&k.get_ref().as_ref()) {
            cx.issue(
                n,
                k.get_ref(),
                k.span().start,
                format!("unknown key; a schedule takes {}", KEYS.join(", ")),
            );
        }
    }

    let string = |cx: &mut Ctx, key: &str| -> Option<(String, usize)> {
        let (_, v) = get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span().start)),
            other => {
                cx.issue(
                    n,
                    key,
                    v.span().start,
                    format!("must be a string, found {}", type_name(other)),
                );
                None
            }
        }
    };

    // Timing.
    let cron = string(cx, "cron");
    // `every` is a phrase, or an array of them (whenever's `every :monday,
    // :friday`), which means the same as the phrases joined by commas.
    let every = match get("every") {
        None => None,
        Some((_, v)) => match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span().start)),
            DeValue::Array(items) if !items.is_empty() => {
                let mut parts = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => parts.push(s.to_string()),
                        other => cx.issue(
                            n,
                            "every",
                            item.span().start,
                            format!("items must be strings, found {}", type_name(other)),
                        ),
                    }
                }
                (parts.len() == items.len()).then(|| (parts.join(", "), v.span().start))
            }
            DeValue::Array(_) => {
                cx.issue(n, "every", v.span().start, "must name at least one schedule");
                None
            }
            other => {
                cx.issue(
                    n,
                    "every",
                    v.span().start,
                    format!(
                        "must be a string or an array of strings, found {}",
                        type_name(other)
                    ),
                );
                None
            }
        },
    };
    let at = match get("at") {
        None => None,
        Some((_, v)) => match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span().start)),
            DeValue::Integer(i) => Some((i.as_str().to_string(), v.span().start)),
            DeValue::Array(items) => {
                let mut parts = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => parts.push(s.to_string()),
                        DeValue::Integer(i) => parts.push(i.as_str().to_string()),
                        other => cx.issue(
                            n,
                            "at",
                            item.span().start,
                            format!("items must be strings or integers, found {}", type_name(other)),
                        ),
                    }
                }
                Some((parts.join(","), v.span().start))
            }
            other => {
                cx.issue(
                    n,
                    "at",
                    v.span().start,
                    format!("must be a string or an integer, found {}", type_name(other)),
                );
                None
            }
        },
    };
    let timing = match (&cron, &every) {
        (Some(_), Some((_, off))) => {
            cx.issue(n, "every", *off, "give either cron or every, not both");
            None
        }
        // A cron or every of the wrong type has been reported already.
        (None, None) if get("cron").is_some() || get("every").is_some() => None,
        (None, None) => {
            cx.issue(n, "cron", header, "every schedule needs cron or every");
            None
        }
        (Some((c, off)), None) => {
            if let Some((_, at_off)) = &at {
                cx.issue(n, "at", *at_off, "at goes with every, not with cron");
            }
            match Schedule::parse_cron(c) {
                Ok(s) => Some((Timing::Cron(c.clone()), s)),
                Err(e) => {
                    cx.issue(n, "cron", *off, format!("{}: {}", e.field, e.message));
                    None
                }
            }
        }
        (None, Some((e, off))) => {
            let at_text = at.as_ref().map(|(a, _)| a.as_str());
            match Schedule::from_every(e, at_text) {
                Ok(s) => Some((
                    Timing::Every {
                        every: e.clone(),
                        at: at.as_ref().map(|(a, _)| a.clone()),
                    },
                    s,
                )),
                Err(err) => {
                    let off = if err.field == "at" {
                        at.as_ref().map_or(*off, |(_, o)| *o)
                    } else {
                        *off
                    };
                    cx.issue(n, err.field, off, err.message);
                    None
                }
            }
        }
    };

    let (timezone_name, timezone) = match string(cx, "timezone") {
        None => ("UTC".to_string(), Some(TimeZone::UTC)),
        Some((tz, off)) => match zone(&tz) {
            Ok(z) => (tz, Some(z)),
            Err(e) => {
                cx.issue(n, "timezone", off, e.to_string());
                (tz, None)
            }
        },
    };

    // Action.
    let kind = string(cx, "kind");
    let command = get("command");
    let enqueue_keys = ["args", "priority", "unique_key", "expires_in"];
    let queue = string(cx, "queue").map(|(q, off)| {
        if let Err(e) = crate::validate::queue_name("queue", &q) {
            cx.issue(n, "queue", off, e.message);
        }
        q
    });
    let command_keys = ["env", "dir"];
    let action = match (&kind, command) {
        (Some(_), Some((_, v))) => {
            cx.issue(
                n,
                "command",
                v.span().start,
                "give either kind (enqueue a job) or command, not both",
            );
            None
        }
        // A kind of the wrong type has been reported already.
        (None, None) if get("kind").is_some() => None,
        (None, None) => {
            cx.issue(
                n,
                "kind",
                header,
                "every schedule needs kind (a job to enqueue) or command",
            );
            None
        }
        (Some((k, off)), None) => {
            for key in command_keys {
                if let Some((o, _)) = get(key) {
                    cx.issue(n, key, o, "only goes with command");
                }
            }
            if k.trim().is_empty() {
                cx.issue(n, "kind", *off, "must not be empty");
            }
            let args = match get("args") {
                None => serde_json::Value::Object(Default::default()),
                Some((_, v)) => match v.get_ref() {
                    DeValue::Table(_) | DeValue::Array(_) => to_json(v.get_ref()).unwrap_or_else(|m| {
                        cx.issue(n, "args", v.span().start, m);
                        serde_json::Value::Null
                    }),
                    other => {
                        cx.issue(
                            n,
                            "args",
                            v.span().start,
                            format!("must be a table or an array, found {}", type_name(other)),
                        );
                        serde_json::Value::Null
                    }
                },
            };
            let priority = get("priority").and_then(|(_, v)| match v.get_ref() {
                DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(p) if (i64::from(PRIORITY_MIN)..=i64::from(PRIORITY_MAX)).contains(&p) => {
                        Some(p as i32)
                    }
                    _ => {
                        cx.issue(
                            n,
                            "priority",
                            v.span().start,
                            format!("must be between {PRIORITY_MIN} and {PRIORITY_MAX}"),
                        );
                        None
                    }
                },
                other => {
                    cx.issue(
                        n,
                        "priority",
                        v.span().start,
                        format!("must be an integer, found {}", type_name(other)),
                    );
                    None
                }
            });
            let unique_key = string(cx, "unique_key").map(|(u, off)| {
                if u.is_empty() || u.len() > 512 {
                    cx.issue(n, "unique_key", off, "must be 1-512 characters");
                }
                u
            });
            let expires_in = duration_field(cx, n, &get, "expires_in");
            Some(Action::Enqueue {
                kind: k.clone(),
                queue: queue.clone(),
                args,
                priority,
                unique_key,
                expires_in,
            })
        }
        (None, Some((_, v))) => {
            for key in enqueue_keys {
                if let Some((o, _)) = get(key) {
                    cx.issue(n, key, o, "only goes with kind (enqueue a job), not with command");
                }
            }
            let argv = match v.get_ref() {
                DeValue::Array(items) if !items.is_empty() => {
                    let mut argv = Vec::new();
                    for item in items.iter() {
                        match item.get_ref() {
                            DeValue::String(s) if !s.contains('\0') => argv.push(s.to_string()),
                            _ => cx.issue(
                                n,
                                "command",
                                item.span().start,
                                "every item must be a string without NUL",
                            ),
                        }
                    }
                    if argv.first().is_some_and(|p| p.is_empty()) {
                        cx.issue(
                            n,
                            "command",
                            v.span().start,
                            "the program (first item) must not be empty",
                        );
                    }
                    // A shell (and so cron) reads a leading NAME=value as a
                    // variable for the command; errand runs argv without a
                    // shell and would look for a program of that name.
                    if let Some((var, value)) = argv.first().and_then(|p| assignment(p)) {
                        cx.issue(
                            n,
                            "command",
                            v.span().start,
                            format!(
                                "the program (first item) {:?} is a variable assignment, not a program: \
                                 errand runs command without a shell; set it with env = {{ {var} = {value:?} }}",
                                argv[0]
                            ),
                        );
                    }
                    argv
                }
                DeValue::Array(_) => {
                    cx.issue(n, "command", v.span().start, "must name at least the program");
                    Vec::new()
                }
                other => {
                    cx.issue(
                        n,
                        "command",
                        v.span().start,
                        format!(
                            "must be an array of strings (argv; no shell), found {}",
                            type_name(other)
                        ),
                    );
                    Vec::new()
                }
            };
            let mut env = BTreeMap::new();
            if let Some((_, ev)) = get("env") {
                match ev.get_ref() {
                    DeValue::Table(t) => {
                        for (k, val) in t.iter() {
                            let key = k.get_ref();
                            if !is_variable_name(key) {
                                cx.issue(
                                    n,
                                    "env",
                                    k.span().start,
                                    format!("{key:?} is not a valid variable name"),
                                );
                            }
                            match val.get_ref() {
                                DeValue::String(s) if !s.contains('\0') => {
                                    env.insert(key.to_string(), s.to_string());
                                }
                                _ => cx.issue(n, "env", val.span().start, "values must be strings"),
                            }
                        }
                    }
                    other => cx.issue(
                        n,
                        "env",
                        ev.span().start,
                        format!("must be a table, found {}", type_name(other)),
                    ),
                }
            }
            let dir = string(cx, "dir").map(|(d, off)| {
                if d.is_empty() || d.contains('\0') {
                    cx.issue(n, "dir", off, "must be a non-empty path");
                }
                d
            });
            Some(Action::Command {
                queue: queue.clone(),
                argv,
                env,
                dir,
            })
        }
    };

    // Policies.
    let on_overlap = match string(cx, "on_overlap") {
        None => OnOverlap::Allow,
        Some((s, off)) => match s.as_str() {
            "allow" => OnOverlap::Allow,
            "skip" => OnOverlap::Skip,
            _ => {
                cx.issue(n, "on_overlap", off, format!("{s:?}: expected allow or skip"));
                OnOverlap::Allow
            }
        },
    };
    let cap = get("missed_cap").and_then(|(_, v)| match v.get_ref() {
        DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
            Ok(c) if c >= 1 => Some((c, v.span().start)),
            _ => {
                cx.issue(
                    n,
                    "missed_cap",
                    v.span().start,
                    "must be a whole number from 1 to 4294967295",
                );
                None
            }
        },
        other => {
            cx.issue(
                n,
                "missed_cap",
                v.span().start,
                format!("must be an integer, found {}", type_name(other)),
            );
            None
        }
    });
    let on_missed = match string(cx, "on_missed") {
        None => OnMissed::Skip,
        Some((s, off)) => match s.as_str() {
            "skip" => OnMissed::Skip,
            "once" => OnMissed::Once,
            "all" => OnMissed::All {
                cap: cap.map_or(DEFAULT_MISSED_CAP, |(c, _)| c),
            },
            _ => {
                cx.issue(n, "on_missed", off, format!("{s:?}: expected skip, once or all"));
                OnMissed::Skip
            }
        },
    };
    if let (Some((_, off)), false) = (cap, matches!(on_missed, OnMissed::All { .. })) {
        cx.issue(n, "missed_cap", off, "only goes with on_missed = \"all\"");
    }
    let jitter = duration_field(cx, n, &get, "jitter");
    let enabled = match get("enabled") {
        None => true,
        Some((_, v)) => match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                cx.issue(
                    n,
                    "enabled",
                    v.span().start,
                    format!("must be true or false, found {}", type_name(other)),
                );
                true
            }
        },
    };

    if cx.issues.len() > before {
        return None;
    }
    let (timing, schedule) = timing?;
    Some(ScheduleDef {
        name: name?,
        line: cx.line(header),
        timing,
        schedule,
        timezone_name,
        timezone: timezone?,
        action: action?,
        on_overlap,
        on_missed,
        jitter,
        enabled,
    })
}

/// Whether `name` can name an environment variable in a shell: a letter or
/// `_`, then letters, digits and `_`.
pub fn is_variable_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=value` split, when `word` is what a shell reads as a variable
/// assignment in front of a command.
pub fn assignment(word: &str) -> Option<(&str, &str)> {
    word.split_once('=').filter(|(name, _)| is_variable_name(name))
}

fn duration_field<'v, 'i: 'v>(
    cx: &mut Ctx,
    n: Option<&str>,
    get: &Getter<'_, 'v, 'i>,
    key: &str,
) -> Option<Duration> {
    let (_, v) = get(key)?;
    match v.get_ref() {
        DeValue::String(s) => match parse_duration(s) {
            Ok(d) => Some(d),
            Err(m) => {
                cx.issue(n, key, v.span().start, m);
                None
            }
        },
        other => {
            cx.issue(
                n,
                key,
                v.span().start,
                format!(
                    "must be a duration string like \"10m\", found {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

/// Parses durations like `30s`, `10m`, `1h30m`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration; write e.g. \"30s\", \"10m\", \"1h30m\" or \"2d\"");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        rest = rest[unit_len..].trim_start();
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_secs(total))
}

/// A TOML value as JSON (datetimes become their RFC 3339 text).
fn to_json(v: &DeValue<'_>) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => J::from(
            i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("integer {i} does not fit 64 bits"))?,
        ),
        DeValue::Float(f) => {
            let x: f64 = f
                .as_str()
                .parse()
                .map_err(|_| format!("float {f} is not a number"))?;
            J::from(serde_json::Number::from_f64(x).ok_or_else(|| format!("float {f} has no JSON form"))?)
        }
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => J::Array(
            items
                .iter()
                .map(|i| to_json(i.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), to_json(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<ScheduleIssue> {
        ScheduleFile::parse(text).expect_err("should not validate").issues
    }

    #[test]
    fn parses_a_full_file_and_ignores_other_tables() {
        let text = r#"
[server]
listen = "127.0.0.1:8080"

[[schedule]]
name = "nightly"
cron = "30 2 * * *"
timezone = "America/New_York"
kind = "report.build"
queue = "reports"
args = { format = "pdf", pages = [1, 2], ratio = 0.5, ok = true }
priority = 50
unique_key = "nightly"
expires_in = "1h30m"
on_overlap = "skip"
on_missed = "all"
missed_cap = 3
jitter = "30s"

[[schedule]]
name = "rotate"
every = "day"
at = "4am"
command = ["logrotate", "/etc/logrotate.conf"]
env = { LANG = "C" }
dir = "/var/log"
enabled = false

[[schedule]]
name = "every-5"
every = "5 minutes"
at = 2
kind = "tick"
"#;
        let f = ScheduleFile::parse(text).expect("valid");
        assert_eq!(f.schedules.len(), 3);
        let s = &f.schedules[0];
        assert_eq!(
            (s.name.as_str(), s.line, s.timezone_name.as_str()),
            ("nightly", 5, "America/New_York")
        );
        assert_eq!(s.on_overlap, OnOverlap::Skip);
        assert_eq!(s.on_missed, OnMissed::All { cap: 3 });
        assert_eq!(s.jitter, Some(Duration::from_secs(30)));
        match &s.action {
            Action::Enqueue {
                kind,
                queue,
                args,
                priority,
                unique_key,
                expires_in,
            } => {
                assert_eq!(kind, "report.build");
                assert_eq!(queue.as_deref(), Some("reports"));
                assert_eq!(
                    args,
                    &serde_json::json!({"format": "pdf", "pages": [1, 2], "ratio": 0.5, "ok": true})
                );
                assert_eq!(*priority, Some(50));
                assert_eq!(unique_key.as_deref(), Some("nightly"));
                assert_eq!(*expires_in, Some(Duration::from_secs(5400)));
            }
            other => panic!("{other:?}"),
        }
        let r = &f.schedules[1];
        assert!(!r.enabled);
        assert_eq!(
            r.timing,
            Timing::Every {
                every: "day".into(),
                at: Some("4am".into())
            }
        );
        assert!(
            matches!(&r.action, Action::Command { argv, dir: Some(d), .. } if argv.len() == 2 && d == "/var/log")
        );
        assert_eq!(
            f.schedules[2].timing,
            Timing::Every {
                every: "5 minutes".into(),
                at: Some("2".into())
            }
        );
    }

    #[test]
    fn reports_every_problem_with_name_field_and_line() {
        let text = r#"[[schedule]]
name = "a"
cron = "61 * * * *"
kind = "x"
colour = "red"

[[schedule]]
name = "b"
every = "day"
at = "sometime"
command = ["x"]
timezone = "Mars/Olympus"
priority = 5

[[schedule]]
name = "a"
cron = "@daily"
kind = "y"
on_missed = "later"
"#;
        let got = issues(text);
        let summary: Vec<(Option<&str>, &str, usize)> = got
            .iter()
            .map(|i| (i.schedule.as_deref(), i.field.as_str(), i.line))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("a"), "cron", 3),
                (Some("a"), "colour", 5),
                (Some("b"), "at", 10),
                (Some("b"), "timezone", 12),
                (Some("b"), "priority", 13),
                (Some("a"), "name", 15),
                (Some("a"), "on_missed", 19),
            ],
            "{got:#?}"
        );
        assert!(got[0].message.contains("minute") && got[0].message.contains("out of range"));
        assert!(got[1].message.contains("unknown key"));
        assert!(
            got[3]
                .to_string()
                .starts_with("line 12: schedule \"b\": timezone: unknown time zone")
        );
    }

    #[test]
    fn duplicate_names_and_structural_errors() {
        let text = "[[schedule]]\nname = \"a\"\ncron = \"@daily\"\nkind = \"x\"\n\n[[schedule]]\nname = \"a\"\nevery = \"hour\"\nkind = \"y\"\n";
        let got = issues(text);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].field.as_str(), got[0].line), ("name", 6));
        assert!(got[0].message.contains("first defined on line 1"));
        assert_eq!(issues("schedule = 3\n")[0].field, "schedule");
        assert_eq!(issues("[[schedule]]\nname = \"x\"\n").len(), 2); // no timing, no action
        assert_eq!(issues("[[schedule\n")[0].field, "file");
        let both = issues(
            "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\nevery = \"day\"\nkind = \"k\"\ncommand = [\"c\"]\n",
        );
        assert_eq!(both.len(), 2);
        let mixed = issues(
            "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\ncommand = [\"c\"]\npriority = 2\nmissed_cap = 2\n",
        );
        assert_eq!(
            mixed.iter().map(|i| i.field.as_str()).collect::<Vec<_>>(),
            ["priority", "missed_cap"]
        );
        assert!(
            ScheduleFile::parse("[other]\nx = 1\n")
                .expect("valid")
                .schedules
                .is_empty()
        );
    }

    #[test]
    fn a_duplicate_name_is_reported_even_when_a_schedule_has_other_errors() {
        // The second "a" is itself invalid; "b" is invalid too.
        let text = "[[schedule]]\nname = \"a\"\ncron = \"@daily\"\nkind = \"x\"\n\n\
                    [[schedule]]\nname = \"b\"\ncron = \"61 * * * *\"\nkind = \"x\"\n\n\
                    [[schedule]]\nname = \"a\"\ncron = \"@daily\"\nkind = \"\"\n";
        let got = issues(text);
        let summary: Vec<(&str, usize)> = got.iter().map(|i| (i.field.as_str(), i.line)).collect();
        assert_eq!(summary, [("cron", 8), ("name", 11), ("kind", 14)], "{got:#?}");
        assert!(got[1].message.contains("first defined on line 1"));
        // Both duplicates invalid.
        let text = "[[schedule]]\nname = \"a\"\ncron = \"x\"\nkind = \"x\"\n\
                    [[schedule]]\nname = \"a\"\ncron = \"y\"\nkind = \"x\"\n";
        assert!(issues(text).iter().any(|i| i.field == "name" && i.line == 5));
    }

    #[test]
    fn lines_are_right_at_the_end_of_a_large_file() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "[[schedule]]\nname = \"s{i}\"\ncron = \"@daily\"\nkind = \"k\"\n"
            ));
        }
        text.push_str("[[schedule]]\nname = \"last\"\ncron = \"@daily\"\nkind = \"k\"\ncolour = 1");
        let got = issues(&text);
        assert_eq!((got[0].field.as_str(), got[0].line), ("colour", 20_005));
        let mut ok = text.clone();
        ok.truncate(text.rfind("colour").unwrap());
        let f = ScheduleFile::parse(&ok).expect("valid");
        assert_eq!(f.schedules[4999].line, 19_997);
        assert_eq!(f.schedules[5000].line, 20_001);
        // The first line, and an offset at a newline.
        let c = Ctx::new("a\nb\n");
        assert_eq!((c.line(0), c.line(1), c.line(2), c.line(4)), (1, 1, 2, 3));
    }

    #[test]
    fn every_takes_an_array_of_phrases() {
        let f = ScheduleFile::parse(
            "[[schedule]]\nname = \"x\"\nevery = [\"monday\", \"friday\"]\nat = \"9am\"\nkind = \"k\"\n",
        )
        .expect("valid");
        assert_eq!(
            f.schedules[0].timing,
            Timing::Every {
                every: "monday, friday".into(),
                at: Some("9am".into())
            }
        );
        assert_eq!(
            f.schedules[0].schedule,
            Schedule::from_every("monday, friday", Some("9am")).unwrap()
        );
        // A wrong type is one error, not also "needs cron or every".
        for bad in ["every = 5", "every = [1]", "every = []", "cron = 5"] {
            let got = issues(&format!("[[schedule]]\nname = \"x\"\n{bad}\nkind = \"k\"\n"));
            assert_eq!(got.len(), 1, "{bad}: {got:#?}");
            assert_eq!(got[0].line, 3, "{bad}");
            assert!(!got[0].message.contains("needs cron or every"), "{bad}");
        }
        let got = issues("[[schedule]]\nname = \"x\"\ncron = \"@daily\"\nkind = 5\n");
        assert_eq!(got.len(), 1, "{got:#?}");
    }

    #[test]
    fn a_variable_assignment_is_not_a_program() {
        let got = issues(
            "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\ncommand = [\"FOO=bar\", \"echo\", \"hi\"]\n",
        );
        assert_eq!((got[0].field.as_str(), got[0].line), ("command", 4));
        assert!(
            got[0].message.contains("env = { FOO = \"bar\" }"),
            "{}",
            got[0].message
        );
        // An = elsewhere is an ordinary argument, and a path with = is no assignment.
        ScheduleFile::parse(
            "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\ncommand = [\"env\", \"FOO=bar\", \"echo\"]\n\n\
             [[schedule]]\nname = \"y\"\ncron = \"@daily\"\ncommand = [\"./a=b\"]\n",
        )
        .expect("valid");
    }

    #[test]
    fn roles_point_to_queues_and_command_schedules_take_a_queue() {
        let got =
            issues("[[schedule]]\nname = \"x\"\ncron = \"@daily\"\ncommand = [\"c\"]\nroles = [\"app\"]\n");
        assert_eq!((got[0].field.as_str(), got[0].line), ("roles", 5));
        assert!(got[0].message.contains("queue = \"NAME\""), "{}", got[0].message);
        assert!(got[0].message.contains("--queues NAME"), "{}", got[0].message);
        let f = ScheduleFile::parse(
            "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\ncommand = [\"c\"]\nqueue = \"app\"\n",
        )
        .expect("valid");
        assert!(matches!(&f.schedules[0].action, Action::Command { queue: Some(q), .. } if q == "app"));
        let got =
            issues("[[schedule]]\nname = \"x\"\ncron = \"@daily\"\ncommand = [\"c\"]\nqueue = \"a b\"\n");
        assert_eq!(got[0].field, "queue");
        assert!(
            got[0].message.contains("not a valid queue name"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999d").is_err());
    }

    proptest::proptest! {
        #[test]
        fn file_parser_never_panics(text in "\\PC{0,200}") {
            let _ = ScheduleFile::parse(&text);
        }

        #[test]
        fn file_parser_never_panics_on_schedule_like_input(
            key in "(name|cron|every|at|timezone|kind|command|args|env|priority|jitter|missed_cap|x)",
            value in "(\"[a-z0-9 */@:,]{0,12}\"|[0-9]{1,25}|true|\\[\"[a-z]{0,3}\"\\]|\\{ a = 1 \\}|1\\.5e400)",
        ) {
            let text = format!("[[schedule]]\nname = \"n\"\nkind = \"k\"\n{key} = {value}\n");
            let _ = ScheduleFile::parse(&text);
        }
    }
}
