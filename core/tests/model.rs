//! Model-based property test: random sequences of queue operations run
//! against the engine and against a small in-memory model of the documented
//! semantics. After every step the whole observable state (every task,
//! stats, dead letters, faults) must equal the model's, and the model's own
//! invariants (lane order, one lease per lane, fences, attempts) must hold.
//! At the end everything is drained and the accounting must add up.

use ordq_core::hash::key_hash;
use ordq_core::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

const Q: &str = "q";
const KEYS: [&str; 4] = ["a", "b", "c", "d"];
const T0: u64 = 1_000_000_000;
const LEASE_MS: u64 = 10_000;
const BACKOFF_INITIAL_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 8_000;
/// Longer than any lease, backoff or delay the generators produce.
const LONG_MS: u64 = 1_000_000;
const FOREVER_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------
// Generated inputs
// ---------------------------------------------------------------------------

/// Queue and database configuration of one case.
#[derive(Debug, Clone)]
struct Cfg {
    ordering: Ordering,
    dlq: DlqPolicy,
    max_attempts: u32,
    jitter: f64,
    shards: u32,
    retain_ms: u64,
}

/// Which token a lease operation uses.
#[derive(Debug, Clone)]
enum Pick {
    /// One of the currently valid leases (falls back to history).
    Live(u8),
    /// Any token ever issued, usually stale.
    Any(u8),
    /// A token that was never issued.
    Forged(u8),
}

/// Which offset a dead-letter operation targets.
#[derive(Debug, Clone)]
enum Target {
    /// A held dead letter (falls back to any offset).
    Dead(u8),
    /// A held dead letter below a leased task of its lane (falls back to
    /// `Any`).
    BehindLease(u8),
    /// Any offset, including one past the end.
    Any(u8),
}

/// How the clock moves.
#[derive(Debug, Clone)]
enum Adv {
    /// Exactly to the next lease expiry or not_before.
    ToNext,
    /// One millisecond before the next lease expiry or not_before.
    JustBefore,
    /// Past every current lease.
    ExpireAll,
    /// By a few milliseconds to seconds.
    By(u16),
    /// Past every lease, backoff and delay.
    Long,
}

/// One task to enqueue.
#[derive(Debug, Clone)]
struct NewTask {
    key: u8,
    prio: i8,
    delay_ms: Option<u16>,
    /// `not_before` relative to now, in ms (may lie in the past).
    at_ms: Option<i16>,
    max_attempts: Option<u8>,
    idem: Option<u8>,
    header: bool,
}

#[derive(Debug, Clone)]
enum Step {
    Enqueue(NewTask),
    EnqueueBatch(Vec<NewTask>),
    Claim {
        max: u8,
        lease_s: Option<u8>,
        shard: Option<u8>,
    },
    Heartbeat {
        pick: Pick,
        lease_s: Option<u8>,
    },
    Start(Pick),
    Complete(Pick),
    CompleteBatch(Vec<Pick>),
    Fail {
        pick: Pick,
        retryable: bool,
    },
    Release(Pick),
    Advance(Adv),
    Redrive {
        target: Target,
        head: bool,
    },
    Purge(Option<Target>),
    Reopen,
}

/// Case configurations; `focus` narrows to few shared lanes, `skip` and
/// small attempt counts, where redrives behind running leases happen.
fn cfg_strategy(focus: bool) -> BoxedStrategy<Cfg> {
    let ordering = if focus {
        prop_oneof![
            Just(Ordering::Key),
            Just(Ordering::Shard),
            Just(Ordering::Global)
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(Ordering::Key),
            Just(Ordering::Shard),
            Just(Ordering::Global),
            Just(Ordering::None)
        ]
        .boxed()
    };
    let dlq = if focus {
        prop_oneof![4 => Just(DlqPolicy::Skip), 1 => Just(DlqPolicy::Block)].boxed()
    } else {
        prop_oneof![Just(DlqPolicy::Skip), Just(DlqPolicy::Block)].boxed()
    };
    let attempts = if focus { 1u32..=2 } else { 1u32..=3 };
    (
        ordering,
        dlq,
        attempts,
        prop_oneof![3 => Just(0.0), 1 => Just(0.5)],
        prop_oneof![Just(1u32), Just(2), Just(4)],
        prop_oneof![3 => Just(FOREVER_MS), 1 => Just(30_000u64)],
    )
        .prop_map(
            |(ordering, dlq, max_attempts, jitter, shards, retain_ms)| Cfg {
                ordering,
                dlq,
                max_attempts,
                jitter,
                shards,
                retain_ms,
            },
        )
        .boxed()
}

fn pick_strategy() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<u8>().prop_map(Pick::Live),
        2 => any::<u8>().prop_map(Pick::Any),
        1 => any::<u8>().prop_map(Pick::Forged),
    ]
}

/// Dead-letter targets; `focus` prefers dead letters behind a lease.
fn target_strategy(focus: bool) -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => any::<u8>().prop_map(Target::Dead),
        if focus { 12 } else { 2 } => any::<u8>().prop_map(Target::BehindLease),
        1 => any::<u8>().prop_map(Target::Any),
    ]
}

/// Tasks to enqueue; `focus` uses two keys only.
fn task_strategy(focus: bool) -> impl Strategy<Value = NewTask> {
    (
        0u8..if focus { 2 } else { 4 },
        prop_oneof![3 => Just(0i8), 1 => Just(1), 1 => Just(-1)],
        prop_oneof![4 => Just(None), 1 => (1u16..5_000).prop_map(Some)],
        prop_oneof![6 => Just(None), 1 => (-2_000i16..2_000).prop_map(Some)],
        prop_oneof![4 => Just(None), 1 => (1u8..=3).prop_map(Some)],
        prop_oneof![4 => Just(None), 1 => (0u8..3).prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(
            |(key, prio, delay_ms, at_ms, max_attempts, idem, header)| NewTask {
                key,
                prio,
                delay_ms,
                at_ms,
                max_attempts,
                idem,
                header,
            },
        )
}

fn adv_strategy() -> impl Strategy<Value = Adv> {
    prop_oneof![
        2 => Just(Adv::ToNext),
        1 => Just(Adv::JustBefore),
        2 => Just(Adv::ExpireAll),
        2 => (1u16..12_000).prop_map(Adv::By),
        1 => Just(Adv::Long),
    ]
}

/// One operation; `focus` weighs failures, redrives and reopens up and
/// completions down, so dead letters meet running leases of their lane.
fn step_strategy(focus: bool) -> BoxedStrategy<Step> {
    // (complete, fail, non-retryable share, redrive, head share, reopen)
    let (w_complete, w_fail, w_nonretry, w_redrive, w_head, w_reopen) = if focus {
        (2, 8, 3, 8, 3, 2)
    } else {
        (6, 6, 1, 3, 1, 1)
    };
    prop_oneof![
        7 => task_strategy(focus).prop_map(Step::Enqueue),
        1 => prop::collection::vec(task_strategy(focus), 1..5).prop_map(Step::EnqueueBatch),
        8 => (1u8..=4, prop::option::of(1u8..=20), prop_oneof![4 => Just(None), 1 => any::<u8>().prop_map(Some)])
            .prop_map(|(max, lease_s, shard)| Step::Claim { max, lease_s, shard }),
        2 => (pick_strategy(), prop::option::of(1u8..=20))
            .prop_map(|(pick, lease_s)| Step::Heartbeat { pick, lease_s }),
        1 => pick_strategy().prop_map(Step::Start),
        w_complete => pick_strategy().prop_map(Step::Complete),
        1 => prop::collection::vec(pick_strategy(), 1..4).prop_map(Step::CompleteBatch),
        w_fail => (pick_strategy(), prop_oneof![3 => Just(true), w_nonretry => Just(false)])
            .prop_map(|(pick, retryable)| Step::Fail { pick, retryable }),
        1 => pick_strategy().prop_map(Step::Release),
        4 => adv_strategy().prop_map(Step::Advance),
        w_redrive => (target_strategy(focus), prop_oneof![w_head => Just(true), 1 => Just(false)])
            .prop_map(|(target, head)| Step::Redrive { target, head }),
        1 => prop::option::of(target_strategy(focus)).prop_map(Step::Purge),
        w_reopen => Just(Step::Reopen),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct MFault {
    attempt: u32,
    worker: String,
    error: String,
    at: u64,
    kind: FaultKind,
    retryable: bool,
}

#[derive(Debug, Clone)]
struct MTask {
    key: String,
    lane: u64,
    shard: u32,
    priority: i32,
    payload: Vec<u8>,
    max_attempts: u32,
    idem: Option<String>,
    enqueued_at: u64,
    redriven_from: Option<u64>,
    headers: BTreeMap<String, String>,
    /// Task id from the receipt.
    id: Option<String>,
    /// State as stored (what `get_task` shows).
    state: TaskState,
    /// A `RetryWait` task the scheduler has already made eligible in memory
    /// (it leaves the `retry_wait` count while `get_task` still shows it).
    woken: bool,
    attempt: u32,
    not_before: u64,
    fence: u64,
    worker: Option<String>,
    leased_at: u64,
    lease_until: u64,
    /// Step at which the current/last lease was granted.
    lease_step: u64,
    started_at: u64,
    finished_at: u64,
    result: Option<Vec<u8>>,
    pruned: bool,
    in_dlq: bool,
    purged: bool,
    redriven_to: Option<u64>,
    faults: Vec<MFault>,
    /// Step of the last redrive to the lane head, if any.
    head_redrive_step: Option<u64>,
    /// Done plus dead-letter transitions.
    terminal_events: u32,
    head_redrives: u32,
}

impl MTask {
    fn pending(&self) -> bool {
        matches!(
            self.state,
            TaskState::Ready | TaskState::Leased | TaskState::RetryWait
        )
    }
}

/// Expected outcome of a lease operation, as an error code or a value.
type Exp<T> = std::result::Result<T, ErrorCode>;

struct Model {
    cfg: Cfg,
    qid: u32,
    now: u64,
    step: u64,
    tasks: Vec<MTask>,
    idem: HashMap<String, u64>,
    totals: Totals,
    /// Every token the engine handed out, in order.
    tokens: Vec<Token>,
    last_fence: u64,
    /// Terminal (done/dead) transitions per lane, in order.
    lane_terminal: HashMap<u64, Vec<u64>>,
    /// Lanes that saw a redrive to the head.
    head_redriven_lanes: HashSet<u64>,
}

fn code<T>(r: Result<T>) -> Exp<T> {
    r.map_err(|e| e.code())
}

impl Model {
    fn new(cfg: Cfg, qid: u32, now: u64) -> Self {
        Model {
            cfg,
            qid,
            now,
            step: 0,
            tasks: Vec::new(),
            idem: HashMap::new(),
            totals: Totals::default(),
            tokens: Vec::new(),
            last_fence: 0,
            lane_terminal: HashMap::new(),
            head_redriven_lanes: HashSet::new(),
        }
    }

    fn lane_of(&self, key: &str, offset: u64) -> (u64, u32) {
        let h = key_hash(key);
        let shard = (h % self.cfg.shards as u64) as u32;
        let lane = match self.cfg.ordering {
            Ordering::Key => h,
            Ordering::Shard => shard as u64,
            Ordering::Global => 0,
            Ordering::None => offset,
        };
        (lane, shard)
    }

    fn lane_tasks(&self, lane: u64) -> impl Iterator<Item = (u64, &MTask)> {
        self.tasks
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.lane == lane)
            .map(|(o, t)| (o as u64, t))
    }

    /// A lane is blocked while it holds a dead letter under `block`.
    fn blocked(&self, lane: u64) -> bool {
        self.cfg.dlq == DlqPolicy::Block && self.lane_tasks(lane).any(|(_, t)| t.in_dlq)
    }

    /// The lane's head: its leased task, else its lowest pending offset.
    fn head(&self, lane: u64) -> Option<u64> {
        if let Some((o, _)) = self
            .lane_tasks(lane)
            .find(|(_, t)| t.state == TaskState::Leased)
        {
            return Some(o);
        }
        self.lane_tasks(lane)
            .find(|(_, t)| t.pending())
            .map(|(o, _)| o)
    }

    fn lanes(&self) -> BTreeSet<u64> {
        self.tasks
            .iter()
            .filter(|t| t.pending())
            .map(|t| t.lane)
            .collect()
    }

    /// Lane heads claimable now, in claim order (priority, then offset).
    fn claimable(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .lanes()
            .into_iter()
            .filter(|&l| !self.blocked(l))
            .filter_map(|l| self.head(l))
            .filter(|&o| {
                let t = &self.tasks[o as usize];
                t.state != TaskState::Leased && t.not_before <= self.now
            })
            .collect();
        v.sort_by_key(|&o| (-(self.tasks[o as usize].priority as i64), o));
        v
    }

    fn valid(&self, t: &Token) -> bool {
        t.queue_id == self.qid
            && self
                .tasks
                .get(t.offset as usize)
                .is_some_and(|m| m.state == TaskState::Leased && m.fence == t.fence)
    }

    fn valid_or_count(&self, t: &Token) -> bool {
        let v = self.valid(t);
        if !v {
            count("refused stale tokens");
        }
        v
    }

    fn live_tokens(&self) -> Vec<Token> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state == TaskState::Leased)
            .map(|(o, t)| Token {
                queue_id: self.qid,
                offset: o as u64,
                fence: t.fence,
            })
            .collect()
    }

    fn pick(&self, p: &Pick) -> Token {
        let any = |i: u8| -> Token {
            if self.tokens.is_empty() {
                Token {
                    queue_id: self.qid,
                    offset: 0,
                    fence: 999_999,
                }
            } else {
                self.tokens[i as usize % self.tokens.len()]
            }
        };
        match p {
            Pick::Live(i) => {
                let live = self.live_tokens();
                if live.is_empty() {
                    any(*i)
                } else {
                    live[*i as usize % live.len()]
                }
            }
            Pick::Any(i) => any(*i),
            Pick::Forged(i) => match i % 3 {
                0 => Token {
                    queue_id: self.qid,
                    offset: *i as u64 % (self.tasks.len() as u64 + 1),
                    fence: self.last_fence + 1_000 + *i as u64,
                },
                1 => Token {
                    queue_id: self.qid + 7,
                    ..any(*i)
                },
                _ => Token {
                    queue_id: self.qid,
                    offset: self.tasks.len() as u64 + *i as u64,
                    fence: 1,
                },
            },
        }
    }

    fn target(&self, t: &Target) -> u64 {
        let any = |i: u8| i as u64 % (self.tasks.len() as u64 + 1);
        match t {
            Target::Dead(i) => {
                let dead: Vec<u64> = self.dlq();
                if dead.is_empty() {
                    any(*i)
                } else {
                    dead[*i as usize % dead.len()]
                }
            }
            Target::BehindLease(i) => {
                let behind: Vec<u64> = self
                    .dlq()
                    .into_iter()
                    .filter(|&d| {
                        let lane = self.tasks[d as usize].lane;
                        self.lane_tasks(lane)
                            .any(|(o, t)| o > d && t.state == TaskState::Leased)
                    })
                    .collect();
                if behind.is_empty() {
                    any(*i)
                } else {
                    behind[*i as usize % behind.len()]
                }
            }
            Target::Any(i) => any(*i),
        }
    }

    fn dlq(&self) -> Vec<u64> {
        (0..self.tasks.len() as u64)
            .filter(|&o| self.tasks[o as usize].in_dlq)
            .collect()
    }

    // --- writer batch boundaries -------------------------------------------

    /// Start of a writer batch: due lease expiries fire.
    fn begin(&mut self) {
        let now = self.now;
        for o in 0..self.tasks.len() {
            let t = &self.tasks[o];
            if t.state == TaskState::Leased && t.lease_until <= now {
                let f = MFault {
                    attempt: t.attempt,
                    worker: t.worker.clone().expect("leased task has a worker"),
                    error: "lease expired".into(),
                    at: now,
                    kind: FaultKind::Expired,
                    retryable: true,
                };
                self.tasks[o].faults.push(f);
                self.totals.lease_expired += 1;
                count("lease expiries");
                let t = &self.tasks[o];
                if t.attempt >= t.max_attempts {
                    count("expired to dead");
                    self.dead(o as u64);
                } else {
                    let t = &mut self.tasks[o];
                    t.state = TaskState::Ready;
                    t.not_before = now;
                }
            }
        }
    }

    /// End of a writer batch: retention prunes, idle heads are refreshed.
    fn end(&mut self) {
        let now = self.now;
        for t in self.tasks.iter_mut() {
            if t.state == TaskState::Done
                && !t.pruned
                && t.finished_at.saturating_add(self.cfg.retain_ms) <= now
            {
                t.pruned = true;
                count("pruned tasks");
                if let Some(k) = &t.idem {
                    self.idem.remove(k);
                }
            }
        }
        self.refresh();
    }

    fn refresh(&mut self) {
        for l in self.lanes() {
            if self.blocked(l) {
                continue;
            }
            let Some(h) = self.head(l) else { continue };
            let t = &mut self.tasks[h as usize];
            if t.state == TaskState::RetryWait && t.not_before <= self.now {
                t.woken = true;
            }
        }
    }

    /// True when some lane has a lower pending task behind its lease.
    fn lane_behind_lease(&self) -> bool {
        self.tasks.iter().enumerate().any(|(o, l)| {
            l.state == TaskState::Leased
                && self
                    .lane_tasks(l.lane)
                    .any(|(lo, t)| lo < o as u64 && t.pending())
        })
    }

    /// The database was closed and opened again.
    fn reopened(&mut self) {
        if self.lane_behind_lease() {
            count("reopens with a task behind a lease");
        }
        for t in self.tasks.iter_mut() {
            t.woken = false;
        }
        self.refresh();
    }

    // --- transitions -------------------------------------------------------

    fn terminal(&mut self, o: u64) {
        let lane = self.tasks[o as usize].lane;
        self.tasks[o as usize].terminal_events += 1;
        self.lane_terminal.entry(lane).or_default().push(o);
    }

    fn dead(&mut self, o: u64) {
        let now = self.now;
        let t = &mut self.tasks[o as usize];
        t.state = TaskState::Dead;
        t.finished_at = now;
        t.in_dlq = true;
        self.totals.dead_lettered += 1;
        self.terminal(o);
    }

    fn add_task(
        &mut self,
        key: &str,
        payload: Vec<u8>,
        opts: &EnqueueOptions,
        redriven_from: Option<u64>,
    ) -> u64 {
        let o = self.tasks.len() as u64;
        let (lane, shard) = self.lane_of(key, o);
        let not_before = opts
            .not_before
            .or_else(|| opts.delay.map(|d| self.now + d.as_millis() as u64))
            .unwrap_or(self.now);
        self.tasks.push(MTask {
            key: key.to_string(),
            lane,
            shard,
            priority: opts.priority,
            payload,
            max_attempts: opts.max_attempts.unwrap_or(self.cfg.max_attempts),
            idem: opts.idempotency_key.clone(),
            enqueued_at: self.now,
            redriven_from,
            headers: opts.headers.clone(),
            id: None,
            state: TaskState::Ready,
            woken: false,
            attempt: 0,
            not_before,
            fence: 0,
            worker: None,
            leased_at: 0,
            lease_until: 0,
            lease_step: 0,
            started_at: 0,
            finished_at: 0,
            result: None,
            pruned: false,
            in_dlq: false,
            purged: false,
            redriven_to: None,
            faults: Vec::new(),
            head_redrive_step: None,
            terminal_events: 0,
            head_redrives: 0,
        });
        if let Some(k) = &opts.idempotency_key {
            self.idem.insert(k.clone(), o);
        }
        self.totals.enqueued += 1;
        o
    }

    /// Expected `(offset, shard, duplicate)` of one enqueue.
    fn enqueue(&mut self, item: &EnqueueItem) -> (u64, u32, bool) {
        if let Some(k) = &item.opts.idempotency_key {
            if let Some(&o) = self.idem.get(k) {
                count("idempotent duplicates");
                return (o, self.tasks[o as usize].shard, true);
            }
        }
        let o = self.add_task(&item.key, item.payload.clone(), &item.opts, None);
        (o, self.tasks[o as usize].shard, false)
    }

    /// Records a lease the engine granted (already checked against
    /// `claimable`).
    fn leased(&mut self, l: &Lease, worker: &str, lease_ms: u64) {
        let o = l.offset as usize;
        // Lane order: every lower offset of the lane is finished.
        let lane = self.tasks[o].lane;
        for (lo, t) in self.lane_tasks(lane) {
            if lo < l.offset {
                assert!(
                    t.state.is_terminal(),
                    "lane order: task {} leased while lower task {lo} of its lane is {:?}",
                    l.offset,
                    t.state
                );
            }
        }
        assert!(
            l.token.fence > self.last_fence,
            "fence {} after {}",
            l.token.fence,
            self.last_fence
        );
        self.last_fence = l.token.fence;
        count("claims");
        self.tokens.push(l.token);
        let now = self.now;
        let step = self.step;
        let t = &mut self.tasks[o];
        t.state = TaskState::Leased;
        t.woken = false;
        t.attempt += 1;
        assert!(t.attempt <= t.max_attempts, "attempt beyond max_attempts");
        t.fence = l.token.fence;
        t.worker = Some(worker.to_string());
        t.leased_at = now;
        t.lease_until = now + lease_ms;
        t.lease_step = step;
        t.started_at = 0;
    }

    fn heartbeat(&mut self, tok: &Token, lease_ms: u64) -> Exp<u64> {
        if !self.valid_or_count(tok) {
            return Err(ErrorCode::LeaseLost);
        }
        let until = self.now + lease_ms;
        self.tasks[tok.offset as usize].lease_until = until;
        Ok(until)
    }

    fn start(&mut self, tok: &Token) -> Exp<()> {
        if !self.valid_or_count(tok) {
            return Err(ErrorCode::LeaseLost);
        }
        self.tasks[tok.offset as usize].started_at = self.now;
        Ok(())
    }

    /// A refused `complete`/`fail` of this queue's token is a rollback.
    fn rolled_back(&mut self, tok: &Token) {
        if tok.queue_id == self.qid {
            self.totals.rollbacks += 1;
        }
    }

    fn complete(&mut self, tok: &Token, result: &[u8]) -> Exp<Completion> {
        if !self.valid(tok) {
            if let Some(t) = self.tasks.get(tok.offset as usize) {
                if tok.queue_id == self.qid && t.state == TaskState::Done && t.fence == tok.fence {
                    count("duplicate completions");
                    return Ok(Completion {
                        offset: tok.offset,
                        committed_at: t.finished_at,
                        duplicate: true,
                    });
                }
            }
            count("refused stale tokens");
            self.rolled_back(tok);
            return Err(ErrorCode::LeaseLost);
        }
        count("completes");
        let o = tok.offset;
        let lane = self.tasks[o as usize].lane;
        let lease_step = self.tasks[o as usize].lease_step;
        // Lane order at commit: lower offsets are finished, or were put
        // back at the head while this lease was already running.
        for (lo, t) in self.lane_tasks(lane) {
            if lo < o && !t.state.is_terminal() {
                assert!(
                    t.head_redrive_step.is_some_and(|s| s > lease_step),
                    "lane order: task {o} completes while lower task {lo} is {:?}",
                    t.state
                );
                count("completions above a redriven lower task");
            }
        }
        let now = self.now;
        let t = &mut self.tasks[o as usize];
        t.state = TaskState::Done;
        t.finished_at = now;
        t.result = Some(result.to_vec());
        self.totals.completed += 1;
        self.terminal(o);
        Ok(Completion {
            offset: o,
            committed_at: now,
            duplicate: false,
        })
    }

    /// Expected fail outcome; for `Retry` the range `[lo, hi]` of the delay.
    fn fail(&mut self, tok: &Token, error: &str, retryable: bool) -> Exp<(FailOutcome, u64, u64)> {
        if !self.valid_or_count(tok) {
            self.rolled_back(tok);
            return Err(ErrorCode::LeaseLost);
        }
        let o = tok.offset as usize;
        let now = self.now;
        let t = &mut self.tasks[o];
        t.faults.push(MFault {
            attempt: t.attempt,
            worker: t.worker.clone().expect("worker"),
            error: error.to_string(),
            at: now,
            kind: FaultKind::Failed,
            retryable,
        });
        self.totals.failed += 1;
        let attempt = t.attempt;
        if !retryable || attempt >= t.max_attempts {
            count("failed to dead");
            self.dead(o as u64);
            return Ok((FailOutcome::Dead { attempt }, 0, 0));
        }
        let base = (BACKOFF_INITIAL_MS << (attempt - 1)).min(BACKOFF_MAX_MS);
        let lo = ((base as f64 * (1.0 - self.cfg.jitter)).floor() as u64).max(1);
        let hi = base.max(1);
        t.state = TaskState::RetryWait;
        t.woken = false;
        t.not_before = now + hi;
        self.totals.retried += 1;
        count("retries");
        Ok((
            FailOutcome::Retry {
                attempt,
                not_before: now + hi,
            },
            lo,
            hi,
        ))
    }

    fn release(&mut self, tok: &Token) -> Exp<()> {
        if !self.valid_or_count(tok) {
            return Err(ErrorCode::LeaseLost);
        }
        let t = &mut self.tasks[tok.offset as usize];
        t.state = TaskState::Ready;
        t.attempt -= 1;
        t.started_at = 0;
        self.totals.released += 1;
        count("releases");
        Ok(())
    }

    fn dlq_check(&self, o: u64) -> Exp<()> {
        match self.tasks.get(o as usize) {
            None => Err(ErrorCode::NotFound),
            Some(t) if !t.in_dlq => Err(ErrorCode::InvalidState),
            Some(_) => Ok(()),
        }
    }

    /// Expected receipt `(offset, shard)` of a redrive.
    fn redrive(&mut self, o: u64, mode: RedriveMode) -> Exp<(u64, u32)> {
        self.dlq_check(o)?;
        self.totals.redriven += 1;
        let now = self.now;
        let step = self.step;
        match mode {
            RedriveMode::Head => {
                let t = &mut self.tasks[o as usize];
                t.in_dlq = false;
                t.state = TaskState::Ready;
                t.woken = false;
                t.attempt = 0;
                t.not_before = now;
                t.started_at = 0;
                t.finished_at = 0;
                t.head_redrive_step = Some(step);
                t.head_redrives += 1;
                let (lane, shard) = (t.lane, t.shard);
                self.head_redriven_lanes.insert(lane);
                count("head redrives");
                if self
                    .lane_tasks(lane)
                    .any(|(lo, t)| lo > o && t.state == TaskState::Leased)
                {
                    count("head redrives behind a lease");
                }
                Ok((o, shard))
            }
            RedriveMode::NewOffset => {
                let t = self.tasks[o as usize].clone();
                let opts = EnqueueOptions {
                    priority: t.priority,
                    max_attempts: Some(t.max_attempts),
                    headers: t.headers.clone(),
                    ..Default::default()
                };
                let n = self.add_task(&t.key, t.payload.clone(), &opts, Some(o));
                count("new-offset redrives");
                let t = &mut self.tasks[o as usize];
                t.in_dlq = false;
                t.redriven_to = Some(n);
                Ok((n, self.tasks[n as usize].shard))
            }
        }
    }

    fn purge(&mut self, o: Option<u64>) -> Exp<u64> {
        let list = match o {
            Some(o) => {
                self.dlq_check(o)?;
                vec![o]
            }
            None => self.dlq(),
        };
        for &o in &list {
            let t = &mut self.tasks[o as usize];
            t.in_dlq = false;
            t.purged = true;
            t.faults.clear();
            self.totals.purged += 1;
            count("purges");
        }
        Ok(list.len() as u64)
    }

    // --- expectations ------------------------------------------------------

    fn expected_info(&self, o: u64) -> ExpectedInfo {
        let t = &self.tasks[o as usize];
        ExpectedInfo {
            key: t.key.clone(),
            shard: t.shard,
            priority: t.priority,
            state: t.state,
            attempt: t.attempt,
            max_attempts: t.max_attempts,
            not_before: t.not_before,
            fence: t.fence,
            worker: t.worker.clone(),
            enqueued_at: t.enqueued_at,
            leased_at: t.leased_at,
            started_at: t.started_at,
            committed_at: t.finished_at,
            lease_expires_at: if t.state == TaskState::Leased {
                t.lease_until
            } else {
                0
            },
            payload: (!t.pruned && !t.purged).then(|| t.payload.clone()),
            result: if t.pruned { None } else { t.result.clone() },
            idempotency_key: t.idem.clone(),
            headers: t.headers.clone(),
            id: t.id.clone(),
            redriven_from: t.redriven_from,
            redriven_to: t.redriven_to,
        }
    }

    fn expected_stats(&self) -> QueueStats {
        let n = self.cfg.shards as usize;
        let mut shards = vec![ShardStats::default(); n];
        let (mut pending, mut leased, mut retry) = (0, 0, 0);
        for t in self.tasks.iter().filter(|t| t.pending()) {
            pending += 1;
            let s = &mut shards[t.shard as usize];
            if t.state == TaskState::Leased {
                leased += 1;
                s.in_flight += 1;
            } else {
                s.pending += 1;
            }
            if t.state == TaskState::RetryWait && !t.woken {
                retry += 1;
            }
        }
        for o in self.claimable() {
            shards[self.tasks[o as usize].shard as usize].eligible += 1;
        }
        let oldest = self
            .tasks
            .iter()
            .find(|t| t.pending())
            .map(|t| self.now - t.enqueued_at)
            .unwrap_or(0);
        QueueStats {
            queue: Q.to_string(),
            ready: pending - leased - retry,
            leased,
            retry_wait: retry,
            done: self.totals.completed,
            dead: self.dlq().len() as u64,
            unfinished: pending,
            oldest_pending_age_ms: oldest,
            next_offset: self.tasks.len() as u64,
            shards,
            totals: self.totals,
        }
    }

    /// Invariants of the model itself (the engine equals it after checks).
    fn check_invariants(&self) {
        let mut per_lane: HashMap<u64, Vec<u64>> = HashMap::new();
        for (o, t) in self.tasks.iter().enumerate() {
            assert!(t.attempt <= t.max_attempts, "task {o}: attempts exceeded");
            if t.state == TaskState::Leased {
                per_lane.entry(t.lane).or_default().push(o as u64);
            }
            assert!(
                t.terminal_events <= 1 + t.head_redrives,
                "task {o} finished more than once"
            );
        }
        for (lane, v) in per_lane {
            assert!(v.len() <= 1, "lane {lane} has {} tasks in flight", v.len());
            let l = &self.tasks[v[0] as usize];
            for (lo, t) in self.lane_tasks(lane) {
                if lo < v[0] && !t.state.is_terminal() {
                    assert!(
                        t.head_redrive_step.is_some_and(|s| s > l.lease_step),
                        "lane {lane}: {lo} pending below leased {}",
                        v[0]
                    );
                }
            }
        }
    }
}

/// The fields of a `TaskInfo` the model predicts.
#[derive(Debug, PartialEq)]
struct ExpectedInfo {
    key: String,
    shard: u32,
    priority: i32,
    state: TaskState,
    attempt: u32,
    max_attempts: u32,
    not_before: u64,
    fence: u64,
    worker: Option<String>,
    enqueued_at: u64,
    leased_at: u64,
    started_at: u64,
    committed_at: u64,
    lease_expires_at: u64,
    payload: Option<Vec<u8>>,
    result: Option<Vec<u8>>,
    idempotency_key: Option<String>,
    headers: BTreeMap<String, String>,
    id: Option<String>,
    redriven_from: Option<u64>,
    redriven_to: Option<u64>,
}

fn actual_info(i: &TaskInfo) -> ExpectedInfo {
    ExpectedInfo {
        key: i.key.clone(),
        shard: i.shard,
        priority: i.priority,
        state: i.state,
        attempt: i.attempt,
        max_attempts: i.max_attempts,
        not_before: i.not_before,
        fence: i.fence,
        worker: i.worker.clone(),
        enqueued_at: i.enqueued_at,
        leased_at: i.leased_at,
        started_at: i.started_at,
        committed_at: i.committed_at,
        lease_expires_at: i.lease_expires_at,
        payload: i.payload.clone(),
        result: i.result.clone(),
        idempotency_key: i.idempotency_key.clone(),
        headers: i.headers.clone(),
        id: Some(i.id.clone()),
        redriven_from: i.redriven_from,
        redriven_to: i.redriven_to,
    }
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// A fresh directory, removed when the case ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "ordq-model-{}-{}",
            std::process::id(),
            N.fetch_add(1, AtomicOrdering::Relaxed)
        ));
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

struct Harness {
    db: Db,
    path: PathBuf,
    opts: Options,
    clock: Arc<ManualClock>,
    m: Model,
}

impl Harness {
    fn new(dir: &Path, cfg: Cfg) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let opts = Options {
            durability: Durability::None,
            clock: clock.clone(),
            retain_done: Duration::from_millis(cfg.retain_ms),
            ..Options::default()
        };
        let path = dir.join("m.ordq");
        let db = Db::open(&path, opts.clone()).unwrap();
        let qc = QueueConfig {
            shards: cfg.shards,
            ordering: cfg.ordering,
            max_attempts: cfg.max_attempts,
            backoff: Backoff {
                initial: Duration::from_millis(BACKOFF_INITIAL_MS),
                max: Duration::from_millis(BACKOFF_MAX_MS),
                multiplier: 2.0,
                jitter: cfg.jitter,
            },
            lease: Duration::from_millis(LEASE_MS),
            dlq_policy: cfg.dlq,
        };
        let info = db.create_queue(Q, qc).unwrap();
        Harness {
            db,
            path,
            opts,
            clock,
            m: Model::new(cfg, info.id, T0),
        }
    }

    /// Wraps a writer call: timers fire before it, retention after it.
    fn batch<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.m.begin();
        let r = f(self);
        self.m.end();
        r
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.m.now += ms;
        self.db.sync().unwrap();
        self.batch(|_| ());
    }

    /// The next time something happens by itself: a lease expiry or a
    /// pending task's not_before.
    fn next_event(&self) -> Option<u64> {
        self.m
            .tasks
            .iter()
            .filter_map(|t| match t.state {
                TaskState::Leased => Some(t.lease_until),
                TaskState::Ready | TaskState::RetryWait => Some(t.not_before),
                _ => None,
            })
            .filter(|&at| at > self.m.now)
            .min()
    }

    fn item(&self, n: &NewTask) -> EnqueueItem {
        let seq = self.m.step;
        EnqueueItem {
            key: KEYS[n.key as usize % KEYS.len()].to_string(),
            payload: format!("p{seq}-{}", n.key).into_bytes(),
            opts: EnqueueOptions {
                priority: n.prio as i32,
                not_before: n.at_ms.map(|d| (self.m.now as i64 + d as i64) as u64),
                delay: n.delay_ms.map(|d| Duration::from_millis(d as u64)),
                max_attempts: n.max_attempts.map(|m| m as u32),
                idempotency_key: n.idem.map(|k| format!("idem-{k}")),
                headers: if n.header {
                    BTreeMap::from([("trace".to_string(), format!("t{seq}"))])
                } else {
                    BTreeMap::new()
                },
            },
        }
    }

    fn enqueue(&mut self, items: Vec<EnqueueItem>) {
        let single = items.len() == 1;
        let got = if single {
            code(
                self.db
                    .enqueue(Q, &items[0].key, &items[0].payload, items[0].opts.clone()),
            )
            .map(|r| vec![r])
        } else {
            code(self.db.enqueue_batch(Q, items.clone()))
        };
        let got = got.expect("enqueue");
        self.batch(|h| {
            let exp: Vec<(u64, u32, bool)> = items.iter().map(|it| h.m.enqueue(it)).collect();
            let act: Vec<(u64, u32, bool)> = got
                .iter()
                .map(|r| (r.offset, r.shard, r.duplicate))
                .collect();
            assert_eq!(act, exp, "enqueue receipts");
            for r in &got {
                let t = &mut h.m.tasks[r.offset as usize];
                if r.duplicate {
                    assert_eq!(t.id.as_deref(), Some(r.id.as_str()), "duplicate's id");
                } else {
                    assert!(t.id.is_none());
                    t.id = Some(r.id.clone());
                }
            }
        });
    }

    fn claim(&mut self, max: usize, lease_ms: Option<u64>, shard: Option<u32>) -> Vec<Lease> {
        let worker = format!("w{}", self.m.step);
        let opts = ClaimOptions {
            max,
            lease: lease_ms.map(Duration::from_millis),
            wait: Duration::ZERO,
            shards: shard.map(|s| vec![s]),
        };
        let got = self.db.claim(Q, &worker, opts).expect("claim");
        self.batch(|h| {
            let mut exp = h.m.claimable();
            if let Some(s) = shard {
                exp.retain(|&o| h.m.tasks[o as usize].shard == s);
            }
            exp.truncate(max);
            if h.m.lanes().into_iter().any(|l| h.m.blocked(l)) {
                count("blocked lanes");
            }
            let act: Vec<u64> = got.iter().map(|l| l.offset).collect();
            assert_eq!(act, exp, "claimed offsets (max {max}, shard {shard:?})");
            let lease_ms = lease_ms.unwrap_or(LEASE_MS);
            for l in &got {
                let t = &h.m.tasks[l.offset as usize];
                assert_eq!(l.token.queue_id, h.m.qid);
                assert_eq!(l.token.offset, l.offset);
                assert_eq!(l.queue, Q);
                assert_eq!(l.key, t.key);
                assert_eq!(l.shard, t.shard);
                assert_eq!(l.priority, t.priority);
                assert_eq!(l.payload, t.payload);
                assert_eq!(l.attempt, t.attempt + 1);
                assert_eq!(l.max_attempts, t.max_attempts);
                assert!(l.attempt <= l.max_attempts);
                assert_eq!(l.enqueued_at, t.enqueued_at);
                assert_eq!(Some(&l.id), t.id.as_ref());
                assert_eq!(l.headers, t.headers);
                assert_eq!(l.leased_at, h.m.now);
                assert_eq!(l.expires_at, h.m.now + lease_ms);
                h.m.leased(l, &worker, lease_ms);
            }
        });
        got
    }

    fn complete(&mut self, tok: Token) {
        let result = format!("r{}", self.m.step).into_bytes();
        let got = code(self.db.complete(tok, &result));
        self.batch(|h| {
            let exp = h.m.complete(&tok, &result);
            assert_eq!(got, exp, "complete {tok:?}");
        });
    }

    fn complete_batch(&mut self, toks: Vec<Token>) {
        let items: Vec<(Token, Vec<u8>)> = toks
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, format!("r{}-{i}", self.m.step).into_bytes()))
            .collect();
        let got: Vec<Exp<Completion>> = self
            .db
            .complete_batch(items.clone())
            .expect("complete_batch")
            .into_iter()
            .map(code)
            .collect();
        self.batch(|h| {
            let exp: Vec<Exp<Completion>> = items.iter().map(|(t, r)| h.m.complete(t, r)).collect();
            assert_eq!(got, exp, "complete_batch {toks:?}");
        });
    }

    fn fail(&mut self, tok: Token, retryable: bool) {
        let error = format!("boom {}", self.m.step);
        let got = code(self.db.fail(tok, &error, retryable));
        self.batch(|h| {
            let exp = h.m.fail(&tok, &error, retryable);
            match (got, exp) {
                (
                    Ok(FailOutcome::Retry {
                        attempt,
                        not_before,
                    }),
                    Ok((FailOutcome::Retry { attempt: ea, .. }, lo, hi)),
                ) => {
                    assert_eq!(attempt, ea, "retry attempt");
                    let d = not_before - h.m.now;
                    assert!(
                        (lo..=hi).contains(&d),
                        "retry delay {d} outside [{lo}, {hi}]"
                    );
                    h.m.tasks[tok.offset as usize].not_before = not_before;
                }
                (got, exp) => assert_eq!(got, exp.map(|e| e.0), "fail {tok:?}"),
            }
        });
    }

    fn reopen(&mut self) {
        if !self.m.live_tokens().is_empty() {
            count("reopens with a live lease");
        }
        self.db.close();
        assert_eq!(self.db.sync().map_err(|e| e.code()), Err(ErrorCode::Closed));
        self.db = Db::open(&self.path, self.opts.clone()).expect("reopen");
        self.m.reopened();
    }

    fn run(&mut self, s: &Step) {
        self.m.step += 1;
        match s {
            Step::Enqueue(n) => {
                let it = self.item(n);
                self.enqueue(vec![it]);
            }
            Step::EnqueueBatch(v) => {
                let items = v.iter().map(|n| self.item(n)).collect();
                self.enqueue(items);
            }
            Step::Claim {
                max,
                lease_s,
                shard,
            } => {
                let shard = shard.map(|s| s as u32 % self.m.cfg.shards);
                self.claim(*max as usize, lease_s.map(|s| s as u64 * 1000), shard);
            }
            Step::Heartbeat { pick, lease_s } => {
                let tok = self.m.pick(pick);
                let lease = lease_s.map(|s| Duration::from_secs(s as u64));
                let got = code(self.db.heartbeat(tok, lease));
                self.batch(|h| {
                    let ms = lease.map_or(LEASE_MS, |d| d.as_millis() as u64);
                    assert_eq!(got, h.m.heartbeat(&tok, ms), "heartbeat {tok:?}");
                });
            }
            Step::Start(p) => {
                let tok = self.m.pick(p);
                let got = code(self.db.start(tok));
                self.batch(|h| assert_eq!(got, h.m.start(&tok), "start {tok:?}"));
            }
            Step::Complete(p) => {
                let tok = self.m.pick(p);
                self.complete(tok);
            }
            Step::CompleteBatch(ps) => {
                let toks = ps.iter().map(|p| self.m.pick(p)).collect();
                self.complete_batch(toks);
            }
            Step::Fail { pick, retryable } => {
                let tok = self.m.pick(pick);
                self.fail(tok, *retryable);
            }
            Step::Release(p) => {
                let tok = self.m.pick(p);
                let got = code(self.db.release(tok));
                self.batch(|h| assert_eq!(got, h.m.release(&tok), "release {tok:?}"));
            }
            Step::Advance(a) => {
                let ms = match a {
                    Adv::ToNext => self.next_event().map_or(1, |t| t - self.m.now),
                    Adv::JustBefore => self
                        .next_event()
                        .map_or(1, |t| (t - self.m.now).saturating_sub(1)),
                    Adv::ExpireAll => {
                        let last = self
                            .m
                            .tasks
                            .iter()
                            .filter(|t| t.state == TaskState::Leased)
                            .map(|t| t.lease_until)
                            .max()
                            .unwrap_or(self.m.now);
                        last.saturating_sub(self.m.now).max(1)
                    }
                    Adv::By(ms) => *ms as u64,
                    Adv::Long => LONG_MS,
                };
                self.advance(ms);
            }
            Step::Redrive { target, head } => {
                let o = self.m.target(target);
                let mode = if *head {
                    RedriveMode::Head
                } else {
                    RedriveMode::NewOffset
                };
                let got = code(self.db.dlq_redrive(Q, o, mode));
                self.batch(|h| {
                    let exp = h.m.redrive(o, mode);
                    let act = got.as_ref().map(|r| {
                        assert!(!r.duplicate);
                        (r.offset, r.shard)
                    });
                    assert_eq!(act.map_err(|e| *e), exp, "redrive {o} {mode:?}");
                    if let Ok(r) = got {
                        let old = h.m.tasks[o as usize].id.clone();
                        let t = &mut h.m.tasks[r.offset as usize];
                        match mode {
                            RedriveMode::Head => assert_eq!(t.id.as_ref(), Some(&r.id)),
                            RedriveMode::NewOffset => {
                                assert!(t.id.is_none());
                                assert_ne!(old, Some(r.id.clone()), "a new offset has a new id");
                                t.id = Some(r.id);
                            }
                        }
                    }
                });
            }
            Step::Purge(t) => {
                let o = t.as_ref().map(|t| self.m.target(t));
                let got = code(self.db.dlq_purge(Q, o));
                self.batch(|h| assert_eq!(got, h.m.purge(o), "purge {o:?}"));
            }
            Step::Reopen => self.reopen(),
        }
    }

    /// Compares everything observable with the model.
    fn check(&mut self) {
        self.m.check_invariants();
        let stats = self.db.stats(Q).expect("stats");
        self.batch(|_| ());
        assert_eq!(stats, self.m.expected_stats(), "stats");
        let n = self.m.tasks.len() as u64;
        for o in 0..n {
            let info = self.db.get_task(Q, o).expect("acknowledged task is there");
            assert_eq!(info.offset, o);
            assert!(info.attempt <= info.max_attempts);
            assert_eq!(actual_info(&info), self.m.expected_info(o), "task {o}");
            let faults: Vec<MFault> = self
                .db
                .faults(Q, o)
                .expect("faults")
                .into_iter()
                .map(|f| MFault {
                    attempt: f.attempt,
                    worker: f.worker,
                    error: f.error,
                    at: f.at,
                    kind: f.kind,
                    retryable: f.retryable,
                })
                .collect();
            assert_eq!(faults, self.m.tasks[o as usize].faults, "faults of {o}");
        }
        assert_eq!(
            self.db.get_task(Q, n).map_err(|e| e.code()).err(),
            Some(ErrorCode::NotFound)
        );
        let dlq: Vec<u64> = self
            .db
            .dlq_list(Q, None, 10_000)
            .expect("dlq_list")
            .iter()
            .map(|t| t.offset)
            .collect();
        assert_eq!(dlq, self.m.dlq(), "dead letters");
        if let Some(&first) = dlq.first() {
            let page: Vec<u64> = self
                .db
                .dlq_list(Q, Some(first), 1)
                .unwrap()
                .iter()
                .map(|t| t.offset)
                .collect();
            assert_eq!(
                page,
                dlq.iter().skip(1).take(1).copied().collect::<Vec<_>>()
            );
            let dl = self.db.dlq_get(Q, first).expect("dlq_get");
            assert_eq!(dl.task.offset, first);
            assert_eq!(dl.faults.len(), self.m.tasks[first as usize].faults.len());
        }
        for o in 0..n {
            if !self.m.tasks[o as usize].in_dlq {
                let e = self.db.dlq_get(Q, o).map_err(|e| e.code()).err();
                assert_eq!(e, Some(ErrorCode::NotFound), "dlq_get {o}");
            }
        }
    }

    /// Runs everything to an end: every task done or dead.
    fn drain(&mut self) {
        for _ in 0..1_000 {
            self.advance(LONG_MS);
            let got = self.claim(100, None, None);
            let toks: Vec<Token> = got.iter().map(|l| l.token).collect();
            for t in toks {
                self.m.step += 1;
                self.complete(t);
            }
            if self.m.tasks.iter().all(|t| !t.pending()) {
                return;
            }
            if got.is_empty() {
                // Only lanes blocked by a dead letter can be stuck.
                for l in self.m.lanes() {
                    assert!(self.m.blocked(l), "lane {l} stuck without a dead letter");
                }
                let got = code(self.db.dlq_purge(Q, None));
                self.batch(|h| assert_eq!(got, h.m.purge(None), "purge all"));
            }
        }
        panic!("drain did not finish");
    }

    fn final_checks(&mut self) {
        self.check();
        let m = &self.m;
        let n = m.tasks.len() as u64;
        let mut done = 0;
        let mut dead = 0;
        for (o, t) in m.tasks.iter().enumerate() {
            assert!(t.state.is_terminal(), "task {o} ended {:?}", t.state);
            assert_eq!(
                t.terminal_events,
                1 + t.head_redrives,
                "task {o} must end exactly once per life"
            );
            match t.state {
                TaskState::Done => done += 1,
                _ => dead += 1,
            }
        }
        let tot = &m.totals;
        let head_redrives: u64 = m.tasks.iter().map(|t| t.head_redrives as u64).sum();
        let new_redrives = m.tasks.iter().filter(|t| t.redriven_to.is_some()).count() as u64;
        let purged = m.tasks.iter().filter(|t| t.purged).count() as u64;
        assert_eq!(done + dead, n);
        assert_eq!(tot.enqueued, n);
        assert_eq!(tot.completed, done);
        assert_eq!(tot.dead_lettered, dead + head_redrives);
        assert_eq!(tot.redriven, head_redrives + new_redrives);
        assert_eq!(tot.purged, purged);
        assert_eq!(dead, m.dlq().len() as u64 + purged + new_redrives);
        assert_eq!(
            m.tasks.iter().filter(|t| t.redriven_from.is_some()).count() as u64,
            new_redrives
        );
        // Per-lane order of finishing equals offset order without head redrives.
        for (lane, v) in &m.lane_terminal {
            if !m.head_redriven_lanes.contains(lane) {
                assert!(
                    v.windows(2).all(|w| w[0] < w[1]),
                    "lane {lane} finished out of order: {v:?}"
                );
            }
        }
        // Every stale token is refused; the completing one reports a duplicate.
        let toks = m.tokens.clone();
        for t in toks {
            let task = &self.m.tasks[t.offset as usize];
            let got = code(self.db.complete(t, b"late"));
            if task.state == TaskState::Done && task.fence == t.fence {
                let c = got.expect("duplicate completion");
                assert!(c.duplicate);
                assert_eq!(c.committed_at, task.finished_at);
            } else {
                assert_eq!(got.err(), Some(ErrorCode::LeaseLost), "stale {t:?}");
                self.m.rolled_back(&t);
            }
            assert_eq!(
                code(self.db.heartbeat(t, None)).err(),
                Some(ErrorCode::LeaseLost)
            );
        }
        // Tokens grow strictly, across reopens too.
        assert!(self.m.tokens.windows(2).all(|w| w[0].fence < w[1].fence));
        // The refused completions above are counted as rollbacks, durably.
        self.reopen();
        self.check();
    }
}

fn run_case(cfg: Cfg, steps: Vec<Step>) {
    let dir = TempDir::new();
    let mut h = Harness::new(&dir.0, cfg);
    for s in &steps {
        h.run(s);
        h.check();
    }
    h.drain();
    h.final_checks();
    h.db.close();
}

/// Cases per property: `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

thread_local! {
    /// How often interesting things happened in this test's cases, so that
    /// a change in the generators cannot quietly make the test vacuous.
    static COVERAGE: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

fn count(what: &'static str) {
    COVERAGE.with(|c| *c.borrow_mut().entry(what).or_default() += 1);
}

/// Runs `cases` random cases, then asserts every name in `must` happened.
fn run_property(
    cases: u32,
    strategy: impl Strategy<Value = (Cfg, Vec<Step>)>,
    must: &[&'static str],
) {
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    COVERAGE.with(|c| c.borrow_mut().clear());
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, |(cfg, steps)| {
        run_case(cfg, steps);
        Ok(())
    }) {
        panic!("{e}");
    }
    let seen = COVERAGE.with(|c| c.borrow().clone());
    eprintln!("coverage: {seen:?}");
    if cases >= 32 {
        for m in must {
            assert!(
                seen.get(m).copied().unwrap_or(0) > 0,
                "no case exercised {m}"
            );
        }
    }
}

/// Random operation sequences agree with the model and keep every
/// invariant.
#[test]
fn engine_matches_model() {
    run_property(
        cases(96),
        (
            cfg_strategy(false),
            prop::collection::vec(step_strategy(false), 1..80),
        ),
        &[
            "claims",
            "completes",
            "duplicate completions",
            "refused stale tokens",
            "retries",
            "failed to dead",
            "lease expiries",
            "expired to dead",
            "releases",
            "head redrives",
            "new-offset redrives",
            "purges",
            "blocked lanes",
            "pruned tasks",
            "idempotent duplicates",
            "reopens with a live lease",
        ],
    );
}

/// Few lanes, many dead letters and redrives: redrives to the head behind
/// a running lease, lane re-sorting and reopen with a re-sorted lane.
#[test]
fn redrive_matches_model() {
    run_property(
        cases(64),
        (
            cfg_strategy(true),
            prop::collection::vec(step_strategy(true), 1..100),
        ),
        &[
            "head redrives",
            "head redrives behind a lease",
            "reopens with a live lease",
            "lease expiries",
            "releases",
        ],
    );
}

// ---------------------------------------------------------------------------
// Scripted cases through the same harness (every step is still checked
// against the model), pinning paths the random walk reaches only rarely.
// ---------------------------------------------------------------------------

fn plain(key: u8) -> NewTask {
    NewTask {
        key,
        prio: 0,
        delay_ms: None,
        at_ms: None,
        max_attempts: None,
        idem: None,
        header: false,
    }
}

impl Harness {
    fn step(&mut self, s: Step) {
        self.run(&s);
        self.check();
    }

    fn claimed(&mut self, max: usize) -> Vec<Lease> {
        self.m.step += 1;
        let l = self.claim(max, None, None);
        self.check();
        l
    }
}

fn script_cfg(ordering: Ordering, dlq: DlqPolicy) -> Cfg {
    Cfg {
        ordering,
        dlq,
        max_attempts: 2,
        jitter: 0.0,
        shards: 2,
        retain_ms: FOREVER_MS,
    }
}

/// A dead letter redriven to the head while a later task of its lane is
/// leased waits for that lease (also across a reopen), then runs before the
/// rest of the lane, however the running lease ends.
#[test]
fn head_redrive_behind_lease_waits_and_survives_reopen() {
    for ending in ["complete", "expire", "release", "fail"] {
        let dir = TempDir::new();
        let mut h = Harness::new(&dir.0, script_cfg(Ordering::Global, DlqPolicy::Skip));
        for k in 0..3 {
            h.step(Step::Enqueue(plain(k)));
        }
        let l0 = h.claimed(4);
        assert_eq!(l0.iter().map(|l| l.offset).collect::<Vec<_>>(), [0]);
        h.step(Step::Fail {
            pick: Pick::Live(0),
            retryable: false,
        });
        let l1 = h.claimed(4);
        assert_eq!(l1.iter().map(|l| l.offset).collect::<Vec<_>>(), [1]);
        h.step(Step::Redrive {
            target: Target::Dead(0),
            head: true,
        });
        assert!(h.m.lane_behind_lease());
        h.step(Step::Reopen);
        assert!(h.claimed(4).is_empty(), "the lane is in flight");
        match ending {
            "complete" => h.step(Step::Complete(Pick::Live(0))),
            "expire" => h.step(Step::Advance(Adv::ExpireAll)),
            "release" => h.step(Step::Release(Pick::Live(0))),
            _ => h.step(Step::Fail {
                pick: Pick::Live(0),
                retryable: true,
            }),
        }
        let next = h.claimed(4);
        assert_eq!(
            next.iter().map(|l| l.offset).collect::<Vec<_>>(),
            [0],
            "{ending}: the redriven task runs first"
        );
        h.step(Step::Reopen);
        h.step(Step::Complete(Pick::Live(0)));
        let after: Vec<u64> = h.claimed(4).iter().map(|l| l.offset).collect();
        let want: &[u64] = match ending {
            "complete" => &[2],
            "fail" => &[],
            _ => &[1],
        };
        assert_eq!(after, want, "{ending}: then the lane goes on in order");
        h.drain();
        h.final_checks();
        h.db.close();
    }
}

/// Under `block`, a dead letter holds its lane across a reopen until it is
/// redriven to a new offset or purged; other lanes go on.
#[test]
fn blocked_lane_survives_reopen() {
    for unblock in ["new_offset", "purge"] {
        let dir = TempDir::new();
        let mut h = Harness::new(&dir.0, script_cfg(Ordering::Key, DlqPolicy::Block));
        for k in [0, 0, 1] {
            h.step(Step::Enqueue(plain(k)));
        }
        let l = h.claimed(1);
        assert_eq!(l[0].offset, 0);
        h.step(Step::Fail {
            pick: Pick::Live(0),
            retryable: false,
        });
        h.step(Step::Reopen);
        let l: Vec<u64> = h.claimed(4).iter().map(|l| l.offset).collect();
        assert_eq!(l, [2], "lane of key 0 is blocked, key 1 runs");
        h.step(Step::Complete(Pick::Live(0)));
        assert!(h.claimed(4).is_empty());
        match unblock {
            "new_offset" => h.step(Step::Redrive {
                target: Target::Dead(0),
                head: false,
            }),
            _ => h.step(Step::Purge(Some(Target::Dead(0)))),
        }
        let l: Vec<u64> = h.claimed(4).iter().map(|l| l.offset).collect();
        assert_eq!(l, [1], "{unblock}: the lane goes on");
        h.drain();
        h.final_checks();
        h.db.close();
    }
}
