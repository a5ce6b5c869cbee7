//! The `command` executor: runs a program for each job, like whenever's
//! command jobs, with no shell unless the job asks for one explicitly.
//!
//! Args (JSON object):
//! - `argv`: `["program", "arg", …]` — run directly, no shell; or
//! - `shell`: `"a | pipeline"` — run with `/bin/sh -c`, only when given;
//! - `env`: `{"NAME": "value"}` added to the environment (optional);
//! - `dir`: the working directory (optional);
//! - `permanent_exit_codes`: exit codes that discard the job instead of
//!   retrying it (optional; adds to the executor's own list).
//!
//! Exit 0 completes the job with `{"exit_code", "stdout", "stderr"}` as its
//! result (each stream cut to a bound). Any other exit is a retryable error
//! naming the code and ending with the stderr tail, unless the code is
//! permanent. A cancelled or timed-out job's process is killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdin, Command};

use errand_core::validate::ValidationError;
use errand_core::{ErrorCode, Outcome};

use super::{Executor, JobContext};

/// The kind name `command` jobs use.
pub const KIND: &str = "command";

/// The worker's environment variables every command job gets (when the
/// worker has them); an entry ending in `*` is a prefix. Everything else in
/// the worker's environment (its database URL, its secrets) is left out
/// unless [`CommandExecutor::env_allow`] names it.
pub const DEFAULT_ENV_ALLOW: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ", "TMPDIR"];

/// Runs programs. See the module docs for the args.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    /// The most bytes of stdout, and of stderr, kept per attempt.
    pub max_output: usize,
    /// Exit codes that mean "do not retry" for every command job.
    pub permanent_exit_codes: Vec<i32>,
    /// How long a command's processes get to exit after SIGTERM (on a
    /// timeout, a cancel, a hand-back at shutdown, or the worker's death)
    /// before they are sent SIGKILL.
    pub kill_grace: Duration,
    /// More of the worker's environment variables to pass on, besides
    /// [`DEFAULT_ENV_ALLOW`] (an entry ending in `*` is a prefix).
    pub env_allow: Vec<String>,
}

impl Default for CommandExecutor {
    fn default() -> Self {
        CommandExecutor {
            max_output: 64 * 1024,
            permanent_exit_codes: Vec::new(),
            kill_grace: Duration::from_secs(5),
            env_allow: Vec::new(),
        }
    }
}

/// The args of a `command` job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandArgs {
    /// The program and its arguments (no shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// A shell command line, run by `/bin/sh -c` (only when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Exit codes that discard the job instead of retrying it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permanent_exit_codes: Vec<i32>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        code: ErrorCode::CommandArgsInvalid,
        message: message.into(),
        index: None,
    }
}

impl CommandArgs {
    /// Parses and checks a job's args (JSON text); the error names the
    /// field (`args.argv`, `args.env`, …) and the rule.
    pub fn parse(args: &str) -> Result<CommandArgs, ValidationError> {
        let parsed: CommandArgs = serde_json::from_str(args).map_err(|e| {
            invalid(
                "args",
                format!(
                    "not valid command args ({e}); expected an object with argv (an array of strings) \
                     or shell (a string), and optional env, dir, permanent_exit_codes"
                ),
            )
        })?;
        parsed.check()?;
        Ok(parsed)
    }

    /// Checks the args; the error names the field and the rule.
    pub fn check(&self) -> Result<(), ValidationError> {
        match (self.argv.is_empty(), &self.shell) {
            (true, None) => {
                return Err(invalid(
                    "args.argv",
                    "give either argv (a non-empty array of strings) or shell (a string)",
                ));
            }
            (false, Some(_)) => return Err(invalid("args.shell", "give argv or shell, not both")),
            (true, Some(s)) if s.trim().is_empty() => {
                return Err(invalid("args.shell", "must not be empty"));
            }
            _ => {}
        }
        if self.argv.first().is_some_and(|p| p.is_empty()) {
            return Err(invalid("args.argv", "argv[0] (the program) must not be empty"));
        }
        if let Some(i) = self.argv.iter().position(|a| a.contains('\0')) {
            return Err(invalid("args.argv", format!("argv[{i}] contains a NUL byte")));
        }
        if self.shell.as_deref().is_some_and(|s| s.contains('\0')) {
            return Err(invalid("args.shell", "contains a NUL byte"));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) {
                return Err(invalid(
                    "args.env",
                    format!("{k:?} is not a variable name (not empty, no '=' or NUL)"),
                ));
            }
            if v.contains('\0') {
                return Err(invalid(
                    "args.env",
                    format!("the value of {k:?} contains a NUL byte"),
                ));
            }
        }
        if let Some(dir) = &self.dir {
            let d = dir.as_os_str().as_encoded_bytes();
            if d.is_empty() || d.contains(&0) {
                return Err(invalid("args.dir", "must be a non-empty path without NUL bytes"));
            }
        }
        Ok(())
    }
}

/// Whether the worker's variable `name` is passed on under `allow`.
fn allowed(name: &str, allow: &[&str]) -> bool {
    allow.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *a,
    })
}

/// A command's process group, ended as a whole: SIGTERM, then SIGKILL
/// after the grace period. Dropping it unfinished (a timeout, a cancel, a
/// hand-back) ends the group.
struct Group {
    pgid: Option<Pid>,
    grace: Duration,
    ended: bool,
}

impl Group {
    fn end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let Some(pgid) = self.pgid else { return };
        if rustix::process::kill_process_group(pgid, Signal::TERM).is_err() {
            return; // no process of the group is left
        }
        let grace = self.grace;
        // The group's id is not reused while any of its processes lives.
        let _ = std::thread::Builder::new()
            .name("errand-command-kill".into())
            .spawn(move || {
                std::thread::sleep(grace);
                let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
            });
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.end();
    }
}

/// A tiny `sh` that ends a command's process group when the worker dies,
/// however it dies (even SIGKILL): it waits for end-of-file on a pipe whose
/// only writer is the worker, which the kernel closes when the worker exits.
/// It runs in a process group of its own, so a Ctrl-C meant for the worker
/// does not reach it. Dropped when the command ends, it is killed first.
struct Watchdog {
    child: Child,
    _pipe: Option<ChildStdin>,
}

impl Watchdog {
    fn spawn(pgid: u32, grace: Duration) -> std::io::Result<Watchdog> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"read _ignored; kill -TERM -"$1" 2>/dev/null || exit 0; sleep "$2"; kill -KILL -"$1" 2>/dev/null"#)
            .arg("errand-command-watchdog")
            .arg(pgid.to_string())
            .arg(grace.as_secs_f64().ceil().max(1.0).to_string())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Watchdog { child, _pipe: pipe })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Killed before its pipe closes, so it never signals a finished group.
        let _ = self.child.start_kill();
    }
}

#[derive(Serialize)]
struct CommandResult<'a> {
    exit_code: i32,
    stdout: &'a str,
    stderr: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// Reads a stream to its end, keeping at most `max` bytes (so a chatty
/// child never blocks on a full pipe and never fills our memory).
async fn read_bounded(mut r: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (kept, truncated)
}

fn tail(s: &str, max_chars: usize) -> &str {
    let s = s.trim_end();
    if max_chars == 0 {
        return "";
    }
    match s.char_indices().rev().nth(max_chars - 1) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

#[async_trait]
impl Executor for CommandExecutor {
    fn check_args(&self, args: &str) -> Result<(), ValidationError> {
        CommandArgs::parse(args).map(|_| ())
    }

    async fn execute(&self, ctx: &JobContext, args: &str) -> Outcome {
        let args = match CommandArgs::parse(args) {
            Ok(a) => a,
            Err(e) => return Outcome::Permanent { error: e.to_string() },
        };
        let mut cmd = match &args.shell {
            Some(line) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(line);
                c
            }
            None => {
                let mut c = Command::new(&args.argv[0]);
                c.args(&args.argv[1..]);
                c
            }
        };
        let mut allow: Vec<&str> = DEFAULT_ENV_ALLOW.to_vec();
        allow.extend(self.env_allow.iter().map(String::as_str));
        cmd.env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(|k| allowed(k, &allow))))
            .envs(&args.env)
            .env("ERRAND_JOB_ID", ctx.id().to_string())
            .env("ERRAND_JOB_ATTEMPT", ctx.attempt().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that it and every process it starts
            // are ended together, and a Ctrl-C at the worker's terminal does
            // not reach it (the worker decides when it stops).
            .process_group(0)
            .kill_on_drop(false);
        if let Some(t) = ctx.tenant() {
            cmd.env("ERRAND_TENANT", t);
        }
        if let Some(dir) = &args.dir {
            cmd.current_dir(dir);
        }
        let program = match &args.shell {
            Some(_) => "/bin/sh",
            None => args.argv[0].as_str(),
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Retryable {
                    error: format!("cannot start {program:?}: {e}"),
                };
            }
        };
        let pgid = child.id();
        let mut group = Group {
            pgid: pgid.and_then(|p| Pid::from_raw(p as i32)),
            grace: self.kill_grace,
            ended: false,
        };
        let _watchdog = match pgid.map(|p| Watchdog::spawn(p, self.kill_grace)) {
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => {
                tracing::warn!(job_id = ctx.id().0, error = %e,
                    "cannot start the watchdog that ends this command if the worker dies");
                None
            }
            None => None,
        };
        let out = read_bounded(child.stdout.take().expect("stdout is piped"), self.max_output);
        let err = read_bounded(child.stderr.take().expect("stderr is piped"), self.max_output);
        let run = async {
            let waited = async {
                let status = child.wait().await;
                // The program is done: end what it left running in its
                // group, which may hold the output pipes open.
                group.end();
                status
            };
            // Read while it runs, or a full pipe would stop it.
            let (status, (out, t1), (err, t2)) = tokio::join!(waited, out, err);
            (status, out, err, t1 || t2)
        };
        // Dropping `run` unfinished (cancel here; timeout or hand-back in the
        // worker) drops `group`, which ends the process group.
        let (status, stdout, stderr, truncated) = tokio::select! {
            r = run => r,
            _ = ctx.cancelled() => {
                return Outcome::Cancelled { reason: format!("{program:?} was stopped: the job was cancelled") };
            }
        };
        let stdout = String::from_utf8_lossy(&stdout);
        let stderr = String::from_utf8_lossy(&stderr);
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Retryable {
                    error: format!("waiting for {program:?} failed: {e}"),
                };
            }
        };
        match status.code() {
            Some(0) => {
                let result = CommandResult {
                    exit_code: 0,
                    stdout: &stdout,
                    stderr: &stderr,
                    truncated,
                };
                Outcome::Completed {
                    result: serde_json::to_string(&result).ok(),
                }
            }
            Some(code) => {
                let mut error = format!("{program:?} exited with code {code}");
                let t = tail(&stderr, 2000);
                if !t.is_empty() {
                    error.push_str(": ");
                    error.push_str(t);
                }
                if args.permanent_exit_codes.contains(&code) || self.permanent_exit_codes.contains(&code) {
                    Outcome::Permanent { error }
                } else {
                    Outcome::Retryable { error }
                }
            }
            None => {
                use std::os::unix::process::ExitStatusExt;
                let sig = status.signal().unwrap_or(0);
                Outcome::Retryable {
                    error: format!("{program:?} was killed by signal {sig}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_need_argv_or_shell_but_not_both() {
        assert_eq!(CommandArgs::default().check().unwrap_err().field, "args.argv");
        let both = CommandArgs {
            argv: vec!["a".into()],
            shell: Some("b".into()),
            ..Default::default()
        };
        assert!(both.check().unwrap_err().message.contains("not both"));
        let ok = CommandArgs {
            argv: vec!["true".into()],
            ..Default::default()
        };
        assert!(ok.check().is_ok());
    }

    #[test]
    fn bad_args_are_refused_naming_the_field() {
        for (args, field) in [
            (r#"{"argv":"echo hi"}"#, "args"),
            (r#"{"argv":[]}"#, "args.argv"),
            (r#"{}"#, "args.argv"),
            (r#"{"argv":["echo"],"colour":1}"#, "args"),
            (r#"{"argv":["echo"],"shell":"echo"}"#, "args.shell"),
            (r#"{"argv":["echo","a\u0000b"]}"#, "args.argv"),
            (r#"{"argv":[""]}"#, "args.argv"),
            (r#"{"shell":"  "}"#, "args.shell"),
            (r#"{"shell":"echo \u0000"}"#, "args.shell"),
            (r#"{"argv":["env"],"env":{"A=B":"c"}}"#, "args.env"),
            (r#"{"argv":["env"],"env":{"A":"\u0000"}}"#, "args.env"),
            (r#"{"argv":["pwd"],"dir":""}"#, "args.dir"),
            ("[1]", "args"),
        ] {
            let e = CommandArgs::parse(args).unwrap_err();
            assert_eq!(
                (e.field, e.code),
                (field, ErrorCode::CommandArgsInvalid),
                "{args}: {e}"
            );
        }
        let unknown = CommandArgs::parse(r#"{"argv":["echo"],"colour":1}"#).unwrap_err();
        assert!(unknown.message.contains("colour"), "{unknown}");
        assert!(CommandArgs::parse(r#"{"argv":["echo","hi"],"env":{"A":"b"}}"#).is_ok());
    }

    #[test]
    fn only_allowed_variables_pass() {
        let allow = ["PATH", "LC_*"];
        assert!(allowed("PATH", &allow));
        assert!(allowed("LC_ALL", &allow));
        assert!(!allowed("PATHX", &allow));
        assert!(!allowed("ERRAND_DATABASE_URL", &allow));
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef\n", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let data = vec![b'x'; 100_000];
        let (kept, truncated) = read_bounded(&data[..], 1000).await;
        assert_eq!(kept.len(), 1000);
        assert!(truncated);
    }
}
