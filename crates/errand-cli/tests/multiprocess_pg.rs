//! Scale-out on PostgreSQL, end to end: several `errand work` processes and
//! several producers share one database (a fresh schema); the process that
//! leads maintenance is SIGKILLed mid-run. Every job completes exactly once
//! in the store, none is lost, and the leader role moves to a survivor.
//!
//! The server URL comes from `ERRAND_TEST_POSTGRES_URL`. Without it the
//! test says SKIPPED and passes, unless `CI` is set: then it fails.
//!
//! Timing: the maintenance leader's lease is the default 15 s and a
//! follower asks every second (the maintenance interval), so the role moves
//! about 15-16 s after its holder dies; the orphaned jobs are rescued then.
//! Deadlines are generous.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use errand::core::{Job, JobFilter, JobState, RetryPolicy, Store};
use errand::{Errand, NewJob, StoreOptions};
use errand_postgres::sqlx::{self, Connection as _, PgConnection};
use jiff::Timestamp;
use serde_json::json;

use common::{Proc, Scratch};

const URL_VAR: &str = "ERRAND_TEST_POSTGRES_URL";

const CONFIG: &str = r#"
[worker]
lease = "2s"
heartbeat = "500ms"
poll_interval = "200ms"
shutdown_grace = "10s"
queues = { default = 6 }

[maintenance]
interval = "200ms"
"#;

/// The server URL; `None` after printing SKIPPED when unset outside CI.
fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{URL_VAR} is not set, and CI is: the multi-process PostgreSQL test must run in CI \
             (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {URL_VAR} is not set, so the multi-process PostgreSQL test does not run; \
                 set it to run it (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A fresh schema, named like the store's own test schemas
/// (`t_<unix seconds>_<pid>_<n>`) so their sweeper drops it if this test
/// dies before it can; dropped on drop.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn fresh(url: &str) -> Schema {
        Schema::numbered(url, 900)
    }

    /// A schema of this run for the test numbered `n`, dropped when done.
    fn numbered(url: &str, n: u32) -> Schema {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Schema {
            url: url.to_owned(),
            name: format!("t_{secs}_{}_{n}", std::process::id()),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Its own thread and runtime: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The maintenance leader's pid (owners are `maint:<pid>:<hex>`), if the lease is live.
async fn leader_pid(conn: &mut PgConnection, schema: &str) -> Option<u32> {
    let row: Option<(String, i64)> = sqlx::query_as(&format!(
        "SELECT owner, expires_at FROM \"{schema}\".leaders WHERE role = 'maintenance'"
    ))
    .fetch_optional(conn)
    .await
    .expect("read the leaders table");
    let (owner, expires_at) = row?;
    if expires_at <= Timestamp::now().as_microsecond() {
        return None;
    }
    owner.split(':').nth(1)?.parse().ok()
}

async fn all_jobs(store: &dyn Store) -> Vec<Job> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_jobs(&JobFilter {
                before_id: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list jobs");
        out.extend(page.jobs);
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => return out,
        }
    }
}

/// (jobs now completed, the completion counter) over every queue.
async fn completed(store: &dyn Store) -> (u64, u64) {
    let qs = store
        .queue_stats(&errand::core::Scope::All, Timestamp::now())
        .await
        .expect("list queues");
    qs.iter().fold((0, 0), |(n, t), q| {
        (
            n + q.counts.get(&JobState::Completed).copied().unwrap_or(0),
            t + q.completed_total.unwrap_or(0),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_producers_share_postgres_and_survive_a_dead_leader() {
    const WORKERS: usize = 3;
    const PRODUCERS: usize = 2;
    const PER_PRODUCER: usize = 1500;
    const CLI_JOBS: usize = 10;
    const TOTAL: usize = PRODUCERS * PER_PRODUCER + CLI_JOBS;
    let Some(url) = server_url() else { return };
    let schema = Schema::fresh(&url);
    let s = Scratch::new();
    std::fs::write(s.path("errand.toml"), CONFIG).unwrap();
    let effects = s.path("effects.txt");
    // Each job appends its id to one file: the side effect we count.
    let line = format!("echo $ERRAND_JOB_ID >> '{}'", effects.display());
    let command = json!({"argv": ["sh", "-c", line]}).to_string();
    let pg = |args: &[&str]| {
        let mut cmd = s.bare();
        cmd.args(["--database", &url, "--postgres-schema", &schema.name])
            .args(args);
        cmd
    };

    // The schema, by the CLI.
    common::expect_ok(&["migrate"], pg(&["migrate"]).output().unwrap());

    // Workers; they find the database and schema in the environment.
    let mut workers: Vec<Option<Proc>> = (0..WORKERS)
        .map(|i| {
            let mut cmd = s.bare();
            cmd.env("ERRAND_DATABASE_URL", &url)
                .env("ERRAND_POSTGRES_SCHEMA", &schema.name)
                .arg("work");
            Some(Proc::spawn(cmd, &s.path(&format!("work-{i}.log"))))
        })
        .collect();
    let logs = |workers: &Vec<Option<Proc>>| {
        workers
            .iter()
            .flatten()
            .map(|p| format!("--- pid {}\n{}", p.pid(), p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // A few jobs from `errand enqueue` processes.
    for _ in 0..CLI_JOBS {
        common::expect_ok(
            &["enqueue"],
            pg(&["enqueue", "command", "--args", &command]).output().unwrap(),
        );
    }

    // Producers, each with its own connection pool, enqueueing in batches
    // while the workers work. A rescued job retries after 200 ms.
    let mut options = StoreOptions::default();
    options.postgres_schema = Some(schema.name.clone());
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let store = errand::open_store_with(&url, &options)
            .await
            .expect("open a producer's store");
        let args = command.clone();
        producers.push(tokio::spawn(async move {
            let client = Errand::new(store).client();
            for _ in 0..PER_PRODUCER / 100 {
                let batch = (0..100)
                    .map(|_| {
                        NewJob::new("command", args.clone())
                            .retry(RetryPolicy::fixed(Duration::from_millis(200)))
                    })
                    .collect();
                client.enqueue_many(batch).await.expect("enqueue a batch");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let store: Arc<dyn Store> = errand::open_store_with(&url, &options)
        .await
        .expect("open the store");
    let mut conn = PgConnection::connect(&url).await.expect("connect");

    // Mid-run, SIGKILL the worker that leads maintenance.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let (done, _) = completed(&*store).await;
        if let Some(pid) = leader_pid(&mut conn, &schema.name).await
            && done >= (TOTAL / 5) as u64
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "no leader, or no progress ({done} done):\n{}",
            logs(&workers)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let victim = workers
        .iter()
        .position(|w| w.as_ref().is_some_and(|p| p.pid() == leader))
        .unwrap_or_else(|| panic!("the leader, pid {leader}, is none of the workers"));
    let (done_at_kill, _) = completed(&*store).await;
    workers[victim].as_mut().unwrap().kill9();
    let killed_at = Instant::now();
    let victim_log = workers[victim].take().unwrap().log_text();
    eprintln!("killed the leader (pid {leader}) with {done_at_kill} of {TOTAL} jobs completed");
    assert!(
        (done_at_kill as usize) < TOTAL,
        "the work finished before the kill"
    );

    for p in producers {
        p.await.expect("a producer");
    }

    // The role moves to a survivor.
    let survivors: Vec<u32> = workers.iter().flatten().map(Proc::pid).collect();
    let deadline = Instant::now() + Duration::from_secs(45);
    let new_leader = loop {
        if let Some(pid) = leader_pid(&mut conn, &schema.name).await
            && pid != leader
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the leader role did not move:\n{}",
            logs(&workers)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        survivors.contains(&new_leader),
        "{new_leader} is not a survivor {survivors:?}"
    );
    let moved_after = killed_at.elapsed();
    eprintln!("the leader role moved to pid {new_leader} {moved_after:?} after the kill");
    // The lease (15 s) was renewed at most a pass (1 s) before the kill, and
    // followers ask every second: 17 s, and some slack for a busy machine.
    assert!(
        moved_after < Duration::from_secs(20),
        "the leader role took {moved_after:?} to move"
    );
    let heir = workers
        .iter()
        .flatten()
        .find(|w| w.pid() == new_leader)
        .expect("the new leader is a survivor");
    assert!(
        log_says(heir, "this process is now the maintenance leader").await,
        "the new leader logs that it leads:\n{}",
        heir.log_text()
    );

    // Every job completes.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (done, _) = completed(&*store).await;
        if done as usize == TOTAL {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {TOTAL} jobs completed:\n{}",
            logs(&workers)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for p in workers.iter_mut().flatten() {
        p.stop(Duration::from_secs(20));
    }

    // Exactly once in the store.
    let jobs = all_jobs(&*store).await;
    assert_eq!(jobs.len(), TOTAL, "no job lost or added");
    let rescued = common::check_all_completed(&jobs);
    assert_eq!(
        completed(&*store).await,
        (TOTAL as u64, TOTAL as u64),
        "the completion counter counts each job once"
    );
    assert!(rescued > 0, "the killed leader held no job:\n{victim_log}");

    // Side effects: at least once per job, at most once per attempt.
    let repeated = common::check_effects(&effects, &jobs);
    eprintln!(
        "{TOTAL} jobs by {WORKERS} workers and {} producers: {rescued} attempts rescued, {} side effects \
         repeated, 0 jobs completed twice in the store",
        PRODUCERS + 1,
        repeated
    );
}

/// Whether `p`'s log holds `text`; logs are written line by line, so the
/// line may trail the database by a moment.
async fn log_says(p: &Proc, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if p.log_text().contains(text) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `jobs show --json` and `jobs list --json` give `args`, `meta` and
/// `result` as JSON values (not strings holding JSON), with the same keys in
/// the same order on PostgreSQL (whose `jsonb` reorders object keys) as on
/// SQLite (which keeps them as written).
#[test]
fn json_jobs_read_the_same_on_both_stores() {
    let Some(url) = server_url() else { return };
    let schema = Schema::numbered(&url, 901);
    let s = Scratch::new();
    let sqlite = s.url();
    let args = r#"{"zeta":1,"alpha":{"y":2,"b":[{"k":1,"a":"x"}]},"mid":null}"#;
    let run = |db: &str, cmd: &[&str]| {
        let mut c = s.bare();
        c.args(["--json", "--database", db, "--postgres-schema", &schema.name]);
        c.args(cmd);
        common::expect_ok(cmd, c.output().expect("run errand"))
    };
    // Timestamps differ between the two runs; everything else must not.
    let masked = |text: String| {
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("\"20") {
            out.push_str(&rest[..i]);
            let end = rest[i + 1..].find('"').map_or(rest.len(), |j| i + j + 2);
            out.push_str("\"T\"");
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    };
    for db in [sqlite.as_str(), url.as_str()] {
        run(db, &["migrate"]);
        run(db, &["enqueue", "k", "--args", args]);
    }
    let shown: Vec<String> = [sqlite.as_str(), url.as_str()]
        .iter()
        .map(|db| masked(run(db, &["jobs", "show", "1"])))
        .collect();
    assert_eq!(
        shown[0], shown[1],
        "jobs show --json differs between SQLite and PostgreSQL"
    );
    assert!(
        shown[0].contains(r#""args":{"alpha":{"b":[{"a":"x","k":1}],"y":2},"mid":null,"zeta":1}"#),
        "args is a JSON value with sorted keys: {}",
        shown[0]
    );
    assert!(shown[0].contains(r#""meta":{}"#), "{}", shown[0]);
    let listed: Vec<String> = [sqlite.as_str(), url.as_str()]
        .iter()
        .map(|db| masked(run(db, &["jobs", "list"])))
        .collect();
    assert_eq!(
        listed[0], listed[1],
        "jobs list --json differs between SQLite and PostgreSQL"
    );
}

/// The `errand` command line on one PostgreSQL schema of this run.
struct PgCli {
    s: Scratch,
    url: String,
    schema: Schema,
}

impl PgCli {
    /// A scratch directory with `config` as its errand.toml, and a migrated
    /// schema numbered `n`.
    fn new(url: &str, n: u32, config: &str) -> PgCli {
        let s = Scratch::new();
        std::fs::write(s.path("errand.toml"), config).unwrap();
        let cli = PgCli {
            s,
            url: url.to_owned(),
            schema: Schema::numbered(url, n),
        };
        cli.ok(&["migrate"]);
        cli
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.s.bare();
        cmd.args(["--database", &self.url, "--postgres-schema", &self.schema.name])
            .args(args);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        common::expect_ok(args, self.cmd(args).output().unwrap())
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Enqueues a `command` job running `argv`; returns its id.
    fn enqueue_command(&self, argv: &[&str]) -> String {
        let args = json!({ "argv": argv }).to_string();
        self.json(&["enqueue", "command", "--args", &args])["id"].to_string()
    }

    fn state(&self, id: &str) -> String {
        self.json(&["jobs", "show", id])["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn work(&self) -> Proc {
        Proc::spawn(self.cmd(&["work"]), &self.s.path("work.log"))
    }
}

/// On PostgreSQL a cancel from another process reaches the running job
/// through NOTIFY, well before the heartbeat (10 s here).
#[test]
fn a_cancel_from_another_process_stops_a_running_job_at_once() {
    let Some(url) = server_url() else { return };
    let pg = PgCli::new(
        &url,
        902,
        "[worker]\nlease = \"30s\"\nheartbeat = \"10s\"\nqueues = { default = 2 }\n",
    );
    let id = pg.enqueue_command(&["sleep", "30"]);
    let mut w = pg.work();
    assert!(
        common::eventually(Duration::from_secs(20), || pg.state(&id) == "running"),
        "{}",
        w.log_text()
    );
    pg.ok(&["jobs", "cancel", &id]);
    let asked = Instant::now();
    assert!(
        common::eventually(Duration::from_secs(8), || pg.state(&id) == "cancelled"),
        "{}",
        w.log_text()
    );
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(1500), "the cancel took {took:?}");
    w.stop(Duration::from_secs(20));
}

/// A job enqueued by a short-lived `errand enqueue` wakes a PostgreSQL
/// worker at once: the NOTIFY, sent after the commit, goes out before the
/// process exits (the worker here would otherwise look only every 30 s).
#[test]
fn an_enqueue_from_the_command_line_wakes_a_postgres_worker_at_once() {
    let Some(url) = server_url() else { return };
    let pg = PgCli::new(
        &url,
        903,
        "[worker]\npoll_interval = \"30s\"\nqueues = { default = 2 }\n",
    );
    let mut w = pg.work();
    // Once it leads maintenance, its first claims have found nothing and
    // it waits on the channel.
    assert!(
        common::eventually(Duration::from_secs(20), || w
            .log_text()
            .contains("maintenance leader")),
        "{}",
        w.log_text()
    );
    let id = pg.enqueue_command(&["true"]);
    assert!(
        common::eventually(Duration::from_secs(10), || pg.state(&id) == "completed"),
        "the job waited for the poll: {}",
        w.log_text()
    );
    w.stop(Duration::from_secs(20));
}
