//! Configuration in two stages: raw settings from the file, the environment
//! and the flags are merged (flags win, then the environment, then the
//! file), then validated once into a [`Config`] the rest of the program trusts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use errand::{Durability, MaintenanceConfig, QueueConfig, WorkerConfig};
use errand_engine::QueueRetention;

use super::retry::RawRetry;

/// The default database when nothing names one.
pub(crate) const DEFAULT_DATABASE: &str = "sqlite://errand.db";
/// The config file read when present and no other is named.
pub(crate) const DEFAULT_FILE: &str = "errand.toml";

/// The file's shape. Unknown keys are errors, so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    database: Option<String>,
    durability: Option<String>,
    postgres_schema: Option<String>,
    sqlite_file_mode: Option<String>,
    log_format: Option<String>,
    #[serde(default)]
    worker: RawWorker,
    #[serde(default)]
    maintenance: RawMaintenance,
    /// Per-queue settings: `[queue.NAME]`.
    #[serde(default)]
    queue: BTreeMap<String, RawQueue>,
    /// How `command` jobs run.
    #[serde(default)]
    command: RawCommand,
    /// Per-kind settings: `[kind.NAME]`.
    #[serde(default)]
    kind: BTreeMap<String, RawKind>,
    /// Schedules are read by the scheduler (`errand schedule check`).
    #[serde(default, rename = "schedule")]
    _schedule: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    /// `{ default = 10, mailers = 5 }`: queue name → concurrency.
    queues: Option<BTreeMap<String, usize>>,
    lease: Option<String>,
    heartbeat: Option<String>,
    poll_interval: Option<String>,
    shutdown_grace: Option<String>,
    /// The default retry policy (`[worker.retry]`).
    retry: Option<RawRetry>,
    /// Log every finished job at info (default true).
    log_jobs: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    interval: Option<String>,
    retention: Option<String>,
    prune_interval: Option<String>,
    leader_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    /// The kind's retry policy (`[kind.NAME.retry]`).
    retry: Option<RawRetry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    /// More of the worker's environment variables passed to command jobs.
    env_allow: Option<Vec<String>>,
    /// SIGTERM to SIGKILL, when a command job is stopped.
    kill_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    concurrency: Option<usize>,
    fetch_batch: Option<usize>,
    fetchers: Option<usize>,
    retention: Option<String>,
    keep_completed: Option<bool>,
    /// The queue's retry policy (`[queue.NAME.retry]`).
    retry: Option<RawRetry>,
}

/// Settings given on the command line or in the environment (already merged by clap).
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub(crate) config: Option<PathBuf>,
    pub(crate) database: Option<String>,
    pub(crate) durability: Option<String>,
    pub(crate) postgres_schema: Option<String>,
    pub(crate) log_format: Option<String>,
    pub(crate) queues: Option<String>,
    pub(crate) shutdown_grace: Option<String>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) database: String,
    pub(crate) store: errand::StoreOptions,
    pub(crate) log_format: LogFormat,
    pub(crate) queues: Vec<QueueConfig>,
    pub(crate) worker: WorkerConfig,
    pub(crate) maintenance: MaintenanceConfig,
    /// Retry policies by kind (`[kind.NAME.retry]`).
    pub(crate) kind_retry: BTreeMap<String, errand_core::RetryPolicy>,
    /// How `command` jobs run.
    pub(crate) command: errand::CommandExecutor,
    /// The file it came from, if any.
    pub(crate) file: Option<PathBuf>,
}

fn duration(field: &str, v: &Option<String>) -> anyhow::Result<Option<Duration>> {
    v.as_deref()
        .map(|s| {
            parse_duration(s).with_context(|| format!("{field}: {s:?} is not a duration (like 30s, 5m, 2h)"))
        })
        .transpose()
}

/// Parses `sqlite_file_mode`: octal permission bits (`"0600"`, `"640"`)
/// that keep the owner's read and write permission.
fn file_mode(s: &str) -> anyhow::Result<u32> {
    let mode = u32::from_str_radix(s.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .with_context(|| {
            format!("sqlite_file_mode: {s:?} is not octal permission bits (like \"0600\" or \"0640\")")
        })?;
    if mode & 0o600 != 0o600 {
        bail!("sqlite_file_mode: {s:?} must let the owner read and write (0600 at least)");
    }
    Ok(mode)
}

/// Parses `30s`, `5m`, `1h30m`, `2d`.
pub(crate) fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    Ok(humantime::parse_duration(s.trim())?)
}

/// Parses `default=10,mailers=5` (a bare name gets `default_concurrency`).
pub(crate) fn parse_queue_list(
    s: &str,
    default_concurrency: usize,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = match part.split_once(['=', ':']) {
            Some((name, n)) => {
                let n: usize = n.trim().parse().with_context(|| {
                    format!("queues: {part:?}: concurrency must be a whole number of at least 1")
                })?;
                (name.trim(), n)
            }
            None => (part, default_concurrency),
        };
        out.insert(name.to_owned(), n);
    }
    if out.is_empty() {
        bail!("queues: {s:?} names no queue; use NAME=CONCURRENCY[,NAME=CONCURRENCY…]");
    }
    Ok(out)
}

impl Config {
    /// Reads the file (if any), applies the overrides and validates the result.
    pub(crate) fn load(o: &Overrides) -> anyhow::Result<Config> {
        let (raw, file) = match &o.config {
            Some(p) => (read_file(p)?, Some(p.clone())),
            None if Path::new(DEFAULT_FILE).is_file() => (
                read_file(Path::new(DEFAULT_FILE))?,
                Some(PathBuf::from(DEFAULT_FILE)),
            ),
            None => (RawFile::default(), None),
        };
        Config::build(raw, o, file)
    }

    fn build(raw: RawFile, o: &Overrides, file: Option<PathBuf>) -> anyhow::Result<Config> {
        let database = o
            .database
            .clone()
            .or(raw.database)
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        errand::StoreUrl::parse(&database).map_err(|e| anyhow::anyhow!("database: {e}"))?;
        let durability = match o.durability.as_ref().or(raw.durability.as_ref()) {
            Some(d) => d
                .parse::<Durability>()
                .map_err(|e| anyhow::anyhow!("durability: {e}"))?,
            None => Durability::Normal,
        };
        let postgres_schema = o.postgres_schema.clone().or(raw.postgres_schema);
        if let Some(schema) = &postgres_schema {
            errand_postgres::check_schema_name(schema)
                .map_err(|e| anyhow::anyhow!("postgres_schema: {e}"))?;
        }
        let log_format = match o.log_format.as_deref().or(raw.log_format.as_deref()) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("log_format: {other:?} is not a log format; use text or json"),
        };
        let mut worker = WorkerConfig::default();
        if let Some(d) = duration("worker.lease", &raw.worker.lease)? {
            worker.lease = d;
        }
        if let Some(d) = duration("worker.heartbeat", &raw.worker.heartbeat)? {
            worker.heartbeat = d;
        } else {
            worker.heartbeat = worker.lease / 3;
        }
        if let Some(d) = duration("worker.poll_interval", &raw.worker.poll_interval)? {
            worker.poll_interval = d;
        }
        if let Some(r) = &raw.worker.retry {
            worker.default_retry = r.policy("worker.retry").map_err(anyhow::Error::msg)?;
        }
        let grace = o.shutdown_grace.clone().or(raw.worker.shutdown_grace);
        if let Some(d) = duration("shutdown_grace", &grace)? {
            worker.shutdown_grace = d;
        }
        if let Some(yes) = raw.worker.log_jobs {
            worker.log_finished = yes;
        }
        worker.check().map_err(|e| setting("worker", e))?;
        let mut names: BTreeMap<String, usize> = match &o.queues {
            Some(list) => parse_queue_list(list, 10)?,
            None => raw
                .worker
                .queues
                .clone()
                .unwrap_or_else(|| BTreeMap::from([("default".to_owned(), 10)])),
        };
        if o.queues.is_none() {
            for (name, q) in &raw.queue {
                if let Some(c) = q.concurrency {
                    names.insert(name.clone(), c);
                }
            }
        }
        let mut queues = Vec::new();
        for (name, concurrency) in names {
            errand_core::validate::queue_name("queues", &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut q = QueueConfig::new(name.clone(), concurrency);
            if let Some(b) = raw.queue.get(&name).and_then(|q| q.fetch_batch) {
                q.fetch_batch = b;
            }
            if let Some(f) = raw.queue.get(&name).and_then(|q| q.fetchers) {
                q.fetchers = Some(f);
            }
            if let Some(k) = raw.queue.get(&name).and_then(|q| q.keep_completed) {
                q.keep_completed = k;
            }
            if let Some(r) = raw.queue.get(&name).and_then(|q| q.retry.as_ref()) {
                q.retry = Some(
                    r.policy(&format!("queue.{name}.retry"))
                        .map_err(anyhow::Error::msg)?,
                );
            }
            // The engine's rules, named as the file names them: a queue's
            // concurrency comes from `queues` unless its own section sets it.
            q.check().map_err(|e| {
                let from_section = raw.queue.get(&name).is_some_and(|r| match e.field {
                    "concurrency" => r.concurrency.is_some() && o.queues.is_none(),
                    _ => true,
                });
                if from_section {
                    setting(&format!("queue.{name}"), e)
                } else {
                    anyhow::anyhow!("queues: {name}: {}", e.message)
                }
            })?;
            queues.push(q);
        }
        let mut maintenance = MaintenanceConfig::default();
        if let Some(d) = duration("maintenance.interval", &raw.maintenance.interval)? {
            maintenance.interval = d;
        }
        if let Some(d) = duration("maintenance.retention", &raw.maintenance.retention)? {
            maintenance.retention = d;
        }
        if let Some(d) = duration("maintenance.prune_interval", &raw.maintenance.prune_interval)? {
            maintenance.prune_interval = d;
        }
        if let Some(d) = duration("maintenance.leader_ttl", &raw.maintenance.leader_ttl)? {
            maintenance.leader_ttl = d;
        }
        maintenance.check().map_err(|e| setting("maintenance", e))?;
        for (name, q) in &raw.queue {
            errand_core::validate::queue_name("queue", name).map_err(|e| anyhow::anyhow!("{e}"))?;
            // Checked even when this process does not serve the queue.
            if let Some(r) = &q.retry {
                r.policy(&format!("queue.{name}.retry"))
                    .map_err(anyhow::Error::msg)?;
            }
            if let Some(keep) = duration(&format!("queue.{name}.retention"), &q.retention)? {
                maintenance.queue_retention.push(QueueRetention {
                    queue: name.clone(),
                    keep,
                });
            }
        }
        let mut kind_retry = BTreeMap::new();
        for (kind, k) in &raw.kind {
            errand_core::validate::kind_name("kind", kind)
                .map_err(|e| anyhow::anyhow!("kind.{kind}: {}", e.message))?;
            if let Some(r) = &k.retry {
                kind_retry.insert(
                    kind.clone(),
                    r.policy(&format!("kind.{kind}.retry"))
                        .map_err(anyhow::Error::msg)?,
                );
            }
        }
        let mut command = errand::CommandExecutor::default();
        if let Some(allow) = raw.command.env_allow {
            for name in &allow {
                let bare = name.strip_suffix('*').unwrap_or(name);
                if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    bail!(
                        "command.env_allow: {name:?} is not a variable name (letters, digits, _; a trailing * matches a prefix)"
                    );
                }
            }
            command.env_allow = allow;
        }
        if let Some(d) = duration("command.kill_grace", &raw.command.kill_grace)? {
            command.kill_grace = d;
        }
        let mut store = errand::StoreOptions::default();
        store.durability = durability;
        store.postgres_schema = postgres_schema;
        store.sqlite_file_mode = raw.sqlite_file_mode.as_deref().map(file_mode).transpose()?;
        Ok(Config {
            command,
            kind_retry,
            database,
            store,
            log_format,
            queues,
            worker,
            maintenance,
            file,
        })
    }
}

/// An engine setting's error, named by its key in the file (`worker.heartbeat`).
fn setting(section: &str, e: errand_core::validate::ValidationError) -> anyhow::Error {
    anyhow::anyhow!("{section}.{}: {}", e.field, e.message)
}

/// Validates a configuration file on its own (no flags, no environment) as
/// `errand work --config FILE` reads it, for `errand schedule check`: one
/// file, one verdict.
pub(crate) fn validate_file(path: &Path) -> anyhow::Result<()> {
    Config::build(read_file(path)?, &Overrides::default(), Some(path.to_path_buf())).map(|_| ())
}

fn read_file(path: &Path) -> anyhow::Result<RawFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // One line, naming the place: toml's own Display draws a multi-line snippet.
        let place = e.span().map_or_else(String::new, |span| {
            let start = span.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            let column = text[..start].rfind('\n').map_or(start, |nl| start - nl - 1) + 1;
            // The line may hold a database URL: never echo its password.
            let source = errand::redact_text(text.lines().nth(line - 1).unwrap_or("").trim());
            format!(", line {line}, column {column} ({source:?})")
        });
        anyhow::anyhow!("config file {}{place}: {}", path.display(), e.message().trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_text: &str, o: Overrides) -> anyhow::Result<Config> {
        Config::build(toml::from_str(toml_text)?, &o, None)
    }

    #[test]
    fn defaults_need_no_file() {
        let c = build("", Overrides::default()).unwrap();
        assert_eq!(c.database, DEFAULT_DATABASE);
        assert_eq!(c.queues.len(), 1);
        assert_eq!(
            (c.queues[0].name.as_str(), c.queues[0].concurrency),
            ("default", 10)
        );
    }

    #[test]
    fn flags_beat_the_file() {
        let file = "database = \"sqlite://file.db\"\n[worker]\nqueues = { a = 2 }\n";
        let c = build(file, Overrides::default()).unwrap();
        assert_eq!(c.database, "sqlite://file.db");
        assert_eq!(c.queues[0].name, "a");
        let o = Overrides {
            database: Some("sqlite://flag.db".into()),
            queues: Some("b=3,c".into()),
            ..Default::default()
        };
        let c = build(file, o).unwrap();
        assert_eq!(c.database, "sqlite://flag.db");
        let qs: Vec<_> = c
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q.concurrency))
            .collect();
        assert_eq!(qs, vec![("b", 3), ("c", 10)]);
    }

    #[test]
    fn per_queue_sections() {
        let c = build(
            "[queue.mail]\nconcurrency = 4\nfetch_batch = 3\nfetchers = 1\nretention = \"7d\"\n\
             keep_completed = false\n[queue.sms]\nconcurrency = 2\n",
            Overrides::default(),
        )
        .unwrap();
        let mail = c.queues.iter().find(|q| q.name == "mail").unwrap();
        assert_eq!(
            (
                mail.concurrency,
                mail.fetch_batch,
                mail.fetchers,
                mail.keep_completed
            ),
            (4, 3, Some(1), false)
        );
        let sms = c.queues.iter().find(|q| q.name == "sms").unwrap();
        assert!(
            sms.keep_completed,
            "completed jobs are kept unless a queue says otherwise"
        );
        assert_eq!(
            c.maintenance.queue_retention[0].keep,
            Duration::from_secs(7 * 86_400)
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        for (file, field) in [
            ("durability = \"fast\"", "durability"),
            ("log_format = \"xml\"", "log_format"),
            ("[worker]\nlease = \"soon\"", "worker.lease"),
            ("[worker]\nqueues = { \"bad name\" = 1 }", "queues"),
            ("[worker]\nqueues = { a = 0 }", "queues"),
            ("[queue.a]\nconcurrency = 2\nfetchers = 0", "queue.a.fetchers"),
            (
                "[queue.a]\nconcurrency = 2\nfetch_batch = 0",
                "queue.a.fetch_batch",
            ),
            ("database = \"ftp://x\"", "database"),
        ] {
            let err = build(file, Overrides::default()).unwrap_err().to_string();
            assert!(err.starts_with(field), "{file}: {err}");
        }
        assert!(
            toml::from_str::<RawFile>("typo = 1").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn settings_that_break_the_worker_are_refused_by_key() {
        for (file, o, key) in [
            ("[worker]\nheartbeat = \"0s\"", None, "worker.heartbeat"),
            ("[worker]\nlease = \"1ms\"", None, "worker.lease"),
            (
                "[worker]\nlease = \"10s\"\nheartbeat = \"9s\"",
                None,
                "worker.heartbeat",
            ),
            ("[worker]\npoll_interval = \"0s\"", None, "worker.poll_interval"),
            ("[maintenance]\ninterval = \"0s\"", None, "maintenance.interval"),
            (
                "[maintenance]\ninterval = \"10s\"\nleader_ttl = \"15s\"",
                None,
                "maintenance.leader_ttl",
            ),
            ("", Some("default=2305843009213693952"), "queues"),
            (
                "[queue.a]\nconcurrency = 2\nfetchers = 18446744073709551615",
                None,
                "queue.a.fetchers",
            ),
            ("[queue.a]\nconcurrency = 1000000", None, "queue.a.concurrency"),
            (
                "[queue.a]\nconcurrency = 2\nfetch_batch = 1000000",
                None,
                "queue.a.fetch_batch",
            ),
            ("[command]\nenv_allow = [\"A=B\"]", None, "command.env_allow"),
            ("[command]\nkill_grace = \"soon\"", None, "command.kill_grace"),
        ] {
            let o = Overrides {
                queues: o.map(str::to_owned),
                ..Default::default()
            };
            let err = build(file, o).unwrap_err().to_string();
            assert!(err.starts_with(key), "{file}: {err}");
        }
        let c = build(
            "[command]\nenv_allow = [\"AWS_*\", \"APP_TOKEN\"]\nkill_grace = \"2s\"",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.command.env_allow, ["AWS_*", "APP_TOKEN"]);
        assert_eq!(c.command.kill_grace, Duration::from_secs(2));
    }

    #[test]
    fn retry_policies_per_queue_kind_and_default() {
        let c = build(
            "[worker.retry]\nbackoff = \"fixed\"\nbase = \"1m\"\n\
             [queue.mail]\nconcurrency = 2\n[queue.mail.retry]\nbackoff = \"linear\"\nbase = \"5s\"\n\
             [kind.\"email.welcome\".retry]\nbase = \"2s\"\nfactor = 3.0\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.worker.default_retry,
            errand_core::RetryPolicy::fixed(Duration::from_secs(60))
        );
        let mail = c.queues.iter().find(|q| q.name == "mail").unwrap();
        assert!(matches!(
            mail.retry.as_ref().unwrap().backoff,
            errand_core::retry::Backoff::Linear { .. }
        ));
        assert_eq!(
            c.kind_retry["email.welcome"].delay(2, 0.5).as_secs_f64().round(),
            6.0
        );
        let err = build("[queue.a.retry]\nbase = \"x\"", Overrides::default()).unwrap_err();
        assert!(err.to_string().starts_with("queue.a.retry.base"), "{err}");
        let err = build("[kind.k.retry]\nstrategy = \"x\"", Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("strategy"), "{err}");
    }

    #[test]
    fn leader_ttl_is_configurable() {
        let c = build("[maintenance]\nleader_ttl = \"3s\"\n", Overrides::default()).unwrap();
        assert_eq!(c.maintenance.leader_ttl, Duration::from_secs(3));
        let err = build("[maintenance]\nleader_ttl = \"10ms\"\n", Overrides::default()).unwrap_err();
        assert!(err.to_string().starts_with("maintenance.leader_ttl"), "{err}");
    }

    #[test]
    fn schedules_in_the_same_file_are_allowed() {
        build(
            "[[schedule]]\nname = \"x\"\ncron = \"* * * * *\"\n",
            Overrides::default(),
        )
        .unwrap();
    }
}
