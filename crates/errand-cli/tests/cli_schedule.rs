//! `errand schedule …` end to end: exact output formats, exit codes, and
//! crontab management against a scratch crontab (a fake `crontab` program).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn errand() -> Command {
    let mut cmd = Command::cargo_bin("errand").expect("the errand binary");
    cmd.env("TZ", "UTC").env_remove("ERRAND_CRONTAB_PROGRAM");
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let out = errand().args(args).output().expect("run errand");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn failure(args: &[&str]) -> (i32, String) {
    let out = errand().args(args).output().expect("run errand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn next_prints_rfc3339_in_the_zone_across_spring_forward() {
    let got = stdout_of(&[
        "schedule",
        "next",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00:00-05:00",
        "--count",
        "3",
    ]);
    assert_eq!(
        got,
        "2026-03-08T03:00:00-04:00\n2026-03-09T02:30:00-04:00\n2026-03-10T02:30:00-04:00\n"
    );
}

#[test]
fn next_is_strictly_after_from_and_defaults_to_one() {
    let got = stdout_of(&["schedule", "next", "0 0 * * *", "--from", "2026-01-01T00:00:00Z"]);
    assert_eq!(got, "2026-01-02T00:00:00+00:00\n");
}

#[test]
fn next_with_every_and_at() {
    let got = stdout_of(&[
        "schedule",
        "next",
        "--every",
        "5 minutes",
        "--at",
        "2",
        "--from",
        "2026-01-01T00:00:00Z",
        "--count",
        "3",
    ]);
    assert_eq!(
        got,
        "2026-01-01T00:02:00+00:00\n2026-01-01T00:07:00+00:00\n2026-01-01T00:12:00+00:00\n"
    );
    let got = stdout_of(&[
        "schedule",
        "next",
        "--every",
        "day",
        "--at",
        "1:30am",
        "--tz",
        "Europe/London",
        "--from",
        "2026-10-24T12:00:00Z",
        "--count",
        "2",
    ]);
    assert_eq!(got, "2026-10-25T01:30:00+01:00\n2026-10-26T01:30:00+00:00\n");
}

#[test]
fn next_rejects_invalid_input_with_exit_2() {
    let (code, err) = failure(&["schedule", "next", "61 * * * *"]);
    assert_eq!(code, 2);
    assert!(err.contains("minute: 61 is out of range 0-59"), "{err}");
    let (code, err) = failure(&["schedule", "next", "* * * * *", "--tz", "Mars/Olympus"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown time zone \"Mars/Olympus\""), "{err}");
    let (code, err) = failure(&["schedule", "next", "* * * * *", "--from", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--from"), "{err}");
    let (code, err) = failure(&["schedule", "next", "--every", "day", "--at", "teatime"]);
    assert_eq!(code, 2);
    assert!(err.contains("at: cannot read \"teatime\""), "{err}");
    assert_eq!(failure(&["schedule", "next"]).0, 2);
}

#[test]
fn translate_prints_one_cron_line_per_line() {
    assert_eq!(
        stdout_of(&[
            "schedule",
            "translate",
            "--every",
            "monday, friday",
            "--at",
            "9am, 5:30pm"
        ]),
        "0 9 * * 1\n30 17 * * 1\n0 9 * * 5\n30 17 * * 5\n"
    );
    assert_eq!(
        stdout_of(&["schedule", "translate", "--every", "3 hours", "--at", "15"]),
        "15 0,3,6,9,12,15,18,21 * * *\n"
    );
    assert_eq!(
        stdout_of(&["schedule", "translate", "--every", "week"]),
        "0 0 * * 0\n"
    );
    assert_eq!(
        stdout_of(&["schedule", "translate", "--every", "reboot"]),
        "@reboot\n"
    );
    assert_eq!(
        stdout_of(&["schedule", "translate", "--every", "@daily"]),
        "0 0 * * *\n"
    );
    let (code, err) = failure(&["schedule", "translate", "--every", "2 weeks"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("every 2 weeks cannot be written as cron lines"),
        "{err}"
    );
}

const FILE: &str = r#"[worker]
lease = "30s"

[[schedule]]
name = "nightly"
cron = "30 2 * * *"
timezone = "America/New_York"
kind = "report.build"

[[schedule]]
name = "rotate"
every = "day"
at = "4:15am"
command = ["logrotate", "/etc/logrotate.conf"]

[[schedule]]
name = "boot"
every = "reboot"
command = ["echo", "it's 100% up"]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

#[test]
fn check_lists_each_schedule_with_three_fire_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "errand.toml", FILE);
    let out = errand()
        .current_dir(dir.path())
        .args(["schedule", "check"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "nightly: cron \"30 2 * * *\" in America/New_York");
    for l in &lines[1..4] {
        assert!(l.starts_with("  20") && l.contains(":30:00-0"), "{l}");
    }
    assert_eq!(lines[4], "rotate: every \"day\" at \"4:15am\" in UTC");
    assert!(
        lines[5..8].iter().all(|l| l.ends_with("T04:15:00+00:00")),
        "{text}"
    );
    assert_eq!(
        lines[8..],
        [
            "boot: every \"reboot\" in UTC",
            "  @reboot (when the scheduler starts)"
        ]
    );
}

#[test]
fn check_reports_every_problem_with_file_line_name_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bad.toml",
        "[[schedule]]\nname = \"a\"\ncron = \"* * * *\"\nkind = \"k\"\n\n[[schedule]]\nname = \"b\"\nevery = \"day\"\nkind = \"k\"\nwhen = 1\n",
    );
    let out = errand()
        .args(["schedule", "check"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert!(
        err.contains(&format!(
            "{p}:3: schedule \"a\": cron: expression: expected 5 fields"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:10: schedule \"b\": when: unknown key")),
        "{err}"
    );
    assert!(err.contains("has 2 problem(s)"), "{err}");
    let (code, err) = failure(&["schedule", "check", "/nonexistent/errand.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /nonexistent/errand.toml"), "{err}");
}

/// A stand-in for `crontab` that keeps the crontab in `$FAKE_CRONTAB` and
/// records the `-u` user in `$FAKE_CRONTAB.user`.
fn fake_crontab(dir: &Path) -> PathBuf {
    let script = write(
        dir,
        "fake-crontab",
        r#"#!/bin/sh
f="$FAKE_CRONTAB"
while [ $# -gt 0 ]; do
  case "$1" in
    -u) printf '%s' "$2" > "$f.user"; shift 2 ;;
    -l) if [ -f "$f" ]; then cat "$f"; exit 0; else echo "no crontab for tester" >&2; exit 1; fi ;;
    -) cat > "$f"; exit 0 ;;
    *) echo "unexpected argument $1" >&2; exit 9 ;;
  esac
done
exit 8
"#,
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

struct Scratch {
    dir: tempfile::TempDir,
    program: PathBuf,
    crontab: PathBuf,
    schedule: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = fake_crontab(dir.path());
        let crontab = dir.path().join("crontab.txt");
        let schedule = write(dir.path(), "errand.toml", FILE);
        Scratch {
            dir,
            program,
            crontab,
            schedule,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        errand()
            .current_dir(self.dir.path())
            .env("ERRAND_CRONTAB_PROGRAM", &self.program)
            .env("FAKE_CRONTAB", &self.crontab)
            .arg("schedule")
            .arg("crontab")
            .args(args)
            .output()
            .expect("run errand")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    fn crontab(&self) -> String {
        std::fs::read_to_string(&self.crontab).expect("read scratch crontab")
    }
}

const BLOCK: &str = "# Begin errand generated tasks for: app\n15 4 * * * logrotate /etc/logrotate.conf\n@reboot echo 'it'\\''s 100\\% up'\n# End errand generated tasks for: app\n";

#[test]
fn crontab_prints_command_schedules_without_touching_the_crontab() {
    let s = Scratch::new();
    assert_eq!(
        s.ok(&[]),
        "15 4 * * * logrotate /etc/logrotate.conf\n@reboot echo 'it'\\''s 100\\% up'\n"
    );
    assert!(!s.crontab.exists());
    assert_eq!(s.ok(&["--utc"]).lines().next(), Some("CRON_TZ=UTC"));
}

#[test]
fn crontab_update_twice_then_clear_keeps_foreign_lines_byte_for_byte() {
    let s = Scratch::new();
    let foreign = "SHELL=/bin/sh\n# keep me   \n*/5 * * * *  /usr/bin/foo --bar   # spaces kept\t\n\n\n0 3 * * * date +\\%F\n";
    std::fs::write(&s.crontab, foreign).expect("seed crontab");
    s.ok(&["--identifier", "app", "--update"]);
    let once = s.crontab();
    assert_eq!(once, format!("{foreign}{BLOCK}"));
    s.ok(&["--identifier", "app", "--update"]);
    assert_eq!(s.crontab(), once, "a second update changes nothing");
    s.ok(&["--identifier", "app", "--clear"]);
    assert_eq!(s.crontab(), foreign);
}

#[test]
fn crontab_update_replaces_only_its_own_block() {
    let s = Scratch::new();
    let other =
        "# Begin errand generated tasks for: other\n1 1 * * * x\n# End errand generated tasks for: other\n";
    let before = format!(
        "top line\n# Begin errand generated tasks for: app\nold stuff\n# End errand generated tasks for: app\n{other}bottom line\n"
    );
    std::fs::write(&s.crontab, &before).expect("seed crontab");
    s.ok(&["--identifier", "app", "--update"]);
    assert_eq!(s.crontab(), format!("top line\n{BLOCK}{other}bottom line\n"));
}

#[test]
fn crontab_update_creates_a_missing_crontab_and_write_replaces_everything() {
    let s = Scratch::new();
    s.ok(&["--identifier", "app", "--update"]);
    assert_eq!(s.crontab(), BLOCK);
    std::fs::write(&s.crontab, "foreign\n").expect("seed crontab");
    s.ok(&["--identifier", "app", "--write"]);
    assert_eq!(s.crontab(), BLOCK);
}

#[test]
fn crontab_default_identifier_is_the_file_path_and_user_is_passed() {
    let s = Scratch::new();
    s.ok(&["--update", "--user", "deploy"]);
    let id = std::path::absolute(&s.schedule)
        .expect("absolute")
        .display()
        .to_string();
    assert!(
        s.crontab()
            .starts_with(&format!("# Begin errand generated tasks for: {id}\n")),
        "{}",
        s.crontab()
    );
    assert_eq!(
        std::fs::read_to_string(s.crontab.with_extension("txt.user")).expect("user"),
        "deploy"
    );
}

#[test]
fn crontab_refuses_schedules_in_another_zone_and_unbalanced_blocks() {
    let s = Scratch::new();
    write(
        s.dir.path(),
        "paris.toml",
        "[[schedule]]\nname = \"p\"\ncron = \"0 9 * * *\"\ntimezone = \"Europe/Paris\"\ncommand = [\"x\"]\n",
    );
    let out = s.run(&["paris.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schedule \"p\" (line 1): its timezone is Europe/Paris but cron reads the lines in UTC"),
        "{err}"
    );

    std::fs::write(&s.crontab, "# Begin errand generated tasks for: app\n").expect("seed crontab");
    let out = s.run(&["--identifier", "app", "--update"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no matching"));
    assert_eq!(
        s.crontab(),
        "# Begin errand generated tasks for: app\n",
        "left untouched"
    );
}

#[test]
fn crontab_program_failure_exits_1() {
    let s = Scratch::new();
    let out = errand()
        .current_dir(s.dir.path())
        .env("ERRAND_CRONTAB_PROGRAM", s.dir.path().join("missing-program"))
        .args(["schedule", "crontab", "--update"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
}

/// `schedule list` reads the store: after a scheduler's tick (stepped with a
/// manual clock through the library) it shows each schedule's next and last
/// fire, last job and that job's state; `--json` says the same for scripts.
#[test]
fn list_shows_next_and_last_fire_and_the_last_outcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let file = r#"
[[schedule]]
name = "minutely"
cron = "* * * * *"
kind = "report"

[[schedule]]
name = "nightly"
cron = "30 2 * * *"
timezone = "America/New_York"
command = ["/bin/true"]
"#;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = errand::open_store(&db).await.expect("open the store");
        let clock = std::sync::Arc::new(errand_core::ManualClock::new(
            "2026-03-08T04:00:30Z".parse().unwrap(),
        ));
        let errand = errand::Errand::new(store).with_clock(clock.clone());
        let defs = errand_core::schedule::ScheduleFile::parse(file)
            .unwrap()
            .schedules;
        let mut scheduler = errand.scheduler(defs, errand_engine::SchedulerConfig::default());
        scheduler.start().await.unwrap();
        clock.set("2026-03-08T04:01:02Z".parse().unwrap());
        assert_eq!(scheduler.tick().await.unwrap().enqueued.len(), 1);
    });
    let text = stdout_of(&["--database", &db, "schedule", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME"), "{text}");
    let minutely: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        minutely[..6],
        [
            "minutely",
            "active",
            "2026-03-08T04:02:00Z",
            "2026-03-08T04:01:00Z",
            "1",
            "available"
        ],
        "{text}"
    );
    assert!(lines[2].starts_with("nightly"), "{text}");
    assert!(
        lines[2].contains("2026-03-08T07:00:00Z"),
        "03:00 EDT, after the skipped 02:30: {text}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["--database", &db, "schedule", "list", "--json"])).unwrap();
    assert_eq!(json[0]["name"], "minutely");
    assert_eq!(json[0]["last_job_id"], 1);
    assert_eq!(json[0]["last_outcome"], "available");
    assert_eq!(json[0]["next_fire"], "2026-03-08T04:02:00Z");
    assert_eq!(json[1]["last_outcome"], serde_json::Value::Null);
}

/// `errand work` runs the scheduler with the config file's schedules (here
/// one firing every second); a file that does not validate stops it with
/// exit code 2 and the problem's line.
#[test]
fn work_runs_the_configured_schedules_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        "[[schedule]]\nname = \"tick\"\ncron = \"* * * * * *\"\ncommand = [\"/bin/true\"]\n",
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("errand");
    let mut child = std::process::Command::new(&bin)
        .args(["--database", &db, "--config"])
        .arg(&config)
        .arg("work")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start errand work");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let fired = loop {
        let out = errand()
            .args(["--database", &db, "schedule", "list", "--json"])
            .output()
            .expect("run errand");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if json[0]["last_job_id"].is_number() {
            break json;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("errand work fired no tick in 30 s: {json}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(fired[0]["name"], "tick");
    assert_eq!(fired[0]["status"], "active");

    std::fs::write(
        &config,
        "[[schedule]]\nname = \"bad\"\ncron = \"61 * * * *\"\nkind = \"k\"\n",
    )
    .unwrap();
    let out = errand()
        .args(["--database", &db, "--config"])
        .arg(&config)
        .arg("work")
        .output()
        .expect("run errand");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("\"bad\"") && err.contains("cron"),
        "{err}"
    );
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn crontab_default_identifier_is_one_block_from_any_directory() {
    let s = Scratch::new();
    let sub = s.dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    let run_in = |dir: &Path, file: &str| {
        let out = errand()
            .current_dir(dir)
            .env("ERRAND_CRONTAB_PROGRAM", &s.program)
            .env("FAKE_CRONTAB", &s.crontab)
            .args(["schedule", "crontab", file, "--update"])
            .output()
            .expect("run errand");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run_in(&sub, "../errand.toml");
    run_in(s.dir.path(), "errand.toml");
    run_in(s.dir.path(), "./sub/../errand.toml");
    let crontab = s.crontab();
    assert_eq!(count(&crontab, "# Begin errand"), 1, "{crontab}");
    let id = std::fs::canonicalize(&s.schedule).expect("canonical");
    assert!(
        crontab.starts_with(&format!("# Begin errand generated tasks for: {}\n", id.display())),
        "{crontab}"
    );
}

#[test]
fn crontab_identifier_with_surrounding_spaces_is_the_same_block() {
    let s = Scratch::new();
    s.ok(&["--identifier", "app ", "--update"]);
    s.ok(&["--identifier", "app  ", "--update"]);
    s.ok(&["--identifier", " app", "--update"]);
    assert_eq!(s.crontab(), BLOCK);
    s.ok(&["--identifier", "app ", "--clear"]);
    assert_eq!(s.crontab(), "");
}

#[test]
fn crontab_messages_say_what_happened() {
    let s = Scratch::new();
    let err_of = |args: &[&str]| {
        let out = s.run(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = err_of(&["--identifier", "app", "--clear"]);
    assert!(err.contains("no crontab block \"app\"; nothing removed"), "{err}");
    assert!(
        !s.crontab.exists(),
        "nothing to clear: the crontab is not written"
    );
    let err = err_of(&["--identifier", "app", "--update"]);
    assert!(
        err.contains("[update] crontab block \"app\" updated with 2 line(s)"),
        "{err}"
    );
    assert!(!err.contains("[write]"), "{err}");
    let err = err_of(&["--identifier", "app", "--update"]);
    assert!(err.contains("already up to date"), "{err}");
    let err = err_of(&["--identifier", "app", "--write"]);
    assert!(err.contains("[write]"), "{err}");
    let err = err_of(&["--identifier", "app", "--clear"]);
    assert!(err.contains("[clear] crontab block \"app\" removed"), "{err}");
}

#[test]
fn crontab_names_every_schedule_cron_cannot_run_and_writes_nothing() {
    let s = Scratch::new();
    let file = write(
        s.dir.path(),
        "zones.toml",
        "[[schedule]]\nname = \"paris\"\ncron = \"0 9 * * *\"\ntimezone = \"Europe/Paris\"\ncommand = [\"a\"]\n\n\
         [[schedule]]\nname = \"utc\"\ncron = \"0 9 * * *\"\ncommand = [\"b\"]\n\n\
         [[schedule]]\nname = \"tokyo\"\ncron = \"0 9 * * *\"\ntimezone = \"Asia/Tokyo\"\ncommand = [\"c\"]\n",
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    for extra in [&["--utc"][..], &[]] {
        let args: Vec<&str> = [name, "--update"].iter().chain(extra).copied().collect();
        let out = s.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("schedule \"paris\" (line 1): its timezone is Europe/Paris"),
            "{err}"
        );
        assert!(
            err.contains("schedule \"tokyo\" (line 12): its timezone is Asia/Tokyo"),
            "{err}"
        );
        assert!(err.contains("2 schedule(s) cannot go in a crontab"), "{err}");
        assert!(!s.crontab.exists(), "nothing written");
    }
}

#[test]
fn crontab_notes_each_schedule_it_leaves_out() {
    let s = Scratch::new();
    write(
        s.dir.path(),
        "jobs.toml",
        "[[schedule]]\nname = \"report\"\ncron = \"@daily\"\nkind = \"report\"\n\n\
         [[schedule]]\nname = \"off\"\ncron = \"@daily\"\ncommand = [\"x\"]\nenabled = false\n",
    );
    let out = s.run(&["jobs.toml", "--identifier", "app", "--update"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jobs.toml:1: schedule \"report\" left out: enqueues a job"),
        "{err}"
    );
    assert!(
        err.contains("jobs.toml:6: schedule \"off\" left out: disabled"),
        "{err}"
    );
    assert!(err.contains("no enabled command schedule"), "{err}");
    let out = s.run(&["jobs.toml", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["action"], "printed");
    assert_eq!(v["lines"], serde_json::json!([]));
    assert_eq!(v["left_out"][0]["schedule"], "report");
    assert_eq!(v["left_out"][1]["reason"], "disabled");
}

#[test]
fn check_gives_the_verdict_work_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let schedules = "[[schedule]]\nname = \"a\"\ncron = \"@daily\"\nkind = \"k\"\n";
    // A misspelled top-level key: both refuse it, naming it.
    let typo = write(
        dir.path(),
        "typo.toml",
        &format!("databse = \"{db}\"\n{schedules}"),
    );
    let (code, err) = failure(&["schedule", "check", typo.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("databse"), "{err}");
    assert!(err.contains("has 1 problem(s)"), "{err}");
    let out = errand()
        .args(["--database", &db, "--config"])
        .arg(&typo)
        .args(["work"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("databse"));
    // A bad setting elsewhere in the file, too.
    let lease = write(
        dir.path(),
        "lease.toml",
        &format!("[worker]\nlease = \"soon\"\n{schedules}"),
    );
    let (code, err) = failure(&["schedule", "check", lease.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("worker.lease"), "{err}");
    // A duplicate name is reported although another schedule has errors.
    let dup = write(
        dir.path(),
        "dup.toml",
        &format!("{schedules}\n[[schedule]]\nname = \"a\"\ncron = \"61 * * * *\"\nkind = \"k\"\n"),
    );
    let (code, err) = failure(&["schedule", "check", dup.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(":6: schedule \"a\": name: duplicate name; first defined on line 1"),
        "{err}"
    );
    assert!(err.contains(":8: schedule \"a\": cron:"), "{err}");
}

#[test]
fn check_refuses_a_variable_assignment_as_the_program() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "env.toml",
        "[[schedule]]\nname = \"hi\"\ncron = \"@daily\"\ncommand = [\"FOO=bar\", \"echo\", \"hi\"]\n",
    );
    let (code, err) = failure(&["schedule", "check", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(":4: schedule \"hi\": command:"), "{err}");
    assert!(err.contains("env = { FOO = \"bar\" }"), "{err}");
}

#[test]
fn check_takes_whenever_style_every_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "list.toml",
        "[[schedule]]\nname = \"twice\"\nevery = [\"monday\", \"friday\"]\nat = \"9am\"\nkind = \"k\"\n",
    );
    let out = stdout_of(&["schedule", "check", p.to_str().unwrap()]);
    assert!(
        out.starts_with("twice: every \"monday, friday\" at \"9am\" in UTC\n"),
        "{out}"
    );
    let bad = write(
        dir.path(),
        "ruby.toml",
        "[[schedule]]\nname = \"r\"\nevery = \"1.day\"\nkind = \"k\"\n",
    );
    let (code, err) = failure(&["schedule", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("write \"day\""), "{err}");
    assert!(err.contains("has 1 problem(s)"), "{err}");
}

fn json_of(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout_of(args)).expect("one JSON document")
}

/// Under --json an error is one JSON object on stderr, and nothing else.
fn json_error(args: &[&str]) -> (i32, serde_json::Value) {
    let (code, err) = failure(args);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    (code, serde_json::from_str(lines[0]).expect("a JSON error"))
}

#[test]
fn next_translate_and_check_print_json() {
    let v = json_of(&[
        "schedule",
        "next",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00:00-05:00",
        "--count",
        "2",
        "--json",
    ]);
    assert_eq!(
        v["fire_times"],
        serde_json::json!(["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"])
    );
    assert_eq!(v["timezone"], "America/New_York");
    assert_eq!(v["reboot"], false);
    let v = json_of(&["--json", "schedule", "next", "@reboot"]);
    assert_eq!(
        (v["reboot"].clone(), v["fire_times"].clone()),
        (true.into(), serde_json::json!([]))
    );
    let v = json_of(&[
        "schedule",
        "translate",
        "--every",
        "monday, friday",
        "--at",
        "9am",
        "--json",
    ]);
    assert_eq!(v["cron"], serde_json::json!(["0 9 * * 1", "0 9 * * 5"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "errand.toml", FILE);
    let v = json_of(&["schedule", "check", p.to_str().unwrap(), "--json"]);
    let names: Vec<&str> = v["schedules"]
        .as_array()
        .expect("schedules")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly", "rotate", "boot"]);
    assert_eq!(v["schedules"][0]["cron"], "30 2 * * *");
    assert_eq!(v["schedules"][0]["timezone"], "America/New_York");
    assert_eq!(v["schedules"][0]["next_fire_times"].as_array().unwrap().len(), 3);
    assert_eq!(v["schedules"][1]["every"], "day");
    assert_eq!(v["schedules"][1]["action"]["command"][0], "logrotate");
    assert_eq!(v["schedules"][2]["reboot"], true);
}

#[test]
fn schedule_errors_under_json_are_one_json_object() {
    let (code, v) = json_error(&["schedule", "next", "61 * * * *", "--json"]);
    assert_eq!(code, 2);
    assert_eq!(v["error"]["code"], "invalid_argument");
    assert_eq!(v["error"]["field"], "cron");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("out of range"),
        "{v}"
    );
    let (_, v) = json_error(&["schedule", "next", "* * * * *", "--tz", "Mars/Base", "--json"]);
    assert_eq!(v["error"]["field"], "tz");
    let (_, v) = json_error(&["schedule", "translate", "--every", "day", "--at", "25", "--json"]);
    assert_eq!(v["error"]["field"], "at");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "bad.toml",
        "[[schedule]]\nname = \"a\"\ncron = \"* * * *\"\nkind = \"k\"\n\n[[schedule]]\nname = \"b\"\nevery = \"day\"\nkind = \"k\"\nwhen = 1\n",
    );
    let (code, v) = json_error(&["--json", "schedule", "check", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(v["error"]["code"], "config_invalid");
    assert_eq!(v["error"]["field"], "cron");
    let issues = v["error"]["issues"].as_array().expect("issues");
    assert_eq!(issues.len(), 2);
    assert_eq!(
        (issues[1]["line"].clone(), issues[1]["field"].clone()),
        (10.into(), "when".into())
    );
    let (code, v) = json_error(&["schedule", "check", "/nonexistent/errand.toml", "--json"]);
    assert_eq!(code, 2);
    assert_eq!(v["error"]["field"], "file");
}

/// whenever's `--roles`, errand's way: each machine exports the command
/// schedules of its queues, and those without a queue.
#[test]
fn crontab_queues_select_schedules_like_whenever_roles() {
    let s = Scratch::new();
    write(
        s.dir.path(),
        "roles.toml",
        "[[schedule]]\nname = \"web\"\ncron = \"0 1 * * *\"\ncommand = [\"w\"]\nqueue = \"web\"\n\n\
         [[schedule]]\nname = \"everywhere\"\ncron = \"0 2 * * *\"\ncommand = [\"e\"]\n\n\
         [[schedule]]\nname = \"db\"\ncron = \"0 3 * * *\"\ncommand = [\"d\"]\nqueue = \"db\"\ntimezone = \"Asia/Tokyo\"\n",
    );
    let out = s.run(&["roles.toml", "--utc", "--queues", "web,app"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "CRON_TZ=UTC\n0 1 * * * w\n0 2 * * * e\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("roles.toml:12: schedule \"db\" left out: queue \"db\" not selected (--queues)"),
        "{err}"
    );
    assert_eq!(
        s.ok(&["roles.toml", "--utc", "--queues", "other"]),
        "CRON_TZ=UTC\n0 2 * * * e\n"
    );
    // Selected, the Tokyo schedule is refused as always.
    let out = s.run(&["roles.toml", "--utc", "--queues", "db"]);
    assert_eq!(out.status.code(), Some(2));
    let (code, err) = failure(&["schedule", "crontab", "--queues", "web=5", "--json"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(err.trim()).expect("one JSON error");
    assert_eq!(v["error"]["field"], "queues");
}

/// Blocks written before identifiers were resolved (`sub/../errand.toml`)
/// are the same file's block: update and clear take them away too.
#[test]
fn crontab_update_folds_older_blocks_of_the_same_file_into_one() {
    let s = Scratch::new();
    std::fs::create_dir(s.dir.path().join("sub")).expect("mkdir");
    let old_id = format!("{}/sub/../errand.toml", s.dir.path().display());
    let old_block = format!(
        "# Begin errand generated tasks for: {old_id}\n0 1 * * * old\n# End errand generated tasks for: {old_id}\n"
    );
    let before = format!("MAILTO=ops\n{old_block}# mine\n");
    std::fs::write(&s.crontab, &before).expect("seed crontab");
    // An explicit identifier leaves other blocks alone.
    s.ok(&["--identifier", "app", "--update"]);
    assert_eq!(s.crontab(), format!("{before}{BLOCK}"));
    s.ok(&["--identifier", "app", "--clear"]);
    assert_eq!(s.crontab(), before);

    let out = s.run(&["--update"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("also removed block {old_id:?}")), "{err}");
    let crontab = s.crontab();
    assert_eq!(count(&crontab, "# Begin errand"), 1, "{crontab}");
    assert!(!crontab.contains(" old\n"), "{crontab}");
    assert!(
        crontab.starts_with("MAILTO=ops\n# mine\n# Begin errand generated tasks for: /"),
        "{crontab}"
    );
    // Both again, then clear takes both away.
    std::fs::write(&s.crontab, format!("{crontab}{old_block}")).expect("seed crontab");
    let out = s.run(&["--clear", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["action"], "cleared");
    assert_eq!(v["aliases_removed"], serde_json::json!([old_id]));
    assert_eq!(s.crontab(), "MAILTO=ops\n# mine\n");
}

/// `schedule check` of a file whose broken line holds a database URL never
/// prints the URL's password, in text or JSON.
#[test]
fn check_errors_never_show_a_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "errand.toml",
        "database = \"postgres://app:Sup3rSecret@db.example/jobs\nlog_format = \"text\"\n",
    );
    let path = file.to_str().unwrap();
    for json in [false, true] {
        let mut cmd = errand();
        if json {
            cmd.arg("--json");
        }
        let out = cmd.args(["schedule", "check", path]).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(!all.contains("Sup3rSecret"), "the password leaked: {all}");
    }
}
