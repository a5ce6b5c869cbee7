//! Shared harness for the `errand` binary's end-to-end tests: a scratch
//! directory per test, a command builder that ignores the caller's
//! environment, and helpers to run, read and stop `errand` processes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt as _;

/// Every variable the binary reads, removed so the caller's shell cannot
/// change what a test sees.
const ENV_VARS: &[&str] = &[
    "ERRAND_DATABASE_URL",
    "ERRAND_CONFIG",
    "ERRAND_DURABILITY",
    "ERRAND_POSTGRES_SCHEMA",
    "ERRAND_LOG_FORMAT",
    "ERRAND_QUEUES",
    "ERRAND_LOG",
    "RUST_LOG",
];

/// A scratch directory with an SQLite database URL in it.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    /// A scratch directory whose database `errand migrate` has created:
    /// commands other than `work`, `serve` and `migrate` refuse a missing one.
    pub(crate) fn new() -> Scratch {
        let s = Scratch::empty();
        s.ok(&["migrate"]);
        s
    }

    /// A scratch directory with no database in it.
    pub(crate) fn empty() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("errand-test-")
                .tempdir()
                .expect("a temp dir"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The database file.
    pub(crate) fn db_file(&self) -> PathBuf {
        self.path("t.db")
    }

    /// `sqlite://<dir>/t.db`.
    pub(crate) fn url(&self) -> String {
        format!("sqlite://{}", self.db_file().display())
    }

    /// `errand` run in the scratch directory with a clean environment and no database flag.
    pub(crate) fn bare(&self) -> std::process::Command {
        let mut cmd = std::process::Command::cargo_bin("errand").expect("the errand binary");
        for v in ENV_VARS {
            cmd.env_remove(v);
        }
        cmd.env("TZ", "UTC").current_dir(self.dir.path());
        cmd
    }

    /// `errand --database sqlite://<dir>/t.db ARGS`.
    pub(crate) fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.bare();
        cmd.arg("--database").arg(self.url()).args(args);
        cmd
    }

    /// Runs `errand ARGS` on the scratch database, expecting success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.cmd(args).output().expect("run errand"))
    }

    /// Like [`Scratch::ok`] with `--json`, parsed.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Runs `errand ARGS` on the scratch database, expecting failure: (exit code, stdout, stderr).
    pub(crate) fn fail(&self, args: &[&str]) -> (i32, String, String) {
        split(self.cmd(args).output().expect("run errand"))
    }

    /// Every job in the store (`jobs list --json`, up to 1000).
    pub(crate) fn all_jobs(&self) -> Vec<serde_json::Value> {
        let v = self.json(&["jobs", "list", "--limit", "1000"]);
        v["jobs"].as_array().expect("a jobs array").clone()
    }
}

/// Exit code, stdout, stderr.
pub(crate) fn split(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stdout of a run that must have succeeded.
pub(crate) fn expect_ok(args: &[&str], out: Output) -> String {
    let (code, stdout, stderr) = split(out);
    assert_eq!(
        code, 0,
        "errand {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// A running `errand work` (or other long-running) process. Killed on drop
/// so a failing test leaves no process behind.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stderr (the logs) going to `log`.
    pub(crate) fn spawn(mut cmd: std::process::Command, log: &Path) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start errand");
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`KILL`, `TERM`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the process to exit, up to `limit`; returns its exit status.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for errand") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "errand (pid {}) did not exit within {limit:?}; its log:\n{}",
                    self.pid(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill9(&mut self) {
        self.signal("KILL");
        let status = self.wait_for(Duration::from_secs(10));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status:?}"
        );
    }

    /// SIGTERM, and expect a graceful exit with code 0.
    pub(crate) fn stop(&mut self, limit: Duration) {
        self.signal("TERM");
        let status = self.wait_for(limit);
        assert!(
            status.success(),
            "errand exited with {status:?} on SIGTERM; its log:\n{}",
            self.log_text()
        );
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns whether it held.
pub(crate) fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small deterministic random sequence (xorshift), seeded and printed by
/// the test so a failing run can be replayed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env_or_time(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("{var}={seed}");
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `lo..hi` (milliseconds).
    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

/// Checks a side-effects file (one job id per line, appended by each attempt)
/// against the stored jobs: every job's effect happened at least once, and at
/// most once per attempt; no line names an unknown job. Returns how many
/// effects were repeats (at-least-once delivery after a crash).
pub(crate) fn check_effects(effects: &Path, jobs: &[errand_core::Job]) -> usize {
    let text = std::fs::read_to_string(effects).expect("the effects file");
    let mut runs: std::collections::BTreeMap<i64, i32> = std::collections::BTreeMap::new();
    for line in text.lines() {
        let id: i64 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a torn line: {line:?}"));
        *runs.entry(id).or_default() += 1;
    }
    for j in jobs {
        let n = runs.remove(&j.id.0).unwrap_or(0);
        assert!(
            (1..=j.attempt).contains(&n),
            "job {}: {n} effects from {} attempts",
            j.id,
            j.attempt
        );
    }
    assert!(runs.is_empty(), "effects of unknown jobs: {runs:?}");
    text.lines().count() - jobs.len()
}

/// Checks that every job completed exactly once in the store, holding no
/// lease, with each earlier attempt in its history as a lost lease; returns
/// how many attempts were lost (and rescued) in all.
pub(crate) fn check_all_completed(jobs: &[errand::core::Job]) -> usize {
    let mut rescued = 0;
    for j in jobs {
        assert_eq!(j.state, errand::JobState::Completed, "job {}: {j:?}", j.id);
        assert!(j.lease.is_none(), "job {} still holds a lease", j.id);
        // One successful attempt; every other attempt is in the history, as a lost lease.
        assert_eq!(
            j.errors.len() as i32,
            j.attempt - 1,
            "job {}: {:?}",
            j.id,
            j.errors
        );
        for e in &j.errors {
            assert!(
                e.message.starts_with("lease expired"),
                "job {}: {}",
                j.id,
                e.message
            );
        }
        rescued += j.errors.len();
    }
    rescued
}
