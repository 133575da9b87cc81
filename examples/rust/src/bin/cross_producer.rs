//! Producer of the cross-language scenario (`make test-cross`, `make demo`;
//! driven by tests/cross/scenario.py): creates the queue, then enqueues
//! keyed tasks in batches through the `ordq` crate (the C ABI; a `unix://`
//! or `tcp://` address reaches a broker). Each payload is JSON naming the
//! task's producer index, key, place in its key and behaviour:
//! `{"i":1234,"k":"acct-0042","n":7,"b":"ok"}` with `b` one of `ok`,
//! `once` (fail on attempt 1) or `always` (fail every attempt).
//!
//! ```text
//! cross_producer --db unix:///tmp/x/ordq.sock --queue cross --tasks 20000 --keys 500 \
//!     --ready /tmp/x/ctl/queue-ready --report /tmp/x/producer.json
//! ```
//!
//! It writes `--ready` once the queue exists (workers may start) and
//! `--report` at the end: the counts per behaviour, for the checker.

use ordq::{Backoff, Db, EnqueueItem, ErrorKind, Options, Ordering, QueueConfig};
use ordq_examples::cross::{write_json, Args, Behaviour};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const USAGE: &str = "cross_producer --db URI [--queue cross] [--tasks 20000] [--keys 500] \
    [--batch 250] [--pace-ms 0] [--seed 1] [--shards 16] [--lease-ms 2000] \
    [--max-attempts 3] [--backoff-ms 50] [--ready FILE] [--report FILE]";

const OPTS: &[&str] = &[
    "db",
    "queue",
    "tasks",
    "keys",
    "batch",
    "pace-ms",
    "seed",
    "shards",
    "lease-ms",
    "max-attempts",
    "backoff-ms",
    "ready",
    "report",
];

/// SplitMix64: a fixed, well-mixed pseudo-random value per input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Task `i`'s behaviour: 0.5% fail always, 2% fail once, the rest succeed.
fn behaviour(seed: u64, i: u64) -> Behaviour {
    match mix(seed.wrapping_mul(0x5851_f42d) ^ i) % 1000 {
        0..=4 => Behaviour::FailAlways,
        5..=24 => Behaviour::FailOnce,
        _ => Behaviour::Ok,
    }
}

/// Task `i`'s key number: the first `keys` tasks use every key once, the
/// rest draw keys pseudo-randomly.
fn key_of(seed: u64, i: u64, keys: u64) -> u64 {
    if i < keys {
        i
    } else {
        mix(seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d)) % keys
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("cross_producer: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse(USAGE, OPTS);
    let uri = a.required(USAGE, "db");
    let queue = a.str("queue", "cross");
    let tasks: u64 = a.num(USAGE, "tasks", 20_000);
    let keys: u64 = a.num(USAGE, "keys", 500);
    let batch: usize = a.num(USAGE, "batch", 250);
    let pace = Duration::from_millis(a.num(USAGE, "pace-ms", 0));
    let seed: u64 = a.num(USAGE, "seed", 1);
    if keys == 0 || batch == 0 {
        return Err("--keys and --batch must be at least 1".into());
    }

    let db = Db::open(&uri, &Options::new())?;
    let cfg = QueueConfig::new()
        .ordering(Ordering::Key)
        .shards(a.num(USAGE, "shards", 16))
        .lease(Duration::from_millis(a.num(USAGE, "lease-ms", 2_000)))
        .max_attempts(a.num(USAGE, "max-attempts", 3))
        .backoff(
            Backoff::new()
                .initial(Duration::from_millis(a.num(USAGE, "backoff-ms", 50)))
                .max(Duration::from_millis(500)),
        );
    match db.create_queue(&queue, &cfg) {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            return Err(format!("queue {queue:?} exists already: use a fresh database").into())
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(ready) = a.opt("ready") {
        std::fs::write(ready, b"")?;
    }

    let start = Instant::now();
    let mut per_key = vec![0u64; keys as usize];
    let mut counts = [0u64; 3]; // ok, once, always
    let mut batches = 0u64;
    let mut i = 0u64;
    while i < tasks {
        let end = (i + batch as u64).min(tasks);
        let mut rows = Vec::with_capacity((end - i) as usize);
        for j in i..end {
            let k = key_of(seed, j, keys);
            let b = behaviour(seed, j);
            counts[b as usize] += 1;
            let n = per_key[k as usize];
            per_key[k as usize] += 1;
            let key = format!("acct-{k:04}");
            let payload = json!({"i": j, "k": key, "n": n, "b": b.as_str()}).to_string();
            rows.push((key, payload));
        }
        let items: Vec<EnqueueItem> = rows
            .iter()
            .map(|(k, p)| EnqueueItem::new(k, p.as_bytes()))
            .collect();
        let receipts = db.enqueue_batch(&queue, &items)?;
        // One producer on a fresh queue: offsets are the producer's indexes.
        for (j, r) in (i..end).zip(&receipts) {
            if r.offset != j || r.duplicate {
                return Err(format!(
                    "task {j} got offset {} (duplicate {})",
                    r.offset, r.duplicate
                )
                .into());
            }
        }
        batches += 1;
        i = end;
        if !pace.is_zero() && i < tasks {
            std::thread::sleep(pace);
        }
    }
    let elapsed = start.elapsed();
    let used_keys = per_key.iter().filter(|&&n| n > 0).count();
    let report = json!({
        "tasks": tasks,
        "keys": used_keys,
        "ok": counts[Behaviour::Ok as usize],
        "once": counts[Behaviour::FailOnce as usize],
        "always": counts[Behaviour::FailAlways as usize],
        "batches": batches,
        "elapsed_ms": elapsed.as_millis() as u64,
    });
    if let Some(path) = a.opt("report") {
        write_json(Path::new(&path), &report)?;
    }
    println!(
        "cross_producer: {tasks} tasks over {used_keys} keys in {batches} batches, {:.2} s",
        elapsed.as_secs_f64()
    );
    db.close()?;
    Ok(())
}
