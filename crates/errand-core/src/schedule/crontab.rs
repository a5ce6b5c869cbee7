//! Crontab export, as pure text functions: the marked errand block, and
//! `command` schedules rendered as crontab lines. Reading and writing the
//! crontab (through the `crontab` program) is the CLI's job.
//!
//! The block is delimited like whenever's:
//!
//! ```text
//! # Begin errand generated tasks for: ID
//! …generated lines…
//! # End errand generated tasks for: ID
//! ```
//!
//! Unlike whenever, every byte outside the block is kept as it was (whenever
//! strips trailing whitespace and squeezes blank lines), and an appended
//! block is not preceded by a blank line, so clearing it restores the
//! original text exactly (when that text ended with a newline).

use super::file::{Action, OnMissed, OnOverlap, ScheduleDef, ScheduleFile};

/// A crontab that cannot be updated, or a schedule that cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrontabError {
    /// The crontab has a Begin marker for the identifier but no End after it (or the reverse).
    #[error("the crontab has {found:?} but no matching {missing:?}; fix the crontab by hand")]
    Unbalanced {
        /// The marker present.
        found: String,
        /// The marker missing.
        missing: String,
    },
    /// The crontab has more than one block for the identifier.
    #[error("the crontab has {0} blocks for identifier {1:?}; remove all but one by hand")]
    Duplicate(usize, String),
    /// The identifier cannot go in a marker line.
    #[error("identifier {0:?} must be one line of printable text")]
    BadIdentifier(String),
    /// Schedules that cannot be expressed exactly in a crontab, every one
    /// of them (each an [`CrontabError::Unexportable`]).
    #[error("{} schedule(s) cannot go in a crontab: {}", .0.len(), join(.0))]
    Refused(Vec<CrontabError>),
    /// A schedule cannot be expressed exactly in a crontab.
    #[error("schedule {name:?} (line {line}): {message}")]
    Unexportable {
        /// The schedule's name.
        name: String,
        /// The line of its `[[schedule]]` header.
        line: usize,
        /// Why.
        message: String,
    },
}

fn join(errors: &[CrontabError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn begin(id: &str) -> String {
    format!("# Begin errand generated tasks for: {id}")
}

fn end(id: &str) -> String {
    format!("# End errand generated tasks for: {id}")
}

/// The identifier as it goes in the marker lines: without leading or
/// trailing whitespace (a marker line is matched with its trailing
/// whitespace ignored, so `"id "` and `"id"` must be one block). Every
/// function here normalises the identifier it is given this way.
pub fn identifier(id: &str) -> Result<&str, CrontabError> {
    let trimmed = id.trim();
    if trimmed.is_empty() || id.chars().any(char::is_control) {
        return Err(CrontabError::BadIdentifier(id.to_string()));
    }
    Ok(trimmed)
}

/// The block for `id` around `lines`, newline-terminated.
pub fn block(id: &str, lines: &[String]) -> Result<String, CrontabError> {
    let id = identifier(id)?;
    let mut out = begin(id);
    out.push('\n');
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&end(id));
    out.push('\n');
    Ok(out)
}

/// The identifiers of the blocks in a crontab (from their Begin lines), in
/// order, each once: a caller can find blocks it wrote under another
/// spelling of the same identifier.
pub fn block_identifiers(text: &str) -> Vec<String> {
    let prefix = begin("");
    let mut out: Vec<String> = Vec::new();
    for (s, t) in line_spans(text) {
        if let Some(id) = text[s..t].trim_end().strip_prefix(&prefix) {
            let id = id.trim();
            if !id.is_empty() && !out.iter().any(|o| o == id) {
                out.push(id.to_string());
            }
        }
    }
    out
}

/// Byte ranges of the lines of `text` (each including its `\n`, if any).
fn line_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            spans.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        spans.push((start, text.len()));
    }
    spans
}

/// Where the block for `id` is: the byte range from its Begin line through
/// its End line (newline included). A marker line matches with trailing
/// whitespace (as whenever's `\s*$`).
fn find_block(text: &str, id: &str) -> Result<Option<(usize, usize)>, CrontabError> {
    let (b, e) = (begin(id), end(id));
    let mut begins = Vec::new();
    let mut ends = Vec::new();
    for (s, t) in line_spans(text) {
        let line = text[s..t].trim_end();
        if line == b {
            begins.push(s);
        } else if line == e {
            ends.push(t);
        }
    }
    match (begins.len(), ends.len()) {
        (0, 0) => Ok(None),
        (1, 1) if begins[0] < ends[0] => Ok(Some((begins[0], ends[0]))),
        (1, 0) | (1, 1) => Err(CrontabError::Unbalanced { found: b, missing: e }),
        (0, _) => Err(CrontabError::Unbalanced { found: e, missing: b }),
        (n, _) => Err(CrontabError::Duplicate(n, id.to_string())),
    }
}

/// `--update`: replaces the block for `id` with `lines`, or appends the block
/// when there is none. Everything else is kept byte for byte; a final line
/// without a newline gets one before an appended block. Idempotent.
pub fn update(current: &str, id: &str, lines: &[String]) -> Result<String, CrontabError> {
    let id = identifier(id)?;
    let new_block = block(id, lines)?;
    match find_block(current, id)? {
        Some((s, t)) => {
            let mut out = String::with_capacity(current.len() + new_block.len());
            out.push_str(&current[..s]);
            // An End marker on the last line without a newline: keep it that way.
            if t == current.len() && !current.ends_with('\n') {
                out.push_str(new_block.trim_end_matches('\n'));
            } else {
                out.push_str(&new_block);
            }
            out.push_str(&current[t..]);
            Ok(out)
        }
        None => {
            let mut out = current.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&new_block);
            Ok(out)
        }
    }
}

/// `--write`: the whole crontab becomes the block.
pub fn write(id: &str, lines: &[String]) -> Result<String, CrontabError> {
    block(id, lines)
}

/// `--clear`: removes the block for `id` (its marker lines included), keeping
/// everything else byte for byte. No block: the text is returned unchanged.
pub fn clear(current: &str, id: &str) -> Result<String, CrontabError> {
    let id = identifier(id)?;
    Ok(match find_block(current, id)? {
        Some((s, t)) => format!("{}{}", &current[..s], &current[t..]),
        None => current.to_string(),
    })
}

/// How the generated lines will be read by cron.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronZone {
    /// The IANA name of the zone cron evaluates the lines in.
    pub name: String,
    /// True when the block begins with `CRON_TZ=UTC` (the `--utc` mode).
    pub utc_mode: bool,
}

impl CronZone {
    /// Lines are read in the machine's zone, given by IANA name.
    pub fn machine(name: &str) -> CronZone {
        CronZone {
            name: name.to_string(),
            utc_mode: false,
        }
    }

    /// `--utc`: the block starts with `CRON_TZ=UTC`, and lines are in UTC.
    pub fn utc() -> CronZone {
        CronZone {
            name: "UTC".into(),
            utc_mode: true,
        }
    }

    fn same_zone(&self, other: &str) -> bool {
        let utc = |z: &str| {
            matches!(
                z,
                "UTC"
                    | "Etc/UTC"
                    | "Etc/UCT"
                    | "UCT"
                    | "Etc/Universal"
                    | "Universal"
                    | "Zulu"
                    | "Etc/Zulu"
                    | "GMT"
                    | "Etc/GMT"
                    | "Etc/GMT0"
                    | "Etc/GMT+0"
                    | "Etc/GMT-0"
                    | "Etc/Greenwich"
                    | "GMT0"
                    | "GMT+0"
                    | "GMT-0"
                    | "Greenwich"
            )
        };
        self.name == other || (utc(&self.name) && utc(other))
    }
}

/// The crontab lines of a schedule file, and what was left out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    /// The lines of the block, in file order (`CRON_TZ=UTC` first in UTC mode).
    pub lines: Vec<String>,
    /// Schedules not exported, with the reason: those that enqueue jobs
    /// (they need errand's scheduler), disabled ones, and those whose queue
    /// is not selected.
    pub left_out: Vec<LeftOut>,
}

/// A schedule [`render`] leaves out of the crontab, on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// The schedule's name.
    pub name: String,
    /// The line of its `[[schedule]]` header.
    pub line: usize,
    /// Why: `enqueues a job …`, `disabled`, or `queue "…" not selected …`.
    pub reason: String,
}

/// Renders the enabled `command` schedules of a file as crontab lines, in
/// file order. Schedules that enqueue jobs (they need the scheduler) and
/// disabled ones are left out, and listed in [`Export::left_out`].
///
/// `queues` selects schedules as whenever's `--roles` selects jobs (a
/// machine's crontab gets what its roles run): with `Some(list)`, a command
/// schedule with a `queue` is exported only when that queue is in the list
/// (the others are left out); one without a queue goes in every crontab.
/// `None` exports them all.
///
/// A selected `command` schedule that cron cannot run exactly — a time zone
/// other than cron's (in `--utc` mode: other than UTC), seconds or
/// `L`/`W`/`#`, jitter, `on_overlap = "skip"`, or `on_missed` other than
/// `skip` — is never skipped: the export fails with
/// [`CrontabError::Refused`], naming every such schedule.
pub fn render(
    file: &ScheduleFile,
    zone: &CronZone,
    queues: Option<&[String]>,
) -> Result<Export, CrontabError> {
    let mut out = Export::default();
    if zone.utc_mode {
        out.lines.push("CRON_TZ=UTC".to_string());
    }
    let mut refused = Vec::new();
    for def in &file.schedules {
        let reason = match (&def.action, def.enabled) {
            (Action::Enqueue { .. }, _) => {
                "enqueues a job, which needs errand's scheduler (errand serve or work)".to_string()
            }
            (Action::Command { .. }, false) => "disabled".to_string(),
            (Action::Command { queue: Some(q), .. }, true)
                if queues.is_some_and(|selected| !selected.contains(q)) =>
            {
                format!("queue {q:?} not selected (--queues)")
            }
            (Action::Command { .. }, true) => match render_schedule(def, zone) {
                Ok(lines) => {
                    out.lines.extend(lines);
                    continue;
                }
                Err(e) => {
                    refused.push(e);
                    continue;
                }
            },
        };
        out.left_out.push(LeftOut {
            name: def.name.clone(),
            line: def.line,
            reason,
        });
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(CrontabError::Refused(refused))
    }
}

/// The crontab lines of one `command` schedule.
pub fn render_schedule(def: &ScheduleDef, zone: &CronZone) -> Result<Vec<String>, CrontabError> {
    let refuse = |message: String| CrontabError::Unexportable {
        name: def.name.clone(),
        line: def.line,
        message,
    };
    // A queue says which workers run the job; a crontab line runs on the
    // machine whose crontab holds it, so it has nothing to restrict.
    let Action::Command { argv, env, dir, .. } = &def.action else {
        return Err(refuse("only command schedules can go in a crontab".into()));
    };
    if !zone.same_zone(&def.timezone_name) {
        return Err(refuse(format!(
            "its timezone is {} but cron reads the lines in {}; set timezone = \"{}\"{}",
            def.timezone_name,
            zone.name,
            zone.name,
            if zone.utc_mode {
                ""
            } else {
                ", or use UTC schedules with --utc (adds CRON_TZ=UTC)"
            }
        )));
    }
    if def.jitter.is_some_and(|j| !j.is_zero()) {
        return Err(refuse("cron cannot add jitter; remove jitter".into()));
    }
    if def.on_overlap == OnOverlap::Skip {
        return Err(refuse(
            "cron cannot skip overlapping runs; remove on_overlap = \"skip\"".into(),
        ));
    }
    if def.on_missed != OnMissed::Skip {
        return Err(refuse("cron never runs missed ticks; remove on_missed".into()));
    }
    let specs = def.schedule.crontab_specs().ok_or_else(|| {
        refuse("uses seconds, L, W, # or ?, which cron does not understand; write it in plain cron".into())
    })?;
    let command = shell_command(argv, env, dir.as_deref()).map_err(refuse)?;
    Ok(specs
        .into_iter()
        .map(|spec| format!("{spec} {command}"))
        .collect())
}

/// The command as one crontab command field: `cd DIR && VAR=value argv…`,
/// every word quoted for `/bin/sh`, then `%` escaped as `\%` for cron
/// (which turns an unescaped `%` into a newline and drops the backslash of `\%`).
pub fn shell_command(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
    dir: Option<&str>,
) -> Result<String, String> {
    let mut words: Vec<String> = Vec::new();
    for s in argv.iter().chain(env.values()).map(String::as_str).chain(dir) {
        if s.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "{s:?} contains a line break or NUL, which a crontab line cannot hold"
            ));
        }
    }
    if argv.is_empty() {
        return Err("the command is empty".into());
    }
    if let Some(d) = dir {
        words.push(format!("cd {} &&", shell_quote(d)));
    }
    for (k, v) in env {
        words.push(format!("{k}={}", shell_quote(v)));
    }
    // A program word like FOO=bar would be a variable assignment to the
    // shell; quoted, it names the same program errand's executor runs.
    // (The schedule file refuses such programs; this keeps both meanings
    // equal for any caller.)
    let program = &argv[0];
    if super::file::assignment(program).is_some() {
        words.push(format!("'{}'", program.replace('\'', r"'\''")));
    } else {
        words.push(shell_quote(program));
    }
    words.extend(argv[1..].iter().map(|a| shell_quote(a)));
    let line = words.join(" ");
    // Cron drops the backslash of `\%` and keeps every other backslash, so a
    // backslash right before a `%` cannot be written.
    if line.contains("\\%") {
        return Err("a backslash right before % cannot be written in a crontab line".into());
    }
    Ok(line.replace('%', "\\%"))
}

/// Quotes a word for `/bin/sh`: unchanged when it is only safe characters,
/// otherwise in single quotes (a single quote becomes `'\''`).
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) && !word.starts_with('=') {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const FOREIGN: &str = "MAILTO=ops@example.com\n# my own job   \n*/5 * * * * /usr/bin/foo  # trailing spaces   \n\n\n\n0 1 * * * bar \\% baz\n";

    #[test]
    fn update_appends_then_replaces_only_the_block() {
        let once = update(FOREIGN, "app", &lines(&["0 0 * * * a"])).expect("update");
        assert_eq!(
            once,
            format!(
                "{FOREIGN}# Begin errand generated tasks for: app\n0 0 * * * a\n# End errand generated tasks for: app\n"
            )
        );
        assert_eq!(
            update(&once, "app", &lines(&["0 0 * * * a"])).expect("again"),
            once
        );
        let changed = update(&once, "app", &lines(&["1 1 * * * b", "2 2 * * * c"])).expect("change");
        assert!(changed.starts_with(FOREIGN));
        assert!(changed.contains("1 1 * * * b\n2 2 * * * c\n# End"));
        assert_eq!(clear(&changed, "app").expect("clear"), FOREIGN);
    }

    #[test]
    fn update_keeps_text_after_the_block_and_other_identifiers() {
        let other = block("other", &lines(&["5 5 * * * x"])).expect("block");
        let text = format!(
            "top\n{}{other}tail without newline",
            block("app", &lines(&["old"])).expect("block")
        );
        let got = update(&text, "app", &lines(&["new"])).expect("update");
        assert_eq!(
            got,
            format!(
                "top\n# Begin errand generated tasks for: app\nnew\n# End errand generated tasks for: app\n{other}tail without newline"
            )
        );
        assert_eq!(
            clear(&got, "app").expect("clear"),
            format!("top\n{other}tail without newline")
        );
        assert_eq!(clear(&got, "nothing").expect("clear"), got);
    }

    #[test]
    fn appending_to_text_without_final_newline_adds_one() {
        assert_eq!(
            update("x", "i", &[]).expect("update"),
            "x\n# Begin errand generated tasks for: i\n# End errand generated tasks for: i\n"
        );
        assert_eq!(
            update("", "i", &[]).expect("update"),
            write("i", &[]).expect("write")
        );
    }

    #[test]
    fn unbalanced_or_duplicate_markers_are_errors() {
        let b = begin("i");
        let e = end("i");
        assert!(matches!(
            update(&format!("{b}\nx\n"), "i", &[]),
            Err(CrontabError::Unbalanced { .. })
        ));
        assert!(matches!(
            clear(&format!("{e}\n{b}\n"), "i"),
            Err(CrontabError::Unbalanced { .. })
        ));
        assert!(matches!(
            clear(&format!("{e}\n"), "i"),
            Err(CrontabError::Unbalanced { .. })
        ));
        assert!(matches!(
            clear(&format!("{b}\n{e}\n{b}\n{e}\n"), "i"),
            Err(CrontabError::Duplicate(2, _))
        ));
        assert!(matches!(
            update("", "a\nb", &[]),
            Err(CrontabError::BadIdentifier(_))
        ));
        // Trailing whitespace after a marker still matches (as whenever).
        assert_eq!(
            clear(&format!("a\n{b}  \nx\n{e}\t\nb\n"), "i").expect("clear"),
            "a\nb\n"
        );
    }

    #[test]
    fn quoting_for_sh_and_cron() {
        assert_eq!(shell_quote("/usr/bin/foo"), "/usr/bin/foo");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b;rm -rf /"), "'a b;rm -rf /'");
        let mut env = std::collections::BTreeMap::new();
        env.insert("LANG".to_string(), "C".to_string());
        let cmd =
            shell_command(&lines(&["date", "+%Y-%m-%d", r"a\b"]), &env, Some("/tmp/my dir")).expect("ok");
        assert_eq!(cmd, r"cd '/tmp/my dir' && LANG=C date +\%Y-\%m-\%d 'a\b'");
        assert!(shell_command(&lines(&["printf", r"\%"]), &env, None).is_err());
        assert!(shell_command(&lines(&["echo", "a\nb"]), &env, None).is_err());
    }

    #[test]
    fn render_refuses_what_cron_cannot_do_exactly() {
        let text = r#"
[[schedule]]
name = "backup"
every = "day"
at = "2:30am"
command = ["backup", "--all"]
timezone = "Europe/Paris"

[[schedule]]
name = "job"
cron = "@hourly"
kind = "k"

[[schedule]]
name = "off"
cron = "@hourly"
command = ["x"]
enabled = false
"#;
        let file = ScheduleFile::parse(text).expect("valid");
        assert_eq!(
            render(&file, &CronZone::machine("Europe/Paris"), None)
                .expect("render")
                .lines,
            ["30 2 * * * backup --all"]
        );
        let err = render(&file, &CronZone::machine("UTC"), None).expect_err("zone differs");
        assert!(
            err.to_string()
                .contains("schedule \"backup\" (line 2): its timezone is Europe/Paris"),
            "{err}"
        );
        assert!(render(&file, &CronZone::utc(), None).is_err());
        let export = render(&file, &CronZone::machine("Europe/Paris"), None).expect("render");
        assert_eq!(
            export
                .left_out
                .iter()
                .map(|l| (l.name.as_str(), l.line))
                .collect::<Vec<_>>(),
            [("job", 9), ("off", 14)]
        );

        let utc =
            ScheduleFile::parse("[[schedule]]\nname = \"r\"\nevery = \"reboot\"\ncommand = [\"boot\"]\n")
                .expect("valid");
        assert_eq!(
            render(&utc, &CronZone::utc(), None).expect("render").lines,
            ["CRON_TZ=UTC", "@reboot boot"]
        );
        assert_eq!(
            render(&utc, &CronZone::machine("Etc/UTC"), None)
                .expect("render")
                .lines,
            ["@reboot boot"]
        );

        for extra in [
            "cron = \"0 0 L * *\"",
            "cron = \"*/10 * * * * *\"",
            "every = \"hour\"\njitter = \"1m\"",
            "every = \"hour\"\non_overlap = \"skip\"",
            "every = \"hour\"\non_missed = \"once\"",
        ] {
            let f = ScheduleFile::parse(&format!(
                "[[schedule]]\nname = \"n\"\ncommand = [\"c\"]\n{extra}\n"
            ))
            .expect("valid");
            assert!(render(&f, &CronZone::machine("UTC"), None).is_err(), "{extra}");
        }
        let lists = ScheduleFile::parse(
            "[[schedule]]\nname = \"n\"\nevery = \"monday, friday\"\nat = \"9am, 5pm\"\ncommand = [\"c\"]\n",
        )
        .expect("valid");
        assert_eq!(
            render(&lists, &CronZone::machine("UTC"), None)
                .expect("render")
                .lines,
            ["0 9 * * 1 c", "0 17 * * 1 c", "0 9 * * 5 c", "0 17 * * 5 c"]
        );
        let step =
            ScheduleFile::parse("[[schedule]]\nname = \"n\"\ncron = \"5/15 * * * *\"\ncommand = [\"c\"]\n")
                .expect("valid");
        assert_eq!(
            render(&step, &CronZone::machine("UTC"), None)
                .expect("render")
                .lines,
            ["5-59/15 * * * * c"]
        );
    }

    #[test]
    fn every_schedule_cron_cannot_run_is_named_not_just_the_first() {
        let text = "[[schedule]]\nname = \"paris\"\ncron = \"@daily\"\ncommand = [\"a\"]\ntimezone = \"Europe/Paris\"\n\n\
                    [[schedule]]\nname = \"fine\"\ncron = \"@daily\"\ncommand = [\"b\"]\n\n\
                    [[schedule]]\nname = \"tokyo\"\ncron = \"@daily\"\ncommand = [\"c\"]\ntimezone = \"Asia/Tokyo\"\n\n\
                    [[schedule]]\nname = \"jittery\"\ncron = \"@daily\"\ncommand = [\"d\"]\njitter = \"1m\"\n";
        let file = ScheduleFile::parse(text).expect("valid");
        for zone in [CronZone::utc(), CronZone::machine("UTC")] {
            let Err(CrontabError::Refused(errors)) = render(&file, &zone, None) else {
                panic!("refused")
            };
            let names: Vec<&str> = errors
                .iter()
                .map(|e| match e {
                    CrontabError::Unexportable { name, .. } => name.as_str(),
                    other => panic!("{other}"),
                })
                .collect();
            assert_eq!(names, ["paris", "tokyo", "jittery"]);
        }
        // Only job schedules: an empty block, and each of them listed as left out.
        let jobs = ScheduleFile::parse("[[schedule]]\nname = \"j\"\ncron = \"@daily\"\nkind = \"k\"\n")
            .expect("valid");
        let export = render(&jobs, &CronZone::utc(), None).expect("render");
        assert_eq!(export.lines, ["CRON_TZ=UTC"]);
        assert_eq!(export.left_out[0].name, "j");
    }

    #[test]
    fn queues_select_command_schedules_as_whenever_roles_select_jobs() {
        let text = "[[schedule]]\nname = \"app\"\ncron = \"@daily\"\ncommand = [\"a\"]\nqueue = \"app\"\n\n\
                    [[schedule]]\nname = \"all\"\ncron = \"@daily\"\ncommand = [\"b\"]\n\n\
                    [[schedule]]\nname = \"db\"\ncron = \"@daily\"\ncommand = [\"c\"]\nqueue = \"db\"\ntimezone = \"Asia/Tokyo\"\n";
        let file = ScheduleFile::parse(text).expect("valid");
        let zone = CronZone::machine("UTC");
        let app = render(&file, &zone, Some(&["app".to_string()]))
            .expect("db is not selected, so its zone does not matter");
        assert_eq!(app.lines, ["0 0 * * * a", "0 0 * * * b"]);
        assert_eq!(app.left_out.len(), 1);
        assert_eq!((app.left_out[0].name.as_str(), app.left_out[0].line), ("db", 12));
        assert_eq!(app.left_out[0].reason, "queue \"db\" not selected (--queues)");
        let none = render(&file, &zone, Some(&["web".to_string()])).expect("render");
        assert_eq!(none.lines, ["0 0 * * * b"]);
        // Without a selection every command schedule is exported (and db's zone is refused).
        assert!(matches!(render(&file, &zone, None), Err(CrontabError::Refused(e)) if e.len() == 1));
        assert!(render(&file, &zone, Some(&["db".to_string()])).is_err());
    }

    #[test]
    fn block_identifiers_lists_each_block_once() {
        let text = "x\n# Begin errand generated tasks for: /a/../b.toml  \n1\n# End errand generated tasks for: /a/../b.toml\n\
                    # Begin errand generated tasks for: app\n# End errand generated tasks for: app\n\
                    # Begin errand generated tasks for: app\n#Begin errand generated tasks for: no\n";
        assert_eq!(block_identifiers(text), ["/a/../b.toml", "app"]);
        assert!(block_identifiers("").is_empty());
    }

    #[test]
    fn identifiers_are_trimmed_so_one_file_keeps_one_block() {
        let once = update("", "my id ", &lines(&["* * * * * a"])).expect("update");
        assert!(
            once.starts_with("# Begin errand generated tasks for: my id\n"),
            "{once:?}"
        );
        let twice = update(&once, "my id   ", &lines(&["* * * * * a"])).expect("update");
        assert_eq!(twice, once);
        assert_eq!(
            update(&once, " my id", &lines(&["* * * * * a"])).expect("update"),
            once
        );
        assert_eq!(clear(&once, "my id  ").expect("clear"), "");
        assert!(identifier("  ").is_err());
        assert!(identifier("a\nb").is_err());
    }

    #[test]
    fn an_assignment_like_program_is_quoted_as_the_program_it_is() {
        let env = std::collections::BTreeMap::new();
        assert_eq!(
            shell_command(&lines(&["FOO=bar", "echo", "A=b"]), &env, None).expect("ok"),
            "'FOO=bar' echo A=b"
        );
    }
}
