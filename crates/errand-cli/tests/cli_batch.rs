//! `errand enqueue --batch FILE`: JSON lines, all-or-nothing batches, the
//! bad line named.

mod common;

use common::Scratch;

#[test]
fn a_batch_file_enqueues_every_line_with_its_options() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let lines = [
        r#"{"kind": "email.welcome", "args": {"user": 1}, "queue": "mail", "priority": 5, "tags": ["a"]}"#,
        "",
        r#"{"kind": "report", "in": "1h", "tenant": "acme", "meta": {"by": "ops"}, "retry": {"backoff": "fixed", "base": "1m"}}"#,
        r#"{"kind": "once", "unique_key": "k1"}"#,
        r#"{"kind": "once", "unique_key": "k1"}"#,
    ];
    std::fs::write(s.path("jobs.jsonl"), lines.join("\n")).unwrap();
    let out = s.json(&["enqueue", "--batch", "jobs.jsonl", "--batch-size", "2"]);
    assert_eq!(
        (out["enqueued"].as_u64(), out["duplicates"].as_u64()),
        (Some(3), Some(1)),
        "{out}"
    );
    let jobs = s.all_jobs();
    let welcome = jobs.iter().find(|j| j["kind"] == "email.welcome").unwrap();
    assert_eq!(
        (welcome["queue"].as_str(), welcome["priority"].as_i64()),
        (Some("mail"), Some(5))
    );
    let report = jobs.iter().find(|j| j["kind"] == "report").unwrap();
    assert_eq!(
        (report["state"].as_str(), report["tenant"].as_str()),
        (Some("scheduled"), Some("acme"))
    );
}

#[test]
fn a_bad_line_is_named_and_its_batch_is_not_written() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    for (bad, says) in [
        (r#"{"kind": "x", "colour": 1}"#, "colour"),
        (r#"{"kind": "bad kind"}"#, "kind"),
        (r#"{"kind": "x", "priority": 5000}"#, "priority"),
        (r#"{"kind": "command", "args": {"argv": []}}"#, "args.argv"),
        ("not json", "line"),
    ] {
        let text = format!("{{\"kind\": \"ok\"}}\n{{\"kind\": \"ok\"}}\n{bad}\n");
        std::fs::write(s.path("jobs.jsonl"), text).unwrap();
        let (code, _, stderr) = s.fail(&["enqueue", "--batch", "jobs.jsonl"]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(
            stderr.contains("line 3") && stderr.contains(says),
            "{bad}: {stderr}"
        );
        assert!(s.all_jobs().is_empty(), "{bad}: the batch was written");
    }
}

#[test]
fn stdin_and_refused_flag_mixes() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let mut cmd = s.cmd(&["--json", "enqueue", "--batch", "-"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        for _ in 0..2500 {
            writeln!(stdin, r#"{{"kind": "k"}}"#).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enqueued"], 2500);
    let (code, _, stderr) = s.fail(&["enqueue", "--batch", "-", "--queue", "q"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--batch"), "{stderr}");
}
