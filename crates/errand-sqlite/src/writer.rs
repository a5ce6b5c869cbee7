//! The writer thread: group commit of every write this process makes.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use errand_core::{BackendError, StoreError};

/// What a command does after the group's commit: deliver its result, or the
/// commit's error.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// A command: runs inside the group transaction (in its own savepoint) and
/// says whether it succeeded. It is given the error instead of a connection
/// when no transaction could be started.
type Run = Box<dyn FnOnce(Result<&Connection, &str>) -> (bool, Reply) + Send>;

struct Command {
    run: Run,
    /// Whether the command needs a savepoint of its own: true unless it runs
    /// exactly one statement, which SQLite makes atomic by itself.
    savepoint: bool,
}

pub(crate) struct Writer {
    tx: mpsc::Sender<Command>,
    /// A `PRAGMA max_page_count` to apply before the next transaction (0:
    /// none); it cannot be changed inside one.
    page_limit: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(crate) fn spawn(
        conn: Connection,
        max_group: usize,
        wal_too_big: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel::<Command>();
        let page_limit = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let limit = page_limit.clone();
        thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || run_loop(conn, rx, max_group.max(1), &limit, &wal_too_big))
            .expect("spawn the SQLite writer thread");
        Writer { tx, page_limit }
    }

    /// Sets `PRAGMA max_page_count` on the writer's connection before its
    /// next transaction; returns the limit in force afterwards.
    pub(crate) async fn set_page_limit(&self, pages: u64) -> Result<u64, StoreError> {
        self.page_limit
            .store(pages.max(1), std::sync::atomic::Ordering::SeqCst);
        self.run(|conn| {
            conn.query_row("PRAGMA max_page_count", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(crate::row::err)
        })
        .await
    }

    /// Runs `f` in the next group transaction, in a savepoint of its own;
    /// resolves after the commit.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, true).await
    }

    /// Like [`Writer::run`] for an `f` that writes with exactly one SQL
    /// statement (reads aside): SQLite makes a statement atomic by itself, so
    /// no savepoint is needed.
    pub(crate) async fn run_one_statement<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, false).await
    }

    async fn submit<T, F>(&self, f: F, savepoint: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                // The writer's own transaction failed, not this command:
                // a busy or full database, an I/O error. Later groups may succeed.
                Err(e) => Err(StoreError::Backend(BackendError::transient(format!(
                    "cannot start a write transaction: {e}"
                )))),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_err| {
                let out = match commit_err {
                    Some(e) if ok => Err(StoreError::Backend(BackendError::transient(format!(
                        "commit failed: {e}"
                    )))),
                    _ => result,
                };
                let _ = reply_tx.send(out);
            });
            (ok, reply)
        });
        self.tx
            .send(Command { run, savepoint })
            .map_err(|_| StoreError::Closed)?;
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run_loop(
    conn: Connection,
    rx: mpsc::Receiver<Command>,
    max_group: usize,
    page_limit: &std::sync::atomic::AtomicU64,
    wal_too_big: &std::sync::atomic::AtomicBool,
) {
    let mut group: Vec<Command> = Vec::with_capacity(max_group);
    let mut replies: Vec<Reply> = Vec::with_capacity(max_group);
    let mut last_group = 0usize;
    let mut health = Health::default();
    loop {
        // With concurrent callers (the last group had several commands), the
        // next ones arrive within microseconds of their replies: yield for a
        // moment to gather them instead of sleeping and being woken per command.
        let concurrent = last_group > 1;
        let first = match gather_one(&rx, concurrent) {
            Some(cmd) => cmd,
            None => break,
        };
        group.push(first);
        let until = std::time::Instant::now() + GATHER;
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(cmd) => group.push(cmd),
                Err(mpsc::TryRecvError::Empty)
                    if concurrent && group.len() < last_group && std::time::Instant::now() < until =>
                {
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        last_group = group.len();
        let pages = page_limit.swap(0, std::sync::atomic::Ordering::SeqCst);
        if pages > 0
            && let Err(e) = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "cannot set max_page_count");
        }
        if let Err(e) = begin(&conn) {
            let msg = e.to_string();
            health.failed("SQLite writer cannot begin a transaction", &msg);
            for cmd in group.drain(..) {
                // Never run a command outside a transaction: fail it instead.
                let (_, reply) = (cmd.run)(Err(&msg));
                reply(None);
            }
            continue;
        }
        // SQLite itself rolls the whole transaction back on some errors
        // (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM). From then on nothing may
        // run (it would run outside a transaction, in autocommit mode) and
        // no command of the group may report success.
        let mut rolled_back = false;
        let commit_err = if group.len() == 1 {
            // Alone in its transaction, a command needs no savepoint: a
            // failure rolls the whole transaction back.
            let cmd = group.pop().expect("one command");
            let (ok, reply) = (cmd.run)(Ok(&conn));
            replies.push(reply);
            if conn.is_autocommit() {
                rolled_back = true;
                ok.then(|| ROLLED_BACK.to_owned())
            } else if ok {
                exec(&conn, "COMMIT").err().map(|e| e.to_string())
            } else {
                exec(&conn, "ROLLBACK").err().map(|e| e.to_string())
            }
        } else {
            for cmd in group.drain(..) {
                if rolled_back {
                    let (_, reply) = (cmd.run)(Err(ROLLED_BACK));
                    replies.push(reply);
                    continue;
                }
                let single = cmd.savepoint && exec(&conn, "SAVEPOINT cmd").is_ok();
                let (ok, reply) = (cmd.run)(Ok(&conn));
                replies.push(reply);
                if conn.is_autocommit() {
                    rolled_back = true;
                    continue;
                }
                if single {
                    let end = if ok {
                        exec(&conn, "RELEASE cmd")
                    } else {
                        exec(&conn, "ROLLBACK TO cmd").and_then(|_| exec(&conn, "RELEASE cmd"))
                    };
                    if let Err(e) = end {
                        tracing::error!(error = %e, "SQLite savepoint failed");
                    }
                }
            }
            if rolled_back {
                Some(ROLLED_BACK.to_owned())
            } else {
                exec(&conn, "COMMIT").err().map(|e| e.to_string())
            }
        };
        match &commit_err {
            Some(e) => {
                health.failed("SQLite commit failed", e);
                if !conn.is_autocommit() {
                    let _ = exec(&conn, "ROLLBACK");
                }
            }
            None if rolled_back => health.failed("SQLite rolled a transaction back", ROLLED_BACK),
            None => health.ok(),
        }
        for reply in replies.drain(..) {
            reply(commit_err.as_deref());
        }
        if wal_too_big.load(std::sync::atomic::Ordering::Relaxed) && truncate_wal(&conn) {
            wal_too_big.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How long the writer waits for readers to let go of the WAL when it
/// truncates it (it retries after the watcher's next look).
const TRUNCATE_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Copies the whole WAL back and truncates it. The writer does this between
/// its transactions because a checkpoint on another connection cannot catch
/// up with a writer that commits continuously; readers are waited for only
/// briefly. Returns whether it truncated (else it is tried after the next group).
fn truncate_wal(conn: &Connection) -> bool {
    let restore = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get::<_, i64>(0))
        .map(|ms| ms.max(0) as u64)
        .unwrap_or(10_000);
    let _ = conn.busy_timeout(TRUNCATE_WAIT);
    let done = match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::debug!(error = %e, "truncating WAL checkpoint failed; retried later");
            false
        }
    };
    let _ = conn.busy_timeout(std::time::Duration::from_millis(restore));
    done
}

/// Why the commands of a group failed when SQLite rolled its transaction back.
const ROLLED_BACK: &str = "SQLite rolled the transaction back after an error \
    (database or disk is full, I/O error, out of memory); nothing of it was written";

/// Logs the writer's failures once per run of failures (a full disk would
/// otherwise log every group), and the recovery.
#[derive(Default)]
struct Health {
    failing: Option<std::time::Instant>,
}

impl Health {
    fn failed(&mut self, what: &str, error: &str) {
        if self.failing.is_none() {
            tracing::error!(error = %error, "{what}; writes fail until it is resolved (logged once)");
            self.failing = Some(std::time::Instant::now());
        } else {
            tracing::debug!(error = %error, "{what}");
        }
    }

    fn ok(&mut self) {
        if let Some(since) = self.failing.take() {
            tracing::info!(failing_for = ?since.elapsed(), "SQLite writes succeed again");
        }
    }
}

/// How long the writer waits for more commands when callers are concurrent.
const GATHER: std::time::Duration = std::time::Duration::from_micros(50);

/// The next command: yielding briefly first when callers are concurrent,
/// then blocking. `None` when every sender is gone.
fn gather_one(rx: &mpsc::Receiver<Command>, concurrent: bool) -> Option<Command> {
    if concurrent {
        let until = std::time::Instant::now() + GATHER;
        while std::time::Instant::now() < until {
            match rx.try_recv() {
                Ok(cmd) => return Some(cmd),
                Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::TryRecvError::Disconnected) => return None,
            }
        }
    }
    rx.recv().ok()
}

/// Runs a transaction-control statement through the statement cache (they
/// run several times per group; parsing them each time costs more than the work).
pub(crate) fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// `BEGIN IMMEDIATE`, retried while another process holds the write lock
/// beyond the busy timeout's own retries.
fn begin(conn: &Connection) -> rusqlite::Result<()> {
    let mut tries = 0;
    loop {
        match exec(conn, "BEGIN IMMEDIATE") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 5 =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}
