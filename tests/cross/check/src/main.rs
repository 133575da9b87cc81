//! `ordq-cross-check`: verifies a finished cross-language run
//! (tests/cross/scenario.py, `make test-cross`, `make demo`) from the
//! database file itself, after the broker has shut down.
//!
//! ```text
//! ordq-cross-check --db DIR/db.ordq --dir DIR [--queue cross] [--min-share 0.05]
//!     [--expect-kill] [--expect-zombies N]
//! ```
//!
//! It reads the log, the event chain, the task states and the fault store
//! (the redb tables of docs/FORMAT.md, then `Db::get_task`/`Db::faults`),
//! plus the producer's and workers' reports in `DIR`, and checks:
//!
//! - the log holds exactly the producer's tasks, in producer order, and
//!   both hash chains verify;
//! - every task is done or dead exactly once: one terminal event each,
//!   matching its state; no task left unfinished;
//! - per key, the terminal events appear in the event chain (commit
//!   order) in offset order;
//! - no stale token committed: each done event's fence is the task's last
//!   lease's fence, its worker is the task's worker, and the result names
//!   that same worker and fence;
//! - behaviours: `ok` tasks done, `once` tasks done after failing attempt
//!   1, `always` tasks dead after `max_attempts` faults; every fault is
//!   accounted for (one per unfinished attempt);
//! - the worker killed with SIGKILL held leases that expired under its name
//!   and were finished later under a higher fence (or, when the expired
//!   lease was the task's last attempt, dead-lettered by that expiry);
//! - every stale-token completion a worker tried (the zombie) was refused
//!   with LEASE_LOST after the task had been leased again;
//! - the engine's `rollbacks` total equals the refused zombie completes
//!   plus the LEASE_LOST answers to complete/fail the workers report;
//! - each runtime (go, rust, python) completed at least `--min-share` of
//!   the tasks.
//!
//! It prints a report and exits 0 when every check holds, 1 when one does
//! not (listing the first violations), 2 on bad usage or unreadable input.

use ordq_core::hash::{chain, key_hash, Digest, GENESIS};
use ordq_core::record::{Chained, Event, EventKind, LogHeader, QueueState};
use ordq_core::tables::{EVENTS, FAULTS, LOG, QSTATE, QUEUES};
use ordq_core::{Db, Fault, FaultKind, Options, QueueInfo, QueueStats, TaskInfo, TaskState};
use redb::{ReadOnlyDatabase, ReadableDatabase};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "ordq-cross-check --db FILE --dir DIR [--queue cross] [--min-share 0.05] \
    [--expect-kill] [--expect-zombies N]";

struct Args {
    db: PathBuf,
    dir: PathBuf,
    queue: String,
    min_share: f64,
    expect_kill: bool,
    expect_zombies: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut db = None;
    let mut dir = None;
    let mut a = Args {
        db: PathBuf::new(),
        dir: PathBuf::new(),
        queue: "cross".into(),
        min_share: 0.05,
        expect_kill: false,
        expect_zombies: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--db" => db = Some(PathBuf::from(val("--db")?)),
            "--dir" => dir = Some(PathBuf::from(val("--dir")?)),
            "--queue" => a.queue = val("--queue")?,
            "--min-share" => {
                a.min_share = val("--min-share")?
                    .parse()
                    .map_err(|_| "--min-share: not a number")?
            }
            "--expect-zombies" => {
                a.expect_zombies = val("--expect-zombies")?
                    .parse()
                    .map_err(|_| "--expect-zombies: not a number")?
            }
            "--expect-kill" => a.expect_kill = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    a.db = db.ok_or("--db is required")?;
    a.dir = dir.ok_or("--dir is required")?;
    Ok(a)
}

/// One record of the log, with its decoded payload.
struct LogRec {
    key: String,
    /// Producer index (`"i"`).
    index: u64,
    behaviour: String,
}

/// One terminal (done/dead) event, with its place in the event chain.
struct Terminal {
    seq: u64,
    ev: Event,
    /// The result (tail) of a done event.
    result: Vec<u8>,
}

/// What the raw tables hold.
struct Raw {
    info: QueueInfo,
    qstate: QueueState,
    log: Vec<LogRec>,
    events: u64,
    /// Terminal events by offset (several = a violation).
    terminal: HashMap<u64, Vec<Terminal>>,
    /// Terminal events' offsets in chain order.
    terminal_order: Vec<u64>,
    /// Non-terminal events (redrive, purge): none expected.
    other_events: Vec<(u64, EventKind, u64)>,
    /// `(offset, fence) -> fault`.
    faults: BTreeMap<(u64, u64), Fault>,
    log_head: Digest,
    event_head: Digest,
}

/// Collected violations, grouped by check.
#[derive(Default)]
struct Violations {
    by_check: BTreeMap<&'static str, Vec<String>>,
}

impl Violations {
    fn add(&mut self, check: &'static str, msg: String) {
        self.by_check.entry(check).or_default().push(msg);
    }
    fn count(&self, check: &'static str) -> usize {
        self.by_check.get(check).map_or(0, Vec::len)
    }
    fn ok(&self, check: &'static str) -> &'static str {
        if self.count(check) == 0 {
            "OK"
        } else {
            "FAILED"
        }
    }
}

fn read_raw(path: &Path, queue: &str) -> Res<Raw> {
    let db = ReadOnlyDatabase::open(path)?;
    let rtx = db.begin_read()?;
    let info: QueueInfo = {
        let t = rtx.open_table(QUEUES)?;
        let v = t
            .get(queue)?
            .ok_or(format!("no queue {queue:?} in {}", path.display()))?;
        serde_json::from_slice(v.value())?
    };
    let q = info.id;
    let qstate: QueueState = {
        let t = rtx.open_table(QSTATE)?;
        let v = t.get(q)?.ok_or("no queue state")?;
        serde_json::from_slice(v.value())?
    };

    let mut log = Vec::new();
    let mut head = GENESIS;
    for row in rtx.open_table(LOG)?.range((q, 0)..=(q, u64::MAX))? {
        let (k, v) = row?;
        let (_, offset) = k.value();
        let bytes = v.value();
        let c = Chained::split(bytes)?;
        head = chain(&head, c.body);
        if c.hash != head {
            return Err(format!("log chain broken at offset {offset}").into());
        }
        let (_, hdr) = LogHeader::decode(bytes)?;
        if offset != log.len() as u64 || hdr.offset != offset {
            return Err(format!("log offsets not contiguous at {offset}").into());
        }
        let payload = hdr
            .payload(bytes)?
            .ok_or(format!("payload of task {offset} is gone"))?;
        let p: Value = serde_json::from_slice(payload)?;
        let (Some(index), Some(behaviour)) = (p["i"].as_u64(), p["b"].as_str()) else {
            return Err(format!("task {offset}: unexpected payload {p}").into());
        };
        if p["k"].as_str() != Some(hdr.key.as_str()) {
            return Err(format!("task {offset}: payload key {} is not {}", p["k"], hdr.key).into());
        }
        log.push(LogRec {
            key: hdr.key,
            index,
            behaviour: behaviour.to_string(),
        });
    }
    let log_head = head;

    let mut terminal: HashMap<u64, Vec<Terminal>> = HashMap::new();
    let mut terminal_order = Vec::new();
    let mut other_events = Vec::new();
    let mut events = 0u64;
    let mut head = GENESIS;
    for row in rtx.open_table(EVENTS)?.range((q, 0)..=(q, u64::MAX))? {
        let (k, v) = row?;
        let (_, seq) = k.value();
        let c = Chained::split(v.value())?;
        head = chain(&head, c.body);
        if c.hash != head || seq != events {
            return Err(format!("event chain broken at seq {seq}").into());
        }
        events += 1;
        let (_, ev) = Event::decode(v.value())?;
        match ev.kind {
            EventKind::Done | EventKind::Dead => {
                terminal_order.push(ev.offset);
                terminal.entry(ev.offset).or_default().push(Terminal {
                    seq,
                    result: c.tail.to_vec(),
                    ev,
                });
            }
            kind => other_events.push((seq, kind, ev.offset)),
        }
    }

    let mut faults = BTreeMap::new();
    for row in rtx
        .open_table(FAULTS)?
        .range((q, 0, 0)..=(q, u64::MAX, u64::MAX))?
    {
        let (k, v) = row?;
        let (_, offset, fence) = k.value();
        faults.insert((offset, fence), serde_json::from_slice(v.value())?);
    }
    Ok(Raw {
        info,
        qstate,
        log,
        events,
        terminal,
        terminal_order,
        other_events,
        faults,
        log_head,
        event_head: head,
    })
}

/// Every task's state and faults, and the queue's stats, through the
/// engine's API.
/// Each task's state with its faults, by offset.
type TaskRows = Vec<(TaskInfo, Vec<Fault>)>;

fn read_tasks(path: &Path, queue: &str, n: u64) -> Res<(TaskRows, QueueStats)> {
    let db = Db::open(path, Options::default())?;
    let mut out = Vec::with_capacity(n as usize);
    for off in 0..n {
        out.push((db.get_task(queue, off)?, db.faults(queue, off)?));
    }
    let stats = db.stats(queue)?;
    db.close();
    Ok((out, stats))
}

fn read_json(path: &Path) -> Res<Value> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// The JSON files of `dir` whose name starts with `prefix`, sorted.
fn json_files(dir: &Path, prefix: &str) -> Res<Vec<PathBuf>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(prefix) && name.ends_with(".json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `12345` -> `"12,345"`.
fn num(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn runtime_of(worker: &str) -> &'static str {
    match worker.split('-').next() {
        Some("go") => "go",
        Some("rs") => "rust",
        Some("py") => "python",
        _ => "other",
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\nusage: {USAGE}");
            std::process::exit(2);
        }
    };
    match check(&args) {
        Ok(v) if v.by_check.is_empty() => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("ordq-cross-check: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs every check, prints the report and returns the violations found.
fn check(a: &Args) -> Res<Violations> {
    let producer = read_json(&a.dir.join("producer.json"))?;
    let raw = read_raw(&a.db, &a.queue)?;
    let n = raw.log.len() as u64;
    let (tasks, stats) = read_tasks(&a.db, &a.queue, n)?;
    let max_attempts = raw.info.config.max_attempts;
    let mut v = Violations::default();

    // -- the log: the producer's tasks, in its order; chains verified.
    let want = |k: &str| producer[k].as_u64().unwrap_or(u64::MAX);
    if n != want("tasks") || raw.qstate.next_offset != n {
        v.add(
            "log",
            format!(
                "log has {n} records (next offset {}), the producer enqueued {}",
                raw.qstate.next_offset,
                want("tasks")
            ),
        );
    }
    let mut by_behaviour: BTreeMap<&str, u64> = BTreeMap::new();
    for (off, r) in raw.log.iter().enumerate() {
        *by_behaviour.entry(r.behaviour.as_str()).or_default() += 1;
        if r.index != off as u64 {
            v.add(
                "log",
                format!("offset {off} holds producer task {}", r.index),
            );
        }
    }
    for b in ["ok", "once", "always"] {
        let got = by_behaviour.get(b).copied().unwrap_or(0);
        if got != want(b) {
            v.add(
                "log",
                format!("{got} {b} tasks in the log, producer says {}", want(b)),
            );
        }
    }
    if raw.log_head != raw.qstate.log_head || raw.event_head != raw.qstate.event_head {
        v.add("log", "a chain head differs from the queue state's".into());
    }
    let keys: std::collections::HashSet<&str> = raw.log.iter().map(|r| r.key.as_str()).collect();
    if keys.len() as u64 != want("keys") {
        v.add(
            "log",
            format!(
                "{} keys in the log, producer says {}",
                keys.len(),
                want("keys")
            ),
        );
    }
    for (seq, kind, off) in &raw.other_events {
        v.add(
            "once",
            format!("unexpected {kind:?} event #{seq} for task {off}"),
        );
    }

    // -- per task: finished exactly once; fencing; behaviours and faults.
    let mut done = 0u64;
    let mut dead = 0u64;
    let mut once_at2 = 0u64;
    let mut once_later = 0u64;
    let mut done_by_worker: BTreeMap<String, u64> = BTreeMap::new();
    let mut dead_by_worker: BTreeMap<String, u64> = BTreeMap::new();
    let mut expired_total = 0u64;
    let mut failed_total = 0u64;
    for (off, (t, faults)) in tasks.iter().enumerate() {
        let off = off as u64;
        let rec = &raw.log[off as usize];
        let terms = raw.terminal.get(&off).map(Vec::as_slice).unwrap_or(&[]);
        let [term] = terms else {
            v.add(
                "once",
                format!(
                    "task {off} ({}) has {} done/dead events (seqs {:?}), state {}",
                    rec.key,
                    terms.len(),
                    terms.iter().map(|t| t.seq).collect::<Vec<_>>(),
                    t.state.as_str()
                ),
            );
            continue;
        };
        let ev = &term.ev;
        match (ev.kind, t.state) {
            (EventKind::Done, TaskState::Done) => done += 1,
            (EventKind::Dead, TaskState::Dead) => dead += 1,
            (k, s) => {
                v.add(
                    "once",
                    format!("task {off}: {k:?} event but state {}", s.as_str()),
                );
                continue;
            }
        }
        // Fencing: the commit came from the task's last lease.
        if ev.fence != t.fence || Some(&ev.worker) != t.worker.as_ref() || ev.attempt != t.attempt {
            v.add(
                "fencing",
                format!(
                    "task {off}: event (fence {}, worker {}, attempt {}) vs task (fence {}, worker {:?}, attempt {})",
                    ev.fence, ev.worker, ev.attempt, t.fence, t.worker, t.attempt
                ),
            );
        }
        if ev.lane != key_hash(&rec.key) {
            v.add(
                "order",
                format!(
                    "task {off}: event lane {} is not key {}'s",
                    ev.lane, rec.key
                ),
            );
        }
        if ev.kind == EventKind::Done {
            *done_by_worker.entry(ev.worker.clone()).or_default() += 1;
            let res: Value = serde_json::from_slice(&term.result).unwrap_or(Value::Null);
            if res["w"].as_str() != Some(ev.worker.as_str())
                || res["f"].as_u64() != Some(ev.fence)
                || res.get("zombie").is_some()
            {
                v.add(
                    "fencing",
                    format!(
                        "task {off}: result {} committed under fence {} by {}",
                        String::from_utf8_lossy(&term.result),
                        ev.fence,
                        ev.worker
                    ),
                );
            }
            if t.result.as_deref() != Some(term.result.as_slice()) {
                v.add(
                    "fencing",
                    format!("task {off}: stored result differs from its done event's"),
                );
            }
        } else {
            *dead_by_worker.entry(ev.worker.clone()).or_default() += 1;
        }
        // Faults: one per unfinished attempt, attempts 1..n in order; the
        // raw fault store and Db::faults agree.
        let raw_faults: Vec<(&(u64, u64), &Fault)> =
            raw.faults.range((off, 0)..=(off, u64::MAX)).collect();
        let unfinished = if ev.kind == EventKind::Done {
            t.attempt - 1
        } else {
            t.attempt
        };
        let attempts_ok = faults.len() as u32 == unfinished
            && faults
                .iter()
                .enumerate()
                .all(|(i, f)| f.attempt == i as u32 + 1)
            && raw_faults.len() == faults.len()
            && raw_faults.iter().zip(faults).all(|((_, a), b)| *a == b);
        if !attempts_ok {
            v.add(
                "faults",
                format!(
                    "task {off}: attempt {} with {} faults: {faults:?}",
                    t.attempt,
                    faults.len()
                ),
            );
        }
        let expired = faults
            .iter()
            .filter(|f| f.kind == FaultKind::Expired)
            .count() as u32;
        let failed = faults.len() as u32 - expired;
        expired_total += expired as u64;
        failed_total += failed as u64;
        match rec.behaviour.as_str() {
            "ok" if t.state != TaskState::Done || failed > 0 => v.add(
                "behaviour",
                format!(
                    "ok task {off} is {} after {failed} failures",
                    t.state.as_str()
                ),
            ),
            "once" => {
                let first_failed = faults.first().map(|f| f.kind) == Some(FaultKind::Failed);
                if t.state != TaskState::Done
                    || t.attempt < 2
                    || failed > 1
                    || (failed == 1 && !first_failed)
                {
                    v.add(
                        "behaviour",
                        format!(
                            "fail-once task {off} is {} at attempt {}: {faults:?}",
                            t.state.as_str(),
                            t.attempt
                        ),
                    );
                } else if t.attempt == 2 {
                    once_at2 += 1;
                } else {
                    once_later += 1;
                }
            }
            "always"
                if t.state != TaskState::Dead
                    || t.attempt != max_attempts
                    || faults.len() as u32 != max_attempts =>
            {
                v.add(
                    "behaviour",
                    format!(
                        "fail-always task {off} is {} at attempt {} with {} faults",
                        t.state.as_str(),
                        t.attempt,
                        faults.len()
                    ),
                )
            }
            _ => {}
        }
    }
    if done + dead != n {
        v.add("once", format!("{done} done + {dead} dead != {n} tasks"));
    }

    // -- order: per key, terminal events in commit order rise with offsets.
    let mut last: HashMap<&str, u64> = HashMap::new();
    for &off in &raw.terminal_order {
        let key = raw.log[off as usize].key.as_str();
        if let Some(&prev) = last.get(key) {
            if off <= prev {
                v.add(
                    "order",
                    format!("key {key}: task {off} finished after task {prev}"),
                );
            }
        }
        last.insert(key, off);
    }
    // -- the kill: leases held by the killed worker expired under its name.
    let mut kill_lines = Vec::new();
    let hung = json_files(&a.dir.join("ctl"), "hung-")?;
    if a.expect_kill && hung.is_empty() {
        v.add(
            "kill",
            "no worker was killed while holding leases (no ctl/hung-*.json)".into(),
        );
    }
    for path in &hung {
        let m = read_json(path)?;
        let id = m["id"].as_str().unwrap_or("?").to_string();
        let held = m["leases"].as_array().cloned().unwrap_or_default();
        if held.is_empty() {
            v.add("kill", format!("{id} held no leases when killed"));
        }
        let mut later_by: BTreeMap<String, u64> = BTreeMap::new();
        let mut dead_on_expiry = 0u64;
        for l in &held {
            let (off, fence) = (
                l["offset"].as_u64().unwrap_or(u64::MAX),
                l["fence"].as_u64().unwrap_or(0),
            );
            match raw.faults.get(&(off, fence)) {
                Some(f) if f.kind == FaultKind::Expired && f.worker == id => {}
                other => v.add(
                    "kill",
                    format!("{id}'s lease of task {off} (fence {fence}): fault {other:?}"),
                ),
            }
            match raw.terminal.get(&off).and_then(|t| t.first()) {
                Some(t) if t.ev.fence > fence => {
                    *later_by.entry(t.ev.worker.clone()).or_default() += 1
                }
                // The expired lease was the task's last attempt: the expiry
                // itself dead-letters it, under that lease's fence and name.
                Some(t)
                    if t.ev.kind == EventKind::Dead
                        && t.ev.fence == fence
                        && t.ev.worker == id
                        && t.ev.attempt >= raw.info.config.max_attempts =>
                {
                    dead_on_expiry += 1
                }
                _ => v.add(
                    "kill",
                    format!("task {off} was not finished under a fence above {fence}"),
                ),
            }
        }
        let mut by: Vec<String> = later_by.iter().map(|(w, c)| format!("{w} {c}")).collect();
        if dead_on_expiry > 0 {
            by.push(format!(
                "{dead_on_expiry} dead-lettered by the expiry of their last attempt"
            ));
        }
        kill_lines.push(format!(
            "{id} was SIGKILLed holding {} leases: each expired as a fault of {id} at its fence, \
             and was finished later under a higher fence ({})",
            held.len(),
            by.join(", ")
        ));
    }

    // -- worker reports: zombie tries and acknowledged completions.
    let reports: Vec<Value> = json_files(&a.dir.join("workers"), "")?
        .iter()
        .map(|p| read_json(p))
        .collect::<Res<_>>()?;
    let mut incarnations: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &reports {
        incarnations
            .entry(r["id"].as_str().unwrap_or("?").to_string())
            .or_default()
            .push(r);
    }
    let mut zombie_tries = 0usize;
    let mut zombie_refused = 0u64;
    let mut zombie_lines = Vec::new();
    for r in &reports {
        let id = r["id"].as_str().unwrap_or("?");
        for z in r["zombies"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            zombie_tries += 1;
            let off = z["offset"].as_u64().unwrap_or(u64::MAX);
            let stale = z["stale_fence"].as_u64().unwrap_or(0);
            let refused = z["refused"].as_bool() == Some(true);
            zombie_refused += u64::from(refused);
            let expired = matches!(raw.faults.get(&(off, stale)), Some(f) if f.kind == FaultKind::Expired && f.worker == id);
            let finished = raw.terminal.get(&off).and_then(|t| t.first());
            let new_fence = z["new_fence"].as_u64().unwrap_or(0);
            let later = new_fence > stale && finished.is_some_and(|t| t.ev.fence >= new_fence);
            if !refused || !expired || !later {
                v.add(
                    "zombie",
                    format!("{id}'s stale complete of task {off} (fence {stale}): {z} (expired fault {expired}, finished later {later})"),
                );
            } else if zombie_lines.len() < 3 {
                let t = finished.expect("checked");
                zombie_lines.push(format!(
                    "task {off}: {id} held fence {stale} for {} ms; re-leased to {} (fence {}, {}); stale complete -> {}",
                    z["held_ms"],
                    z["new_worker"].as_str().unwrap_or("?"),
                    t.ev.fence,
                    z["new_state"].as_str().unwrap_or("?"),
                    z["error"].as_str().unwrap_or("?").split(": lease lost").next().unwrap_or("")
                ));
            }
        }
    }
    if zombie_tries < a.expect_zombies {
        v.add(
            "zombie",
            format!(
                "{zombie_tries} stale-token completes tried, {} expected",
                a.expect_zombies
            ),
        );
    }
    let mut reported_lease_lost = 0u64;
    for (id, incs) in &incarnations {
        reported_lease_lost += incs
            .iter()
            .map(|r| r["lease_lost"].as_u64().unwrap_or(0))
            .sum::<u64>();
        let killed = hung
            .iter()
            .any(|p| p.file_name().and_then(|n| n.to_str()) == Some(&format!("hung-{id}.json")));
        if killed {
            continue; // the killed incarnation's last report is not final
        }
        let acked: u64 = incs
            .iter()
            .map(|r| r["completed"].as_u64().unwrap_or(0))
            .sum();
        let in_log = done_by_worker.get(id).copied().unwrap_or(0);
        if incs.iter().any(|r| r["final"].as_bool() != Some(true)) {
            v.add(
                "workers",
                format!("{id} did not exit cleanly (report not final)"),
            );
        } else if acked != in_log {
            v.add(
                "workers",
                format!("{id} acknowledged {acked} completions, the log has {in_log}"),
            );
        }
    }

    // -- shares per runtime.
    let mut share: BTreeMap<&str, (u64, Vec<String>)> = BTreeMap::new();
    for rt in ["go", "rust", "python"] {
        share.insert(rt, (0, Vec::new()));
    }
    for (w, c) in &done_by_worker {
        let e = share.entry(runtime_of(w)).or_default();
        e.0 += c;
        e.1.push(format!("{w} {}", num(*c)));
    }
    for (rt, (c, _)) in &share {
        if (*c as f64) < a.min_share * done.max(1) as f64 {
            v.add(
                "share",
                format!(
                    "{rt} completed {c} of {done} tasks, under {:.0}%",
                    a.min_share * 100.0
                ),
            );
        }
    }

    // -- the engine's totals agree with the log.
    let tot = stats.totals;
    if tot.enqueued != n
        || tot.completed != done
        || tot.dead_lettered != dead
        || stats.dead != dead
        || tot.lease_expired != expired_total
        || tot.failed != failed_total
        || stats.ready + stats.leased + stats.retry_wait != 0
    {
        v.add("totals", format!("stats {stats:?} vs log: {done} done, {dead} dead, {failed_total} failures, {expired_total} expiries"));
    }
    // Every outcome refused by fencing is a rollback in the engine's
    // totals, and every one was seen by a worker (a zombie try or a
    // LEASE_LOST answer to complete/fail).
    let seen_rollbacks = zombie_refused + reported_lease_lost;
    if tot.rollbacks != seen_rollbacks {
        v.add(
            "rollbacks",
            format!(
                "the engine counted {} rollbacks, the workers saw {seen_rollbacks} \
                 ({zombie_refused} refused zombie completes + {reported_lease_lost} LEASE_LOST answers)",
                tot.rollbacks
            ),
        );
    }

    // -- report.
    let pct = |c: u64| 100.0 * c as f64 / done.max(1) as f64;
    println!(
        "cross-language check of {} (queue {:?}, from the file)",
        a.db.display(),
        a.queue
    );
    println!(
        "  log          {} tasks by the producer over {} keys; log and event chains verify ({} records, {} events)   {}",
        num(want("tasks")),
        num(want("keys")),
        num(n),
        num(raw.events),
        v.ok("log")
    );
    println!(
        "  exactly once {} done + {} dead = {}, one terminal event each   {}",
        num(done),
        num(dead),
        num(done + dead),
        v.ok("once")
    );
    println!(
        "  behaviours   ok {} done | fail-once {} done ({} at attempt 2, {} later after a lease expiry) | \
         fail-always {} dead after {max_attempts} attempts   {}",
        num(want("ok")),
        num(once_at2 + once_later),
        num(once_at2),
        num(once_later),
        num(want("always")),
        if v.count("behaviour") + v.count("faults") == 0 { "OK" } else { "FAILED" }
    );
    println!(
        "  retries      {} retried after a failure, {} lease expiries, {} dead letters",
        num(tot.retried),
        num(tot.lease_expired),
        num(dead)
    );
    for (rt, (c, ws)) in &share {
        println!(
            "  share        {rt:<7} {:>5.1}%  {:>7} done  ({})",
            pct(*c),
            num(*c),
            ws.join(", ")
        );
    }
    println!(
        "               (at least {:.0}% each)   {}",
        a.min_share * 100.0,
        v.ok("share")
    );
    println!(
        "  order        {} keys: done/dead events of each key in offset order in the event chain   {}",
        num(last.len() as u64),
        v.ok("order")
    );
    println!(
        "  fencing      every done task committed under its last lease (event fence = task fence, \
         result names that worker and fence)   {}",
        v.ok("fencing")
    );
    for l in &kill_lines {
        println!("  kill         {l}   {}", v.ok("kill"));
    }
    if kill_lines.is_empty() && v.count("kill") > 0 {
        println!("  kill         FAILED");
    }
    println!(
        "  zombie       {zombie_tries} stale-token completes after another worker took the task over, \
         all refused with LEASE_LOST (other LEASE_LOST answers to workers: {})   {}",
        num(reported_lease_lost),
        v.ok("zombie")
    );
    for l in &zombie_lines {
        println!("               {l}");
    }
    println!(
        "  rollbacks    {} in the engine's totals = refused zombie completes + LEASE_LOST answers the workers saw   {}",
        num(tot.rollbacks),
        v.ok("rollbacks")
    );
    if v.by_check.is_empty() {
        println!("RESULT: all checks passed");
    } else {
        println!("RESULT: FAILED");
        for (check, msgs) in &v.by_check {
            println!("  {check}: {} violation(s)", msgs.len());
            for m in msgs.iter().take(10) {
                println!("    - {m}");
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordq_core::{Backoff, ClaimOptions, EnqueueItem, EnqueueOptions, QueueConfig};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::time::Duration;

    /// How the simulated run goes wrong.
    #[derive(PartialEq)]
    enum Mode {
        Clean,
        /// Task 10's result names a worker that did not hold its lease.
        ForeignResult,
        /// The last task stays leased: never finished.
        Unfinished,
        /// Only go-1 works.
        OnlyGo,
        /// rs-1 "is killed" holding a claim that includes a task's last
        /// attempt: its leases expire, one of them dead-letters the task.
        KilledOnLastAttempt,
        /// rs-1 reports itself killed holding a lease it in fact completed.
        KilledButCompleted,
        /// A stale complete no worker reports: an unexplained rollback.
        UnreportedRollback,
    }

    const TASKS: u64 = 60;

    fn behaviour(i: u64) -> &'static str {
        if i % 20 == 3 {
            "once"
        } else if i % 30 == 7 {
            "always"
        } else {
            "ok"
        }
    }

    /// Runs a small embedded version of the scenario (three workers taking
    /// turns in one process), writes the reports the real programs write,
    /// and checks it.
    fn run(mode: Mode) -> Violations {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let n = RUN.fetch_add(1, AtomicOrdering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ordq-cross-check-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("workers")).unwrap();
        std::fs::create_dir_all(dir.join("ctl")).unwrap();
        let path = dir.join("db.ordq");
        let db = Db::open(&path, Options::default()).unwrap();
        let cfg = QueueConfig {
            max_attempts: 3,
            backoff: Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(1),
                multiplier: 1.0,
                jitter: 0.0,
            },
            ..QueueConfig::default()
        };
        db.create_queue("cross", cfg).unwrap();
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let items = (0..TASKS)
            .map(|i| {
                let key = format!("acct-{}", i % 5);
                *counts.entry(behaviour(i)).or_default() += 1;
                let payload = json!({"i": i, "k": key, "n": i / 5, "b": behaviour(i)});
                EnqueueItem {
                    key,
                    payload: payload.to_string().into_bytes(),
                    opts: EnqueueOptions::default(),
                }
            })
            .collect();
        db.enqueue_batch("cross", items).unwrap();

        let workers = ["go-1", "rs-1", "py-1"];
        let mut completed: BTreeMap<&str, u64> = BTreeMap::new();
        let left = u64::from(mode == Mode::Unfinished);
        let kills = matches!(mode, Mode::KilledOnLastAttempt | Mode::KilledButCompleted);
        let mut killed = false;
        for turn in 0.. {
            let s = db.stats("cross").unwrap();
            if s.done + s.dead + left == TASKS {
                break;
            }
            assert!(turn < 10_000, "the simulated run does not finish: {s:?}");
            let w = if mode == Mode::OnlyGo {
                "go-1"
            } else {
                workers[turn % 3]
            };
            if killed && w == "rs-1" {
                continue;
            }
            let opts = ClaimOptions {
                max: 4,
                wait: Duration::from_millis(20),
                // rs-1's leases must expire soon after its "kill".
                lease: (kills && w == "rs-1").then_some(Duration::from_millis(150)),
                ..ClaimOptions::default()
            };
            let leases = db.claim("cross", w, opts).unwrap();
            let last_try = leases
                .iter()
                .any(|l| behaviour(l.offset) == "always" && l.attempt == 3);
            if kills && w == "rs-1" && last_try {
                let held: Vec<Value> = leases
                    .iter()
                    .map(|l| json!({"offset": l.offset, "fence": l.token.fence}))
                    .collect();
                let marker = json!({"id": w, "pid": 0, "leases": held});
                cross_write(&dir.join("ctl").join("hung-rs-1.json"), &marker);
                killed = true;
                if mode == Mode::KilledButCompleted {
                    let l = &leases[0];
                    let result = json!({"w": w, "f": l.token.fence});
                    db.complete(l.token, result.to_string().as_bytes()).unwrap();
                }
                continue;
            }
            for l in leases {
                // Kill modes: leave the last attempts to rs-1 (a release
                // does not count an attempt).
                if kills && !killed && behaviour(l.offset) == "always" && l.attempt == 3 {
                    db.release(l.token).unwrap();
                    continue;
                }
                let b = behaviour(l.offset);
                if mode == Mode::Unfinished && l.offset == TASKS - 1 {
                    continue;
                }
                if b == "always" || (b == "once" && l.attempt == 1) {
                    db.fail(l.token, "injected", true).unwrap();
                    continue;
                }
                let named = if mode == Mode::ForeignResult && l.offset == 10 {
                    "rs-9"
                } else {
                    w
                };
                let result = json!({"w": named, "f": l.token.fence});
                db.complete(l.token, result.to_string().as_bytes()).unwrap();
                *completed.entry(w).or_default() += 1;
            }
        }
        if mode == Mode::UnreportedRollback {
            let t = db.get_task("cross", 0).unwrap();
            let stale = ordq_core::Token {
                queue_id: db.queue("cross").unwrap().id,
                offset: 0,
                fence: t.fence + 1_000,
            };
            let e = db.complete(stale, b"{}").unwrap_err();
            assert_eq!(e.code(), ordq_core::ErrorCode::LeaseLost);
        }
        db.close();

        let producer = json!({"tasks": TASKS, "keys": 5, "ok": counts["ok"], "once": counts["once"],
            "always": counts["always"]});
        cross_write(&dir.join("producer.json"), &producer);
        if kills {
            assert!(killed, "rs-1 never claimed a last attempt");
        }
        for (w, c) in &completed {
            let r = json!({"id": w, "runtime": runtime_of(w), "completed": c, "lease_lost": 0, "final": true});
            cross_write(&dir.join("workers").join(format!("{w}.0.json")), &r);
        }
        let args = Args {
            db: path,
            dir: dir.clone(),
            queue: "cross".into(),
            min_share: 0.05,
            expect_kill: false,
            expect_zombies: 0,
        };
        let v = check(&args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        v
    }

    fn cross_write(path: &Path, v: &Value) {
        std::fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
    }

    fn checks(v: &Violations) -> Vec<&'static str> {
        v.by_check.keys().copied().collect()
    }

    #[test]
    fn a_clean_run_passes() {
        assert_eq!(checks(&run(Mode::Clean)), Vec::<&str>::new());
    }

    #[test]
    fn a_killed_workers_last_attempt_is_dead_lettered_by_its_expiry() {
        assert_eq!(checks(&run(Mode::KilledOnLastAttempt)), Vec::<&str>::new());
    }

    #[test]
    fn a_lease_the_killed_worker_completed_is_found() {
        let v = run(Mode::KilledButCompleted);
        // The completed lease did not expire: no fault of rs-1 at its fence.
        assert!(
            v.by_check.get("kill").is_some_and(|k| k
                .iter()
                .any(|m| m.starts_with("rs-1's lease of task") && m.ends_with("fault None"))),
            "{:?}",
            v.by_check
        );
    }

    #[test]
    fn a_rollback_no_worker_saw_is_found() {
        let v = run(Mode::UnreportedRollback);
        assert_eq!(checks(&v), ["rollbacks"], "{:?}", v.by_check);
    }

    #[test]
    fn a_result_naming_another_worker_is_a_fencing_violation() {
        let v = run(Mode::ForeignResult);
        assert_eq!(checks(&v), ["fencing"]);
        assert!(
            v.by_check["fencing"][0].starts_with("task 10:"),
            "{:?}",
            v.by_check
        );
    }

    #[test]
    fn an_unfinished_task_is_found() {
        let v = run(Mode::Unfinished);
        assert!(checks(&v).contains(&"once"), "{:?}", v.by_check);
        assert!(v.by_check["once"][0].starts_with(&format!("task {}", TASKS - 1)));
    }

    #[test]
    fn a_runtime_without_its_share_is_found() {
        let v = run(Mode::OnlyGo);
        assert_eq!(checks(&v), ["share"]);
        assert_eq!(
            v.by_check["share"].len(),
            2,
            "python and rust: {:?}",
            v.by_check
        );
    }
}
