//! Crash tests: a child process (this test binary, re-executed) runs a
//! mixed load against one database and is killed with SIGKILL at random
//! moments; after every kill the parent reopens the file and checks it
//! against the child's acknowledgement journal. A second test kills
//! children while they create a fresh database. With the `failpoints`
//! feature, a third test has each child kill itself (SIGKILL) at a named
//! failpoint of the log or the writer and checks the same invariants.
//!
//! Knobs: `ORDQ_CRASH_CYCLES` (load cycles, default 100),
//! `ORDQ_CRASH_CREATE_CYCLES` (creation cycles, default 100),
//! `ORDQ_CRASH_SEED` (random seed, default from the clock),
//! `ORDQ_FAILPOINT_CYCLES` (failpoint cycles, default 200).

use ordq_core::{
    Backoff, ClaimOptions, Db, DlqPolicy, EnqueueItem, EnqueueOptions, Error, FailOutcome,
    ManualClock, Options, Ordering as LaneOrdering, QueueConfig, QueueStats, TaskInfo, TaskState,
    Totals,
};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Name of the test function the parents re-execute as their child.
const CHILD_TEST: &str = "crash_child_entry";
/// Child mode: run the mixed load on `<dir>/db.ordq`, journal in `<dir>/journal`.
const ENV_LOAD: &str = "ORDQ_CRASH_CHILD";
/// Child mode: create a database at this path, then wait to be killed.
const ENV_CREATE: &str = "ORDQ_CRASH_CREATE";
/// Child mode (feature `failpoints`): `NAME:N` kills the child with
/// SIGKILL at the N-th hit of failpoint NAME.
const ENV_FAILPOINT: &str = "ORDQ_CRASH_FAILPOINT";
/// Seed of the child's random choices.
const ENV_SEED: &str = "ORDQ_CRASH_CHILD_SEED";
/// Line a child prints when the interesting part begins.
const READY: &str = "ORDQ-CRASH-READY";

const DB_NAME: &str = "db.ordq";
const JOURNAL: &str = "journal";
const Q: &str = "work";
const PROBE: &str = "probe";
const KEYS: u64 = 50;
/// Producers pause while the queue holds more unfinished tasks than this.
const BACKLOG: u64 = 300;
/// A child that was never killed gives up after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

/// splitmix64: small, seedable, good enough for picking delays and actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn seed() -> u64 {
    env_u64("ORDQ_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    })
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ordq-crash-{tag}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    fs::create_dir_all(&d).unwrap();
    d
}

fn queue_cfg() -> QueueConfig {
    QueueConfig {
        shards: 8,
        ordering: LaneOrdering::Key,
        max_attempts: 4,
        backoff: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(40),
            multiplier: 2.0,
            jitter: 0.2,
        },
        lease: Duration::from_millis(250),
        dlq_policy: DlqPolicy::Skip,
    }
}

/// Waits `d`, spinning for the sub-millisecond part so short delays are
/// honoured.
fn pause(d: Duration) {
    let until = Instant::now() + d;
    if d > Duration::from_millis(2) {
        thread::sleep(d - Duration::from_millis(1));
    }
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

// ------------------------------------------------------------------ child

/// Entry point of the child processes. Does nothing in a normal test run;
/// with `ORDQ_CRASH_CHILD` or `ORDQ_CRASH_CREATE` set it works until killed.
#[test]
fn crash_child_entry() {
    let seed = env_u64(ENV_SEED).unwrap_or(1);
    if let Ok(dir) = std::env::var(ENV_LOAD) {
        abort_on_panic();
        #[cfg(feature = "failpoints")]
        arm_failpoint();
        child_load(Path::new(&dir), seed);
    } else if let Ok(path) = std::env::var(ENV_CREATE) {
        abort_on_panic();
        child_create(Path::new(&path));
    }
}

/// Any panic in any thread of a child ends the process at once, so the
/// parent sees an exit that is not its SIGKILL.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

/// Arms the failpoint `ENV_FAILPOINT` names: its N-th hit SIGKILLs the
/// process.
#[cfg(feature = "failpoints")]
fn arm_failpoint() {
    let Ok(spec) = std::env::var(ENV_FAILPOINT) else {
        return;
    };
    let (name, n) = spec.split_once(':').expect("failpoint spec NAME:N");
    let n: u64 = n.parse().expect("failpoint hit count");
    let hits = AtomicU64::new(0);
    fail::cfg_callback(name, move || {
        if hits.fetch_add(1, Ordering::SeqCst) + 1 == n {
            // SAFETY: kill(2) of this very process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    })
    .expect("arm failpoint");
}

/// The child's options: with a failpoint armed, small segments and
/// frequent state checkpoints, so segment rolls and checkpoints happen in
/// every cycle.
fn child_options() -> Options {
    if std::env::var_os(ENV_FAILPOINT).is_some() {
        Options {
            segment_size: 64 << 10,
            checkpoint_interval: Duration::from_millis(20),
            ..Options::default()
        }
    } else {
        Options::default()
    }
}

fn announce_ready() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}").unwrap();
    out.flush().unwrap();
}

fn wait_to_be_killed() -> ! {
    thread::sleep(CHILD_LIFETIME);
    panic!("crash child was never killed");
}

fn child_create(path: &Path) {
    announce_ready();
    let db = Db::open(path, Options::default()).expect("child: create database");
    db.queue(Q).expect_err("fresh database has no queue");
    wait_to_be_killed();
}

/// The acknowledgement journal: one `write` of whole lines per call, to a
/// file opened with O_APPEND, so a SIGKILL leaves at most a torn last line.
struct Journal(File);

impl Journal {
    fn put(&self, text: &str) {
        let n = (&self.0).write(text.as_bytes()).expect("journal write");
        assert_eq!(n, text.len(), "short journal write");
    }
}

/// `Ok` passes, `LeaseLost` (the lease expired under a slow worker) gives
/// `None`, anything else fails the child.
fn lost_ok<T>(r: Result<T, Error>, what: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::LeaseLost(_)) => None,
        Err(e) => panic!("child: {what} failed: {e}"),
    }
}

fn child_load(dir: &Path, seed: u64) {
    let db = Db::open(dir.join(DB_NAME), child_options()).expect("child: open");
    match db.create_queue(Q, queue_cfg()) {
        Ok(_) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => panic!("child: create queue: {e}"),
    }
    let journal = Arc::new(Journal(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))
            .expect("child: journal"),
    ));
    let backlog = Arc::new(AtomicU64::new(u64::MAX));
    let tag = std::process::id();
    {
        let (db, backlog) = (db.clone(), backlog.clone());
        thread::spawn(move || loop {
            let s = db.stats(Q).expect("child: stats");
            backlog.store(s.ready + s.leased + s.retry_wait, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(20));
        });
    }
    for p in 0..3u64 {
        let (db, journal, backlog) = (db.clone(), journal.clone(), backlog.clone());
        let mut rng = Rng(seed ^ (p + 1).wrapping_mul(0x1234_5678_9abc_def1));
        thread::spawn(move || {
            let mut seq = 0u64;
            loop {
                while backlog.load(Ordering::Relaxed) > BACKLOG {
                    thread::sleep(Duration::from_millis(2));
                }
                let n = if rng.below(3) == 0 {
                    1
                } else {
                    rng.range(2, 17)
                };
                let items: Vec<EnqueueItem> = (0..n)
                    .map(|_| {
                        seq += 1;
                        EnqueueItem {
                            key: format!("k{:02}", rng.below(KEYS)),
                            payload: format!("{tag}-{p}-{seq}").into_bytes(),
                            opts: EnqueueOptions {
                                priority: rng.below(3) as i32 - 1,
                                delay: (rng.below(10) == 0)
                                    .then(|| Duration::from_millis(rng.range(1, 20))),
                                ..Default::default()
                            },
                        }
                    })
                    .collect();
                let receipts = if n == 1 {
                    let it = &items[0];
                    vec![db
                        .enqueue(Q, &it.key, &it.payload, it.opts.clone())
                        .expect("child: enqueue")]
                } else {
                    db.enqueue_batch(Q, items.clone())
                        .expect("child: enqueue_batch")
                };
                assert_eq!(receipts.len(), items.len(), "one receipt per item");
                let mut lines = String::new();
                for (i, (r, it)) in receipts.iter().zip(&items).enumerate() {
                    assert!(!r.duplicate, "no idempotency key, no duplicate");
                    assert!(
                        i == 0 || r.offset > receipts[i - 1].offset,
                        "receipts in order"
                    );
                    lines.push_str(&format!(
                        "E {} {} {}\n",
                        r.offset,
                        it.key,
                        String::from_utf8_lossy(&it.payload)
                    ));
                }
                journal.put(&lines);
            }
        });
    }
    for w in 0..4u64 {
        let (db, journal) = (db.clone(), journal.clone());
        let mut rng = Rng(seed ^ (w + 11).wrapping_mul(0x0fed_cba9_8765_4321));
        thread::spawn(move || {
            let worker = format!("w{tag}-{w}");
            loop {
                let opts = ClaimOptions {
                    max: rng.range(1, 9) as usize,
                    wait: Duration::from_millis(20),
                    ..Default::default()
                };
                let leases = db.claim(Q, &worker, opts).expect("child: claim");
                if leases.is_empty() {
                    continue;
                }
                let mut lines = String::new();
                for l in &leases {
                    assert_eq!(l.offset, l.token.offset);
                    assert!(l.attempt >= 1 && l.attempt <= l.max_attempts, "{l:?}");
                    lines.push_str(&format!("L {} {}\n", l.offset, l.token.fence));
                }
                journal.put(&lines);
                let mut batch = Vec::new();
                for l in leases {
                    let t = l.token;
                    let roll = rng.below(100);
                    if roll % 10 == 0 && lost_ok(db.heartbeat(t, None), "heartbeat").is_none() {
                        continue;
                    }
                    if roll % 3 == 0 && lost_ok(db.start(t), "start").is_none() {
                        continue;
                    }
                    let result = format!("r-{}", t.fence).into_bytes();
                    match roll {
                        0..=64 if roll % 2 == 0 => batch.push((t, result)),
                        0..=64 => {
                            if let Some(c) = lost_ok(db.complete(t, &result), "complete") {
                                assert!(!c.duplicate, "first completion is no duplicate");
                                journal.put(&format!("C {} {}\n", t.offset, t.fence));
                            }
                        }
                        65..=81 => {
                            let retryable = roll <= 76;
                            if let Some(out) = lost_ok(db.fail(t, "boom", retryable), "fail") {
                                let tag = match out {
                                    FailOutcome::Retry { .. } => {
                                        assert!(retryable, "non-retryable failure retried");
                                        'R'
                                    }
                                    FailOutcome::Dead { .. } => 'D',
                                };
                                journal.put(&format!("F {} {} {tag}\n", t.offset, t.fence));
                            }
                        }
                        82..=92 => {
                            let released = lost_ok(db.release(t), "release").is_some();
                            if released {
                                journal.put(&format!("R {} {}\n", t.offset, t.fence));
                            }
                        }
                        // Abandoned: the lease expires and counts as an attempt.
                        _ => {}
                    }
                }
                if !batch.is_empty() {
                    let tokens: Vec<_> = batch.iter().map(|(t, _)| *t).collect();
                    let out = db.complete_batch(batch).expect("child: complete_batch");
                    let mut lines = String::new();
                    for (t, r) in tokens.iter().zip(out) {
                        if let Some(c) = lost_ok(r, "complete_batch item") {
                            assert!(!c.duplicate, "first completion is no duplicate");
                            lines.push_str(&format!("C {} {}\n", t.offset, t.fence));
                        }
                    }
                    journal.put(&lines);
                }
            }
        });
    }
    announce_ready();
    wait_to_be_killed();
}

// ----------------------------------------------------------------- parent

/// A running child and the lines of its stdout.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

fn spawn_child(env: &[(&str, String)], stderr: &Path) -> Running {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(stderr).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn crash child");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines: rx,
        stderr: stderr.to_path_buf(),
    }
}

impl Running {
    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Blocks until the child prints its ready line.
    fn wait_ready(&mut self, ctx: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.ends_with(READY) => return,
                Ok(_) => {}
                Err(_) => {
                    let st = self.child.try_wait().unwrap();
                    panic!(
                        "{ctx}: child never became ready (exit {st:?}); stderr:\n{}",
                        self.stderr_text()
                    );
                }
            }
        }
    }

    /// Waits up to `limit` for the child to kill itself at its failpoint;
    /// kills it when it did not get there. Answers whether it did; fails
    /// if it ended any other way.
    #[cfg(feature = "failpoints")]
    fn wait_self_kill(mut self, limit: Duration, ctx: &str) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(
                    st.signal(),
                    Some(libc::SIGKILL),
                    "{ctx}: child ended by {st}, not at its failpoint; stderr:\n{}",
                    self.stderr_text()
                );
                return true;
            }
            thread::sleep(Duration::from_millis(2));
        }
        self.kill(ctx);
        false
    }

    /// SIGKILLs the child and reaps it; fails if it had died by itself.
    fn kill(mut self, ctx: &str) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!(
                "{ctx}: child exited before the kill ({st}); stderr:\n{}",
                self.stderr_text()
            );
        }
        self.child.kill().unwrap();
        let st = self.child.wait().unwrap();
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "{ctx}: child ended by {st}, not by our SIGKILL; stderr:\n{}",
            self.stderr_text()
        );
    }
}

impl Drop for Running {
    /// A parent that fails mid-cycle leaves no child behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Everything the journal acknowledged, accumulated over all cycles.
#[derive(Default)]
struct Acks {
    /// Read position in the journal file.
    pos: u64,
    /// Acknowledged enqueues: offset -> (key, payload).
    enqueued: HashMap<u64, (String, String)>,
    /// Acknowledged leases: fence -> offset. A fence seen twice is a reused token.
    leased: HashMap<u64, u64>,
    /// Acknowledged completions: offset -> fence.
    completed: HashMap<u64, u64>,
    /// Acknowledged dead-lettering failures: offset -> fence.
    dead: HashMap<u64, u64>,
    /// Acknowledged retries and releases: (offset, fence).
    moved_on: Vec<(u64, u64)>,
    /// Acknowledged retries.
    retried: u64,
    /// Acknowledged releases.
    released: u64,
    /// Highest fence ever acknowledged (journal and probes).
    max_fence: u64,
}

impl Acks {
    /// Drops a torn last line (the child died inside its write) and reads
    /// every new complete line.
    fn read(&mut self, path: &Path, ctx: &str) {
        let mut f = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(_) => return,
        };
        let mut buf = Vec::new();
        f.seek(SeekFrom::Start(self.pos)).unwrap();
        f.read_to_end(&mut buf).unwrap();
        let keep = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < buf.len() {
            f.set_len(self.pos + keep as u64).unwrap();
        }
        self.pos += keep as u64;
        let text = std::str::from_utf8(&buf[..keep]).expect("journal is utf-8");
        for line in text.lines() {
            self.line(line, ctx);
        }
    }

    fn line(&mut self, line: &str, ctx: &str) {
        let w: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| -> u64 {
            w.get(i)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{ctx}: bad journal line {line:?}"))
        };
        match w[0] {
            "E" => {
                let prev = self
                    .enqueued
                    .insert(num(1), (w[2].to_string(), w[3].to_string()));
                assert!(
                    prev.is_none(),
                    "{ctx}: offset {} acknowledged to two enqueues",
                    num(1)
                );
            }
            "L" => {
                let (off, fence) = (num(1), num(2));
                if let Some(other) = self.leased.insert(fence, off) {
                    panic!("{ctx}: fence {fence} reused: leases of {other} and {off}");
                }
                self.max_fence = self.max_fence.max(fence);
            }
            "C" | "F" | "R" => {
                let (off, fence) = (num(1), num(2));
                assert_eq!(
                    self.leased.get(&fence),
                    Some(&off),
                    "{ctx}: {line:?} without its lease"
                );
                match (w[0], w.get(3).copied()) {
                    ("C", _) => {
                        let prev = self.completed.insert(off, fence);
                        assert!(prev.is_none(), "{ctx}: task {off} completed twice");
                    }
                    ("F", Some("D")) => {
                        let prev = self.dead.insert(off, fence);
                        assert!(prev.is_none(), "{ctx}: task {off} dead-lettered twice");
                    }
                    ("F", Some("R")) => {
                        self.retried += 1;
                        self.moved_on.push((off, fence));
                    }
                    ("R", None) => {
                        self.released += 1;
                        self.moved_on.push((off, fence));
                    }
                    _ => panic!("{ctx}: bad journal line {line:?}"),
                }
            }
            _ => panic!("{ctx}: bad journal line {line:?}"),
        }
    }
}

/// The parent's picture of the database, refreshed after every crash.
struct Model {
    dir: PathBuf,
    acks: Acks,
    /// Every task by offset, as last read.
    tasks: Vec<TaskInfo>,
    last_stats: Option<QueueStats>,
    probe_fences: HashSet<u64>,
}

fn totals_grew(old: &Totals, new: &Totals) -> bool {
    new.enqueued >= old.enqueued
        && new.completed >= old.completed
        && new.failed >= old.failed
        && new.retried >= old.retried
        && new.dead_lettered >= old.dead_lettered
        && new.lease_expired >= old.lease_expired
        && new.released >= old.released
}

impl Model {
    /// A fresh database in `dir` with the load's queues, and its model.
    fn create(dir: &Path) -> Model {
        let db = Db::open(dir.join(DB_NAME), Options::default()).unwrap();
        db.create_queue(Q, queue_cfg()).unwrap();
        db.create_queue(PROBE, QueueConfig::default()).unwrap();
        db.close();
        Model {
            dir: dir.to_path_buf(),
            acks: Acks::default(),
            tasks: Vec::new(),
            last_stats: None,
            probe_fences: HashSet::new(),
        }
    }

    /// Reopens the file after a kill and checks every invariant. With
    /// `full`, tasks already terminal are read again and must be unchanged.
    /// Answers whether opening cut an unfinished last group.
    fn verify(&mut self, ctx: &str, full: bool) -> bool {
        let path = self.dir.join(DB_NAME);
        // A frozen clock: no timer fires between the reads below.
        let opts = Options {
            clock: Arc::new(ManualClock::new(now_ms())),
            ..Options::default()
        };
        let db = match Db::open(&path, opts) {
            Ok(db) => db,
            Err(e) => panic!("{ctx}: reopen after SIGKILL failed: {e} ({:?})", e.code()),
        };
        let torn = db.log_recovery().torn.is_some();
        self.acks.read(&self.dir.join(JOURNAL), ctx);
        db.sync().unwrap();
        let s = db.stats(Q).unwrap_or_else(|e| panic!("{ctx}: stats: {e}"));

        // Stats are consistent in themselves and never go back.
        let t = &s.totals;
        assert_eq!(t.enqueued, s.next_offset, "{ctx}: {s:?}");
        assert_eq!(
            s.ready + s.leased + s.retry_wait + s.done + s.dead,
            s.next_offset,
            "{ctx}: state counts do not add up: {s:?}"
        );
        assert_eq!(s.dead, t.dead_lettered, "{ctx}: {s:?}");
        // Every `fail` either retried or dead-lettered; the other dead
        // letters came from expired leases.
        assert!(t.retried <= t.failed, "{ctx}: {t:?}");
        let fail_dead = t.failed - t.retried;
        assert!(fail_dead <= t.dead_lettered, "{ctx}: {t:?}");
        assert!(
            t.dead_lettered - fail_dead <= t.lease_expired,
            "{ctx}: {t:?}"
        );
        let a = &self.acks;
        assert!(
            a.completed.len() as u64 <= t.completed
                && a.dead.len() as u64 <= fail_dead
                && a.retried <= t.retried
                && a.released <= t.released,
            "{ctx}: totals below the acknowledged counts: {t:?}"
        );
        if let Some(old) = &self.last_stats {
            assert!(
                totals_grew(&old.totals, t) && s.next_offset >= old.next_offset,
                "{ctx}: committed totals went back: {:?} -> {t:?}",
                old.totals
            );
        }

        // Refresh the task table: new offsets, unfinished ones, and (full)
        // every terminal one, which must not have changed.
        for off in 0..self.tasks.len() as u64 {
            let old = &self.tasks[off as usize];
            if full || !old.state.is_terminal() {
                let new = db
                    .get_task(Q, off)
                    .unwrap_or_else(|e| panic!("{ctx}: task {off} lost: {e}"));
                if old.state.is_terminal() {
                    assert_eq!(&new, old, "{ctx}: terminal task {off} changed");
                }
                self.tasks[off as usize] = new;
            }
        }
        let known = self.tasks.len() as u64;
        for off in known..s.next_offset {
            let t = db
                .get_task(Q, off)
                .unwrap_or_else(|e| panic!("{ctx}: task {off} below next_offset: {e}"));
            assert_eq!((t.offset, t.queue.as_str()), (off, Q), "{ctx}");
            if t.state == TaskState::Dead {
                let f = db.faults(Q, off).unwrap();
                assert_eq!(
                    f.last().map(|f| f.attempt),
                    Some(t.attempt),
                    "{ctx}: dead letter {off} without its last fault: {f:?}"
                );
            }
            self.tasks.push(t);
        }
        assert!(
            matches!(db.get_task(Q, s.next_offset), Err(Error::NotFound(_))),
            "{ctx}: a task beyond next_offset"
        );

        // State counts agree with the stats.
        let count = |st: TaskState| self.tasks.iter().filter(|t| t.state == st).count() as u64;
        let (ready, retry) = (count(TaskState::Ready), count(TaskState::RetryWait));
        assert_eq!(count(TaskState::Done), s.done, "{ctx}: {s:?}");
        assert_eq!(count(TaskState::Dead), s.dead, "{ctx}: {s:?}");
        assert_eq!(count(TaskState::Leased), s.leased, "{ctx}: {s:?}");
        assert_eq!(ready + retry, s.ready + s.retry_wait, "{ctx}: {s:?}");
        assert!(s.retry_wait <= retry, "{ctx}: {s:?}");

        // Per task: results belong to the completing lease; fences are unique.
        let mut fences = HashSet::new();
        let mut max_task_fence = 0;
        for t in &self.tasks {
            if t.fence > 0 {
                assert!(
                    fences.insert(t.fence),
                    "{ctx}: fence {} on two tasks",
                    t.fence
                );
                max_task_fence = max_task_fence.max(t.fence);
            }
            if t.state == TaskState::Done {
                let want = format!("r-{}", t.fence).into_bytes();
                assert_eq!(
                    t.result.as_ref(),
                    Some(&want),
                    "{ctx}: result of {}",
                    t.offset
                );
            }
            if t.state == TaskState::Leased {
                assert!(t.worker.is_some() && t.fence > 0, "{ctx}: {t:?}");
            }
        }

        // Lane order: per key, a terminal prefix with strictly increasing
        // fences (each task leased only after the one before finished), then
        // at most one started head, then tasks never leased.
        let mut lanes: HashMap<&str, Vec<&TaskInfo>> = HashMap::new();
        for t in &self.tasks {
            lanes.entry(t.key.as_str()).or_default().push(t);
        }
        for (key, lane) in &lanes {
            let mut last = 0;
            let mut i = 0;
            while i < lane.len() && lane[i].state.is_terminal() {
                assert!(
                    lane[i].fence > last,
                    "{ctx}: lane {key} order violated at offset {} (fence {} after {last})",
                    lane[i].offset,
                    lane[i].fence
                );
                last = lane[i].fence;
                i += 1;
            }
            if let Some(head) = lane.get(i) {
                assert!(
                    head.fence == 0 || head.fence > last,
                    "{ctx}: lane {key} head {} leased (fence {}) before its predecessor finished (fence {last})",
                    head.offset,
                    head.fence
                );
            }
            for t in lane.iter().skip(i + 1) {
                assert!(
                    t.state == TaskState::Ready && t.fence == 0 && t.attempt == 0,
                    "{ctx}: lane {key}: offset {} was worked on behind unfinished offset {}: {t:?}",
                    t.offset,
                    lane[i].offset
                );
            }
        }

        // Every acknowledgement is in the file.
        let a = &self.acks;
        for (off, (key, payload)) in &a.enqueued {
            let t = self
                .tasks
                .get(*off as usize)
                .unwrap_or_else(|| panic!("{ctx}: acknowledged enqueue {off} lost"));
            assert_eq!(&t.key, key, "{ctx}: key of {off}");
            assert_eq!(
                t.payload.as_deref(),
                Some(payload.as_bytes()),
                "{ctx}: payload of {off}"
            );
        }
        let task = |off: u64| -> &TaskInfo {
            self.tasks
                .get(off as usize)
                .unwrap_or_else(|| panic!("{ctx}: leased task {off} beyond the log"))
        };
        for (fence, off) in &a.leased {
            assert!(
                task(*off).fence >= *fence,
                "{ctx}: lease {off}/{fence} lost"
            );
        }
        for (off, fence) in &a.completed {
            let t = task(*off);
            assert!(
                t.state == TaskState::Done && t.fence == *fence,
                "{ctx}: acknowledged completion {off}/{fence} lost: {t:?}"
            );
        }
        for (off, fence) in &a.dead {
            let t = task(*off);
            assert!(
                t.state == TaskState::Dead && t.fence == *fence,
                "{ctx}: acknowledged dead letter {off}/{fence} lost: {t:?}"
            );
        }
        for (off, fence) in &a.moved_on {
            assert!(
                task(*off).fence >= *fence,
                "{ctx}: fail/release {off}/{fence} lost"
            );
        }

        // The next lease gets a fence above every one handed out before.
        db.enqueue(PROBE, "p", b"probe", EnqueueOptions::default())
            .unwrap();
        let l = db.claim(PROBE, "parent", ClaimOptions::default()).unwrap();
        assert_eq!(l.len(), 1, "{ctx}: probe not claimable");
        let f = l[0].token.fence;
        assert!(
            f > self.acks.max_fence && f > max_task_fence,
            "{ctx}: token reused: fence {f} after acknowledged {} / stored {max_task_fence}",
            self.acks.max_fence
        );
        assert!(
            !self.acks.leased.contains_key(&f) && self.probe_fences.insert(f),
            "{ctx}: probe fence {f} seen before"
        );
        self.acks.max_fence = f;
        db.complete(l[0].token, b"").unwrap();
        db.close();
        self.last_stats = Some(s);
        torn
    }
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged() {
    let cycles = env_u64("ORDQ_CRASH_CYCLES").unwrap_or(100);
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tmp("load");
    println!(
        "crash load: {cycles} cycles, seed {seed}, dir {}",
        dir.display()
    );
    let mut m = Model::create(&dir);
    let started = Instant::now();
    let mut early = 0;
    for cycle in 0..cycles {
        let ctx = format!("cycle {cycle} (seed {seed}, dir {})", dir.display());
        let mut child = spawn_child(
            &[
                (ENV_LOAD, dir.display().to_string()),
                (ENV_SEED, rng.next().to_string()),
            ],
            &dir.join("child-stderr"),
        );
        if rng.below(5) == 0 {
            // Kill during start-up: open, recovery, queue set-up.
            early += 1;
            pause(Duration::from_millis(rng.range(1, 40)));
        } else {
            child.wait_ready(&ctx);
            pause(Duration::from_millis(rng.range(20, 150)));
        }
        child.kill(&ctx);
        m.verify(&ctx, cycle % 10 == 9 || cycle + 1 == cycles);
    }
    let s = m.last_stats.as_ref().unwrap();
    println!(
        "crash load: {cycles} cycles ({early} killed during start-up) in {:.1}s; \
         {} tasks, {} done, {} dead; journal: {} enqueues, {} leases, {} completions",
        started.elapsed().as_secs_f64(),
        s.next_offset,
        s.done,
        s.dead,
        m.acks.enqueued.len(),
        m.acks.leased.len(),
        m.acks.completed.len()
    );
    assert!(
        !m.acks.completed.is_empty() && !m.acks.enqueued.is_empty(),
        "the children did no work"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Each failpoint with the most hits a child makes before it dies there.
#[cfg(feature = "failpoints")]
const FAILPOINTS: &[(&str, u64)] = &[
    ("wal-mid-group", 60),
    ("wal-before-sync", 60),
    ("writer-after-sync", 60),
    ("checkpoint-mid", 6),
    ("wal-roll", 3),
];

#[cfg(feature = "failpoints")]
#[test]
fn sigkill_at_failpoints_loses_nothing_acknowledged() {
    let cycles = env_u64("ORDQ_FAILPOINT_CYCLES").unwrap_or(200);
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tmp("failpoints");
    println!(
        "failpoints: {cycles} cycles, seed {seed}, dir {}",
        dir.display()
    );
    let mut m = Model::create(&dir);
    let started = Instant::now();
    let mut hits: HashMap<&str, u64> = HashMap::new();
    for cycle in 0..cycles {
        let (point, most) = FAILPOINTS[cycle as usize % FAILPOINTS.len()];
        let n = rng.range(1, most + 1);
        let ctx = format!(
            "cycle {cycle}, {point} hit {n} (seed {seed}, dir {})",
            dir.display()
        );
        let child = spawn_child(
            &[
                (ENV_LOAD, dir.display().to_string()),
                (ENV_SEED, rng.next().to_string()),
                (ENV_FAILPOINT, format!("{point}:{n}")),
            ],
            &dir.join("child-stderr"),
        );
        let died = child.wait_self_kill(Duration::from_secs(20), &ctx);
        let torn = m.verify(&ctx, cycle % 10 == 9 || cycle + 1 == cycles);
        if died {
            *hits.entry(point).or_default() += 1;
            // Only a death inside a group's write leaves a group unfinished.
            assert_eq!(
                torn,
                point == "wal-mid-group",
                "{ctx}: opening cut an unfinished group: {torn}"
            );
        }
    }
    println!(
        "failpoints: {cycles} cycles in {:.1}s; deaths per failpoint: {hits:?}; journal: {} enqueues, {} leases, {} completions",
        started.elapsed().as_secs_f64(),
        m.acks.enqueued.len(),
        m.acks.leased.len(),
        m.acks.completed.len()
    );
    for (point, _) in FAILPOINTS {
        let per = cycles / FAILPOINTS.len() as u64;
        assert!(
            hits.get(point).copied().unwrap_or(0) * 10 >= per * 9,
            "failpoint {point} was reached in fewer than 90% of its {per} cycles: {hits:?}"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

fn creating_temps(dir: &Path, name: &str) -> Vec<String> {
    let prefix = format!(".{name}.creating.");
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn sigkill_during_creation_leaves_nothing_or_a_whole_database() {
    let cycles = env_u64("ORDQ_CRASH_CREATE_CYCLES").unwrap_or(100);
    let seed = seed();
    let mut rng = Rng(seed ^ 0xc0ff_ee00);
    let dir = tmp("create");
    println!(
        "crash create: {cycles} cycles, seed {seed}, dir {}",
        dir.display()
    );
    // How long one creation takes here, to aim kills into it.
    let t0 = Instant::now();
    Db::open(dir.join("calibrate.ordq"), Options::default())
        .unwrap()
        .close();
    let create_us = (t0.elapsed().as_micros() as u64).max(200);
    let (mut absent, mut whole, mut torn) = (0, 0, 0);
    let started = Instant::now();
    for cycle in 0..cycles {
        let ctx = format!("create cycle {cycle} (seed {seed}, dir {})", dir.display());
        let name = format!("c{cycle}.ordq");
        let path = dir.join(&name);
        let mut child = spawn_child(
            &[(ENV_CREATE, path.display().to_string())],
            &dir.join("child-stderr"),
        );
        if cycle % 2 == 0 {
            pause(Duration::from_micros(rng.below(5_000)));
        } else {
            child.wait_ready(&ctx);
            pause(Duration::from_micros(rng.below(2 * create_us)));
        }
        child.kill(&ctx);
        let temps = creating_temps(&dir, &name);
        if !temps.is_empty() {
            torn += 1;
        }
        let existed = path.exists();
        if existed {
            whole += 1;
        } else {
            absent += 1;
        }
        // Either way the path opens (creating it if absent) as an ordq database.
        let db = Db::open(&path, Options::default())
            .unwrap_or_else(|e| panic!("{ctx}: open after kill (existed: {existed}): {e}"));
        assert_eq!(db.list_queues().unwrap(), vec![], "{ctx}");
        db.create_queue("q", QueueConfig::default()).unwrap();
        db.close();
        assert_eq!(
            creating_temps(&dir, &name),
            Vec::<String>::new(),
            "{ctx}: temp files of the dead creator were not swept (before: {temps:?})"
        );
        let db = Db::open(&path, Options::default()).unwrap();
        assert_eq!(db.queue("q").unwrap().name, "q", "{ctx}");
        db.close();
    }
    println!(
        "crash create: {cycles} cycles in {:.1}s (creation ~{create_us} us): \
         {absent} killed before the file existed, {whole} after, {torn} left a temp file",
        started.elapsed().as_secs_f64()
    );
    fs::remove_dir_all(&dir).unwrap();
}
