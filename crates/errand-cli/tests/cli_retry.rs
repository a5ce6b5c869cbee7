//! Retry policies outside Rust: `--retry-*` flags on `errand enqueue` and
//! `[worker.retry]`, `[queue.NAME.retry]`, `[kind.NAME.retry]` in the config.

mod common;

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use common::{Proc, Scratch, eventually};

fn show(s: &Scratch, id: i64) -> Value {
    s.json(&["jobs", "show", &id.to_string()])
}

#[test]
fn enqueue_flags_set_the_jobs_own_policy() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let id = s.json(&[
        "enqueue",
        "k",
        "--retry-backoff",
        "fixed",
        "--retry-base",
        "1m",
        "--max-attempts",
        "3",
    ])["id"]
        .as_i64()
        .unwrap();
    let job = show(&s, id);
    let retry = &job["retry"];
    assert_eq!(retry["backoff"]["kind"], "fixed", "{job}");
    assert_eq!(retry["backoff"]["delay_ms"], 60_000, "{job}");
    assert_eq!(job["max_attempts"], 3);
}

#[test]
fn bad_retry_flags_are_refused_naming_the_flag() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    for (flags, says) in [
        (vec!["--retry-backoff", "random"], "retry.backoff"),
        (vec!["--retry-base", "soon"], "retry.base"),
        (vec!["--retry-factor", "0.5"], "retry.factor"),
        (vec!["--retry-jitter", "-1"], "retry.jitter"),
        (
            vec!["--retry-backoff", "fixed", "--retry-factor", "2"],
            "retry.factor",
        ),
    ] {
        let mut args = vec!["enqueue", "k"];
        args.extend(flags.iter().copied());
        let (code, _, stderr) = s.fail(&args);
        assert_eq!(code, 2, "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
    assert!(s.all_jobs().is_empty());
}

/// A failing command job in a queue with `[queue.NAME.retry]` waits as that
/// policy says, not the default 15 s.
#[test]
fn a_queues_policy_from_the_config_file_times_the_retry() {
    let s = Scratch::new();
    std::fs::write(
        s.path("errand.toml"),
        "[worker]\npoll_interval = \"100ms\"\n\
         [queue.default]\nconcurrency = 2\n[queue.default.retry]\nbackoff = \"fixed\"\nbase = \"1h\"\n",
    )
    .unwrap();
    s.ok(&["migrate"]);
    let args = json!({"argv": ["sh", "-c", "exit 3"]}).to_string();
    let id = s.json(&["enqueue", "command", "--args", &args])["id"]
        .as_i64()
        .unwrap();
    let mut w = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    assert!(eventually(Duration::from_secs(20), || show(&s, id)["state"] == "retryable"));
    w.stop(Duration::from_secs(20));
    let job = show(&s, id);
    let run_at: Timestamp = job["run_at"].as_str().unwrap().parse().unwrap();
    let wait = run_at.duration_since(Timestamp::now());
    assert!(
        wait > jiff::SignedDuration::from_mins(55),
        "the retry is due in {wait:?}, not in about an hour: {job}"
    );
}
