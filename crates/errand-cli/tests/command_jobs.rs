//! `command` jobs end to end, against real `errand work` processes: a job's
//! whole process tree ends with it (timeout, cancel, hand-back, the worker's
//! SIGKILL), a cancel reaches it within a second, its environment is clean,
//! and bad args are refused at enqueue.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Proc, Scratch, eventually};

const CONFIG: &str = r#"
[worker]
lease = "2s"
heartbeat = "500ms"
poll_interval = "100ms"
shutdown_grace = "30s"

[maintenance]
interval = "200ms"

[command]
kill_grace = "1s"
"#;

fn setup() -> Scratch {
    let s = Scratch::new();
    std::fs::write(s.path("errand.toml"), CONFIG).unwrap();
    s.ok(&["migrate"]);
    s
}

fn work(s: &Scratch, name: &str) -> Proc {
    Proc::spawn(s.cmd(&["work"]), &s.path(&format!("{name}.log")))
}

/// Enqueues a command job that writes its process group's id (the shell's
/// pid: it leads its group) to `pgid_file`, then waits on two children.
fn enqueue_tree(s: &Scratch, pgid_file: &Path, extra: &[&str]) -> i64 {
    let args = json!({"argv": ["sh", "-c",
        format!("echo $$ > '{}'; sleep 60 & sleep 60; wait", pgid_file.display())]});
    let mut cmd = vec!["enqueue", "command", "--args"];
    let args = args.to_string();
    cmd.push(&args);
    cmd.extend_from_slice(extra);
    let out = s.json(&cmd);
    out["id"].as_i64().expect("an id")
}

fn job(s: &Scratch, id: i64) -> Value {
    s.json(&["jobs", "show", &id.to_string()])
}

fn state(s: &Scratch, id: i64) -> String {
    job(s, id)["state"].as_str().unwrap_or_default().to_owned()
}

/// The pids of the live (not zombie) processes in group `pgid`, from /proc.
fn live_in_group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse::<i32>() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Waits for the job to write its group id, and for its two sleeps to start.
fn started_group(pgid_file: &Path) -> i32 {
    started_group_within(pgid_file, Duration::from_secs(20))
}

fn started_group_within(pgid_file: &Path, limit: Duration) -> i32 {
    let mut pgid = 0;
    assert!(
        eventually(limit, || {
            pgid = std::fs::read_to_string(pgid_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            pgid > 0 && live_in_group(pgid).len() >= 3
        }),
        "the command job did not start its process tree"
    );
    pgid
}

fn assert_group_ends(pgid: i32, within: Duration, what: &str) {
    assert!(
        eventually(within, || live_in_group(pgid).is_empty()),
        "{what}: processes of the job's group {pgid} still run: {:?}",
        live_in_group(pgid)
    );
}

#[test]
fn a_timed_out_command_job_leaves_no_process_behind() {
    let s = setup();
    let pgid_file = s.path("pgid");
    let id = enqueue_tree(&s, &pgid_file, &["--timeout", "2s", "--max-attempts", "1"]);
    let mut w = work(&s, "work");
    let pgid = started_group(&pgid_file);
    assert!(eventually(Duration::from_secs(20), || state(&s, id) == "discarded"));
    assert_group_ends(pgid, Duration::from_secs(5), "after the timeout");
    w.stop(Duration::from_secs(20));
}

#[test]
fn a_cancel_reaches_a_running_command_within_a_second() {
    let s = setup();
    let pgid_file = s.path("pgid");
    let id = enqueue_tree(&s, &pgid_file, &[]);
    let mut w = work(&s, "work");
    let pgid = started_group(&pgid_file);
    // Another process cancels, as an operator would.
    s.ok(&["jobs", "cancel", &id.to_string()]);
    let asked = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || state(&s, id) == "cancelled"),
        "not cancelled: {}",
        job(&s, id)
    );
    let took = asked.elapsed();
    // The heartbeat alone would take up to 500 ms here and 10 s by default;
    // the bound leaves room for a slow machine.
    assert!(took < Duration::from_millis(1500), "the cancel took {took:?}");
    assert_group_ends(pgid, Duration::from_secs(5), "after the cancel");
    w.stop(Duration::from_secs(20));
}

#[test]
fn a_sigkilled_worker_takes_its_command_processes_with_it() {
    let s = setup();
    let pgid_file = s.path("pgid");
    let id = enqueue_tree(&s, &pgid_file, &[]);
    let mut w = work(&s, "work");
    let pgid = started_group(&pgid_file);
    w.kill9();
    // The watchdog sends SIGTERM as soon as the worker is gone.
    assert_group_ends(pgid, Duration::from_secs(5), "after the worker's SIGKILL");
    // A new worker rescues and reruns the job: never beside the first copy.
    std::fs::remove_file(&pgid_file).unwrap();
    let mut w2 = work(&s, "work2");
    // (after the dead leader's maintenance lease, 15 s, and the job's lease)
    let pgid2 = started_group_within(&pgid_file, Duration::from_secs(60));
    assert_ne!(pgid, pgid2);
    assert!(live_in_group(pgid).is_empty());
    assert_eq!(job(&s, id)["attempt"], 2);
    w2.kill9();
    assert_group_ends(pgid2, Duration::from_secs(5), "after the second worker's SIGKILL");
}

#[test]
fn a_graceful_shutdown_that_hands_a_job_back_ends_its_processes() {
    let s = setup();
    std::fs::write(
        s.path("errand.toml"),
        CONFIG.replace("shutdown_grace = \"30s\"", "shutdown_grace = \"1s\""),
    )
    .unwrap();
    let pgid_file = s.path("pgid");
    let id = enqueue_tree(&s, &pgid_file, &[]);
    let mut w = work(&s, "work");
    let pgid = started_group(&pgid_file);
    w.stop(Duration::from_secs(20));
    assert_group_ends(pgid, Duration::from_secs(5), "after the hand-back");
    let j = job(&s, id);
    assert_eq!(
        (j["state"].as_str(), j["attempt"].as_i64()),
        (Some("available"), Some(0)),
        "{j}"
    );
}

#[test]
fn a_second_signal_hands_running_jobs_back_at_once() {
    let s = setup();
    let pgid_file = s.path("pgid");
    let id = enqueue_tree(&s, &pgid_file, &[]);
    let mut w = work(&s, "work");
    let pgid = started_group(&pgid_file);
    w.signal("TERM");
    assert!(
        eventually(Duration::from_secs(10), || w.log_text().contains("shutting down")),
        "{}",
        w.log_text()
    );
    let second = Instant::now();
    w.signal("TERM");
    let status = w.wait_for(Duration::from_secs(10));
    assert!(status.success(), "{status:?}: {}", w.log_text());
    // The grace is 30 s: the second signal cut it short.
    assert!(second.elapsed() < Duration::from_secs(10));
    assert!(
        w.log_text().contains("handing running jobs back now"),
        "{}",
        w.log_text()
    );
    assert_group_ends(pgid, Duration::from_secs(5), "after the hand-back");
    assert_eq!(state(&s, id), "available");
}

#[test]
fn command_jobs_get_a_clean_environment() {
    let s = setup();
    std::fs::write(
        s.path("errand.toml"),
        format!("{CONFIG}env_allow = [\"APP_REGION\"]\n"),
    )
    .unwrap();
    let args = json!({"argv": ["env"], "env": {"JOB_OWN": "yes"}}).to_string();
    let id = s.json(&["enqueue", "command", "--args", &args])["id"]
        .as_i64()
        .unwrap();
    let mut cmd = s.cmd(&["work"]);
    cmd.env("APP_SECRET_TOKEN", "hunter2")
        .env("APP_REGION", "eu")
        .env("ERRAND_DATABASE_URL", s.url());
    let mut w = Proc::spawn(cmd, &s.path("work.log"));
    assert!(eventually(Duration::from_secs(20), || state(&s, id) == "completed"));
    w.stop(Duration::from_secs(20));
    let result = job(&s, id)["result"].clone();
    let stdout = result["stdout"]
        .as_str()
        .unwrap_or_else(|| panic!("no stdout in {result}"));
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for absent in ["APP_SECRET_TOKEN", "ERRAND_DATABASE_URL"] {
        assert!(!names.contains(&absent), "{absent} leaked into the job: {stdout}");
    }
    for present in ["PATH", "JOB_OWN", "APP_REGION", "ERRAND_JOB_ID"] {
        assert!(names.contains(&present), "{present} missing: {stdout}");
    }
}

#[test]
fn bad_command_args_are_refused_at_enqueue() {
    let s = setup();
    for (args, field) in [
        (r#"{"argv":"echo hi"}"#, "args"),
        (r#"{"argv":[]}"#, "args.argv"),
        (r#"{}"#, "args.argv"),
        (r#"{"argv":["echo"],"colour":"red"}"#, "args"),
        (r#"{"argv":["echo"],"shell":"echo"}"#, "args.shell"),
        (r#"{"argv":["echo","a\u0000b"]}"#, "args.argv"),
    ] {
        let (code, _, stderr) = s.fail(&["enqueue", "command", "--args", args]);
        assert_eq!(code, 2, "{args}: {stderr}");
        assert!(stderr.contains(field), "{args}: {stderr}");
    }
    assert!(s.all_jobs().is_empty(), "nothing was written");
}
