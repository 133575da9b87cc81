//! End-to-end tests of the `ordq` binary against a database in a temp dir.
//! Between CLI invocations the test may open the file with `ordq_core`
//! directly (to claim and fail tasks), closing it before the next call.

use ordq_core::{ClaimOptions, Db, FailOutcome, Options, TaskState};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh temp dir holding `db.ordq`; removed on drop.
struct Env {
    dir: PathBuf,
    db: PathBuf,
}

impl Env {
    fn new() -> Env {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ordq-cli-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("db.ordq");
        Env { dir, db }
    }

    /// Runs `ordq --db <file> args…` with `stdin` piped in.
    fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ordq"))
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .env_remove("ORDQ_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, b"")
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--json`, asserts success and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
    }

    fn open(&self) -> Db {
        Db::open(&self.db, Options::default()).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and the one-line error format.
fn assert_err(out: &Output, exit: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(code(out), exit, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("ordq: error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[test]
fn init_and_queue_lifecycle() {
    let e = Env::new();
    // Nothing exists yet: commands other than init refuse to create a file.
    assert_err(&e.run(&["queue", "list"]), 12, "does not exist");
    assert!(!e.db.exists());
    let out = e.ok(&["init"]);
    assert!(out.starts_with("created "), "{out}");
    assert!(e.db.exists());
    // Idempotent on an existing database, and says so.
    let out = e.ok(&["init"]);
    assert!(
        out.contains("already an ordq database; nothing changed"),
        "{out}"
    );
    assert_eq!(e.json(&["init"])["created"], false);
    // With --json an error is one JSON object on stderr.
    let out = e.run(&["--json", "queue", "show", "nope"]);
    assert_eq!(code(&out), 12);
    let err: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(err["error"]["name"], "NOT_FOUND");
    assert_eq!(err["error"]["code"], 2);
    assert_eq!(err["error"]["exit"], 12);
    assert!(err["error"]["message"].as_str().unwrap().contains("nope"));

    e.ok(&[
        "queue",
        "create",
        "jobs",
        "--shards",
        "4",
        "--ordering",
        "global",
        "--max-attempts",
        "3",
        "--lease",
        "1500ms",
        "--dlq-policy",
        "block",
        "--backoff-initial",
        "2s",
        "--backoff-max",
        "5m",
        "--backoff-multiplier",
        "3",
        "--backoff-jitter",
        "0.5",
    ]);
    e.ok(&["queue", "create", "other"]);
    assert_err(&e.run(&["queue", "create", "jobs"]), 13, "ALREADY_EXISTS");
    let out = e.ok(&["queue", "create", "other", "--if-not-exists"]);
    assert!(out.contains("queue other exists"), "{out}");
    let out = e.ok(&["queue", "create", "fresh", "--if-not-exists"]);
    assert!(out.contains("created queue fresh"), "{out}");
    assert_err(
        &e.run(&[
            "queue",
            "create",
            "other",
            "--if-not-exists",
            "--shards",
            "3",
        ]),
        13,
        "shards=3 (exists with 16)",
    );
    e.ok(&["queue", "delete", "fresh", "--yes"]);

    let list = e.json(&["queue", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs", "other"]);
    let text = e.ok(&["queue", "list"]);
    assert!(text.contains("jobs") && text.contains("global"), "{text}");

    let q = e.json(&["queue", "show", "jobs"]);
    assert_eq!(q["config"]["shards"], 4);
    assert_eq!(q["config"]["ordering"], "global");
    assert_eq!(q["config"]["max_attempts"], 3);
    assert_eq!(q["config"]["lease_ms"], 1500);
    assert_eq!(q["config"]["dlq_policy"], "block");
    assert_eq!(q["config"]["backoff"]["initial_ms"], 2000);
    assert_eq!(q["config"]["backoff"]["max_ms"], 300_000);
    assert_eq!(q["config"]["backoff"]["multiplier"], 3.0);
    assert_eq!(q["config"]["backoff"]["jitter"], 0.5);
    let text = e.ok(&["queue", "show", "jobs"]);
    assert!(text.contains("1500ms") && text.contains("5m"), "{text}");

    // Delete needs --yes when stdin is not a terminal.
    assert_err(&e.run(&["queue", "delete", "jobs"]), 11, "--yes");
    e.ok(&["queue", "delete", "jobs", "--yes"]);
    assert_err(&e.run(&["queue", "show", "jobs"]), 12, "NOT_FOUND");
    assert_err(
        &e.run(&["queue", "delete", "jobs", "--yes"]),
        12,
        "NOT_FOUND",
    );
    let list = e.json(&["queue", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Engine validation surfaces as InvalidArgument.
    assert_err(&e.run(&["queue", "create", "q", "--shards", "0"]), 11, "");
    // A malformed duration is a usage error (clap, exit 2).
    let out = e.run(&["queue", "create", "q", "--lease", "30"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing unit"), "{}", stderr(&out));
}

#[test]
fn enqueue_peek_task_show_and_stats() {
    let e = Env::new();
    e.ok(&["init"]);
    e.ok(&["queue", "create", "q", "--shards", "2"]);

    let r0 = e.json(&[
        "enqueue",
        "q",
        "user-1",
        "hello",
        "--header",
        "trace=abc",
        "--header",
        "kind=mail",
        "--idempotency-key",
        "idem-1",
        "--priority",
        "-3",
    ]);
    assert_eq!(r0["offset"], 0);
    assert_eq!(r0["duplicate"], false);
    let dup = e.json(&[
        "enqueue",
        "q",
        "user-1",
        "other",
        "--idempotency-key",
        "idem-1",
    ]);
    assert_eq!(dup["offset"], 0);
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["id"], r0["id"]);

    // Payload from stdin, binary (not UTF-8).
    let out = e.run_stdin(&["enqueue", "q", "user-2", "-"], &[0xff, 0x00, 0x41]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("offset=1 "), "{text}");

    // Payload from a file, delayed.
    let f = e.dir.join("p.txt");
    std::fs::write(&f, "from file").unwrap();
    let r2 = e.json(&[
        "enqueue",
        "q",
        "user-3",
        "--file",
        f.to_str().unwrap(),
        "--delay",
        "1h",
        "--max-attempts",
        "7",
    ]);
    assert_eq!(r2["offset"], 2);
    // Payload argument and --file conflict: usage error.
    assert_eq!(code(&e.run(&["enqueue", "q", "k", "x", "--file", "y"])), 2);
    // Malformed header: usage error.
    assert_eq!(
        code(&e.run(&["enqueue", "q", "k", "--header", "novalue"])),
        2
    );

    let t0 = e.json(&["task", "show", "q", "0"]);
    assert_eq!(t0["key"], "user-1");
    assert_eq!(t0["state"], "ready");
    assert_eq!(t0["priority"], -3);
    assert_eq!(t0["idempotency_key"], "idem-1");
    assert_eq!(t0["headers"]["trace"], "abc");
    assert_eq!(t0["headers"]["kind"], "mail");
    assert_eq!(t0["payload"]["encoding"], "utf8");
    assert_eq!(t0["payload"]["data"], "hello");
    assert_eq!(t0["faults"], Value::Array(vec![]));
    let t1 = e.json(&["task", "show", "q", "1"]);
    assert_eq!(t1["payload"]["encoding"], "base64");
    assert_eq!(t1["payload"]["data"], "/wBB");
    let t2 = e.json(&["task", "show", "q", "2"]);
    assert_eq!(t2["payload"]["data"], "from file");
    assert_eq!(t2["max_attempts"], 7);
    let delay = t2["not_before"].as_u64().unwrap() - t2["enqueued_at"].as_u64().unwrap();
    assert_eq!(delay, 3_600_000);

    let text = e.ok(&["task", "show", "q", "0"]);
    assert!(
        text.contains("\"hello\"") && text.contains("trace=abc"),
        "{text}"
    );
    assert_err(&e.run(&["task", "show", "q", "99"]), 12, "NOT_FOUND");

    // Peek reads without leasing: the state stays ready afterwards.
    let peek = e.json(&["peek", "q", "--limit", "2"]);
    let offs: Vec<u64> = peek
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offs, [0, 1]);
    let peek = e.json(&["peek", "q", "--from", "1"]);
    assert_eq!(peek.as_array().unwrap().len(), 2);
    let text = e.ok(&["peek", "q"]);
    assert!(text.contains("user-3"), "{text}");
    assert_eq!(e.json(&["task", "show", "q", "0"])["state"], "ready");

    let s = e.json(&["stats", "q"]);
    assert_eq!(s["ready"], 3);
    assert_eq!(s["leased"], 0);
    assert_eq!(s["next_offset"], 3);
    assert_eq!(s["totals"]["enqueued"], 3);
    let shards = s["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    let pending: u64 = shards.iter().map(|x| x["pending"].as_u64().unwrap()).sum();
    assert_eq!(pending, 3);
    let text = e.ok(&["stats", "q"]);
    assert!(text.contains("next_offset         3"), "{text}");
    assert!(
        text.contains("SHARD") && text.lines().count() >= 12,
        "{text}"
    );

    assert_err(&e.run(&["stats", "nope"]), 12, "NOT_FOUND");
    assert_err(&e.run(&["enqueue", "nope", "k", "x"]), 12, "NOT_FOUND");
    assert_err(
        &e.run(&["enqueue", "bad name", "k", "x"]),
        11,
        "INVALID_ARGUMENT",
    );
}

/// Claims and fails (non-retryably) the next task of `queue` directly.
fn kill_next(e: &Env, queue: &str) -> u64 {
    let db = e.open();
    let leases = db
        .claim(queue, "test-worker", ClaimOptions::default())
        .unwrap();
    assert_eq!(leases.len(), 1);
    let off = leases[0].offset;
    let out = db.fail(leases[0].token, "boom\nsecond line", true).unwrap();
    assert!(matches!(out, FailOutcome::Dead { attempt: 1 }), "{out:?}");
    db.close();
    off
}

#[test]
fn dlq_flow() {
    let e = Env::new();
    e.ok(&["init"]);
    e.ok(&["queue", "create", "q", "--max-attempts", "1"]);
    for i in 0..3 {
        e.ok(&["enqueue", "q", &format!("k{i}"), &format!("p{i}")]);
    }
    let mut dead = vec![kill_next(&e, "q"), kill_next(&e, "q"), kill_next(&e, "q")];
    dead.sort();
    assert_eq!(dead, [0, 1, 2]);

    let list = e.json(&["dlq", "list", "q"]);
    let offs: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offs, [0, 1, 2]);
    let page = e.json(&["dlq", "list", "q", "--after", "0", "--limit", "1"]);
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["offset"], 1);
    assert!(e.ok(&["dlq", "list", "q"]).contains("\"p2\""));

    let d = e.json(&["dlq", "show", "q", "1"]);
    assert_eq!(d["state"], "dead");
    assert_eq!(d["payload"]["data"], "p1");
    let faults = d["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["worker"], "test-worker");
    assert_eq!(faults[0]["error"], "boom\nsecond line");
    assert_eq!(faults[0]["kind"], "failed");
    let text = e.ok(&["dlq", "show", "q", "1"]);
    assert!(
        text.contains("attempt 1 failed") && text.contains("boom second line"),
        "{text}"
    );

    // Redrive head: back at its original offset, attempts reset.
    let r = e.json(&["dlq", "redrive", "q", "0"]);
    assert_eq!(r["offset"], 0);
    assert_eq!(e.json(&["task", "show", "q", "0"])["state"], "ready");
    // Redrive new-offset: a new task at the tail pointing back.
    let r = e.json(&["dlq", "redrive", "q", "1", "--mode", "new-offset"]);
    assert_eq!(r["offset"], 3);
    let t3 = e.json(&["task", "show", "q", "3"]);
    assert_eq!(t3["redriven_from"], 1);
    assert_eq!(t3["payload"]["data"], "p1");
    assert_eq!(e.json(&["task", "show", "q", "1"])["redriven_to"], 3);
    // Redrive of a task that is not dead: InvalidState.
    assert_err(&e.run(&["dlq", "redrive", "q", "3"]), 17, "INVALID_STATE");
    assert_err(&e.run(&["dlq", "show", "q", "3"]), 12, "NOT_FOUND");

    // Purge: offset or --all (exactly one), --yes required off a terminal.
    assert_eq!(code(&e.run(&["dlq", "purge", "q", "--yes"])), 2);
    assert_eq!(
        code(&e.run(&["dlq", "purge", "q", "2", "--all", "--yes"])),
        2
    );
    assert_err(&e.run(&["dlq", "purge", "q", "2"]), 11, "--yes");
    assert_eq!(e.json(&["dlq", "purge", "q", "2", "--yes"])["purged"], 1);
    assert_eq!(e.json(&["dlq", "list", "q"]), Value::Array(vec![]));
    assert_eq!(
        e.json(&["dlq", "purge", "q", "--all", "--yes"])["purged"],
        0
    );
    let s = e.json(&["stats", "q"]);
    assert_eq!(s["dead"], 0);
    assert_eq!(s["totals"]["redriven"], 2);
    assert_eq!(s["totals"]["purged"], 1);

    // Fail the redriven ones again and purge them all at once.
    kill_next(&e, "q");
    kill_next(&e, "q");
    assert_eq!(
        e.json(&["dlq", "purge", "q", "--all", "--yes"])["purged"],
        2
    );
    let db = e.open();
    assert_eq!(db.get_task("q", 0).unwrap().state, TaskState::Dead);
    assert_eq!(db.dlq_list("q", None, 10).unwrap().len(), 0);
    db.close();
}

#[test]
fn error_exit_codes() {
    let e = Env::new();
    e.ok(&["init"]);
    e.ok(&["queue", "create", "q"]);

    // File held by another handle -> AlreadyOpen (4) -> 14.
    let db = e.open();
    assert_err(&e.run(&["queue", "list"]), 14, "already open");
    assert_err(&e.run(&["queue", "list"]), 14, "pass the broker's address");
    db.close();
    e.ok(&["queue", "list"]);

    // A broker address with no broker behind it -> Unavailable (12) -> 22.
    let no_sock = format!("unix://{}", e.dir.join("none.sock").display());
    for addr in [no_sock.as_str(), "tcp://127.0.0.1:1"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
            .args(["--db", addr, "stats", "q"])
            .output()
            .unwrap();
        assert_err(&out, 22, "cannot reach the broker");
    }
    // ORDQ_DB works like --db.
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .args(["queue", "list"])
        .env("ORDQ_DB", "tcp://127.0.0.1:1")
        .output()
        .unwrap();
    assert_err(&out, 22, "cannot reach the broker");
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .args(["--json", "queue", "list"])
        .env("ORDQ_DB", &e.db)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .args(["queue", "list"])
        .env_remove("ORDQ_DB")
        .output()
        .unwrap();
    assert_err(&out, 11, "--db");
    // `serve` without --listen is a usage error (tests/serve.rs covers serving).
    assert_eq!(code(&e.run(&["serve"])), 2);

    assert_err(&e.run(&["queue", "show", "missing"]), 12, "NOT_FOUND");
    assert_eq!(code(&e.run(&["queue", "create", "-bad"])), 2);
    assert_err(
        &e.run(&["queue", "create", "bad/name"]),
        11,
        "INVALID_ARGUMENT",
    );
    // Unknown subcommand: clap usage error.
    assert_eq!(code(&e.run(&["frobnicate"])), 2);

    // Not an ordq database -> Corrupt or Io, never success.
    let junk = e.dir.join("junk");
    std::fs::write(&junk, b"not a database at all, just some bytes").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .arg("--db")
        .arg(&junk)
        .args(["queue", "list"])
        .output()
        .unwrap();
    let c = code(&out);
    assert!(c == 19 || c == 20, "exit {c}: {}", stderr(&out));
}

/// `ordq stats q | head -1`: the reader goes away before the output is
/// written; the command must end quietly (by SIGPIPE, like other Unix
/// filters), not panic with "failed printing to stdout".
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let e = Env::new();
    e.ok(&["init"]);
    e.ok(&["queue", "create", "q"]);
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just returned by pipe(2) and are owned
    // here; the read end is closed at once, so every write fails.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .arg("--db")
        .arg(&e.db)
        .args(["stats", "q"])
        .env_remove("ORDQ_DB")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(stderr(&out), "", "nothing on stderr");
}

#[test]
fn help_for_every_subcommand() {
    let cmds: &[&[&str]] = &[
        &[],
        &["init"],
        &["queue"],
        &["queue", "create"],
        &["queue", "list"],
        &["queue", "show"],
        &["queue", "delete"],
        &["enqueue"],
        &["peek"],
        &["task"],
        &["task", "show"],
        &["stats"],
        &["dlq"],
        &["dlq", "list"],
        &["dlq", "show"],
        &["dlq", "redrive"],
        &["dlq", "purge"],
        &["serve"],
        &["compact"],
        &["keygen"],
        &["verify"],
        &["audit"],
        &["checkpoint"],
        &["checkpoint", "export"],
        &["backup"],
        &["restore"],
        &["recover"],
    ];
    for c in cmds {
        let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
            .args(*c)
            .arg("--help")
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{c:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: ordq"), "{c:?}: {text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .arg("serve")
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("--listen"));
}

#[test]
fn compact_removes_old_log_segments_and_keeps_the_tasks() {
    let env = Env::new();
    {
        // Small segments, so 300 tasks fill several.
        let opts = Options {
            segment_size: 16 << 10,
            ..Options::default()
        };
        let db = Db::open(&env.db, opts).unwrap();
        db.create_queue("q", ordq_core::QueueConfig::default())
            .unwrap();
        for i in 0..300 {
            db.enqueue(
                "q",
                "k",
                format!("p{i}").as_bytes(),
                ordq_core::EnqueueOptions::default(),
            )
            .unwrap();
        }
        db.close();
    }
    let c = env.json(&["compact"]);
    assert!(c["removed_segments"].as_u64().unwrap() >= 2, "{c}");
    assert_eq!(c["log"]["segments"], 1, "{c}");
    assert!(c["log"]["first_lsn"].as_u64().unwrap() > 0, "{c}");
    let s = env.json(&["stats", "q"]);
    assert_eq!(s["ready"], 300, "{s}");
    let t = env.json(&["task", "show", "q", "0"]);
    assert_eq!(t["offset"], 0, "{t}");
    let again = env.ok(&["compact"]);
    assert!(again.starts_with("removed 0 segments"), "{again}");
}

#[test]
fn keygen_signing_and_verify() {
    let env = Env::new();
    let key = env.dir.join("k");
    let k = key.to_str().unwrap();
    let made = env.json(&["keygen", "--out", k]);
    assert_eq!(made["key_id"].as_str().unwrap().len(), 16, "{made}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let again = env.run(&["keygen", "--out", k]);
    assert_eq!(code(&again), 13, "{}", stderr(&again));
    env.ok(&["--signing-key", k, "init"]);
    env.ok(&["--signing-key", k, "queue", "create", "q"]);
    for i in 0..3 {
        env.ok(&["--signing-key", k, "enqueue", "q", &format!("k{i}"), "hi"]);
    }
    let a = env.json(&["audit", "q"]);
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["lane_count"], 0, "{a}");
    let a = env.ok(&["audit", "q", "--key", "k1"]);
    assert!(a.contains("(key k1)"), "{a}");
    let missing = env.run(&["audit", "nope"]);
    assert_eq!(code(&missing), 12, "{}", stderr(&missing));
    let c = env.json(&["--signing-key", k, "checkpoint"]);
    assert_eq!(c["checkpoint_lsn"], c["next_lsn"], "{c}");
    // The ledger, as an anchor: the database matches it.
    let ledger = env.ok(&["checkpoint", "export"]);
    let lines: Vec<Value> = ledger
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.len() >= 2 && lines.iter().all(|l| l["signature"].is_string()),
        "{ledger}"
    );
    let anchor = env.dir.join("anchor.jsonl");
    std::fs::write(&anchor, &ledger).unwrap();
    env.ok(&["verify", "--anchor", anchor.to_str().unwrap()]);
    std::fs::write(&anchor, "not json\n").unwrap();
    let bad = env.run(&["verify", "--anchor", anchor.to_str().unwrap()]);
    assert_eq!(code(&bad), 11, "{}", stderr(&bad));
    std::fs::write(&anchor, &ledger).unwrap();
    let pubkey = format!("{k}.pub");
    let r = env.json(&["verify", "--pubkey", &pubkey]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["state_checked"], true, "{r}");
    assert!(r["signed"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["key_id"], made["key_id"]);
    // A state row edited behind the log's back: exit 44, the row named.
    {
        let raw = redb::Database::open(&env.db).unwrap();
        let w = raw.begin_write().unwrap();
        {
            let mut t = w.open_table(ordq_core::tables::QSTATE).unwrap();
            let v = {
                use redb::ReadableTable;
                t.get(1).unwrap().unwrap().value().to_vec()
            };
            let text = String::from_utf8(v)
                .unwrap()
                .replace("\"dead_now\":0", "\"dead_now\":7");
            t.insert(1, text.as_bytes()).unwrap();
        }
        w.commit().unwrap();
    }
    let out = env.run(&["verify"]);
    assert_eq!(code(&out), 44, "{}", stderr(&out));
    // recover rebuilds it from the log and names the row: exit 46.
    let fixed = env.dir.join("fixed.ordq");
    let rec = env.run(&["recover", "--out", fixed.to_str().unwrap()]);
    assert_eq!(code(&rec), 46, "{}", stderr(&rec));
    assert!(String::from_utf8(rec.stdout.clone())
        .unwrap()
        .contains("differs: table queue_state"));
    let out_fixed = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .args([
            "--db",
            fixed.to_str().unwrap(),
            "verify",
            "--pubkey",
            &pubkey,
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out_fixed), 0, "{}", stderr(&out_fixed));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(text.contains("table queue_state"), "{text}");
    assert!(stderr(&out).contains("verify found"), "{}", stderr(&out));
}

#[test]
fn backup_and_restore() {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["queue", "create", "q"]);
    for i in 0..5 {
        env.ok(&["enqueue", "q", &format!("k{i}"), "hi"]);
    }
    let b = env.dir.join("b.ordq");
    let info = env.json(&["backup", "--to", b.to_str().unwrap()]);
    assert!(info["verified_records"].as_u64().unwrap() > 0, "{info}");
    assert!(b.exists() && env.dir.join("b.ordq.log").is_dir());
    let again = env.run(&["backup", "--to", b.to_str().unwrap()]);
    assert_eq!(code(&again), 13, "{}", stderr(&again));
    let r = env.dir.join("r.ordq");
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .args(["restore", b.to_str().unwrap(), "--to", r.to_str().unwrap()])
        .env_remove("ORDQ_DB")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("restored to"));
    let out = Command::new(env!("CARGO_BIN_EXE_ordq"))
        .args(["--db", r.to_str().unwrap(), "--json", "stats", "q"])
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["ready"], 5, "{s}");
}
