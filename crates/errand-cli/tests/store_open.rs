//! How `errand` opens its store: commands that only read or add jobs never
//! create one, new SQLite files are private, a damaged or unwritable store is
//! refused at once, many processes can open a fresh file together, and
//! `work` waits for a store that is down.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::{Proc, Scratch};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn sibling(s: &Scratch, suffix: &str) -> std::path::PathBuf {
    let mut p = s.db_file().into_os_string();
    p.push(suffix);
    p.into()
}

/// The commands that must not create a store.
const READ_ONLY_COMMANDS: &[&[&str]] = &[
    &["enqueue", "k"],
    &["jobs", "list"],
    &["jobs", "show", "1"],
    &["jobs", "retry", "1"],
    &["jobs", "cancel", "1"],
    &["queues", "list"],
    &["queues", "pause", "q"],
    &["queues", "resume", "q"],
    &["schedule", "list"],
];

#[test]
fn commands_other_than_work_serve_and_migrate_refuse_a_missing_sqlite_file() {
    for args in READ_ONLY_COMMANDS {
        let s = Scratch::empty();
        let (code, stdout, stderr) = s.fail(args);
        assert_eq!(code, 1, "errand {args:?}: exit code; stderr: {stderr}");
        assert_eq!(stdout, "", "errand {args:?}");
        assert!(
            stderr.contains(&s.db_file().display().to_string())
                && stderr.contains("does not exist")
                && stderr.contains("errand migrate"),
            "errand {args:?}: the message names the file and the fix: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(s.dir.path()).unwrap().collect();
        assert!(left.is_empty(), "errand {args:?} created files: {left:?}");
    }
}

#[test]
fn commands_refuse_a_file_without_the_schema_and_work_after_migrate() {
    for args in READ_ONLY_COMMANDS {
        let s = Scratch::empty();
        std::fs::write(s.db_file(), b"").unwrap();
        let (code, _, stderr) = s.fail(args);
        assert_eq!(code, 1, "errand {args:?}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains("no errand schema") && stderr.contains("errand migrate"),
            "errand {args:?}: {stderr}"
        );
    }
    let s = Scratch::empty();
    s.ok(&["migrate"]);
    s.ok(&["enqueue", "k"]);
    assert_eq!(s.all_jobs().len(), 1);
}

#[test]
fn new_sqlite_files_are_readable_by_their_owner_only() {
    let s = Scratch::empty();
    s.ok(&["migrate"]);
    // A worker holds the file open, so the -wal and -shm files exist while
    // it runs; enqueue writes to the WAL.
    let mut work = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    assert!(
        common::eventually(Duration::from_secs(30), || work
            .log_text()
            .contains("errand started")),
        "{}",
        work.log_text()
    );
    s.ok(&["enqueue", "k"]);
    for suffix in ["", "-wal", "-shm"] {
        let path = sibling(&s, suffix);
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    work.stop(Duration::from_secs(30));

    // A configured mode is honoured.
    let s = Scratch::empty();
    std::fs::write(s.path("errand.toml"), "sqlite_file_mode = \"0640\"\n").unwrap();
    s.ok(&["migrate"]);
    let mut work = Proc::spawn(s.cmd(&["work"]), &s.path("work.log"));
    assert!(common::eventually(Duration::from_secs(30), || work
        .log_text()
        .contains("errand started")));
    s.ok(&["enqueue", "k"]);
    for suffix in ["", "-wal", "-shm"] {
        let path = sibling(&s, suffix);
        assert_eq!(mode(&path), 0o640, "{}", path.display());
    }
    work.stop(Duration::from_secs(30));

    // A mode that locks errand out of its own file is refused.
    let s = Scratch::empty();
    std::fs::write(s.path("errand.toml"), "sqlite_file_mode = \"0400\"\n").unwrap();
    let (code, _, stderr) = s.fail(&["migrate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sqlite_file_mode"), "{stderr}");
}

#[test]
fn many_processes_can_open_a_fresh_file_at_once() {
    for round in 0..4 {
        let s = Scratch::empty();
        let children: Vec<_> = (0..16)
            .map(|_| {
                s.cmd(&["migrate"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start errand migrate")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait for errand migrate");
            assert!(
                out.status.success(),
                "round {round}: errand migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        s.ok(&["enqueue", "k"]);
    }
}

/// A database with several pages of jobs, checkpointed into the main file.
fn store_with_pages(s: &Scratch) {
    s.ok(&["migrate"]);
    let args = format!("{{\"pad\": \"{}\"}}", "x".repeat(2000));
    for _ in 0..60 {
        s.ok(&["enqueue", "k", "--args", &args]);
    }
    // Every commit into the main file, so that damaging it damages jobs.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = errand::SqliteStore::open(errand::SqliteConfig::new(s.db_file()))
                .await
                .unwrap();
            store.checkpoint().await.unwrap();
        });
    assert!(std::fs::metadata(s.db_file()).unwrap().len() > 30 * 4096);
}

#[test]
fn a_damaged_database_is_refused_with_a_clear_error() {
    let s = Scratch::empty();
    store_with_pages(&s);
    // Overwrite pages in the middle of the file.
    let mut bytes = std::fs::read(s.db_file()).unwrap();
    let middle = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[middle..middle + 3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(s.db_file(), &bytes).unwrap();
    let _ = std::fs::remove_file(sibling(&s, "-wal"));
    let _ = std::fs::remove_file(sibling(&s, "-shm"));

    for args in [
        &["jobs", "list"][..],
        &["enqueue", "k"],
        &["queues", "list"],
        &["migrate"],
        &["work"],
        &["serve"],
    ] {
        let started = Instant::now();
        let (code, _, stderr) = s.fail(args);
        assert_eq!(code, 1, "errand {args:?}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains("damaged") && stderr.contains(&s.db_file().display().to_string()),
            "errand {args:?}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "errand {args:?} did not fail fast"
        );
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let s = Scratch::empty();
    std::fs::write(s.db_file(), "these are my notes, not a database\n".repeat(200)).unwrap();
    for args in [&["jobs", "list"][..], &["work"], &["migrate"]] {
        let (code, _, stderr) = s.fail(args);
        assert_eq!(code, 1, "errand {args:?}: {stderr}");
        assert!(
            stderr.contains("not a database") || stderr.contains("damaged"),
            "errand {args:?}: {stderr}"
        );
    }
    assert!(
        std::fs::read_to_string(s.db_file())
            .unwrap()
            .starts_with("these are my notes"),
        "the file is left as it was"
    );
}

/// `errand ARGS` as an unprivileged user: as root (where permission bits do
/// not stop writes) through `setpriv` as `nobody`; `None` when that is not possible.
fn as_unprivileged(s: &Scratch, args: &[&str]) -> Option<std::process::Command> {
    let uid = std::process::Command::new("id").arg("-u").output().ok()?;
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    if !root {
        return Some(s.cmd(args));
    }
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .ok()?;
    if !setpriv.status.success() {
        return None;
    }
    let errand = assert_cmd::cargo::cargo_bin("errand");
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(errand)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(s.dir.path())
        .arg("--database")
        .arg(s.url())
        .args(args);
    Some(cmd)
}

#[test]
fn a_database_the_user_cannot_write_is_refused() {
    let s = Scratch::empty();
    store_with_pages(&s);
    // The directory stays readable for everyone (tempfile makes it 0700);
    // the file is read-only.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(s.db_file(), std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(s.db_file()).unwrap();
    for args in [&["work"][..], &["enqueue", "k"]] {
        let Some(mut cmd) = as_unprivileged(&s, args) else {
            eprintln!("SKIPPED: running as root without setpriv: permission bits cannot be tested");
            return;
        };
        let started = Instant::now();
        let (code, _, stderr) = common::split(cmd.output().expect("run errand"));
        assert_eq!(code, 1, "errand {args:?}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains("read-only")
                || stderr.contains("cannot be written")
                || stderr.contains("permission"),
            "errand {args:?}: the message says it cannot write: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "errand {args:?} did not fail fast"
        );
    }
    assert_eq!(std::fs::read(s.db_file()).unwrap(), before, "nothing was written");

    // A writable file in a directory the user cannot write (no -wal file
    // can be made there) is refused too.
    let s = Scratch::empty();
    store_with_pages(&s);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(&s, suffix));
    }
    std::fs::set_permissions(s.db_file(), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let Some(mut cmd) = as_unprivileged(&s, &["work"]) else {
        return;
    };
    let (code, _, stderr) = common::split(cmd.output().expect("run errand"));
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 1, "exit code; stderr: {stderr}");
    assert!(stderr.contains("unusable"), "{stderr}");
}

#[test]
fn work_waits_for_a_store_that_is_down_and_stops_on_sigterm() {
    let s = Scratch::empty();
    let down = "postgres://nobody@127.0.0.1:1/errand";
    let mut cmd = s.bare();
    cmd.args(["--database", down, "work"]);
    cmd.env("ERRAND_LOG", "info,errand=debug");
    let mut work = Proc::spawn(cmd, &s.path("work.log"));
    // It retries (each retry is a debug line) and stays up meanwhile.
    assert!(
        common::eventually(Duration::from_secs(30), || work
            .log_text()
            .matches("still unreachable")
            .count()
            >= 3),
        "{}",
        work.log_text()
    );
    assert!(
        work.child.try_wait().unwrap().is_none(),
        "work exited while the store was down: {}",
        work.log_text()
    );
    // The wait is logged once as a warning, not per retry.
    assert_eq!(
        work.log_text().matches("waiting for the store").count(),
        1,
        "{}",
        work.log_text()
    );
    work.stop(Duration::from_secs(10));

    for flag in [&["--no-wait-for-store"][..], &["--store-wait", "0s"]] {
        let mut args = vec!["--database", down, "work"];
        args.extend_from_slice(flag);
        let started = Instant::now();
        let (code, _, stderr) = common::split(s.bare().args(&args).output().unwrap());
        assert_eq!(code, 1, "errand {args:?}: {stderr}");
        assert!(stderr.contains("cannot connect to the store"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    // A bounded wait gives up after it.
    let started = Instant::now();
    let (code, _, stderr) = common::split(
        s.bare()
            .args(["--database", down, "work", "--store-wait", "1s"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("waiting for the store"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The PostgreSQL test server (`ERRAND_TEST_POSTGRES_URL`); `None` after
/// printing SKIPPED when unset outside CI.
fn postgres_url() -> Option<String> {
    const VAR: &str = "ERRAND_TEST_POSTGRES_URL";
    match std::env::var(VAR) {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ if std::env::var_os("CI").is_some() => panic!("{VAR} is not set, and CI is"),
        _ => {
            eprintln!("SKIPPED: {VAR} is not set, so the PostgreSQL case does not run");
            None
        }
    }
}

/// Runs one SQL statement on the test server and returns the first column
/// of its first row as a number, if any.
fn pg_scalar(url: &str, sql: &str, bind: &str) -> Option<i64> {
    use errand_postgres::sqlx::{self, Connection as _};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to the test server");
        let out: Option<i64> = sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_optional(&mut conn)
            .await
            .expect(sql);
        out
    })
}

#[test]
fn commands_refuse_a_postgres_database_without_the_schema() {
    let Some(url) = postgres_url() else {
        return;
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Named like the stores' test schemas, which their sweeper drops.
    let schema = format!("t_{secs}_{}_913", std::process::id());
    let s = Scratch::empty();
    let run = |args: &[&str]| {
        common::split(
            s.bare()
                .args(["--database", &url, "--postgres-schema", &schema])
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let schemas = "SELECT count(*)::int8 FROM pg_namespace WHERE nspname = $1";
    for args in READ_ONLY_COMMANDS {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 1, "errand {args:?}: {stderr}");
        assert!(
            stderr.contains(&schema) && stderr.contains("errand migrate"),
            "errand {args:?}: {stderr}"
        );
    }
    assert_eq!(
        pg_scalar(&url, schemas, &schema),
        Some(0),
        "no schema was created"
    );
    let (code, _, stderr) = run(&["migrate"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["enqueue", "k"]);
    assert_eq!(code, 0, "{stderr}");
    use errand_postgres::sqlx::{self, Connection as _};
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
        });
}

/// Forwards every connection made to `listener` to `target` until the test ends.
fn forward(listener: std::net::TcpListener, target: String) {
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}

#[test]
fn work_started_during_a_postgres_outage_starts_when_the_server_comes_back() {
    let Some(url) = postgres_url() else {
        return;
    };
    // The server's address, and a port where nothing listens yet.
    let rest = url.split_once('@').map_or(url.as_str(), |(_, r)| r);
    let (hostport, db) = rest.split_once('/').expect("a database in the URL");
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = url
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .map_or("postgres", |(u, _)| u);
    let proxied = format!("postgres://{user}@127.0.0.1:{port}/{db}");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let schema = format!("t_{secs}_{}_914", std::process::id());

    let s = Scratch::empty();
    let mut cmd = s.bare();
    cmd.args(["--database", &proxied, "--postgres-schema", &schema, "work"]);
    let mut work = Proc::spawn(cmd, &s.path("work.log"));
    assert!(
        common::eventually(Duration::from_secs(30), || work
            .log_text()
            .contains("waiting for the store")),
        "{}",
        work.log_text()
    );
    assert!(work.child.try_wait().unwrap().is_none(), "{}", work.log_text());
    // The server comes back.
    forward(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        hostport,
    );
    assert!(
        common::eventually(Duration::from_secs(30), || work
            .log_text()
            .contains("errand started")),
        "{}",
        work.log_text()
    );
    assert!(
        work.log_text().contains("the store answers"),
        "{}",
        work.log_text()
    );
    work.stop(Duration::from_secs(30));

    use errand_postgres::sqlx::{self, Connection as _};
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
        });
}
