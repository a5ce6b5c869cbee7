//! `errand queues pause|resume|clear|remove`: the rollback plan of a job
//! system (stop workers, clear queues, remove them) without SQL.

mod common;

use common::Scratch;

#[test]
fn pausing_an_unknown_queue_is_an_error_unless_asked_to_create_it() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let (code, _, stderr) = s.fail(&["queues", "pause", "nosuch"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("nosuch") && stderr.contains("--create"),
        "{stderr}"
    );
    let (code, _, stderr) = s.fail(&["queues", "resume", "nosuch"]);
    assert_eq!(code, 3, "{stderr}");
    let listed = s.json(&["queues", "list"]);
    assert!(
        listed.as_array().unwrap().iter().all(|q| q["name"] != "nosuch"),
        "{listed}"
    );
    s.ok(&["queues", "pause", "nosuch", "--create"]);
    let listed = s.json(&["queues", "list"]);
    let q = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "nosuch")
        .cloned();
    assert_eq!(q.expect("created")["paused"], true);
}

#[test]
fn clear_deletes_waiting_jobs_and_remove_forgets_an_empty_queue() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    for args in [
        vec!["enqueue", "k", "--queue", "mail"],
        vec!["enqueue", "k", "--queue", "mail", "--in", "1h"],
        vec!["enqueue", "k", "--queue", "mail", "--tenant", "acme"],
        vec!["enqueue", "k", "--queue", "other"],
    ] {
        s.ok(&args);
    }
    let (code, _, stderr) = s.fail(&["queues", "remove", "mail"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("3 unfinished"), "{stderr}");
    let out = s.json(&["queues", "clear", "mail", "--tenant", "acme"]);
    assert_eq!(out["deleted"], 1, "{out}");
    let out = s.json(&["queues", "clear", "mail"]);
    assert_eq!(out["deleted"], 2, "{out}");
    let left: Vec<_> = s
        .all_jobs()
        .iter()
        .map(|j| j["queue"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["other"]);
    s.ok(&["queues", "remove", "mail"]);
    let listed = s.json(&["queues", "list"]);
    assert!(
        listed.as_array().unwrap().iter().all(|q| q["name"] != "mail"),
        "{listed}"
    );
    let (code, _, _) = s.fail(&["queues", "remove", "mail"]);
    assert_eq!(code, 3);
    let (code, _, stderr) = s.fail(&["queues", "clear", "bad name"]);
    assert_eq!(code, 2, "{stderr}");
}

/// Jobs and schedules aimed at a queue that the worker does not serve are
/// named in its log instead of waiting without a word.
#[test]
fn a_worker_names_queues_with_waiting_jobs_it_does_not_serve() {
    let s = Scratch::new();
    std::fs::write(
        s.path("errand.toml"),
        "[worker]\nqueues = { default = 2 }\n\n[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\nkind = \"report\"\nqueue = \"reports\"\n",
    )
    .unwrap();
    s.ok(&["migrate"]);
    s.ok(&["enqueue", "k", "--queue", "elsewhere"]);
    let mut w = common::Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    assert!(
        common::eventually(std::time::Duration::from_secs(20), || {
            let log = w.log_text();
            log.contains("does not serve") && log.contains("elsewhere") && log.contains("reports")
        }),
        "{}",
        w.log_text()
    );
    w.stop(std::time::Duration::from_secs(20));
}
