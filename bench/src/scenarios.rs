//! The engine scenarios. Each opens a fresh database in a fresh temporary
//! directory, creates one queue with the default configuration (key
//! ordering, 16 shards), measures, checks the queue's totals, and closes.

use crate::measure::{Latency, Measure};
use crate::sys::Probe;
use crate::util::{now_ms, TempDir};
use ordq_core::{ClaimOptions, Db, Durability, EnqueueItem, Lease, Options, QueueConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Queue every scenario uses.
const QUEUE: &str = "bench";
/// Distinct task keys (so lanes) in every scenario.
pub const KEYS: usize = 1000;
/// Payload size of every task, in bytes.
pub const PAYLOAD_BYTES: usize = 256;
/// Result each worker commits.
pub const RESULT: &[u8] = b"ok";

/// The payload of every task.
pub fn payload() -> Vec<u8> {
    (0..PAYLOAD_BYTES).map(|i| (i * 7 + 13) as u8).collect()
}
/// How long an idle worker's claim parks in the writer.
const CLAIM_WAIT: Duration = Duration::from_millis(20);
/// A run that takes longer than this is stopped and reported as failed.
const WATCHDOG: Duration = Duration::from_secs(600);

/// Where and how every scenario's database is opened.
pub struct Env<'a> {
    /// Directory the temporary databases go under.
    pub base: &'a Path,
    /// Commit durability.
    pub durability: Durability,
}

/// A freshly opened database with its queue; removed on drop.
struct Fresh {
    db: Db,
    _dir: TempDir,
    keys: Vec<String>,
    payload: Vec<u8>,
}

impl Fresh {
    fn open(env: &Env<'_>) -> Result<Fresh, String> {
        let dir = TempDir::new(env.base).map_err(|e| e.to_string())?;
        let opts = Options {
            durability: env.durability,
            ..Options::default()
        };
        let db = Db::open(dir.file("bench.ordq"), opts).map_err(|e| e.to_string())?;
        db.create_queue(QUEUE, QueueConfig::default())
            .map_err(|e| e.to_string())?;
        Ok(Fresh {
            db,
            _dir: dir,
            keys: (0..KEYS).map(|i| format!("key-{i:04}")).collect(),
            payload: payload(),
        })
    }

    fn item(&self, i: u64) -> EnqueueItem {
        EnqueueItem {
            key: self.keys[i as usize % KEYS].clone(),
            payload: self.payload.clone(),
            opts: Default::default(),
        }
    }

    /// Checks the engine counted what the run did, then closes.
    fn finish(self, enqueued: u64, completed: u64) -> Result<(), String> {
        let s = self.db.stats(QUEUE).map_err(|e| e.to_string())?;
        self.db.close();
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

/// Enqueues from `threads` threads, `per_call` tasks per call (single
/// `enqueue` when 1, else `enqueue_batch`), until `total` tasks or `cap`.
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
                        f.db.enqueue(QUEUE, &it.key, &it.payload, it.opts)
                            .map(|_| ())
                    } else {
                        let items = (first..first + n).map(|i| f.item(i)).collect();
                        f.db.enqueue_batch(QUEUE, items).map(|_| ())
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

/// How the workers of an end-to-end run talk to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Claim up to 100 per call, `complete_batch` them.
    Batched,
    /// Claim 1 per call, `complete` it.
    PerCall,
}

/// Per-worker tallies of an end-to-end run (core and ABI scenarios).
#[derive(Default)]
pub struct Tally {
    /// Claim-to-complete latencies, µs.
    pub claim_us: Vec<u64>,
    /// `leased_at`-to-complete latencies, ms.
    pub lease_ms: Vec<u64>,
    /// Calls made.
    pub calls: u64,
    /// Claims made.
    pub claims: u64,
    /// Claims that returned nothing.
    pub empty: u64,
}

impl Tally {
    /// Merges the workers' tallies into the run's figure.
    pub fn merge(
        tallies: Vec<Tally>,
        producer_calls: u64,
        completed: u64,
        secs: f64,
        usage: crate::sys::Usage,
    ) -> Measure {
        let mut claim_us = Vec::with_capacity(completed as usize);
        let mut lease_ms = Vec::with_capacity(completed as usize);
        let (mut calls, mut claims, mut empty) = (producer_calls, 0, 0);
        for t in tallies {
            claim_us.extend(t.claim_us);
            lease_ms.extend(t.lease_ms);
            calls += t.calls;
            claims += t.claims;
            empty += t.empty;
        }
        Measure {
            items: completed,
            calls,
            secs,
            usage,
            latency: Some(Latency::from_samples(claim_us, lease_ms)),
            empty_claims: empty,
            claims,
        }
    }
}

/// End-to-end: one producer thread enqueues `jobs` tasks in batches of 100
/// while `workers` threads claim and complete them. The clock runs from
/// the start of the producer to the last completion.
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
        let opts = ClaimOptions {
            max: claim_max,
            wait: CLAIM_WAIT,
            ..ClaimOptions::default()
        };
        while !stop.load(Ordering::Relaxed) {
            let leases: Vec<Lease> = match f.db.claim(QUEUE, &name, opts.clone()) {
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
                    let items = leases.iter().map(|l| (l.token, RESULT.to_vec())).collect();
                    match f.db.complete_batch(items) {
                        Ok(v) => v
                            .into_iter()
                            .find_map(|r| r.err())
                            .map_or(Ok(()), |e| Err(e.to_string())),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Workers::PerCall => leases.iter().try_for_each(|l| {
                    t.calls += 1;
                    f.db.complete(l.token, RESULT)
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
            let wall = now_ms();
            for l in &leases {
                t.claim_us.push(us);
                t.lease_ms.push(wall.saturating_sub(l.leased_at));
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
                let items = (first..first + n).map(|i| f.item(i)).collect();
                if let Err(e) = f.db.enqueue_batch(QUEUE, items) {
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
