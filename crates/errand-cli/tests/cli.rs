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
    assert_eq!(job["args"], json!({"to": "a@example.com"}));
    assert_eq!(job["meta"], json!({}));
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
    assert_eq!(s.json(&["jobs", "show", "1"])["args"], json!({}));
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
    assert_eq!(
        mail["counts"],
        json!({"available": 1, "scheduled": 1, "running": 0, "retryable": 0,
               "completed": 0, "discarded": 0, "cancelled": 0, "expired": 0}),
        "every state is listed, 0 included"
    );
    assert_eq!(mail["completed_total"], 0);
    assert_eq!(mail["failed_total"], 0);
    assert_eq!(mail["failed_attempts"], 0);

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
    // Pausing a queue that has no jobs yet creates it, when asked to.
    s.ok(&["queues", "pause", "later", "--create"]);
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
    let result = &job["result"];
    assert!(result.is_object(), "the result is a JSON value: {job}");
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
    assert_eq!(s.json(&["jobs", "show", "1"])["args"], json!({"from": "file"}));

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
    assert_eq!(s.json(&["jobs", "show", "2"])["args"], json!({"from": "stdin"}));

    // Args between the 128 KiB a single command-line argument may carry and
    // the 1 MiB limit pass through a file.
    let big = format!("\"{}\"", "x".repeat(512 * 1024));
    std::fs::write(s.path("big.json"), &big).unwrap();
    s.ok(&["enqueue", "k", "--args", "@big.json"]);
    assert_eq!(
        s.json(&["jobs", "show", "3"])["args"].as_str().map(str::len),
        Some(big.len() - 2)
    );
}

/// One invalid invocation: what to run, the files it needs, and what it must say.
struct BadCase {
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    files: Vec<(&'static str, String)>,
    code: i32,
    says: Vec<&'static str>,
    /// Secrets that must not appear anywhere in the output.
    hides: Vec<&'static str>,
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
        hides: Vec::new(),
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

    fn hides(mut self, secret: &'static str) -> Self {
        self.hides.push(secret);
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
        // Reading stops one byte past the limit: no endless read.
        case(
            &["enqueue", "k", "--args", "@/dev/zero"],
            2,
            &["args:", "/dev/zero", "the limit is 1048576 bytes"],
        ),
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
        case(
            &["enqueue", "k", "--in", "-5m"],
            2,
            &["in:", "\"-5m\"", "must not be negative"],
        ),
        case(
            &["enqueue", "k", "--expires-in", "-1h"],
            2,
            &["expires_in:", "must not be negative"],
        ),
        case(
            &["enqueue", "k", "--timeout", "-5s"],
            2,
            &["timeout:", "must not be negative"],
        ),
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
        case(&["jobs", "show", "-1"], 2, &["id:", "must be a positive integer"]),
        case(&["jobs", "show", "0"], 2, &["id:", "must be a positive integer"]),
        case(
            &["jobs", "cancel", "-7"],
            2,
            &["id:", "must be a positive integer"],
        ),
        case(
            &["jobs", "retry", "-7"],
            2,
            &["id:", "must be a positive integer"],
        ),
        case(
            &["jobs", "list", "--before", "-3"],
            2,
            &["before:", "must be a positive integer"],
        ),
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
        // Database URLs in errors never show a password.
        case(
            &[
                "--database",
                "postgres://app:S3cr?t@127.0.0.1:1/x",
                "enqueue",
                "k",
            ],
            2,
            &[
                "invalid PostgreSQL URL",
                "postgres://app:***@127.0.0.1:1/x",
                "%3F",
            ],
        )
        .hides("S3cr"),
        case(
            &["--database", "postgres//u:s3cret@h/db", "enqueue", "k"],
            2,
            &["database:", "malformed PostgreSQL URL", "u:***@h/db"],
        )
        .hides("s3cret"),
        case(
            &["--database", "postgresql:u:s3cret@h/db", "enqueue", "k"],
            2,
            &["database:", "malformed PostgreSQL URL"],
        )
        .hides("s3cret"),
        case(
            &["--config", "c.toml", "enqueue", "k"],
            2,
            &["c.toml", "line 1", "postgres://u:***@h/db"],
        )
        .file("c.toml", "database = \"postgres://u:s3cret@h/db\n")
        .hides("s3cret"),
        case(&["--config", "c.toml", "enqueue", "k"], 2, &["c.toml", "line 1"])
            .file("c.toml", "database = \"postgres://u:p@ss?w0rd@h/db\" x\n")
            .hides("p@ss?w0rd")
            .hides("?w0rd"),
        case(
            &["jobs", "list"],
            2,
            &["ERRAND_LOG:", "\"verbose\"", "not a log filter"],
        )
        .env("ERRAND_LOG", "verbose"),
        case(&["jobs", "list"], 2, &["ERRAND_LOG:", "not a log filter"]).env("ERRAND_LOG", "errand=loud"),
        case(
            &["bench", "--backend", "postgres"],
            2,
            &["database:", "--backend postgres needs the server"],
        ),
        case(
            &["bench", "--backend", "mysql"],
            2,
            &["backend:", "\"mysql\" is not a backend"],
        ),
        case(&["bench", "--jobs", "0"], 2, &["jobs:", "at least 1"]),
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
            &["worker.heartbeat", "at most half the lease"],
        )
        .file("errand.toml", "[worker]\nlease = \"1s\"\nheartbeat = \"2s\"\n"),
        case(&["work"], 2, &["queues:", "between 1 and"])
            .file("errand.toml", "[worker]\nqueues = { a = 0 }\n"),
        case(&["work"], 2, &["worker.heartbeat", "at least"])
            .file("errand.toml", "[worker]\nheartbeat = \"0s\"\n"),
        case(&["work"], 2, &["worker.lease", "at least 1s"])
            .file("errand.toml", "[worker]\nlease = \"1ms\"\n"),
        case(&["work"], 2, &["maintenance.interval", "at least"])
            .file("errand.toml", "[maintenance]\ninterval = \"0s\"\n"),
        case(
            &["work", "--queues", "default=2305843009213693952"],
            2,
            &["queues:", "between 1 and"],
        ),
        case(&["work"], 2, &["queue.a.fetchers", "between 1 and"]).file(
            "errand.toml",
            "[queue.a]\nconcurrency = 2\nfetchers = 18446744073709551615\n",
        ),
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
            for secret in &c.hides {
                assert!(
                    !stderr.contains(secret),
                    "{what}: shows the secret {secret:?}: {stderr}"
                );
            }
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
    assert_eq!(code, 2, "invalid input: {err}");
    assert!(err.contains("--keep-completed true"), "{err}");
}

/// Under `--json`, every error is one JSON object on stderr with a stable
/// code, the message, and the field at fault (or null); exit codes as ever.
#[test]
fn json_errors_are_one_object_with_a_stable_code() {
    let s = Scratch::new();
    s.ok(&["enqueue", "seed"]);
    let cases: Vec<(Vec<&str>, i32, &str, Value)> = vec![
        (vec!["enqueue", "bad kind"], 2, "kind_invalid", json!("kind")),
        (
            vec!["enqueue", "k", "--in", "-5m"],
            2,
            "duration_negative",
            json!("in"),
        ),
        (
            vec!["enqueue", "k", "--args", "@/dev/zero"],
            2,
            "args_too_large",
            json!("args"),
        ),
        (vec!["jobs", "show", "-1"], 2, "id_invalid", json!("id")),
        (vec!["jobs", "show", "99"], 3, "not_found", Value::Null),
        (vec!["jobs", "retry", "1"], 3, "invalid_state", Value::Null),
        (
            vec!["enqueue", "k", "--priority", "high"],
            2,
            "invalid_argument",
            json!("priority"),
        ),
        (
            vec!["--durability", "fast", "jobs", "list"],
            2,
            "config_invalid",
            json!("durability"),
        ),
        (
            vec!["--database", "postgres://u:s3cret@127.0.0.1:1/x", "jobs", "list"],
            1,
            "store_unavailable",
            Value::Null,
        ),
    ];
    for (args, code, error_code, field) in cases {
        let mut cmd = s.bare();
        if !args.contains(&"--database") {
            cmd.arg("--database").arg(s.url());
        }
        let (exit, stdout, stderr) = common::split(cmd.arg("--json").args(&args).output().unwrap());
        assert_eq!(exit, code, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        let v: Value =
            serde_json::from_str(&stderr).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stderr}"));
        let e = &v["error"];
        assert_eq!(e["code"], error_code, "{args:?}: {v}");
        assert_eq!(e["field"], field, "{args:?}: {v}");
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{args:?}: {v}"
        );
        assert_eq!(v.as_object().unwrap().len(), 1, "{args:?}: only `error`: {v}");
        assert_eq!(
            e.as_object().unwrap().len(),
            3,
            "{args:?}: code, message, field: {v}"
        );
        assert!(!stderr.contains("s3cret"), "{args:?}: {stderr}");
        let (c, m, f) = (
            stderr.find("\"code\":"),
            stderr.find("\"message\":"),
            stderr.rfind("\"field\":"),
        );
        assert!(
            c < m && m < f,
            "{args:?}: code, message, field in that order: {stderr}"
        );
    }
    // Without --json the same errors stay one line of text.
    let (exit, _, stderr) = s.fail(&["jobs", "show", "99"]);
    assert_eq!((exit, stderr.as_str()), (3, "error: job 99 not found\n"));
}

/// Stored text reaches people escaped: a job's stderr tail with terminal
/// escapes, bidi controls and an embedded newline neither drives the
/// terminal in `jobs show` nor forges a line in the text logs; `--json`
/// keeps the raw text (JSON-escaped). Every finished job is logged once at
/// info with its outcome and duration.
#[test]
fn stored_text_is_escaped_for_people_and_text_logs() {
    let s = Scratch::new();
    std::fs::write(
        s.path("errand.toml"),
        "[worker]\nlease = \"5s\"\npoll_interval = \"100ms\"\nshutdown_grace = \"5s\"\n\
         [maintenance]\ninterval = \"200ms\"\n",
    )
    .unwrap();
    let evil =
        "printf 'boom\\033]0;pwned\\007\\033[2J\\n2026-01-01T00:00:00Z  INFO forged line\\n' >&2; exit 3";
    let failing = json!({"argv": ["sh", "-c", evil], "permanent_exit_codes": [3]}).to_string();
    let id = s.json(&["enqueue", "command", "--args", &failing])["id"].to_string();
    let ok = s.json(&["enqueue", "command", "--args", r#"{"argv":["true"]}"#])["id"].to_string();
    let shady = json!({"csi": "\u{9b}31m", "rlo": "\u{202e}gpj.exe", "nl": "a\nb"}).to_string();
    let shady_id = s.json(&["enqueue", "k", "--queue", "other", "--args", &shady])["id"].to_string();

    let mut work = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    assert!(
        eventually(Duration::from_secs(30), || {
            s.json(&["jobs", "show", &id])["state"] == "discarded"
                && s.json(&["jobs", "show", &ok])["state"] == "completed"
        }),
        "the jobs did not finish; worker log:\n{}",
        work.log_text()
    );
    work.stop(Duration::from_secs(20));

    let raw = s.json(&["jobs", "show", &id]);
    let error = raw["errors"][0]["message"].as_str().expect("an error message");
    assert!(
        error.contains("\u{1b}]0;pwned"),
        "JSON keeps the raw text: {error:?}"
    );

    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
    };
    for args in [
        vec!["jobs", "show", id.as_str()],
        vec!["jobs", "show", shady_id.as_str()],
        vec!["jobs", "list"],
    ] {
        let shown = s.ok(&args);
        assert!(
            !shown.chars().any(unsafe_char),
            "{args:?} prints a control character: {shown:?}"
        );
        assert!(
            !shown
                .lines()
                .any(|l| l.starts_with("2026-01-01") || l.starts_with('b')),
            "{args:?}: a forged line: {shown}"
        );
    }
    let shown = s.ok(&["jobs", "show", &id]);
    assert!(
        shown.contains(r"\u{1b}]0;pwned\u{7}\u{1b}[2J\n2026-01-01"),
        "{shown}"
    );
    let shown = s.ok(&["jobs", "show", &shady_id]);
    assert!(
        shown.contains(r"\u{9b}31m") && shown.contains(r"\u{202e}gpj.exe"),
        "{shown}"
    );

    let log = work.log_text();
    assert!(
        !log.chars().any(unsafe_char),
        "the log holds a control character: {log:?}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged log line: {log}"
    );
    let finished: Vec<&str> = log.lines().filter(|l| l.contains("job finished")).collect();
    assert_eq!(finished.len(), 1, "one line per finished job: {log}");
    for needle in [
        " INFO ",
        &format!("job_id={ok}"),
        "outcome=completed",
        "duration_ms=",
    ] {
        assert!(finished[0].contains(needle), "{needle:?} in {:?}", finished[0]);
    }
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("job failed")).collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains("outcome=discarded") && failed[0].contains("duration_ms="),
        "{}",
        failed[0]
    );
}

/// JSON logs give `job_id` as a number, like `attempt`, and `duration_ms`;
/// `[worker] log_jobs = false` silences the successes.
#[test]
fn json_logs_give_job_ids_as_numbers_and_log_jobs_can_be_turned_off() {
    for log_jobs in [true, false] {
        let s = Scratch::new();
        std::fs::write(
            s.path("errand.toml"),
            format!(
                "log_format = \"json\"\n[worker]\nlease = \"5s\"\npoll_interval = \"100ms\"\n\
                 shutdown_grace = \"5s\"\nlog_jobs = {log_jobs}\n"
            ),
        )
        .unwrap();
        let id = s.json(&["enqueue", "command", "--args", r#"{"argv":["true"]}"#])["id"].clone();
        let mut work = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
        assert!(
            eventually(Duration::from_secs(30), || {
                s.json(&["jobs", "show", "1"])["state"] == "completed"
            }),
            "{}",
            work.log_text()
        );
        work.stop(Duration::from_secs(20));
        let log = work.log_text();
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let finished: Vec<&Value> = lines.iter().filter(|l| l["message"] == "job finished").collect();
        if !log_jobs {
            assert!(finished.is_empty(), "log_jobs = false: {log}");
            continue;
        }
        assert_eq!(finished.len(), 1, "{log}");
        let line = finished[0];
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["job_id"], id, "a number: {line}");
        assert!(
            line["attempt"].is_number() && line["duration_ms"].is_number(),
            "{line}"
        );
        assert_eq!(line["outcome"], "completed", "{line}");
    }
}

/// `queues list` fits in 100 columns, names its columns as its JSON names
/// its fields, and measures the oldest wait from when a job became
/// available (a job enqueued with a `run_at` years ago has waited seconds).
#[test]
fn queues_list_fits_100_columns_and_agrees_with_its_json() {
    let s = Scratch::new();
    s.ok(&[
        "enqueue",
        "k",
        "--queue",
        "mailers",
        "--at",
        "2020-01-01T00:00:00Z",
    ]);
    s.ok(&["enqueue", "k", "--in", "1h"]);
    let table = s.ok(&["queues", "list"]);
    for line in table.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }
    let qs = s.json(&["queues", "list"]);
    let mailers = qs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mailers")
        .expect("mailers")
        .clone();
    let age = mailers["oldest_age_ms"].as_u64().expect("an age in ms");
    assert!(
        age < 60_000,
        "waiting since it was enqueued, not since 2020: {age} ms"
    );
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("mailers"))
        .expect("a mailers row")
        .split_whitespace()
        .collect();
    assert_eq!(header.len(), row.len(), "{table}");
    for (column, cell) in header.iter().zip(&row) {
        let key = column.to_ascii_lowercase();
        let json_value = match key.as_str() {
            "queue" => mailers["name"].clone(),
            "oldest_age" => continue,
            "paused" => mailers["paused"].clone(),
            _ if mailers["counts"].get(&key).is_some() => mailers["counts"][&key].clone(),
            _ => mailers
                .get(&key)
                .unwrap_or_else(|| panic!("column {column} is not a JSON field: {mailers}"))
                .clone(),
        };
        let shown = match &json_value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            other => other.to_string(),
        };
        assert_eq!(&shown, cell, "column {column}: {table}\n{mailers}");
    }
    for key in ["completed_total", "failed_total", "failed_attempts"] {
        assert_eq!(mailers[key], 0, "{key}: {mailers}");
    }
    let oldest = row[header.iter().position(|h| *h == "OLDEST_AGE").unwrap()];
    assert!(oldest.ends_with('s') && !oldest.contains('d'), "{oldest}");
}

/// `bench --processes N` hands the database URL to its worker processes in
/// the environment: command lines are visible to every user (`ps`).
#[test]
fn bench_worker_processes_take_the_database_url_from_the_environment() {
    let s = Scratch::new();
    let dir = s.path("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = s.cmd(&[
        "bench",
        "--json",
        "--jobs",
        "20000",
        "--concurrency",
        "20",
        "--processes",
        "2",
        "--latency-samples",
        "5",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    cmd.stdout(std::process::Stdio::null());
    let mut bench = Proc::spawn(cmd, &s.path("bench.log"));
    let parent = bench.pid().to_string();
    // The worker processes run only during the processing phase: look for
    // them until the bench ends (or a deadline passes).
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = bench.child.try_wait() {
            break;
        }
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let p = entry.path();
            let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            // pid (comm) state ppid …
            let ppid = stat.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1));
            if ppid != Some(parent.as_str()) {
                continue;
            }
            let argv = std::fs::read(p.join("cmdline")).unwrap_or_default();
            let env = std::fs::read(p.join("environ")).unwrap_or_default();
            // Between fork and exec a child still shows its parent's command line.
            let exec_done = argv.windows(16).any(|w| w == b"--worker-process");
            if exec_done && !env.is_empty() {
                seen = Some((String::from_utf8_lossy(&argv).replace('\0', " "), env));
                break;
            }
        }
    }
    let (argv, env) = seen.unwrap_or_else(|| panic!("no worker process seen; log:\n{}", bench.log_text()));
    assert!(argv.contains("--worker-process"), "{argv}");
    assert!(
        !argv.contains("--database") && !argv.contains("sqlite://"),
        "the URL is on the command line: {argv}"
    );
    let env = String::from_utf8_lossy(&env);
    assert!(
        env.split('\0')
            .any(|v| v.starts_with("ERRAND_DATABASE_URL=sqlite://")),
        "the URL is not in the environment"
    );
    // Seen: no need to finish the bench (its worker processes stop when
    // their stdin, held by the bench, closes).
    bench.kill9();
}

/// Every `--help` lists the command's own options first and the global
/// ones under their own heading; commands that never open the store do not
/// offer its options; a database URL in the environment is not shown.
#[test]
fn help_separates_global_options() {
    let s = Scratch::new();
    for args in [
        vec!["jobs", "list", "--help"],
        vec!["enqueue", "--help"],
        vec!["queues", "list", "--help"],
    ] {
        let mut cmd = s.bare();
        cmd.env("ERRAND_DATABASE_URL", "postgres://u:s3cret@h/db")
            .args(&args);
        let help = common::expect_ok(&args, cmd.output().unwrap());
        let heading = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{args:?}: {help}"));
        assert!(help[heading..].contains("--database"), "{args:?}: {help}");
        assert!(!help[..heading].contains("--database"), "{args:?}: {help}");
        assert!(!help.contains("s3cret"), "{args:?}: {help}");
    }
    for sub in ["next", "translate", "check"] {
        let help = s.ok(&["schedule", sub, "--help"]);
        assert!(
            !help.contains("--database") && !help.contains("--durability"),
            "{sub}: {help}"
        );
    }
}

/// A PostgreSQL URL's secrets stay out of every message, at every log
/// level: its password, and the values of query parameters (the driver
/// would log an unknown parameter with its value; errand names it only).
#[test]
fn postgres_url_secrets_never_reach_messages_or_logs() {
    let s = Scratch::new();
    let url = "postgres://app:s3cret@127.0.0.1:1/x?sslpassword=pw123&connect_timeout=1&api_token=tk456";
    for level in ["debug", "trace"] {
        let mut cmd = s.bare();
        cmd.env("ERRAND_LOG", level)
            .args(["--database", url, "jobs", "list"]);
        let (code, _, stderr) = common::split(cmd.output().unwrap());
        assert_eq!(code, 1, "unreachable: {stderr}");
        for secret in ["s3cret", "pw123", "tk456"] {
            assert!(!stderr.contains(secret), "{level}: shows {secret}: {stderr}");
        }
        assert!(
            stderr.contains("sslpassword"),
            "the unknown parameter is named: {stderr}"
        );
        assert!(stderr.contains("cannot connect to the store"), "{stderr}");
    }
}

/// `bench`'s text report shows strings as they are, not quoted.
#[test]
fn bench_text_report_does_not_quote_strings() {
    let s = Scratch::new();
    let dir = s.path("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let out = s.ok(&[
        "bench",
        "--jobs",
        "100",
        "--concurrency",
        "10",
        "--latency-samples",
        "3",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let backend = out
        .lines()
        .find(|l| l.starts_with("backend "))
        .unwrap_or_else(|| panic!("no backend line: {out}"));
    assert_eq!(
        backend.split_whitespace().collect::<Vec<_>>(),
        ["backend", "sqlite"],
        "{out}"
    );
    assert!(!out.contains('"'), "{out}");
}
