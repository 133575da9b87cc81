//! Concurrency test: producer and worker threads share one `Db` on the real
//! clock. Every claim, completion, failure and release is recorded with a
//! global sequence number taken before the call and after its return, so the
//! checks at the end can prove (not guess) orderings: no acknowledged
//! enqueue lost, every task done or dead exactly once, per-key order, no two
//! valid leases of one lane at once, zombies fenced off, fences growing and
//! stats totals adding up.

use ordq_core::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const Q: &str = "c";

/// Global event order: taken before a call and after it returns.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn seq() -> u64 {
    SEQ.fetch_add(1, AtomicOrdering::SeqCst)
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

/// SplitMix64: cheap deterministic mixing for injected behaviour.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A fresh directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ordq-conc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One acknowledged enqueue.
#[derive(Debug, Clone)]
struct Enq {
    offset: u64,
    key: String,
    payload: Vec<u8>,
}

/// One lease as handed out.
#[derive(Debug, Clone, Copy)]
struct LeaseRec {
    offset: u64,
    fence: u64,
    attempt: u32,
    max_attempts: u32,
    expires_at: u64,
    claim_ret: u64,
}

/// One claim call.
#[derive(Debug, Clone)]
struct ClaimRec {
    call: u64,
    ret: u64,
    fences: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Complete,
    Fail,
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Duplicate,
    Retry,
    Dead,
    Released,
    Lost,
}

/// One lease operation and what it returned.
#[derive(Debug, Clone, Copy)]
struct EndRec {
    offset: u64,
    fence: u64,
    kind: Kind,
    outcome: Outcome,
    call: u64,
    call_ms: u64,
    ret_ms: u64,
    zombie: bool,
}

impl EndRec {
    /// True when the call ended its lease.
    fn ended_lease(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Done | Outcome::Retry | Outcome::Dead | Outcome::Released
        )
    }

    /// True when the call finished the task.
    fn finished_task(&self) -> bool {
        matches!(self.outcome, Outcome::Done | Outcome::Dead)
    }
}

#[derive(Default)]
struct Log {
    enq: Vec<(usize, Enq)>,
    leases: Vec<LeaseRec>,
    claims: Vec<ClaimRec>,
    ends: Vec<EndRec>,
}

/// What a scenario varies.
#[derive(Clone, Copy)]
struct Scenario {
    tag: &'static str,
    producers: usize,
    workers: usize,
    tasks_per_producer: usize,
    keys: u64,
    lease: Duration,
    /// One lease in `zombie_every` (by hash) sleeps past its lease.
    zombie_every: u64,
    zombie_sleep: Duration,
    durability: Durability,
}

fn outcome_of<T>(r: &Result<T>, ok: Outcome) -> Outcome {
    match r {
        Ok(_) => ok,
        Err(Error::LeaseLost(_)) => Outcome::Lost,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

fn producer(db: Db, id: usize, sc: Scenario) -> Vec<(usize, Enq)> {
    let mut rng = Rng(1000 + id as u64);
    let mut out = Vec::new();
    let mut n = 0;
    while n < sc.tasks_per_producer {
        let batch = if rng.below(3) == 0 {
            1
        } else {
            1 + rng.below(20) as usize
        }
        .min(sc.tasks_per_producer - n);
        let items: Vec<EnqueueItem> = (0..batch)
            .map(|i| {
                let key = format!("k{}", rng.below(sc.keys));
                EnqueueItem {
                    payload: format!("{id}:{}:{key}", n + i).into_bytes(),
                    key,
                    opts: EnqueueOptions::default(),
                }
            })
            .collect();
        let receipts = if batch == 1 {
            vec![db
                .enqueue(
                    Q,
                    &items[0].key,
                    &items[0].payload,
                    EnqueueOptions::default(),
                )
                .expect("enqueue")]
        } else {
            db.enqueue_batch(Q, items.clone()).expect("enqueue_batch")
        };
        assert_eq!(receipts.len(), items.len());
        for (r, it) in receipts.into_iter().zip(items) {
            assert!(!r.duplicate);
            out.push((
                id,
                Enq {
                    offset: r.offset,
                    key: it.key,
                    payload: it.payload,
                },
            ));
        }
        n += batch;
    }
    out
}

fn worker(db: Db, id: usize, sc: Scenario, stop: Arc<AtomicBool>) -> Log {
    let name = format!("w{id}");
    let mut rng = Rng(id as u64);
    let mut log = Log::default();
    let end = |log: &mut Log, l: &Lease, kind, outcome, call, call_ms, zombie| {
        log.ends.push(EndRec {
            offset: l.offset,
            fence: l.token.fence,
            kind,
            outcome,
            call,
            call_ms,
            ret_ms: now_ms(),
            zombie,
        });
    };
    while !stop.load(AtomicOrdering::SeqCst) {
        let opts = ClaimOptions {
            max: 1 + rng.below(50) as usize,
            lease: None,
            wait: Duration::from_millis(20),
            shards: None,
        };
        let call = seq();
        let leases = db.claim(Q, &name, opts).expect("claim");
        let ret = seq();
        log.claims.push(ClaimRec {
            call,
            ret,
            fences: leases.iter().map(|l| l.token.fence).collect(),
        });
        let mut batch = Vec::new();
        let mut zombies = Vec::new();
        for l in &leases {
            log.leases.push(LeaseRec {
                offset: l.offset,
                fence: l.token.fence,
                attempt: l.attempt,
                max_attempts: l.max_attempts,
                expires_at: l.expires_at,
                claim_ret: ret,
            });
            // Decided per lease: a released task is not released forever.
            let h = mix(l.token.fence);
            if sc.zombie_every > 0 && h % sc.zombie_every == 7 {
                zombies.push(l.clone());
            } else if h % 10 == 0 {
                let (c, cm) = (seq(), now_ms());
                let r = db.fail(l.token, "injected", true);
                let o = match &r {
                    Ok(FailOutcome::Retry { .. }) => Outcome::Retry,
                    Ok(FailOutcome::Dead { .. }) => Outcome::Dead,
                    Err(_) => outcome_of(&r, Outcome::Lost),
                };
                end(&mut log, l, Kind::Fail, o, c, cm, false);
            } else if h % 50 == 1 {
                let (c, cm) = (seq(), now_ms());
                let r = db.fail(l.token, "injected fatal", false);
                if let Ok(o) = &r {
                    assert!(matches!(o, FailOutcome::Dead { .. }), "{o:?}");
                }
                let o = outcome_of(&r, Outcome::Dead);
                end(&mut log, l, Kind::Fail, o, c, cm, false);
            } else if h % 100 == 2 {
                let (c, cm) = (seq(), now_ms());
                let r = db.release(l.token);
                let o = outcome_of(&r, Outcome::Released);
                end(&mut log, l, Kind::Release, o, c, cm, false);
            } else {
                batch.push(l.clone());
            }
        }
        if rng.below(2) == 0 && !batch.is_empty() {
            let items = batch
                .iter()
                .map(|l| (l.token, l.offset.to_le_bytes().to_vec()))
                .collect();
            let (c, cm) = (seq(), now_ms());
            let rs = db.complete_batch(items).expect("complete_batch");
            assert_eq!(rs.len(), batch.len());
            for (l, r) in batch.iter().zip(rs) {
                let o = match &r {
                    Ok(c) if c.duplicate => Outcome::Duplicate,
                    _ => outcome_of(&r, Outcome::Done),
                };
                end(&mut log, l, Kind::Complete, o, c, cm, false);
            }
        } else {
            for l in &batch {
                complete_one(&db, &mut log, l, false, &end);
            }
        }
        if !zombies.is_empty() {
            thread::sleep(sc.zombie_sleep);
            for l in &zombies {
                complete_one(&db, &mut log, l, true, &end);
            }
        }
    }
    log
}

type EndFn = dyn Fn(&mut Log, &Lease, Kind, Outcome, u64, u64, bool);

fn complete_one(db: &Db, log: &mut Log, l: &Lease, zombie: bool, end: &EndFn) {
    let (c, cm) = (seq(), now_ms());
    let r = db.complete(l.token, &l.offset.to_le_bytes());
    let o = match &r {
        Ok(c) if c.duplicate => Outcome::Duplicate,
        _ => outcome_of(&r, Outcome::Done),
    };
    end(log, l, Kind::Complete, o, c, cm, zombie);
}

fn run(sc: Scenario) {
    let dir = TempDir::new(sc.tag);
    let db = Db::open(
        dir.0.join("c.ordq"),
        Options {
            durability: sc.durability,
            ..Options::default()
        },
    )
    .unwrap();
    let cfg = QueueConfig {
        shards: 8,
        ordering: Ordering::Key,
        max_attempts: 3,
        backoff: Backoff {
            initial: Duration::from_millis(2),
            max: Duration::from_millis(20),
            multiplier: 2.0,
            jitter: 0.5,
        },
        lease: sc.lease,
        dlq_policy: DlqPolicy::Skip,
    };
    db.create_queue(Q, cfg).unwrap();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..sc.workers)
        .map(|i| {
            let (db, stop) = (db.clone(), stop.clone());
            thread::spawn(move || worker(db, i, sc, stop))
        })
        .collect();
    let enq = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..sc.producers)
        .map(|i| {
            let (db, enq) = (db.clone(), enq.clone());
            thread::spawn(move || {
                let v = producer(db, i, sc);
                enq.lock().unwrap().extend(v);
            })
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
    let total = (sc.producers * sc.tasks_per_producer) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = db.stats(Q).unwrap();
        if s.next_offset == total && s.ready + s.leased + s.retry_wait == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "work did not finish: {s:?}");
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, AtomicOrdering::SeqCst);
    let mut log = Log::default();
    for w in workers {
        let l = w.join().expect("worker");
        log.leases.extend(l.leases);
        log.claims.extend(l.claims);
        log.ends.extend(l.ends);
    }
    log.enq = std::mem::take(&mut *enq.lock().unwrap());
    let elapsed = started.elapsed();
    check(&db, &sc, &log, total);
    let s = db.stats(Q).unwrap();
    eprintln!(
        "{}: {} tasks, {} claims, {} leases, {} zombies, {:?} in {elapsed:?}",
        sc.tag,
        log.enq.len(),
        log.claims.len(),
        log.leases.len(),
        log.ends.iter().filter(|e| e.zombie).count(),
        s.totals,
    );
    db.close();
}

fn check(db: &Db, sc: &Scenario, log: &Log, total: u64) {
    // --- no acknowledged enqueue lost ---------------------------------------
    assert_eq!(log.enq.len() as u64, total);
    let mut by_offset: BTreeMap<u64, &Enq> = BTreeMap::new();
    for (_, e) in &log.enq {
        assert!(
            by_offset.insert(e.offset, e).is_none(),
            "offset {} acknowledged twice",
            e.offset
        );
    }
    assert_eq!(
        by_offset.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "offsets are 0..n without gaps"
    );
    // One producer's acknowledged enqueues are in offset order.
    let mut last: HashMap<usize, u64> = HashMap::new();
    for (p, e) in &log.enq {
        if let Some(prev) = last.insert(*p, e.offset) {
            assert!(prev < e.offset, "producer {p}: {prev} then {}", e.offset);
        }
    }
    let mut infos = BTreeMap::new();
    for (&o, e) in &by_offset {
        let t = db.get_task(Q, o).expect("acknowledged task present");
        assert_eq!(t.key, e.key);
        assert_eq!(t.payload.as_deref(), Some(e.payload.as_slice()));
        assert!(t.state.is_terminal(), "task {o} ended {:?}", t.state);
        assert!(t.attempt <= t.max_attempts);
        infos.insert(o, t);
    }

    // --- leases and fences ----------------------------------------------------
    let mut fences = HashSet::new();
    for l in &log.leases {
        assert!(fences.insert(l.fence), "fence {} handed out twice", l.fence);
        assert!(l.attempt >= 1 && l.attempt <= l.max_attempts);
        assert!(l.offset < total);
    }
    for c in &log.claims {
        assert!(
            c.fences.windows(2).all(|w| w[0] < w[1]),
            "fences within one claim grow: {:?}",
            c.fences
        );
    }
    // A claim that returned before another was called has smaller fences.
    let mut by_ret: Vec<&ClaimRec> = log.claims.iter().filter(|c| !c.fences.is_empty()).collect();
    by_ret.sort_by_key(|c| c.ret);
    let mut prefix_max = Vec::with_capacity(by_ret.len());
    let mut m = 0;
    for c in &by_ret {
        m = m.max(*c.fences.last().unwrap());
        prefix_max.push(m);
    }
    for c in log.claims.iter().filter(|c| !c.fences.is_empty()) {
        let n = by_ret.partition_point(|x| x.ret < c.call);
        if n > 0 {
            assert!(
                prefix_max[n - 1] < c.fences[0],
                "claim at {} got fence {} after an earlier claim's {}",
                c.call,
                c.fences[0],
                prefix_max[n - 1]
            );
        }
    }

    // --- every lease ends once; every task finishes exactly once ------------
    let lease_of: HashMap<(u64, u64), &LeaseRec> = log
        .leases
        .iter()
        .map(|l| ((l.offset, l.fence), l))
        .collect();
    let mut ended: HashSet<(u64, u64)> = HashSet::new();
    let mut finished: HashMap<u64, &EndRec> = HashMap::new();
    let (mut failed, mut retried, mut released, mut done) = (0u64, 0u64, 0u64, 0u64);
    for e in &log.ends {
        let l = lease_of[&(e.offset, e.fence)];
        assert!(e.call > l.claim_ret);
        if e.ended_lease() {
            assert!(
                ended.insert((e.offset, e.fence)),
                "lease {}/{} ended twice",
                e.offset,
                e.fence
            );
            // Valid at the writer's time, which is after the call began.
            assert!(
                e.call_ms < l.expires_at,
                "{e:?} succeeded after its lease expired at {}",
                l.expires_at
            );
        }
        if e.outcome == Outcome::Lost {
            // Refused: the lease had expired by the time the writer saw it.
            assert!(
                e.ret_ms >= l.expires_at,
                "{e:?} refused before its lease expired at {}",
                l.expires_at
            );
        }
        if e.zombie {
            assert_eq!(
                e.outcome,
                Outcome::Lost,
                "a zombie's complete is fenced off"
            );
        }
        if e.finished_task() {
            assert!(
                finished.insert(e.offset, e).is_none(),
                "task {} finished twice",
                e.offset
            );
        }
        match (e.kind, e.outcome) {
            (Kind::Fail, Outcome::Retry) => {
                failed += 1;
                retried += 1;
            }
            (Kind::Fail, Outcome::Dead) => failed += 1,
            (Kind::Release, Outcome::Released) => released += 1,
            (Kind::Complete, Outcome::Done) => done += 1,
            (Kind::Complete, Outcome::Duplicate) => panic!("no token is completed twice"),
            _ => {}
        }
    }
    let mut dead = 0;
    for (&o, t) in &infos {
        match t.state {
            TaskState::Done => {
                let e = finished.get(&o).expect("done task has its completion");
                assert_eq!(e.kind, Kind::Complete);
                assert_eq!(e.fence, t.fence, "task {o} done under its last lease");
                assert_eq!(t.result.as_deref(), Some(o.to_le_bytes().as_slice()));
            }
            TaskState::Dead => {
                dead += 1;
                if let Some(e) = finished.get(&o) {
                    assert_eq!(e.outcome, Outcome::Dead);
                    assert_eq!(e.fence, t.fence);
                } else {
                    // Dead by expiry: its last fault says so.
                    let f = db.faults(Q, o).unwrap();
                    let last = f.last().expect("dead task has faults");
                    assert_eq!(last.kind, FaultKind::Expired, "task {o}");
                    assert_eq!(last.attempt, t.max_attempts);
                }
            }
            s => panic!("task {o} ended {s:?}"),
        }
    }
    // Every zombie's task went on under a newer lease (or died of expiry).
    for e in log.ends.iter().filter(|e| e.zombie) {
        let t = &infos[&e.offset];
        assert!(
            t.fence > e.fence || (t.state == TaskState::Dead && t.attempt == t.max_attempts),
            "zombie task {} ended {:?} with fence {}",
            e.offset,
            t.state,
            t.fence
        );
    }

    // --- per-key order and one valid lease per lane -------------------------
    let mut lanes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (&o, e) in &by_offset {
        lanes.entry(e.key.as_str()).or_default().push(o);
    }
    let mut leases_by_offset: HashMap<u64, Vec<&LeaseRec>> = HashMap::new();
    for l in &log.leases {
        leases_by_offset.entry(l.offset).or_default().push(l);
    }
    for (key, offs) in &lanes {
        for w in offs.windows(2) {
            let (i, j) = (w[0], w[1]);
            let (ti, tj) = (&infos[&i], &infos[&j]);
            // i finished before j was leased (ms clock, ties allowed).
            assert!(
                ti.committed_at <= tj.leased_at,
                "key {key}: task {j} leased at {} before {i} finished at {}",
                tj.leased_at,
                ti.committed_at
            );
            assert!(
                ti.committed_at <= tj.committed_at,
                "key {key}: {i} then {j}"
            );
        }
        // Provable order: every lease of a later task returned after the
        // call that finished each earlier task began.
        let mut finish_call = 0u64;
        for &o in offs {
            for l in leases_by_offset.get(&o).into_iter().flatten() {
                assert!(
                    l.claim_ret > finish_call,
                    "key {key}: task {o} leased (claim returned at {}) before an earlier task's finishing call at {finish_call}",
                    l.claim_ret
                );
            }
            if let Some(e) = finished.get(&o) {
                finish_call = finish_call.max(e.call);
            }
        }
        // Two leases of one lane that both ended successfully never overlap
        // provably: one must have been granted after the other ended.
        let mut valid: Vec<(&LeaseRec, &EndRec)> = Vec::new();
        for &o in offs {
            for e in log.ends.iter().filter(|e| e.offset == o && e.ended_lease()) {
                valid.push((lease_of[&(e.offset, e.fence)], e));
            }
        }
        for (a, (la, ea)) in valid.iter().enumerate() {
            for (lb, eb) in &valid[a + 1..] {
                assert!(
                    !(la.claim_ret < eb.call && lb.claim_ret < ea.call),
                    "key {key}: leases {}/{} and {}/{} were valid at once",
                    la.offset,
                    la.fence,
                    lb.offset,
                    lb.fence
                );
            }
        }
    }

    // --- stats ----------------------------------------------------------------
    let s = db.stats(Q).unwrap();
    let done_n = infos
        .values()
        .filter(|t| t.state == TaskState::Done)
        .count() as u64;
    assert_eq!(done, done_n);
    assert_eq!((s.ready, s.leased, s.retry_wait), (0, 0, 0));
    assert_eq!(s.done, done_n);
    assert_eq!(s.dead, dead);
    assert_eq!(s.next_offset, total);
    let t = s.totals;
    assert_eq!(t.enqueued, total);
    assert_eq!(t.completed, done_n);
    assert_eq!(t.dead_lettered, dead);
    assert_eq!(t.failed, failed);
    assert_eq!(t.retried, retried);
    assert_eq!(t.released, released);
    assert_eq!((t.redriven, t.purged), (0, 0));
    // Every lease ended exactly one way: a successful call or expiry.
    assert_eq!(
        log.leases.len() as u64,
        ended.len() as u64 + t.lease_expired,
        "leases = ended by a call + expired"
    );
    let faults: usize = (0..total).map(|o| db.faults(Q, o).unwrap().len()).sum();
    assert_eq!(faults as u64, t.failed + t.lease_expired);
    assert_eq!(
        s.shards
            .iter()
            .map(|x| x.pending + x.in_flight)
            .sum::<u64>(),
        0
    );
    assert_eq!(db.dlq_list(Q, None, usize::MAX).unwrap().len() as u64, dead);
    if sc.zombie_every == 0 {
        assert_eq!(t.lease_expired, 0, "no lease should expire in {}", sc.tag);
    } else {
        let zombies = log.ends.iter().filter(|e| e.zombie).count() as u64;
        assert!(zombies > 0, "the zombie scenario had no zombie");
        assert!(t.lease_expired >= zombies);
    }
    assert!(dead > 0 && retried > 0, "failures were injected");
}

/// Four producers (single and batched enqueues over 64 keys) and four
/// workers (claims of 1..50, completions single and batched, retryable and
/// fatal failures, releases), durable commits, leases that never expire.
#[test]
fn producers_and_workers_keep_every_invariant() {
    run(Scenario {
        tag: "steady",
        producers: 4,
        workers: 4,
        tasks_per_producer: 1_500,
        keys: 64,
        lease: Duration::from_secs(30),
        zombie_every: 0,
        zombie_sleep: Duration::ZERO,
        durability: Durability::Immediate,
    });
}

/// Short leases and workers that sleep past them: expired leases are taken
/// over by other workers and the sleepers' completions are refused.
#[test]
fn zombies_are_fenced_off() {
    run(Scenario {
        tag: "zombies",
        producers: 2,
        workers: 6,
        tasks_per_producer: 400,
        keys: 24,
        lease: Duration::from_millis(150),
        zombie_every: 40,
        zombie_sleep: Duration::from_millis(400),
        durability: Durability::None,
    });
}
