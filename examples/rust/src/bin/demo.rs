//! The ordq demo (`make demo`): 20,000 keyed tasks, four worker threads and
//! injected failures, checked at the end.
//!
//! - about 5% of tasks fail once and succeed on retry (after backoff);
//! - about 1% always fail and end in the dead-letter queue after 3 attempts;
//! - `worker-4` claims with a short lease and sometimes stalls past it: its
//!   leases expire, other workers take the tasks over, and its late
//!   completes are refused with `LeaseLost` (fencing).
//!
//! The demo then checks that, for every key, tasks completed in offset order,
//! that every done task was acknowledged to exactly one worker, and that
//! done + dead = enqueued. It shows a few dead letters with their fault
//! history and redrives one. Exits non-zero if any check fails.

use ordq_core::{
    Backoff, ClaimOptions, Db, EnqueueItem, EnqueueOptions, Error, FailOutcome, FaultKind, Lease,
    Options, Ordering, QueueConfig, QueueStats, RedriveMode, TaskState,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const QUEUE: &str = "payments";
const TASKS: usize = 20_000;
const KEYS: usize = 200;
const BATCH: usize = 1_000;
const WORKERS: usize = 4;
/// Most leases a healthy worker takes per claim.
const CLAIM_MAX: usize = 64;
/// Default lease of the queue (healthy workers).
const LEASE: Duration = Duration::from_secs(5);
/// The flaky worker's lease, its stall, and how often it stalls.
const ZOMBIE_CLAIM_MAX: usize = 8;
const ZOMBIE_LEASE: Duration = Duration::from_millis(200);
const ZOMBIE_STALL: Duration = Duration::from_millis(500);
const ZOMBIE_STALL_EVERY: u64 = 4;
const ZOMBIE_MAX_STALLS: u64 = 10;
/// Give up (and fail) if the run has not finished by then.
const DEADLINE: Duration = Duration::from_secs(60);

/// What the simulated handler does with a task.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Succeed,
    /// Fails its first attempt, then succeeds.
    FailOnce,
    /// Fails every attempt.
    AlwaysFail,
}

/// SplitMix64: a fixed, well-mixed pseudo-random value per input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fate(offset: u64) -> Fate {
    match mix(offset ^ 0xfa7e) % 100 {
        0 => Fate::AlwaysFail,
        1..=5 => Fate::FailOnce,
        _ => Fate::Succeed,
    }
}

/// What one worker thread saw.
#[derive(Default)]
struct Report {
    /// `(offset, seq)` of every complete that returned OK. `seq` is taken
    /// from a global counter just before the complete call: a key's next
    /// task can only be leased after this complete was applied, so per key
    /// the seqs must rise with the offsets.
    acks: Vec<(u64, u64)>,
    /// Lease operations refused with `LeaseLost`.
    fenced: u64,
    /// Completes sent after a stall past the lease that were accepted
    /// (must stay 0).
    zombie_accepted: u64,
    stalls: u64,
    /// The first refusal, to show.
    first_refusal: Option<(u64, String)>,
}

struct Shared {
    db: Db,
    seq: AtomicU64,
    stop: AtomicBool,
}

fn worker(sh: &Shared, n: usize, zombie: bool) -> Result<Report, Error> {
    let name = format!("worker-{n}");
    let opts = ClaimOptions {
        max: if zombie { ZOMBIE_CLAIM_MAX } else { CLAIM_MAX },
        lease: zombie.then_some(ZOMBIE_LEASE),
        wait: Duration::from_millis(50),
        shards: None,
    };
    let mut rep = Report::default();
    let mut claims = 0u64;
    while !sh.stop.load(AtomicOrdering::Acquire) {
        let leases = sh.db.claim(QUEUE, &name, opts.clone())?;
        if leases.is_empty() {
            continue;
        }
        claims += 1;
        if zombie && rep.stalls < ZOMBIE_MAX_STALLS && claims % ZOMBIE_STALL_EVERY == 0 {
            // Hang past the lease, then try to commit as if nothing happened.
            rep.stalls += 1;
            thread::sleep(ZOMBIE_STALL);
            complete_all(sh, &leases, &mut rep, true)?;
            continue;
        }
        let mut ok = Vec::with_capacity(leases.len());
        for lease in leases {
            let error = match fate(lease.offset) {
                Fate::AlwaysFail => "card declined: account closed",
                Fate::FailOnce if lease.attempt == 1 => "payment gateway timeout",
                _ => {
                    ok.push(lease);
                    continue;
                }
            };
            match sh.db.fail(lease.token, error, true) {
                Ok(FailOutcome::Retry { .. } | FailOutcome::Dead { .. }) => {}
                Err(e @ Error::LeaseLost(_)) => rep.refused(lease.offset, e),
                Err(e) => return Err(e),
            }
        }
        complete_all(sh, &ok, &mut rep, false)?;
    }
    Ok(rep)
}

/// Completes `leases` in one commit and records the outcome of each.
fn complete_all(sh: &Shared, leases: &[Lease], rep: &mut Report, late: bool) -> Result<(), Error> {
    if leases.is_empty() {
        return Ok(());
    }
    let items = leases
        .iter()
        .map(|l| (l.token, format!("charged {}", l.offset).into_bytes()))
        .collect();
    let seq = sh.seq.fetch_add(1, AtomicOrdering::SeqCst);
    let results = sh.db.complete_batch(items)?;
    for (lease, r) in leases.iter().zip(results) {
        match r {
            Ok(_) => {
                rep.acks.push((lease.offset, seq));
                if late {
                    rep.zombie_accepted += 1;
                }
            }
            Err(e @ Error::LeaseLost(_)) => rep.refused(lease.offset, e),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Report {
    fn refused(&mut self, offset: u64, e: Error) {
        self.fenced += 1;
        self.first_refusal.get_or_insert((offset, e.to_string()));
    }
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

fn progress_row(cols: [&str; 6]) {
    let [a, b, c, d, e, f] = cols;
    println!("  {a:>6} {b:>8} {c:>6} {d:>10} {e:>11} {f:>10}");
}

fn progress_line(time: &str, s: &QueueStats, rate: f64) {
    progress_row([
        time,
        &num(s.done),
        &num(s.dead),
        &num(s.leased),
        &num(s.retry_wait),
        &format!("{}/s", num(rate as u64)),
    ]);
}

fn fresh_dir() -> std::io::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("ordq-demo-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("demo error: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs the demo; `Ok(false)` when a check failed.
fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut problems: Vec<String> = Vec::new();
    let dir = fresh_dir()?;
    let path = dir.join("demo.ordq");
    let db = Db::open(&path, Options::default())?;
    let cfg = QueueConfig {
        shards: 16,
        ordering: Ordering::Key,
        max_attempts: 3,
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            multiplier: 2.0,
            jitter: 0.2,
        },
        lease: LEASE,
        ..QueueConfig::default()
    };
    db.create_queue(QUEUE, cfg)?;

    println!(
        "ordq demo: {} keyed tasks, {WORKERS} worker threads, injected failures",
        num(TASKS as u64)
    );
    println!("  database  {}  (fsync on every commit)", path.display());
    println!(
        "  queue     {QUEUE:?}: ordered per key, 16 shards, max 3 attempts, \
         backoff 20-200 ms, lease 5 s"
    );

    // Enqueue: keys drawn pseudo-randomly; each payload names its place in its key.
    let t0 = Instant::now();
    let mut key_of = Vec::with_capacity(TASKS);
    let mut per_key = vec![0u32; KEYS];
    for b in 0..TASKS / BATCH {
        let items: Vec<EnqueueItem> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| {
                let k = (mix(i as u64) % KEYS as u64) as usize;
                per_key[k] += 1;
                key_of.push(k);
                let key = format!("acct-{k:03}");
                EnqueueItem {
                    payload: format!("{key} charge #{}", per_key[k]).into_bytes(),
                    key,
                    opts: EnqueueOptions::default(),
                }
            })
            .collect();
        for (j, r) in db.enqueue_batch(QUEUE, items)?.iter().enumerate() {
            if r.offset != (b * BATCH + j) as u64 {
                problems.push(format!(
                    "receipt offset {} for item {}",
                    r.offset,
                    b * BATCH + j
                ));
            }
        }
    }
    println!(
        "  enqueued  {} tasks over {KEYS} keys in {} batches of {} ({} ms)",
        num(TASKS as u64),
        TASKS / BATCH,
        num(BATCH as u64),
        t0.elapsed().as_millis()
    );
    println!("  failures  ~5% fail once then succeed, ~1% always fail;");
    println!(
        "            worker-{WORKERS} leases for {} ms and sometimes stalls {} ms (a zombie)",
        ZOMBIE_LEASE.as_millis(),
        ZOMBIE_STALL.as_millis()
    );
    println!();

    // Run the workers; the main thread watches the queue.
    let shared = Arc::new(Shared {
        db: db.clone(),
        seq: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = Instant::now();
    let handles: Vec<_> = (1..=WORKERS)
        .map(|n| {
            let sh = shared.clone();
            thread::spawn(move || worker(&sh, n, n == WORKERS))
        })
        .collect();
    progress_row(["time", "done", "dead", "in flight", "retry wait", "rate"]);
    // Samples of (time, tasks finished); the rate is over the last second.
    let mut samples: Vec<(Duration, u64)> = vec![(Duration::ZERO, 0)];
    let mut last_t = Duration::ZERO;
    let (elapsed, stats) = loop {
        thread::sleep(Duration::from_millis(50));
        let s = db.stats(QUEUE)?;
        let t = start.elapsed();
        let finished = s.done + s.dead == TASKS as u64 && s.leased == 0;
        samples.push((t, s.done + s.dead));
        if finished {
            // The last row: final counts and the average rate.
            let rate = (s.done + s.dead) as f64 / t.as_secs_f64();
            progress_line("total", &s, rate);
            break (t, s);
        }
        if t - last_t >= Duration::from_secs(1) {
            let cut = t.saturating_sub(Duration::from_secs(1));
            let &(t1, n1) = samples
                .iter()
                .rev()
                .find(|p| p.0 <= cut)
                .unwrap_or(&samples[0]);
            let rate = (s.done + s.dead - n1) as f64 / (t - t1).as_secs_f64();
            progress_line(&format!("{:.1}s", t.as_secs_f64()), &s, rate);
            last_t = t;
        }
        if t >= DEADLINE {
            problems.push(format!("not finished after {} s", DEADLINE.as_secs()));
            break (t, s);
        }
    };
    shared.stop.store(true, AtomicOrdering::Release);
    let mut reports = Vec::new();
    for h in handles {
        reports.push(h.join().map_err(|_| "a worker thread panicked")??);
    }

    // Summary.
    let tot = stats.totals;
    let fenced: u64 = reports.iter().map(|r| r.fenced).sum();
    let stalls: u64 = reports.iter().map(|r| r.stalls).sum();
    let secs = elapsed.as_secs_f64();
    println!();
    println!("summary");
    println!("  enqueued                {:>7}", num(tot.enqueued));
    println!("  done                    {:>7}", num(stats.done));
    println!(
        "  retried                 {:>7}   failed, backed off, ran again",
        num(tot.retried)
    );
    println!(
        "  dead-lettered           {:>7}   attempts used up",
        num(stats.dead)
    );
    println!(
        "  lease expiries          {:>7}   worker-{WORKERS} stalled {stalls} times",
        num(tot.lease_expired)
    );
    println!(
        "  zombie commits refused  {:>7}   LeaseLost: stale fencing token",
        num(fenced)
    );
    if let Some((off, msg)) = reports.iter().find_map(|r| r.first_refusal.as_ref()) {
        println!("                                    e.g. #{off}: {msg}");
    }
    println!(
        "  elapsed                 {secs:>7.2} s  {} jobs/s",
        num(((stats.done + stats.dead) as f64 / secs) as u64)
    );
    if stats.done + stats.dead != TASKS as u64 {
        problems.push(format!(
            "done {} + dead {} != enqueued {TASKS}",
            stats.done, stats.dead
        ));
    }
    if tot.enqueued != TASKS as u64
        || tot.completed != stats.done
        || tot.dead_lettered != stats.dead
    {
        problems.push(format!("totals disagree with counts: {tot:?}"));
    }
    let zombie_accepted: u64 = reports.iter().map(|r| r.zombie_accepted).sum();
    if zombie_accepted > 0 {
        problems.push(format!(
            "{zombie_accepted} completes after an expired lease were accepted"
        ));
    }

    // Order check, as the workers saw it: per key, the order in which
    // completes were acknowledged must be offset order.
    let mut acked: Vec<(usize, u64, u64)> = reports
        .iter()
        .flat_map(|r| r.acks.iter())
        .map(|&(off, seq)| (key_of[off as usize], seq, off))
        .collect();
    acked.sort_unstable();
    let mut order_bad = Vec::new();
    for w in acked.windows(2) {
        let ((k1, s1, o1), (k2, s2, o2)) = (w[0], w[1]);
        if k1 == k2 && (s1 == s2 || o1 >= o2) {
            order_bad.push(format!(
                "acct-{k1:03}: #{o1} (seq {s1}) then #{o2} (seq {s2})"
            ));
        }
    }
    // ... and as the engine recorded it: every done task acknowledged to
    // exactly one worker, commit times rising with offsets per key.
    let mut acks_per_offset = vec![0u32; TASKS];
    for &(_, _, off) in &acked {
        acks_per_offset[off as usize] += 1;
    }
    let mut last_commit: HashMap<usize, (u64, u64)> = HashMap::new();
    let (mut done_seen, mut dead_seen, mut once_bad) = (0u64, 0u64, 0u64);
    for off in 0..TASKS as u64 {
        let t = db.get_task(QUEUE, off)?;
        let k = key_of[off as usize];
        match t.state {
            TaskState::Done => {
                done_seen += 1;
                if acks_per_offset[off as usize] != 1 {
                    once_bad += 1;
                }
                if let Some(&(o, at)) = last_commit.get(&k) {
                    if t.committed_at < at {
                        order_bad.push(format!(
                            "acct-{k:03}: #{off} committed at {} before #{o} at {at}",
                            t.committed_at
                        ));
                    }
                }
                last_commit.insert(k, (off, t.committed_at));
            }
            TaskState::Dead => {
                dead_seen += 1;
                if acks_per_offset[off as usize] != 0 {
                    once_bad += 1;
                }
            }
            s => problems.push(format!("task {off} is still {}", s.as_str())),
        }
    }
    if done_seen != stats.done || dead_seen != stats.dead {
        problems.push(format!(
            "task records show {done_seen} done / {dead_seen} dead, stats {} / {}",
            stats.done, stats.dead
        ));
    }
    if order_bad.is_empty() {
        println!(
            "  order check: OK ({} keys, {} tasks)",
            last_commit.len(),
            num(acked.len() as u64)
        );
    } else {
        println!("  order check: FAILED, {} violation(s)", order_bad.len());
        for v in order_bad.iter().take(10) {
            println!("    {v}");
        }
        problems.push(format!("{} order violations", order_bad.len()));
    }
    if once_bad == 0 && acked.len() as u64 == stats.done {
        println!("  exactly once: OK (each done task acknowledged to one worker)");
    } else {
        println!("  exactly once: {once_bad} tasks acknowledged 0 or 2+ times");
        problems.push(format!("{once_bad} tasks not acknowledged exactly once"));
    }

    // Dead letters with their fault history: the first two, and the first one with an expired lease in its
    // history if there is one (else the third).
    let mut shown = Vec::new();
    let mut with_expiry = None;
    for t in db.dlq_list(QUEUE, None, 1_000)? {
        let dl = db.dlq_get(QUEUE, t.offset)?;
        let expired = dl.faults.iter().any(|f| f.kind == FaultKind::Expired);
        if shown.len() < 2 {
            shown.push(dl);
        } else if expired {
            with_expiry = Some(dl);
            break;
        } else if with_expiry.is_none() {
            with_expiry = Some(dl); // the third, unless an expiry turns up
        }
    }
    shown.extend(with_expiry);
    println!();
    println!("dead letters ({} of {})", shown.len(), num(stats.dead));
    for dl in &shown {
        let t = &dl.task;
        let payload = t.payload.as_deref().map(String::from_utf8_lossy);
        println!(
            "  #{:<6} {:?}, dead after {} attempts",
            t.offset,
            payload.unwrap_or_default(),
            t.attempt
        );
        for f in &dl.faults {
            let at = format!("+{} ms", f.at.saturating_sub(t.enqueued_at));
            let what = match f.kind {
                FaultKind::Failed => format!("failed: {}", f.error),
                FaultKind::Expired => "lease expired".to_string(),
            };
            println!("     attempt {}  {}  {at:>8}  {what}", f.attempt, f.worker);
        }
    }

    // Redrive one dead letter to the head of its lane; an operator runs it.
    if let Some(dl) = shown.first() {
        let off = dl.task.offset;
        let r = db.dlq_redrive(QUEUE, off, RedriveMode::Head)?;
        let claim = ClaimOptions {
            max: 1,
            wait: Duration::from_secs(2),
            ..ClaimOptions::default()
        };
        let leases = db.claim(QUEUE, "operator", claim)?;
        match leases.first() {
            Some(l) if l.offset == off && r.offset == off => {
                let c = db.complete(l.token, b"charged after fix")?;
                let after = db.get_task(QUEUE, off)?;
                let s = db.stats(QUEUE)?;
                println!(
                    "  redrive #{off} to the head of {}: claimed (attempt {}), completed -> {}; \
                     dead letters now {}",
                    l.key,
                    l.attempt,
                    after.state.as_str(),
                    num(s.dead)
                );
                if after.state != TaskState::Done || c.duplicate || s.done + s.dead != TASKS as u64
                {
                    problems.push(format!("redriven task {off} ended as {after:?}"));
                }
            }
            other => problems.push(format!(
                "redrive of #{off} (receipt {}) then claim gave {:?}",
                r.offset,
                other.map(|l| l.offset)
            )),
        }
    }

    db.close();
    println!();
    if problems.is_empty() {
        println!("all checks passed");
        if std::env::var_os("ORDQ_DEMO_KEEP").is_some() {
            println!("database kept at {}", path.display());
        } else {
            std::fs::remove_dir_all(&dir)?;
            println!("(database removed; set ORDQ_DEMO_KEEP=1 to keep it)");
        }
        Ok(true)
    } else {
        println!("FAILED:");
        for p in &problems {
            println!("  - {p}");
        }
        println!("database kept at {} for inspection", path.display());
        Ok(false)
    }
}
