//! The `errand` CLI end to end on a scratch SQLite file: every enqueue flag,
//! table and JSON output, listing filters and pages, operator actions and
//! tenant scoping, queues, migrations, configuration precedence, a real
//! `errand work` process, and a table of bad inputs that must each fail
//! with one clear line, the documented exit code, and no write.

mod common;

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use common::{Proc, Scratch, eventually};

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .expect("an RFC 3339 time")
}

fn ids(list: &Value) -> Vec<i64> {
    list["jobs"]
        .as_array()
        .expect("a jobs array")
        .iter()
        .map(|j| j["id"].as_i64().expect("an id"))
        .collect()
}

#[test]
fn enqueue_with_every_flag_stores_each_setting() {
    let s = Scratch::new();
    let out = s.ok(&[
        "enqueue",
        "email.send",
        "--args",
        r#"{"to":"a@example.com"}"#,
        "--queue",
        "mail",
        "--priority",
        "5",
        "--in",
        "5m",
        "--unique-key",
        "welcome-7",
        "--unique-for",
        "1h",
        "--expires-in",
        "2h",
        "--max-attempts",
        "3",
        "--tenant",
        "acme",
        "--timeout",
        "30s",
        "--tag",
        "welcome",
        "--tag",
        "v2",
    ]);
    assert_eq!(out, "enqueued job 1 (scheduled)\n");
    let job = s.json(&["jobs", "show", "1"]);
    assert_eq!(job["kind"], "email.send");
    assert_eq!(job["args"], r#"{"to":"a@example.com"}"#);
    assert_eq!(job["queue"], "mail");
    assert_eq!(job["priority"], 5);
    assert_eq!(job["state"], "scheduled");
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["attempt"], 0);
    assert_eq!(job["tenant"], "acme");
    assert_eq!(job["unique_key"], "welcome-7");
    assert_eq!(job["timeout"], 30_000);
    assert_eq!(job["tags"], json!(["welcome", "v2"]));
    let created = ts(&job["created_at"]);
    let delay = ts(&job["run_at"]).duration_since(created).as_secs_f64();
    assert!(
        (299.0..=301.0).contains(&delay),
        "run_at is {delay}s after created_at"
    );
    let expiry = ts(&job["expires_at"]).duration_since(created).as_secs_f64();
    assert!(
        (7199.0..=7201.0).contains(&expiry),
        "expires_at is {expiry}s after created_at"
    );

    // --at takes an RFC 3339 time; the table view shows what was stored.
    let out = s.ok(&["enqueue", "report.build", "--at", "2099-01-02T03:04:05Z"]);
    assert_eq!(out, "enqueued job 2 (scheduled)\n");
    let shown = s.ok(&["jobs", "show", "2"]);
    for line in [
        "id            2",
        "state         scheduled",
        "queue         default",
        "kind          report.build",
        "tenant        -",
        "args          {}",
        "priority      100",
        "attempt       0 of 25",
        "run_at        2099-01-02T03:04:05Z",
        "unique_key    -",
    ] {
        assert!(shown.lines().any(|l| l == line), "missing {line:?} in:\n{shown}");
    }
}

#[test]
fn enqueue_json_output_is_one_object() {
    let s = Scratch::new();
    let v = s.json(&["enqueue", "k", "--args", "[1,2]"]);
    assert_eq!(v, json!({"id": 1, "duplicate": false, "state": "available"}));
    let v = s.json(&["enqueue", "k", "--in", "1h"]);
    assert_eq!(v, json!({"id": 2, "duplicate": false, "state": "scheduled"}));
}

#[test]
fn a_duplicate_unique_key_reports_the_existing_job_and_writes_nothing() {
    let s = Scratch::new();
    assert_eq!(
        s.ok(&["enqueue", "k", "--unique-key", "u1"]),
        "enqueued job 1 (available)\n"
    );
    assert_eq!(
        s.ok(&["enqueue", "k", "--unique-key", "u1", "--args", "[2]"]),
        "duplicate of job 1 (available)\n"
    );
    let v = s.json(&["enqueue", "k", "--unique-key", "u1"]);
    assert_eq!(v, json!({"id": 1, "duplicate": true, "state": "available"}));
    // Keys are scoped by tenant: another tenant's key is another job.
    let v = s.json(&["enqueue", "k", "--unique-key", "u1", "--tenant", "t2"]);
    assert_eq!(v, json!({"id": 2, "duplicate": false, "state": "available"}));
    // A period key deduplicates too, even after the first job finished.
    let v = s.json(&["enqueue", "k", "--unique-key", "p", "--unique-for", "1h"]);
    assert_eq!(v["id"], 3);
    s.ok(&["jobs", "cancel", "3"]);
    let v = s.json(&["enqueue", "k", "--unique-key", "p", "--unique-for", "1h"]);
    assert_eq!(v, json!({"id": 3, "duplicate": true, "state": "cancelled"}));
    assert_eq!(s.all_jobs().len(), 3);
    // The first job's args are the ones kept.
    assert_eq!(s.json(&["jobs", "show", "1"])["args"], "{}");
}

#[test]
fn jobs_list_filters_and_pages() {
    let s = Scratch::new();
    s.ok(&["enqueue", "a.kind", "--queue", "q1", "--tenant", "t1"]); // 1
    s.ok(&["enqueue", "b.kind", "--queue", "q1"]); // 2
    s.ok(&["enqueue", "a.kind", "--queue", "q2", "--tenant", "t2"]); // 3
    s.ok(&["enqueue", "b.kind", "--queue", "q2", "--tenant", "t1"]); // 4
    s.ok(&["enqueue", "a.kind", "--queue", "q1", "--in", "1h"]); // 5 scheduled
    s.ok(&["jobs", "cancel", "2"]);

    let list = |extra: &[&str]| {
        let mut args = vec!["jobs", "list"];
        args.extend_from_slice(extra);
        ids(&s.json(&args))
    };
    assert_eq!(list(&[]), vec![5, 4, 3, 2, 1], "newest first");
    assert_eq!(list(&["--state", "cancelled"]), vec![2]);
    assert_eq!(
        list(&["--state", "scheduled", "--state", "cancelled"]),
        vec![5, 2]
    );
    assert_eq!(list(&["--queue", "q2"]), vec![4, 3]);
    assert_eq!(list(&["--kind", "a.kind"]), vec![5, 3, 1]);
    assert_eq!(list(&["--tenant", "t1"]), vec![4, 1]);
    assert_eq!(list(&["--tenant", "t1", "--queue", "q1"]), vec![1]);
    assert_eq!(list(&["--kind", "nothing.here"]), Vec::<i64>::new());

    // Pages: --limit, then --before the cursor, until there is none.
    let page = s.json(&["jobs", "list", "--limit", "2"]);
    assert_eq!(ids(&page), vec![5, 4]);
    let cursor = page["next_cursor"].as_i64().expect("a cursor");
    let page = s.json(&["jobs", "list", "--limit", "2", "--before", &cursor.to_string()]);
    assert_eq!(ids(&page), vec![3, 2]);
    let cursor = page["next_cursor"].as_i64().expect("a cursor");
    let page = s.json(&["jobs", "list", "--limit", "2", "--before", &cursor.to_string()]);
    assert_eq!(ids(&page), vec![1]);
    assert_eq!(page["next_cursor"], Value::Null);

    // The table: a header, one row per job, and a hint for the next page.
    let table = s.ok(&["jobs", "list", "--limit", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "RUN_AT", "TENANT"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[2], row[3], row[4], row[6]),
        ("5", "scheduled", "q1", "a.kind", "0/25", "-")
    );
    assert_eq!(lines[2].split_whitespace().nth(6), Some("t1"));
    assert_eq!(lines[3], "(more: --before 4)");
}

#[test]
fn show_retry_and_cancel_respect_the_tenant_scope() {
    let s = Scratch::new();
    s.ok(&["enqueue", "k", "--tenant", "acme"]);
    s.ok(&["enqueue", "k", "--tenant", "globex", "--in", "1h"]);

    // Another tenant's job looks as if it did not exist (exit 3) and is not touched.
    for action in ["show", "cancel", "retry"] {
        let (code, stdout, stderr) = s.fail(&["jobs", action, "1", "--tenant", "globex"]);
        assert_eq!(code, 3, "{action}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, "error: job 1 not found\n", "{action}");
    }
    assert_eq!(s.json(&["jobs", "show", "1"])["state"], "available");
    assert_eq!(ids(&s.json(&["jobs", "list", "--tenant", "globex"])), vec![2]);

    // The owner may.
    assert_eq!(s.json(&["jobs", "show", "1", "--tenant", "acme"])["id"], 1);
    assert_eq!(
        s.ok(&["jobs", "cancel", "1", "--tenant", "acme"]),
        "job 1 is now cancelled\n"
    );
    // Cancelling a finished job is refused (exit 3) and changes nothing.
    let (code, _, stderr) = s.fail(&["jobs", "cancel", "1"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let retried = s.json(&["jobs", "retry", "1", "--tenant", "acme"]);
    assert_eq!(retried["state"], "available");
    assert_eq!(retried["tenant"], "acme", "a retry keeps the tenant");

    // An operator without a scope sees and acts on every tenant's jobs.
    assert_eq!(s.ok(&["jobs", "retry", "2"]), "job 2 is now available\n");
    let job = s.json(&["jobs", "show", "2"]);
    assert_eq!(
        (job["state"].as_str(), job["tenant"].as_str()),
        (Some("available"), Some("globex"))
    );
    assert_eq!(s.ok(&["jobs", "cancel", "2"]), "job 2 is now cancelled\n");

    let (code, _, stderr) = s.fail(&["jobs", "show", "99"]);
    assert_eq!((code, stderr.as_str()), (3, "error: job 99 not found\n"));
}

#[test]
fn queues_list_pause_and_resume() {
    let s = Scratch::new();
    s.ok(&["enqueue", "k", "--queue", "mail"]);
    s.ok(&["enqueue", "k", "--queue", "mail", "--in", "1h"]);
    s.ok(&["enqueue", "k"]);

    assert_eq!(s.ok(&["queues", "pause", "mail"]), "queue mail paused\n");
    let qs = s.json(&["queues", "list"]);
    let mail = qs
        .as_array()
        .expect("an array")
        .iter()
        .find(|q| q["name"] == "mail")
        .expect("the mail queue")
        .clone();
    assert_eq!(mail["paused"], true);
    assert_eq!(mail["counts"], json!({"available": 1, "scheduled": 1}));
    assert_eq!(mail["completed_total"], 0);

    let table = s.ok(&["queues", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("QUEUE"), "{table}");
    let mail_row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("mail"))
        .expect("a mail row")
        .split_whitespace()
        .collect();
    assert_eq!(&mail_row[..4], ["mail", "yes", "1", "1"]);

    assert_eq!(
        s.json(&["queues", "resume", "mail"]),
        json!({"queue": "mail", "paused": false})
    );
    let qs = s.json(&["queues", "list"]);
    assert!(
        qs.as_array().unwrap().iter().all(|q| q["paused"] == false),
        "{qs}"
    );
    // Pausing a queue that has no jobs yet creates it.
    s.ok(&["queues", "pause", "later"]);
    let qs = s.json(&["queues", "list"]);
    assert!(
        qs.as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "later" && q["paused"] == true),
        "{qs}"
    );
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let s = Scratch::empty();
    assert!(!s.db_file().exists());
    assert_eq!(s.ok(&["migrate"]), "schema is up to date (sqlite)\n");
    assert!(s.db_file().exists());
    assert_eq!(
        s.json(&["migrate"]),
        json!({"migrated": true, "backend": "sqlite"})
    );
    s.ok(&["enqueue", "k"]);
    s.ok(&["migrate"]);
    assert_eq!(s.all_jobs().len(), 1, "migrating again keeps the jobs");
}

#[test]
fn flags_beat_the_environment_which_beats_the_config_file() {
    let s = Scratch::new();
    let url = |name: &str| format!("sqlite://{}", s.path(name).display());
    std::fs::write(
        s.path("custom.toml"),
        format!("database = \"{}\"\n", url("file.db")),
    )
    .unwrap();
    // `migrate` creates the database the settings name, then `enqueue` adds a job to it.
    let run = |env: &[(&str, String)], args: &[&str]| {
        for sub in [&["migrate"][..], &["enqueue", "k"][..]] {
            let mut cmd = s.bare();
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.args(args).args(sub);
            common::expect_ok(sub, cmd.output().expect("run errand"));
        }
    };

    // No file, no variable, no flag: ./errand.db in the working directory.
    run(&[], &[]);
    assert!(s.path("errand.db").exists());
    // ./errand.toml is read when present.
    std::fs::write(
        s.path("errand.toml"),
        format!("database = \"{}\"\n", url("default-file.db")),
    )
    .unwrap();
    run(&[], &[]);
    assert!(s.path("default-file.db").exists());
    // --config names another file.
    run(&[], &["--config", "custom.toml"]);
    assert!(s.path("file.db").exists());
    // ERRAND_CONFIG names it too.
    run(&[("ERRAND_CONFIG", "custom.toml".into())], &[]);
    // ERRAND_DATABASE_URL beats the file.
    run(
        &[("ERRAND_DATABASE_URL", url("env.db"))],
        &["--config", "custom.toml"],
    );
    assert!(s.path("env.db").exists());
    // --database beats both.
    run(
        &[("ERRAND_DATABASE_URL", url("env.db"))],
        &["--config", "custom.toml", "--database", &url("flag.db")],
    );
    assert!(s.path("flag.db").exists());

    let count = |name: &str| {
        let out = s
            .bare()
            .args(["--database", &url(name), "--json", "jobs", "list"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_str(&common::expect_ok(&[], out)).unwrap();
        v["jobs"].as_array().unwrap().len()
    };
    assert_eq!(
        [
            count("errand.db"),
            count("default-file.db"),
            count("file.db"),
            count("env.db"),
            count("flag.db")
        ],
        [1, 1, 2, 1, 1]
    );
}

#[test]
fn work_runs_a_command_job_and_stops_gracefully_on_sigterm() {
    let s = Scratch::new();
    std::fs::write(
        s.path("errand.toml"),
        "[worker]\nlease = \"5s\"\npoll_interval = \"100ms\"\nshutdown_grace = \"5s\"\n\
         [maintenance]\ninterval = \"200ms\"\n",
    )
    .unwrap();
    let v = s.json(&[
        "enqueue",
        "command",
        "--args",
        r#"{"argv":["sh","-c","echo hi; echo job=$ERRAND_JOB_ID >&2"]}"#,
    ]);
    let id = v["id"].as_i64().unwrap().to_string();
    let mut work = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    let done = eventually(Duration::from_secs(30), || {
        s.json(&["jobs", "show", &id])["state"] == "completed"
    });
    assert!(done, "the job did not complete; worker log:\n{}", work.log_text());
    let job = s.json(&["jobs", "show", &id]);
    let result: Value = serde_json::from_str(job["result"].as_str().expect("a result")).unwrap();
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["stdout"], "hi\n");
    assert_eq!(result["stderr"], format!("job={id}\n"));
    assert_eq!(job["attempt"], 1);

    // A job enqueued while it runs is picked up too (another process's insert wakes it).
    let v = s.json(&["enqueue", "command", "--args", r#"{"argv":["true"]}"#]);
    let id2 = v["id"].as_i64().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(30), || {
            s.json(&["jobs", "show", &id2])["state"] == "completed"
        }),
        "the second job did not complete; worker log:\n{}",
        work.log_text()
    );

    work.stop(Duration::from_secs(20));
    let log = work.log_text();
    assert!(log.contains("errand started"), "{log}");
    assert!(log.contains("errand stopped"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn args_can_come_from_a_file_or_stdin() {
    let s = Scratch::new();
    std::fs::write(s.path("args.json"), r#"{"from":"file"}"#).unwrap();
    s.ok(&["enqueue", "k", "--args", "@args.json"]);
    assert_eq!(s.json(&["jobs", "show", "1"])["args"], r#"{"from":"file"}"#);

    let mut cmd = s.cmd(&["enqueue", "k", "--args", "-"]);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(br#"{"from":"stdin"}"#).unwrap();
    }
    common::expect_ok(&[], child.wait_with_output().unwrap());
    assert_eq!(s.json(&["jobs", "show", "2"])["args"], r#"{"from":"stdin"}"#);

    // Args between the 128 KiB a single command-line argument may carry and
    // the 1 MiB limit pass through a file.
    let big = format!("\"{}\"", "x".repeat(512 * 1024));
    std::fs::write(s.path("big.json"), &big).unwrap();
    s.ok(&["enqueue", "k", "--args", "@big.json"]);
    assert_eq!(
        s.json(&["jobs", "show", "3"])["args"].as_str().map(str::len),
        Some(big.len())
    );
}

/// One invalid invocation: what to run, the files it needs, and what it must say.
struct BadCase {
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    files: Vec<(&'static str, String)>,
    code: i32,
    says: Vec<&'static str>,
    /// Refused by the argument parser (clap), whose messages follow its own
    /// layout: the error, sometimes one more line naming the argument.
    by_parser: bool,
}

fn case(args: &[&str], code: i32, says: &[&'static str]) -> BadCase {
    BadCase {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        files: Vec::new(),
        code,
        says: says.to_vec(),
        by_parser: false,
    }
}

impl BadCase {
    fn file(mut self, name: &'static str, text: impl Into<String>) -> Self {
        self.files.push((name, text.into()));
        self
    }

    fn by_parser(mut self) -> Self {
        self.by_parser = true;
        self
    }

    fn env(mut self, name: &'static str, value: &'static str) -> Self {
        self.env.push((name, value));
        self
    }
}

/// The lines of stderr that are not clap's standard usage hints.
fn message_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty()
                && !l.starts_with("Usage:")
                && !l.starts_with("tip:")
                && !l.starts_with("For more information")
        })
        .collect()
}

#[test]
fn bad_input_fails_with_one_clear_line_and_writes_nothing() {
    let over_limit = format!("\"{}\"", "x".repeat(1024 * 1024));
    let cases = vec![
        case(&["enqueue", "bad kind"], 2, &["kind:", "not a valid job kind"]),
        case(&["enqueue", ""], 2, &["kind:", "not a valid job kind"]),
        case(
            &["enqueue", "k", "--queue", "a b"],
            2,
            &["queue:", "not a valid queue name"],
        ),
        case(
            &["enqueue", "k", "--queue", ""],
            2,
            &["queue:", "not a valid queue name"],
        ),
        case(
            &["enqueue", "k", "--args", "{nope"],
            2,
            &["args:", "not valid JSON"],
        ),
        case(&["enqueue", "k", "--args", ""], 2, &["args:", "not valid JSON"]),
        case(
            &["enqueue", "k", "--args", "@big.json"],
            2,
            &["args:", "the limit is 1048576 bytes"],
        )
        .file("big.json", over_limit),
        case(
            &["enqueue", "k", "--args", "@missing.json"],
            2,
            &["args:", "missing.json"],
        ),
        case(
            &["enqueue", "k", "--priority", "-1"],
            2,
            &["priority:", "out of range"],
        ),
        case(
            &["enqueue", "k", "--priority", "1001"],
            2,
            &["priority:", "out of range"],
        ),
        case(
            &["enqueue", "k", "--priority", "high"],
            2,
            &["--priority", "invalid value"],
        )
        .by_parser(),
        case(
            &["enqueue", "k", "--max-attempts", "0"],
            2,
            &["max_attempts:", "out of range"],
        ),
        case(
            &["enqueue", "k", "--max-attempts", "10001"],
            2,
            &["max_attempts:", "out of range"],
        ),
        case(
            &["enqueue", "k", "--tenant", "a b"],
            2,
            &["tenant:", "not a valid tenant id"],
        ),
        case(
            &["enqueue", "k", "--tenant", ""],
            2,
            &["tenant:", "not a valid tenant id"],
        ),
        case(
            &["enqueue", "k", "--expires-in", "0s"],
            2,
            &["expires_in:", "must be in the future"],
        ),
        case(
            &["enqueue", "k", "--in", "10m", "--expires-in", "5m"],
            2,
            &["expires_in:", "before it may run"],
        ),
        case(
            &[
                "enqueue",
                "k",
                "--at",
                "2099-01-01T00:00:00Z",
                "--expires-in",
                "1h",
            ],
            2,
            &["expires_in:", "before it may run"],
        ),
        case(&["enqueue", "k", "--in", "soon"], 2, &["in:", "not a duration"]),
        case(&["enqueue", "k", "--in", "-5m"], 2, &["'-5'"]).by_parser(),
        case(
            &["enqueue", "k", "--in", "100000000000000d"],
            2,
            &["delay:", "too far in the future"],
        ),
        case(
            &["enqueue", "k", "--expires-in", "later"],
            2,
            &["expires_in:", "not a duration"],
        ),
        case(
            &["enqueue", "k", "--timeout", "forever"],
            2,
            &["timeout:", "not a duration"],
        ),
        case(
            &["enqueue", "k", "--timeout", "0s"],
            2,
            &["timeout:", "longer than zero"],
        ),
        case(
            &["enqueue", "k", "--timeout", "8d"],
            2,
            &["timeout:", "at most 7 days"],
        ),
        case(&["enqueue", "k", "--at", "yesterday"], 2, &["at:", "RFC 3339"]),
        case(
            &["enqueue", "k", "--at", "2026-13-01T00:00:00Z"],
            2,
            &["at:", "RFC 3339"],
        ),
        case(
            &["enqueue", "k", "--at", "2026-12-01T09:00:00Z", "--in", "5m"],
            2,
            &["--in", "cannot be used with"],
        )
        .by_parser(),
        case(
            &["enqueue", "k", "--unique-for", "1h"],
            2,
            &["--unique-key", "required"],
        )
        .by_parser(),
        case(
            &["enqueue", "k", "--unique-key", ""],
            2,
            &["unique_key:", "1-255 bytes"],
        ),
        case(
            &["enqueue", "k", "--unique-key", "u", "--unique-for", "0s"],
            2,
            &["unique_period:", "longer than zero"],
        ),
        case(
            &["enqueue", "k", "--unique-key", "u", "--unique-for", "nope"],
            2,
            &["unique_for:", "not a duration"],
        ),
        case(
            &["enqueue", "k", "--tag", "white space"],
            2,
            &["tags:", "not a valid tag"],
        ),
        case(
            &["jobs", "list", "--state", "done"],
            2,
            &["state:", "unknown state \"done\""],
        ),
        case(
            &["jobs", "list", "--queue", "a b"],
            2,
            &["queue:", "not a valid queue name"],
        ),
        case(
            &["jobs", "list", "--tenant", "a/b"],
            2,
            &["tenant:", "not a valid tenant id"],
        ),
        case(&["jobs", "list", "--limit", "0"], 2, &["limit:", "out of range"]),
        case(
            &["jobs", "list", "--limit", "1001"],
            2,
            &["limit:", "out of range"],
        ),
        case(&["jobs", "show", "one"], 2, &["<ID>", "invalid value"]).by_parser(),
        case(
            &["jobs", "cancel", "1", "--tenant", "a b"],
            2,
            &["tenant:", "not a valid tenant id"],
        ),
        case(
            &["jobs", "retry", "1", "--tenant", "a b"],
            2,
            &["tenant:", "not a valid tenant id"],
        ),
        case(
            &["queues", "pause", "a b"],
            2,
            &["queue:", "not a valid queue name"],
        ),
        case(
            &["queues", "resume", "a b"],
            2,
            &["queue:", "not a valid queue name"],
        ),
        case(
            &["--database", "ftp://x/y", "enqueue", "k"],
            2,
            &["database:", "unsupported database URL scheme \"ftp\""],
        ),
        case(
            &["--database", "sqlite://", "enqueue", "k"],
            2,
            &["database:", "names no file"],
        ),
        case(
            &[
                "--database",
                "postgres://nobody@127.0.0.1:1/x",
                "--postgres-schema",
                "Bad-Name",
                "enqueue",
                "k",
            ],
            2,
            &["postgres_schema:", "invalid schema name \"Bad-Name\""],
        ),
        case(
            &[
                "--database",
                "postgres://nobody@127.0.0.1:notaport/x",
                "enqueue",
                "k",
            ],
            2,
            &["invalid PostgreSQL URL", "invalid port number"],
        ),
        case(
            &["--database", "sqlite://no/such/dir/t.db", "enqueue", "k"],
            1,
            &["no/such/dir", "does not exist"],
        ),
        case(
            &["--durability", "fast", "enqueue", "k"],
            2,
            &["durability:", "normal or full"],
        ),
        case(&["enqueue", "k"], 2, &["durability:", "normal or full"]).env("ERRAND_DURABILITY", "fast"),
        case(
            &["--log-format", "xml", "enqueue", "k"],
            2,
            &["log_format:", "text or json"],
        ),
        case(
            &["--config", "missing.toml", "enqueue", "k"],
            2,
            &["cannot read config file missing.toml"],
        ),
        case(
            &["--config", "c.toml", "enqueue", "k"],
            2,
            &["worker.lease", "not a duration"],
        )
        .file("c.toml", "[worker]\nlease = \"soon\"\n"),
        case(
            &["--config", "c.toml", "enqueue", "k"],
            2,
            &["c.toml", "line 1", "unknown field `typo`"],
        )
        .file("c.toml", "typo = 1\n"),
        case(
            &["--config", "c.toml", "enqueue", "k"],
            2,
            &["c.toml", "line 1", "database = 5", "expected a string"],
        )
        .file("c.toml", "database = 5\n"),
        case(&["--config", "c.toml", "enqueue", "k"], 2, &["c.toml", "line 1"])
            .file("c.toml", "not toml [[[\n"),
        case(
            &["enqueue", "k"],
            2,
            &["worker.heartbeat", "shorter than worker.lease"],
        )
        .file("errand.toml", "[worker]\nlease = \"1s\"\nheartbeat = \"2s\"\n"),
        case(&["work"], 2, &["queues:", "at least 1"]).file("errand.toml", "[worker]\nqueues = { a = 0 }\n"),
        case(&["work", "--queues", "a=x"], 2, &["queues:", "whole number"]),
        case(
            &["work", "--queues", "bad name=1"],
            2,
            &["queues:", "not a valid queue name"],
        ),
        case(
            &["work", "--shutdown-grace", "nope"],
            2,
            &["shutdown_grace:", "not a duration"],
        ),
    ];

    for c in &cases {
        // Twice: on a fresh directory (no database file may appear) and on
        // a database holding one job (which must stay the only one).
        for seeded in [false, true] {
            let s = Scratch::empty();
            if seeded {
                s.ok(&["migrate"]);
                s.ok(&["enqueue", "seed"]);
            }
            for (name, text) in &c.files {
                std::fs::write(s.path(name), text).unwrap();
            }
            let mut cmd = s.bare();
            if !c.args.iter().any(|a| a == "--database") {
                cmd.arg("--database").arg(s.url());
            }
            cmd.args(&c.args);
            for (k, v) in &c.env {
                cmd.env(k, v);
            }
            let (code, stdout, stderr) = common::split(cmd.output().expect("run errand"));
            let what = format!("errand {:?} (seeded: {seeded})", c.args);
            assert_eq!(code, c.code, "{what}: exit code; stderr: {stderr}");
            assert_eq!(stdout, "", "{what}: prints nothing on stdout");
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            let mut lines = message_lines(&stderr);
            if c.by_parser && lines.len() == 2 {
                lines = vec![stderr.trim_start()];
            }
            assert_eq!(lines.len(), 1, "{what}: one line of error, got:\n{stderr}");
            assert!(lines[0].starts_with("error: "), "{what}: {stderr}");
            assert!(
                !lines[0].contains("job #"),
                "{what}: one job is not a batch: {stderr}"
            );
            for needle in &c.says {
                assert!(
                    lines[0].contains(needle),
                    "{what}: {:?} should mention {needle:?}",
                    lines[0]
                );
            }
            if seeded {
                for (name, _) in &c.files {
                    std::fs::remove_file(s.path(name)).unwrap();
                }
                let jobs = s.all_jobs();
                assert_eq!(jobs.len(), 1, "{what}: wrote jobs: {jobs:?}");
                assert_eq!(jobs[0]["kind"], "seed");
                let qs = s.json(&["queues", "list"]);
                assert!(
                    qs.as_array().unwrap().iter().all(|q| q["paused"] == false),
                    "{what}: {qs}"
                );
            } else {
                let left: Vec<String> = std::fs::read_dir(s.dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| !c.files.iter().any(|(f, _)| f == n))
                    .collect();
                assert!(left.is_empty(), "{what}: created {left:?}");
            }
        }
    }
}

/// `jobs show` used to leave out the timeout and the tags (only `--json` had them).
#[test]
fn jobs_show_lists_timeout_and_tags() {
    let s = Scratch::new();
    s.ok(&[
        "enqueue",
        "report.build",
        "--timeout",
        "90s",
        "--tag",
        "nightly",
        "--tag",
        "pdf",
    ]);
    s.ok(&["enqueue", "report.build"]);
    let shown = s.ok(&["jobs", "show", "1"]);
    assert!(shown.lines().any(|l| l == "timeout       1m 30s"), "{shown}");
    assert!(
        shown.lines().any(|l| l == "tags          nightly, pdf"),
        "{shown}"
    );
    let plain = s.ok(&["jobs", "show", "2"]);
    assert!(plain.lines().any(|l| l == "timeout       -"), "{plain}");
    assert!(plain.lines().any(|l| l == "tags          -"), "{plain}");
}

/// `errand bench --processes 2`: the worker processes report their progress
/// on stdout, the parent adds it up, and every phase reports a rate.
#[test]
fn bench_with_worker_processes_reports_every_phase() {
    let s = Scratch::new();
    let dir = s.path("bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let dir = dir.to_str().expect("a UTF-8 path");
    let args = [
        "bench",
        "--json",
        "--jobs",
        "300",
        "--concurrency",
        "50",
        "--processes",
        "2",
        "--latency-samples",
        "5",
        "--dir",
        dir,
    ];
    let out = s.ok(&args);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(v["processes"], 2, "{v}");
    for key in [
        "enqueue_single_per_sec",
        "enqueue_bulk_per_sec",
        "processed_per_sec_multi_process",
        "processed_per_sec",
    ] {
        assert!(v[key].as_f64().is_some_and(|r| r > 0.0), "{key}: {v}");
    }
}

/// `--keep-completed false` reaches the worker processes and the report;
/// with `--finished`, which measures claiming beside kept jobs, it is refused.
#[test]
fn bench_can_delete_completed_jobs_and_says_so() {
    let s = Scratch::new();
    let dir = s.path("bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let dir = dir.to_str().expect("a UTF-8 path");
    let base = [
        "bench",
        "--json",
        "--jobs",
        "200",
        "--concurrency",
        "50",
        "--latency-samples",
        "5",
        "--dir",
        dir,
        "--keep-completed",
        "false",
    ];
    let out = s.ok(&[&base[..], &["--processes", "2"]].concat());
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(v["keep_completed"], false, "{v}");
    for key in ["processed_per_sec_multi_process", "processed_per_sec"] {
        assert!(v[key].as_f64().is_some_and(|r| r > 0.0), "{key}: {v}");
    }
    let (code, _, err) = s.fail(&[&base[..], &["--finished", "100"]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--keep-completed true"), "{err}");
}
