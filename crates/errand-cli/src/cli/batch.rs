//! `errand enqueue --batch FILE`: many jobs from JSON lines, one job per
//! line, in all-or-nothing batches.
//!
//! A line has the fields of `errand enqueue`'s flags: `kind` (required),
//! `args` (any JSON value, default `{}`), `queue`, `priority`, `in`, `at`,
//! `unique_key`, `unique_for`, `expires_in`, `max_attempts`, `tenant`,
//! `timeout`, `tags`, `meta` (a JSON object) and `retry` (as in the config
//! file: `backoff`, `base`, …). Unknown fields are refused. Blank lines are
//! skipped.

use std::io::{BufRead, BufReader, Read};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::{Value, json};

use errand::{Errand, NewJob};
use errand_core::ErrorCode;
use errand_core::validate::{Limits, ValidationError};

use super::jobs::EnqueueArgs;
use super::output;
use super::retry::RawRetry;

/// The longest line read, beyond the args limit (room for the other fields).
const LINE_OVERHEAD: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    kind: String,
    #[serde(default)]
    args: Option<Value>,
    queue: Option<String>,
    priority: Option<i32>,
    #[serde(rename = "in")]
    delay: Option<String>,
    at: Option<String>,
    unique_key: Option<String>,
    unique_for: Option<String>,
    expires_in: Option<String>,
    max_attempts: Option<i32>,
    tenant: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    meta: Option<Value>,
    retry: Option<RawRetry>,
}

impl Line {
    /// The job, read as `errand enqueue` reads its flags.
    fn into_job(self, limits: &Limits) -> anyhow::Result<NewJob> {
        if self.unique_for.is_some() && self.unique_key.is_none() {
            return Err(ValidationError {
                field: "unique_for",
                code: ErrorCode::UniqueForWithoutKey,
                message: "needs unique_key".into(),
                index: None,
            }
            .into());
        }
        let args = EnqueueArgs {
            kind: Some(self.kind),
            // A JSON text never equals "-" nor starts with '@', so it is taken as it is.
            args: self.args.unwrap_or_else(|| json!({})).to_string(),
            queue: self.queue,
            priority: self.priority,
            delay: self.delay,
            at: self.at,
            unique_key: self.unique_key,
            unique_for: self.unique_for,
            expires_in: self.expires_in,
            max_attempts: self.max_attempts,
            tenant: self.tenant,
            timeout: self.timeout,
            tags: self.tags,
            retry: self.retry.unwrap_or_default(),
            batch: None,
            batch_size: 1,
        };
        let mut job = args.to_job(limits)?;
        if let Some(meta) = self.meta {
            job.meta = Some(meta.to_string());
        }
        Ok(job)
    }
}

/// What a batch run did.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    /// Jobs written.
    enqueued: u64,
    /// Lines whose unique key was taken: nothing was written for them.
    duplicates: u64,
}

fn bad_line(n: usize, e: impl Into<anyhow::Error>) -> anyhow::Error {
    e.into().context(format!("line {n}"))
}

/// Reads `source` (a path, or `-` for stdin) and enqueues its jobs in
/// batches of `batch_size`, each all or nothing. A bad line stops the run:
/// the batches before it are written, its own batch and the rest are not,
/// and the error names the line.
pub(crate) async fn run(
    errand: &Errand,
    source: &str,
    batch_size: usize,
    as_json: bool,
) -> anyhow::Result<()> {
    let limits = Limits::default();
    let (reader, size): (Box<dyn Read>, Option<u64>) = if source == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(source).with_context(|| format!("batch: cannot read {source}"))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let mut reader = BufReader::new(reader);
    let bar = match size {
        Some(len) if std::io::IsTerminal::is_terminal(&std::io::stderr()) && len > 1 << 20 => {
            let bar = ProgressBar::new(len);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {pos_jobs} eta {eta}")
            {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    };
    let client = errand.client();
    let now = errand.clock().now();
    let mut report = Report::default();
    let mut batch: Vec<(usize, NewJob)> = Vec::with_capacity(batch_size);
    let mut buf = Vec::new();
    let max_line = limits.max_args_bytes + LINE_OVERHEAD;
    let mut n = 0;
    loop {
        buf.clear();
        let read = reader
            .by_ref()
            .take(max_line as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("batch: cannot read {source}"))?;
        if read == 0 {
            break;
        }
        n += 1;
        bar.inc(read as u64);
        if buf.len() > max_line {
            return Err(bad_line(
                n,
                ValidationError {
                    field: "batch",
                    code: ErrorCode::LineTooLong,
                    message: format!("longer than {max_line} bytes"),
                    index: None,
                },
            ));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| {
            bad_line(
                n,
                ValidationError {
                    field: "batch",
                    code: ErrorCode::LineInvalid,
                    message: "not UTF-8 text".into(),
                    index: None,
                },
            )
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text).map_err(|e| {
            bad_line(
                n,
                ValidationError {
                    field: "batch",
                    code: ErrorCode::LineInvalid,
                    message: format!("not a job object: {e}"),
                    index: None,
                },
            )
        })?;
        let job = line.into_job(&limits).map_err(|e| bad_line(n, e))?;
        // Checked here too, so a bad line is named before its batch is sent.
        errand_core::validate::validate(job.clone(), &limits, now).map_err(|e| bad_line(n, e))?;
        errand_engine::executor::check_builtin_args(&job.kind, &job.args).map_err(|e| bad_line(n, e))?;
        batch.push((n, job));
        if batch.len() >= batch_size {
            flush(&client, &mut batch, &mut report).await?;
            bar.set_message(format!("{} jobs", report.enqueued));
        }
    }
    flush(&client, &mut batch, &mut report).await?;
    bar.finish_and_clear();
    if as_json {
        output::json(&report)
    } else {
        println!(
            "enqueued {} jobs ({} duplicates)",
            report.enqueued, report.duplicates
        );
        Ok(())
    }
}

async fn flush(
    client: &errand::Client,
    batch: &mut Vec<(usize, NewJob)>,
    report: &mut Report,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let lines: Vec<usize> = batch.iter().map(|(n, _)| *n).collect();
    let jobs = batch.drain(..).map(|(_, j)| j).collect();
    let (first, last) = (lines[0], lines[lines.len() - 1]);
    match client.enqueue_many(jobs).await {
        Ok(inserted) => {
            for i in inserted {
                if i.duplicate {
                    report.duplicates += 1;
                } else {
                    report.enqueued += 1;
                }
            }
            Ok(())
        }
        Err(errand_engine::EnqueueError::Invalid(v)) => {
            let n = v.index.and_then(|i| lines.get(i).copied()).unwrap_or(first);
            Err(bad_line(n, ValidationError { index: None, ..v })).with_context(|| {
                format!(
                    "nothing from line {first} on was enqueued ({} jobs were)",
                    report.enqueued + report.duplicates
                )
            })
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "lines {first}-{last} were not enqueued ({} jobs before them were)",
            report.enqueued + report.duplicates
        ))),
    }
}
