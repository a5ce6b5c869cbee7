//! `errand enqueue`, `errand jobs …`, `errand queues …`.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use jiff::Timestamp;
use serde_json::json;

use errand::{Errand, JobId, JobState, NewJob};
use errand_core::ErrorCode;
use errand_core::store::{JobFilter, Scope};
use errand_core::validate::{Limits, ValidationError};

use super::config::parse_duration;
use super::output::{self, Table, opt_time, time};

/// `errand enqueue KIND` or `errand enqueue --batch FILE`.
#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The job kind (selects the handler; `command` runs a program).
    #[arg(required_unless_present = "batch")]
    pub(crate) kind: Option<String>,
    /// Arguments as JSON; `@PATH` reads them from a file, `-` from stdin.
    #[arg(long, default_value = "{}", allow_hyphen_values = true)]
    pub(crate) args: String,
    /// The queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Priority: 0 (most urgent) to 1000; default 100.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) priority: Option<i32>,
    /// Run after this delay (30s, 5m, 2h).
    #[arg(
        long = "in",
        value_name = "DURATION",
        conflicts_with = "at",
        allow_hyphen_values = true
    )]
    pub(crate) delay: Option<String>,
    /// Run at this time (RFC 3339, e.g. 2026-12-01T09:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub(crate) at: Option<String>,
    /// Deduplicate: no second job with this key while one is unfinished.
    #[arg(long)]
    pub(crate) unique_key: Option<String>,
    /// With --unique-key: deduplicate for this long after the first enqueue instead.
    #[arg(
        long,
        requires = "unique_key",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub(crate) unique_for: Option<String>,
    /// Never start the job later than this after now (10m, 1h).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub(crate) expires_in: Option<String>,
    /// Attempts allowed (default 25).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) max_attempts: Option<i32>,
    /// The tenant the job belongs to.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// The longest one attempt may run (30s, 5m).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub(crate) timeout: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// The job's own retry policy (else its kind's, its queue's, the worker's).
    #[command(flatten)]
    pub(crate) retry: super::retry::RawRetry,
    /// Enqueue the jobs of a JSON-lines file (`-`: stdin), one job per line
    /// with the fields of these flags (`kind`, `args`, `queue`, `in`, …), in
    /// all-or-nothing batches; a bad line is named and stops the run.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "kind",
        allow_hyphen_values = true
    )]
    pub(crate) batch: Option<String>,
    /// With --batch: jobs per all-or-nothing batch.
    #[arg(long, default_value_t = 1000, requires = "batch",
        value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) batch_size: u32,
}

fn invalid(field: &'static str, code: ErrorCode, message: String) -> anyhow::Error {
    ValidationError {
        field,
        code,
        message,
        index: None,
    }
    .into()
}

fn duration_arg(field: &'static str, v: &Option<String>) -> anyhow::Result<Option<Duration>> {
    v.as_deref()
        .map(|s| {
            if s.trim_start().starts_with('-') {
                return Err(invalid(
                    field,
                    ErrorCode::DurationNegative,
                    format!("{s:?} is negative: a duration must not be negative (like 30s, 5m, 2h)"),
                ));
            }
            parse_duration(s).map_err(|_| {
                invalid(
                    field,
                    ErrorCode::DurationInvalid,
                    format!("{s:?} is not a duration (like 30s, 5m, 2h)"),
                )
            })
        })
        .transpose()
}

/// The `--args` text: as given, or read from `@PATH` or `-` (stdin), since
/// one command-line argument cannot carry more than 128 KiB. Reads at most
/// `limit` bytes and one more: a longer input is refused as soon as that
/// byte arrives, so `@/dev/zero` or an endless pipe cannot exhaust memory.
fn read_args(args: &str, limit: usize) -> anyhow::Result<String> {
    use std::io::Read as _;
    let (source, reader): (String, std::io::Result<Box<dyn std::io::Read>>) = if args == "-" {
        ("stdin".to_owned(), Ok(Box::new(std::io::stdin())))
    } else if let Some(path) = args.strip_prefix('@') {
        let file = std::fs::File::open(path).map(|f| Box::new(f) as Box<dyn std::io::Read>);
        (path.to_owned(), file)
    } else {
        return Ok(args.to_owned());
    };
    let unreadable = |e: std::io::Error| {
        invalid(
            "args",
            ErrorCode::ArgsUnreadable,
            format!("cannot read {source}: {e}"),
        )
    };
    let mut bytes = Vec::new();
    reader
        .and_then(|r| r.take(limit as u64 + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() > limit {
        return Err(invalid(
            "args",
            ErrorCode::ArgsTooLarge,
            format!("{source} holds more than {limit} bytes; the limit is {limit} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        invalid(
            "args",
            ErrorCode::ArgsInvalidJson,
            format!("{source} is not valid JSON: it is not UTF-8 text"),
        )
    })
}

impl EnqueueArgs {
    /// The job these arguments describe (validated by the client on enqueue
    /// with `limits`, which also bound how much of `--args` is read).
    pub(crate) fn to_job(&self, limits: &Limits) -> anyhow::Result<NewJob> {
        let args = read_args(&self.args, limits.max_args_bytes)?;
        let mut job = NewJob::new(self.kind.clone().unwrap_or_default(), args);
        job.queue = self.queue.clone();
        job.priority = self.priority;
        job.delay = duration_arg("in", &self.delay)?;
        if let Some(at) = &self.at {
            job.run_at = Some(at.parse::<Timestamp>().map_err(|e| {
                invalid(
                    "at",
                    ErrorCode::TimeInvalid,
                    format!("{at:?} is not an RFC 3339 time (like 2026-12-01T09:00:00Z): {e}"),
                )
            })?);
        }
        job.expires_in = duration_arg("expires_in", &self.expires_in)?;
        job.max_attempts = self.max_attempts;
        job.tenant = self.tenant.clone();
        job.timeout = duration_arg("timeout", &self.timeout)?;
        job.tags = self.tags.clone();
        if self.retry.is_set() {
            let policy = self
                .retry
                .policy("retry")
                .map_err(|m| invalid("retry", ErrorCode::RetryInvalid, m))?;
            job = job.retry(policy);
        }
        if let Some(key) = &self.unique_key {
            job = match duration_arg("unique_for", &self.unique_for)? {
                Some(period) => job.unique_for(key.clone(), period),
                None => job.unique_key(key.clone()),
            };
        }
        Ok(job)
    }
}

/// Validates a command's input before the store is opened, so that bad
/// input never creates, migrates or writes a database. Uses the limits the
/// CLI's runtime enqueues with ([`Errand::new`]'s defaults).
pub(crate) fn check_before_open(cmd: &super::Command) -> anyhow::Result<Option<NewJob>> {
    use super::Command;
    match cmd {
        Command::Enqueue(a) if a.batch.is_some() => {
            let single_job_flags = a.args != "{}"
                || a.queue.is_some()
                || a.priority.is_some()
                || a.delay.is_some()
                || a.at.is_some()
                || a.unique_key.is_some()
                || a.expires_in.is_some()
                || a.max_attempts.is_some()
                || a.tenant.is_some()
                || a.timeout.is_some()
                || !a.tags.is_empty()
                || a.retry.is_set();
            if single_job_flags {
                return Err(invalid(
                    "batch",
                    ErrorCode::BatchWithJobFlags,
                    "--batch takes no other job flags: give each job's fields on its line".into(),
                ));
            }
        }
        Command::Enqueue(a) => {
            let limits = Limits::default();
            let job = a.to_job(&limits)?;
            errand_core::validate::validate(job.clone(), &limits, Timestamp::now())?;
            // The built-in kinds' args (a `command` job's argv…) are checked
            // here too, before any store is opened.
            errand_engine::executor::check_builtin_args(&job.kind, &job.args)?;
            return Ok(Some(job));
        }
        Command::Jobs(JobsCmd::List(a)) => {
            list_filter(a)?;
        }
        Command::Jobs(JobsCmd::Show(a) | JobsCmd::Retry(a) | JobsCmd::Cancel(a)) => {
            a.job_id()?;
            scope(&a.tenant)?;
        }
        Command::Queues(
            QueuesCmd::Pause { queue, .. } | QueuesCmd::Resume { queue } | QueuesCmd::Remove { queue },
        ) => {
            errand_core::validate::queue_name("queue", queue)?;
        }
        Command::Queues(QueuesCmd::Clear { queue, tenant }) => {
            errand_core::validate::queue_name("queue", queue)?;
            scope(tenant)?;
        }
        _ => {}
    }
    Ok(None)
}

/// Enqueues `job`, the one [`check_before_open`] made from `errand enqueue`'s arguments.
pub(crate) async fn enqueue(errand: &Errand, job: NewJob, as_json: bool) -> anyhow::Result<()> {
    let ins = errand.client().enqueue(job).await?;
    if as_json {
        output::json(&ins)
    } else {
        if ins.duplicate {
            println!("duplicate of job {} ({})", ins.id, ins.state);
        } else {
            println!("enqueued job {} ({})", ins.id, ins.state);
        }
        Ok(())
    }
}

/// `errand jobs …`.
#[derive(Debug, Subcommand)]
pub(crate) enum JobsCmd {
    /// List jobs, newest first.
    List(ListArgs),
    /// Show one job in full.
    Show(IdArgs),
    /// Retry a discarded, cancelled, expired or waiting job now.
    Retry(IdArgs),
    /// Cancel a job (a running one is stopped at its next heartbeat).
    Cancel(IdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only jobs in this state (repeatable).
    #[arg(long = "state")]
    states: Vec<String>,
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// The most jobs to show (max 1000).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after this id (the previous page's last id, or its `next_cursor`).
    #[arg(long, allow_negative_numbers = true)]
    before: Option<i64>,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The job id (a positive integer).
    #[arg(allow_negative_numbers = true)]
    id: i64,
    /// Act as this tenant: other tenants' jobs are invisible.
    #[arg(long)]
    tenant: Option<String>,
}

/// A job id given on the command line: a positive integer.
fn job_id(field: &'static str, id: i64) -> anyhow::Result<JobId> {
    if id < 1 {
        return Err(invalid(
            field,
            ErrorCode::IdInvalid,
            format!("{id} is not a job id: the id must be a positive integer"),
        ));
    }
    Ok(JobId(id))
}

impl IdArgs {
    fn job_id(&self) -> anyhow::Result<JobId> {
        job_id("id", self.id)
    }
}

fn scope(tenant: &Option<String>) -> anyhow::Result<Scope> {
    match tenant {
        Some(t) => {
            errand_core::validate::tenant_id("tenant", t)?;
            Ok(Scope::Tenant(t.clone()))
        }
        None => Ok(Scope::All),
    }
}

fn list_filter(a: &ListArgs) -> anyhow::Result<JobFilter> {
    let mut states = Vec::new();
    for s in &a.states {
        states.push(
            s.parse::<JobState>()
                .map_err(|e| invalid("state", ErrorCode::StateInvalid, e))?,
        );
    }
    if let Some(q) = &a.queue {
        errand_core::validate::queue_name("queue", q)?;
    }
    if a.limit == 0 || a.limit > 1000 {
        return Err(invalid(
            "limit",
            ErrorCode::LimitOutOfRange,
            format!("{} is out of range: use 1 to 1000", a.limit),
        ));
    }
    Ok(JobFilter {
        scope: scope(&a.tenant)?,
        states,
        queue: a.queue.clone(),
        kind: a.kind.clone(),
        tenant: None,
        before_id: a.before.map(|id| job_id("before", id)).transpose()?,
        limit: a.limit,
    })
}

pub(crate) async fn jobs(errand: &Errand, cmd: &JobsCmd, as_json: bool) -> anyhow::Result<()> {
    let client = errand.client();
    match cmd {
        JobsCmd::List(a) => {
            let page = client.jobs(&list_filter(a)?).await?;
            if as_json {
                let jobs = page
                    .jobs
                    .iter()
                    .map(output::job_json)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                return output::json(&json!({ "jobs": jobs, "next_cursor": page.next_cursor }));
            }
            let mut t = Table::new(vec![
                "ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "RUN_AT", "TENANT",
            ]);
            for j in &page.jobs {
                t.row(vec![
                    j.id.to_string(),
                    j.state.to_string(),
                    j.queue.clone(),
                    j.kind.clone(),
                    format!("{}/{}", j.attempt, j.max_attempts),
                    time(j.run_at),
                    j.tenant.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            print!("{}", t.render());
            if let Some(c) = page.next_cursor {
                println!("(more: --before {c})");
            }
            Ok(())
        }
        JobsCmd::Show(a) => {
            let job = client.job(a.job_id()?, &scope(&a.tenant)?).await?;
            if as_json {
                return output::json(&output::job_json(&job)?);
            }
            let mut out = String::new();
            let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<14}{}\n", output::escape(&v)));
            kv("id", job.id.to_string());
            kv("state", job.state.to_string());
            kv("queue", job.queue.clone());
            kv("kind", job.kind.clone());
            kv("tenant", job.tenant.clone().unwrap_or_else(|| "-".into()));
            kv("args", job.args.clone());
            kv("priority", job.priority.to_string());
            kv("attempt", format!("{} of {}", job.attempt, job.max_attempts));
            kv("run_at", time(job.run_at));
            kv("created_at", time(job.created_at));
            kv("attempted_at", opt_time(job.attempted_at));
            kv("finished_at", opt_time(job.finished_at));
            kv("expires_at", opt_time(job.expires_at));
            kv("unique_key", job.unique_key.clone().unwrap_or_else(|| "-".into()));
            kv(
                "timeout",
                job.timeout
                    .map_or_else(|| "-".into(), |t| humantime::format_duration(t).to_string()),
            );
            kv(
                "tags",
                if job.tags.is_empty() {
                    "-".into()
                } else {
                    job.tags.join(", ")
                },
            );
            if let Some(p) = &job.progress {
                kv(
                    "progress",
                    format!("{:.0}% {}", p.percent, p.message.clone().unwrap_or_default()),
                );
            }
            if let Some(r) = &job.result {
                kv("result", r.clone());
            }
            if let Some(l) = &job.lease {
                kv(
                    "lease",
                    format!("{} (token {}, until {})", l.owner, l.token, time(l.expires_at)),
                );
            }
            if job.cancel_requested {
                kv("cancel", "requested".into());
            }
            for e in &job.errors {
                kv(
                    "error",
                    format!("attempt {} at {}: {}", e.attempt, time(e.at), e.message),
                );
            }
            print!("{out}");
            Ok(())
        }
        JobsCmd::Retry(a) | JobsCmd::Cancel(a) => {
            let scope = scope(&a.tenant)?;
            let id = a.job_id()?;
            let job = match cmd {
                JobsCmd::Retry(_) => client.retry(id, &scope).await?,
                _ => client.cancel(id, &scope).await?,
            };
            if as_json {
                return output::json(&output::job_json(&job)?);
            }
            if job.cancel_requested && job.state == JobState::Running {
                println!("job {id} is running; cancellation requested");
            } else {
                println!("job {id} is now {}", job.state);
            }
            Ok(())
        }
    }
}

/// `errand queues …`.
#[derive(Debug, Subcommand)]
pub(crate) enum QueuesCmd {
    /// List queues with their counts.
    List,
    /// Stop workers from claiming a queue's jobs (running ones finish).
    Pause {
        /// The queue.
        queue: String,
        /// Create the queue, paused, if it does not exist yet (to pause it before its first job).
        #[arg(long)]
        create: bool,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue.
        queue: String,
    },
    /// Delete a queue's waiting jobs (available, scheduled, retryable); running and finished jobs stay.
    Clear {
        /// The queue.
        queue: String,
        /// Only this tenant's jobs.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Forget a queue that holds no unfinished job (its pause flag and totals).
    Remove {
        /// The queue.
        queue: String,
    },
}

/// One queue as `queues list --json` shows it: every state's count (0
/// included), the oldest available job's wait, and the totals under the
/// names the table uses. `failed_total` counts jobs that failed for good
/// (discarded); `failed_attempts` counts every failed attempt, retried or not.
fn queue_json(q: &errand_core::store::QueueStats) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = JobState::ALL
        .iter()
        .map(|s| (s.to_string(), json!(q.counts.get(s).copied().unwrap_or(0))))
        .collect();
    json!({
        "name": q.name,
        "paused": q.paused,
        "counts": counts,
        "oldest_age_ms": q.oldest_available_age.map(|d| d.as_millis() as u64),
        "completed_total": q.completed_total,
        "failed_total": q.discarded_total,
        "failed_attempts": q.failed_total,
    })
}

pub(crate) async fn queues(errand: &Errand, cmd: &QueuesCmd, as_json: bool) -> anyhow::Result<()> {
    let client = errand.client();
    match cmd {
        QueuesCmd::List => {
            let qs = client.queues(&Scope::All).await?;
            if as_json {
                return output::json(&qs.iter().map(queue_json).collect::<Vec<_>>());
            }
            // The table's columns are the JSON's fields (upper-cased), those
            // that fit in 100 columns: the finished states' counts are in
            // the JSON only.
            let mut t = Table::new(vec![
                "QUEUE",
                "PAUSED",
                "AVAILABLE",
                "SCHEDULED",
                "RUNNING",
                "RETRYABLE",
                "OLDEST_AGE",
                "COMPLETED_TOTAL",
                "FAILED_TOTAL",
            ]);
            for q in &qs {
                let n = |s: JobState| q.counts.get(&s).copied().unwrap_or(0).to_string();
                t.row(vec![
                    q.name.clone(),
                    if q.paused { "yes" } else { "no" }.into(),
                    n(JobState::Available),
                    n(JobState::Scheduled),
                    n(JobState::Running),
                    n(JobState::Retryable),
                    q.oldest_available_age
                        .map_or_else(|| "-".into(), output::short_age),
                    q.completed_total.unwrap_or(0).to_string(),
                    q.discarded_total.unwrap_or(0).to_string(),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
        QueuesCmd::Pause { queue, create } => {
            if *create {
                client.pause(queue, &Scope::All).await?;
            } else {
                client.pause_known(queue, &Scope::All).await.context(
                    "cannot pause a queue that does not exist (pass --create to create it paused)",
                )?;
            }
            if as_json {
                output::json(&json!({ "queue": queue, "paused": true }))
            } else {
                println!("queue {queue} paused");
                Ok(())
            }
        }
        QueuesCmd::Clear { queue, tenant } => {
            let deleted = client.clear_queue(queue, &scope(tenant)?).await?;
            if as_json {
                output::json(&json!({ "queue": queue, "deleted": deleted }))
            } else {
                println!("queue {queue}: {deleted} waiting jobs deleted");
                Ok(())
            }
        }
        QueuesCmd::Remove { queue } => {
            client.remove_queue(queue, &Scope::All).await?;
            if as_json {
                output::json(&json!({ "queue": queue, "removed": true }))
            } else {
                println!("queue {queue} removed");
                Ok(())
            }
        }
        QueuesCmd::Resume { queue } => {
            let pause = false;
            client.resume(queue, &Scope::All).await?;
            if as_json {
                output::json(&json!({ "queue": queue, "paused": pause }))
            } else {
                println!("queue {queue} {}", if pause { "paused" } else { "resumed" });
                Ok(())
            }
        }
    }
}
