//! The same scenarios as `scenarios.rs`, through the `ordq` crate: the safe
//! Rust API over the C ABI (`ordq-ffi`), i.e. the path Go and Python take
//! minus their own language overhead. Same database options, queue,
//! keys, payloads, thread counts and batch sizes as the core scenarios,
//! so `abi-X / X` is the cost of the ABI layer and the wrapper.
//!
//! Per call, the ABI adds: argument checks and one copy of every input
//! (key, payload, result) inside `ordq-ffi`, and on claim a copy of each
//! lease into an owned `ordq::Lease`. The core scenarios copy each key
//! and payload once too (`Fresh::item` clones them), so both paths copy
//! inputs once.

use crate::measure::Measure;
use crate::scenarios::{payload, Env, Tally, Workers, KEYS, RESULT};
use crate::sys::Probe;
use crate::util::TempDir;
use ordq::{ClaimOptions, Db, Durability, EnqueueItem, EnqueueOptions, Lease, Options, Token};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Queue every scenario uses (as in `scenarios.rs`).
const QUEUE: &str = "bench";
/// How long an idle worker's claim parks in the writer (as in `scenarios.rs`).
const CLAIM_WAIT: Duration = Duration::from_millis(20);
/// A run that takes longer than this is stopped and reported as failed.
const WATCHDOG: Duration = Duration::from_secs(600);

/// A freshly opened database (through the C ABI) with its queue; removed
/// on drop.
struct Fresh {
    db: Db,
    _dir: TempDir,
    keys: Vec<String>,
    payload: Vec<u8>,
}

impl Fresh {
    fn open(env: &Env<'_>) -> Result<Fresh, String> {
        let dir = TempDir::new(env.base).map_err(|e| e.to_string())?;
        let durability = match env.durability {
            ordq_core::Durability::None => Durability::None,
            ordq_core::Durability::Immediate => Durability::Immediate,
        };
        let path = dir.file("bench.ordq");
        let uri = path.to_str().ok_or("non-UTF-8 bench directory")?;
        let db =
            Db::open(uri, &Options::new().durability(durability)).map_err(|e| e.to_string())?;
        db.create_queue(QUEUE, &ordq::QueueConfig::new())
            .map_err(|e| e.to_string())?;
        Ok(Fresh {
            db,
            _dir: dir,
            keys: (0..KEYS).map(|i| format!("key-{i:04}")).collect(),
            payload: payload(),
        })
    }

    fn item(&self, i: u64) -> EnqueueItem<'_> {
        EnqueueItem::new(&self.keys[i as usize % KEYS], &self.payload)
    }

    /// Checks the engine counted what the run did, then closes.
    fn finish(self, enqueued: u64, completed: u64) -> Result<(), String> {
        let s = self.db.stats(QUEUE).map_err(|e| e.to_string())?;
        self.db.close().map_err(|e| e.to_string())?;
        if s.totals.enqueued != enqueued || s.totals.completed != completed {
            return Err(format!(
                "engine totals disagree: enqueued {} (expected {enqueued}), completed {} \
                 (expected {completed})",
                s.totals.enqueued, s.totals.completed
            ));
        }
        Ok(())
    }
}

/// Keeps the first error of any thread.
#[derive(Default)]
struct FirstError(Mutex<Option<String>>);

impl FirstError {
    fn set(&self, e: impl ToString) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert_with(|| e.to_string());
    }

    fn into_result(self) -> Result<(), String> {
        match self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// `scenarios::enqueue` through the crate.
pub fn enqueue(
    env: &Env<'_>,
    threads: usize,
    per_call: u64,
    total: u64,
    cap: Duration,
) -> Result<Measure, String> {
    let f = Fresh::open(env)?;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let calls = AtomicU64::new(0);
    let err = FirstError::default();
    let barrier = Barrier::new(threads + 1);
    let mut probe = None;
    let mut start = Instant::now();
    let opts = EnqueueOptions::new();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                let deadline = Instant::now().checked_add(cap);
                loop {
                    let first = next.fetch_add(per_call, Ordering::Relaxed);
                    if first >= total || deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let n = per_call.min(total - first);
                    let r = if per_call == 1 {
                        let it = f.item(first);
                        f.db.enqueue(QUEUE, it.key, it.payload, &opts).map(|_| ())
                    } else {
                        let items: Vec<EnqueueItem> =
                            (first..first + n).map(|i| f.item(i)).collect();
                        f.db.enqueue_batch(QUEUE, &items).map(|_| ())
                    };
                    if let Err(e) = r {
                        err.set(e);
                        break;
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    done.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
        probe = Some(Probe::start(true));
        start = Instant::now();
        barrier.wait();
    });
    let secs = start.elapsed().as_secs_f64();
    let usage = probe.map(|p| p.finish()).unwrap_or_default();
    err.into_result()?;
    let items = done.into_inner();
    f.finish(items, 0)?;
    Ok(Measure {
        items,
        calls: calls.into_inner(),
        secs,
        usage,
        ..Measure::default()
    })
}

/// `scenarios::end_to_end` through the crate: one producer thread
/// enqueues `jobs` tasks in batches of 100 while `workers` threads claim
/// and complete them.
pub fn end_to_end(
    env: &Env<'_>,
    jobs: u64,
    workers: usize,
    mode: Workers,
) -> Result<Measure, String> {
    const PRODUCER_BATCH: u64 = 100;
    let claim_max = match mode {
        Workers::Batched => 100,
        Workers::PerCall => 1,
    };
    let f = Fresh::open(env)?;
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let end: Mutex<Option<Instant>> = Mutex::new(None);
    let err = FirstError::default();
    let barrier = Barrier::new(workers + 2);
    let producer_calls = AtomicU64::new(0);
    let mut probe = None;
    let mut start = Instant::now();
    let mut tallies: Vec<Tally> = Vec::new();

    let worker = |w: usize| -> Tally {
        let name = format!("worker-{w}");
        let mut t = Tally::default();
        barrier.wait();
        let opts = ClaimOptions::new().max(claim_max).wait(CLAIM_WAIT);
        while !stop.load(Ordering::Relaxed) {
            let leases: Vec<Lease> = match f.db.claim(QUEUE, &name, &opts) {
                Ok(l) => l,
                Err(e) => {
                    err.set(e);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            };
            let claimed = Instant::now();
            t.calls += 1;
            if leases.is_empty() {
                t.empty += 1;
                continue;
            }
            t.claims += 1;
            let r: Result<(), String> = match mode {
                Workers::Batched => {
                    t.calls += 1;
                    let items: Vec<(Token, &[u8])> =
                        leases.iter().map(|l| (l.token, RESULT)).collect();
                    match f.db.complete_batch(&items) {
                        Ok(v) => v
                            .into_iter()
                            .find_map(|r| r.err())
                            .map_or(Ok(()), |e| Err(e.to_string())),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Workers::PerCall => leases.iter().try_for_each(|l| {
                    t.calls += 1;
                    f.db.complete(l, RESULT)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            };
            if let Err(e) = r {
                err.set(e);
                stop.store(true, Ordering::Relaxed);
                break;
            }
            let us = claimed.elapsed().as_micros() as u64;
            let wall = SystemTime::now();
            for l in &leases {
                t.claim_us.push(us);
                let ms = wall
                    .duration_since(l.leased_at)
                    .map_or(0, |d| d.as_millis());
                t.lease_ms.push(ms as u64);
            }
            let n = leases.len() as u64;
            if done.fetch_add(n, Ordering::AcqRel) + n >= jobs {
                *end.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                stop.store(true, Ordering::Relaxed);
            }
        }
        t
    };

    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            let mut first = 0;
            while first < jobs && !stop.load(Ordering::Relaxed) {
                let n = PRODUCER_BATCH.min(jobs - first);
                let items: Vec<EnqueueItem> = (first..first + n).map(|i| f.item(i)).collect();
                if let Err(e) = f.db.enqueue_batch(QUEUE, &items) {
                    err.set(e);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                producer_calls.fetch_add(1, Ordering::Relaxed);
                first += n;
            }
        });
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let worker = &worker;
                s.spawn(move || worker(w))
            })
            .collect();
        probe = Some(Probe::start(true));
        start = Instant::now();
        barrier.wait();
        // Watchdog: a stuck run is stopped, not waited on forever.
        while !stop.load(Ordering::Relaxed) {
            if start.elapsed() > WATCHDOG {
                err.set(format!("run did not finish within {WATCHDOG:?}"));
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tallies = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
    });
    let finished = end
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(Instant::now);
    let secs = finished.duration_since(start).as_secs_f64();
    let usage = probe.map(|p| p.finish()).unwrap_or_default();
    err.into_result()?;
    let completed = done.into_inner();
    f.finish(jobs, completed)?;
    if completed != jobs {
        return Err(format!("completed {completed} of {jobs} jobs"));
    }
    Ok(Tally::merge(
        tallies,
        producer_calls.into_inner(),
        completed,
        secs,
        usage,
    ))
}
