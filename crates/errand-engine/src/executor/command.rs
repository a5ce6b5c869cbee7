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

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use errand_core::Outcome;

use super::{Executor, JobContext};

/// The kind name `command` jobs use.
pub const KIND: &str = "command";

/// Runs programs. See the module docs for the args.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    /// The most bytes of stdout, and of stderr, kept per attempt.
    pub max_output: usize,
    /// Exit codes that mean "do not retry" for every command job.
    pub permanent_exit_codes: Vec<i32>,
}

impl Default for CommandExecutor {
    fn default() -> Self {
        CommandExecutor {
            max_output: 64 * 1024,
            permanent_exit_codes: Vec::new(),
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

impl CommandArgs {
    /// Checks the args; the error names the field and the rule.
    pub fn check(&self) -> Result<(), String> {
        match (self.argv.is_empty(), &self.shell) {
            (true, None) => Err("args: give either argv (a non-empty array) or shell (a string)".into()),
            (false, Some(_)) => Err("args: give argv or shell, not both".into()),
            (true, Some(s)) if s.trim().is_empty() => Err("args.shell: must not be empty".into()),
            _ if self.argv.first().is_some_and(|p| p.is_empty()) => {
                Err("args.argv[0]: must not be empty".into())
            }
            _ => Ok(()),
        }
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
    async fn execute(&self, ctx: &JobContext, args: &str) -> Outcome {
        let args: CommandArgs = match serde_json::from_str(args) {
            Ok(a) => a,
            Err(e) => {
                return Outcome::Permanent {
                    error: format!("args: not valid command args: {e}"),
                };
            }
        };
        if let Err(e) = args.check() {
            return Outcome::Permanent { error: e };
        }
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
        cmd.envs(&args.env)
            .env("ERRAND_JOB_ID", ctx.id().to_string())
            .env("ERRAND_JOB_ATTEMPT", ctx.attempt().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
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
        let out = read_bounded(child.stdout.take().expect("stdout is piped"), self.max_output);
        let err = read_bounded(child.stderr.take().expect("stderr is piped"), self.max_output);
        let run = async {
            let (status, (out, t1), (err, t2)) = tokio::join!(child.wait(), out, err);
            (status, out, err, t1 || t2)
        };
        let (status, stdout, stderr, truncated) = tokio::select! {
            r = run => r,
            _ = ctx.cancelled() => {
                // kill_on_drop kills the child when `run` is dropped here.
                return Outcome::Cancelled { reason: format!("{program:?} was killed: the job was cancelled") };
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
        assert!(CommandArgs::default().check().unwrap_err().contains("argv"));
        let both = CommandArgs {
            argv: vec!["a".into()],
            shell: Some("b".into()),
            ..Default::default()
        };
        assert!(both.check().unwrap_err().contains("not both"));
        let ok = CommandArgs {
            argv: vec!["true".into()],
            ..Default::default()
        };
        assert!(ok.check().is_ok());
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
