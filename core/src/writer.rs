//! The writer thread: owns every write transaction. It drains all waiting
//! operations, applies them in one transaction, commits once (group
//! commit), then answers every caller. Parked claims are answered by the
//! writer when work arrives or their wait ends.

use crate::clock::millis;
use crate::config::{ClaimOptions, Durability, EnqueueItem, Options, QueueConfig, RedriveMode};
use crate::error::{Error, Result};
use crate::oneshot;
use crate::record::QueueState;
use crate::sched::{Claimed, QueueSched};
use crate::tables::{Tx, META_FENCE, META_NEXT_QUEUE};
use crate::types::{Completion, FailOutcome, QueueInfo, QueueStats, Receipt, Token};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redb::ReadableTable;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reply channel of one operation.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// An operation sent to the writer.
pub(crate) enum Op {
    CreateQueue {
        name: String,
        cfg: QueueConfig,
        reply: Reply<QueueInfo>,
    },
    DeleteQueue {
        name: String,
        reply: Reply<()>,
    },
    Enqueue {
        queue: String,
        items: Vec<EnqueueItem>,
        reply: Reply<Vec<Receipt>>,
    },
    Claim {
        queue: String,
        worker: String,
        opts: ClaimOptions,
        reply: Reply<Vec<Claimed>>,
    },
    Heartbeat {
        token: Token,
        lease: Option<Duration>,
        reply: Reply<u64>,
    },
    Start {
        token: Token,
        reply: Reply<()>,
    },
    Complete {
        items: Vec<(Token, Vec<u8>)>,
        reply: Reply<Vec<Result<Completion>>>,
    },
    Fail {
        token: Token,
        error: String,
        retryable: bool,
        reply: Reply<FailOutcome>,
    },
    Release {
        token: Token,
        reply: Reply<()>,
    },
    Redrive {
        queue: String,
        offset: u64,
        mode: RedriveMode,
        reply: Reply<Receipt>,
    },
    Purge {
        queue: String,
        offset: Option<u64>,
        reply: Reply<u64>,
    },
    Stats {
        queue: String,
        reply: Reply<QueueStats>,
    },
    Pending {
        queue: String,
        after: Option<u64>,
        limit: usize,
        reply: Reply<Vec<u64>>,
    },
    Sync {
        reply: Reply<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

struct Waiter {
    qid: u32,
    worker: String,
    opts: ClaimOptions,
    deadline: Instant,
    reply: Reply<Vec<Claimed>>,
}

type Deferred = Box<dyn FnOnce(Option<&Error>) + Send>;

/// What the writer has done since open, to observe group commit.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Write transactions committed.
    pub commits: AtomicU64,
    /// Operations received.
    pub ops: AtomicU64,
}

/// Events of retention looked at per commit.
const PRUNE_BUDGET: usize = 512;

pub(crate) struct Writer {
    db: Arc<redb::Database>,
    opts: Options,
    queues: HashMap<u32, QueueSched>,
    names: HashMap<String, u32>,
    waiters: Vec<Waiter>,
    next_fence: u64,
    saved_fence: u64,
    next_queue_id: u32,
    deferred: Vec<Deferred>,
    poisoned: Option<Error>,
    /// Whether the open batch changed anything; a batch that did not is
    /// aborted instead of committed (no fsync for an empty claim).
    wrote: bool,
    counters: Arc<Counters>,
}

/// `now + wait`, capped a year ahead instead of overflowing `Instant`.
fn far_deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait.min(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

fn is_fatal(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::Corrupt(_))
}

fn read_u64(tx: &Tx<'_>, key: &str) -> Result<u64> {
    let v = tx
        .meta
        .get(key)?
        .ok_or_else(|| Error::Corrupt(format!("meta {key} missing")))?;
    let b: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| Error::Corrupt(format!("meta {key}")))?;
    Ok(u64::from_le_bytes(b))
}

impl Writer {
    /// Loads the engine state and starts the writer thread.
    pub fn start(
        db: Arc<redb::Database>,
        opts: Options,
        counters: Arc<Counters>,
    ) -> Result<(Sender<Op>, std::thread::JoinHandle<()>)> {
        let mut w = Writer {
            db,
            opts,
            queues: HashMap::new(),
            names: HashMap::new(),
            waiters: Vec::new(),
            next_fence: 1,
            saved_fence: 1,
            next_queue_id: 1,
            deferred: Vec::new(),
            poisoned: None,
            wrote: false,
            counters,
        };
        w.load()?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let h = std::thread::Builder::new()
            .name("ordq-writer".into())
            .spawn(move || w.run(rx))?;
        Ok((tx, h))
    }

    /// Rebuilds every queue's scheduler from the database.
    fn load(&mut self) -> Result<()> {
        self.queues.clear();
        self.names.clear();
        let now = self.opts.clock.now_ms();
        let txn = self.db.begin_write()?;
        {
            let tx = Tx::open(&txn)?;
            self.next_fence = read_u64(&tx, META_FENCE)?;
            self.saved_fence = self.next_fence;
            let nq = tx
                .meta
                .get(META_NEXT_QUEUE)?
                .ok_or_else(|| Error::Corrupt("meta next_queue_id missing".into()))?;
            self.next_queue_id = u32::from_le_bytes(
                nq.value()
                    .try_into()
                    .map_err(|_| Error::Corrupt("meta next_queue_id".into()))?,
            );
            drop(nq);
            let mut infos = Vec::new();
            for row in tx.queues.iter()? {
                let (_, v) = row?;
                let info: QueueInfo = serde_json::from_slice(v.value())
                    .map_err(|e| Error::Corrupt(format!("queue: {e}")))?;
                infos.push(info);
            }
            for info in infos {
                let qs: QueueState = match tx.qstate.get(info.id)? {
                    Some(v) => serde_json::from_slice(v.value())
                        .map_err(|e| Error::Corrupt(format!("queue state: {e}")))?,
                    None => QueueState::default(),
                };
                let (id, name) = (info.id, info.name.clone());
                let q = QueueSched::load(&tx, info, qs, now)?;
                self.names.insert(name, id);
                self.queues.insert(id, q);
            }
        }
        txn.abort()?;
        Ok(())
    }

    fn run(mut self, rx: Receiver<Op>) {
        let max = self.opts.max_batch.max(1);
        loop {
            let first = match self.next_wake() {
                Some(t) => rx.recv_timeout(t),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let mut ops = Vec::new();
            match first {
                Ok(op) => ops.push(op),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.final_sync();
                    return;
                }
            }
            while ops.len() < max {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.counters.ops.fetch_add(ops.len() as u64, Relaxed);
            let shutdown = match ops.iter().position(|o| matches!(o, Op::Shutdown { .. })) {
                Some(i) => {
                    // Operations sent after the close began are refused.
                    for late in ops.split_off(i + 1) {
                        self.apply_poisoned(late, &Error::Closed);
                    }
                    match ops.pop() {
                        Some(Op::Shutdown { reply }) => Some(reply),
                        _ => None,
                    }
                }
                None => None,
            };
            self.process(ops);
            self.expire_waiters();
            if let Some(reply) = shutdown {
                for w in self.waiters.drain(..) {
                    w.reply.send(Err(Error::Closed));
                }
                self.final_sync();
                reply.send(());
                return;
            }
        }
    }

    /// With durability `None`, makes everything durable before exit.
    fn final_sync(&mut self) {
        if self.opts.durability == Durability::None {
            if let Ok(txn) = self.db.begin_write() {
                let _ = txn.commit();
            }
        }
    }

    fn next_wake(&self) -> Option<Duration> {
        let now_ms = self.opts.clock.now_ms();
        let now = Instant::now();
        let mut best: Option<Duration> = None;
        let mut take = |d: Duration| {
            best = Some(best.map_or(d, |b: Duration| b.min(d)));
        };
        for w in &self.waiters {
            take(w.deadline.saturating_duration_since(now));
        }
        for q in self.queues.values() {
            if let Some(t) = q.next_timer() {
                take(Duration::from_millis(t.saturating_sub(now_ms)));
            }
            if let Some(t) = q.prune_due_at() {
                take(Duration::from_millis(t.saturating_sub(now_ms)));
            }
        }
        best
    }

    fn expire_waiters(&mut self) {
        let now = Instant::now();
        let (due, keep): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|w| w.deadline <= now);
        self.waiters = keep;
        for w in due {
            w.reply.send(Ok(Vec::new()));
        }
    }

    /// Answers after the commit; a success means the batch wrote.
    fn defer<T: Send + 'static>(&mut self, reply: Reply<T>, r: Result<T>) -> Result<()> {
        self.wrote |= r.is_ok();
        self.defer_read(reply, r)
    }

    /// Answers after the commit, for a result that wrote nothing.
    fn defer_read<T: Send + 'static>(&mut self, reply: Reply<T>, r: Result<T>) -> Result<()> {
        let fatal = match &r {
            Err(e) if is_fatal(e) => Some(e.clone()),
            _ => None,
        };
        self.deferred.push(Box::new(move |failed: Option<&Error>| {
            reply.send(match failed {
                Some(e) => Err(e.clone()),
                None => r,
            });
        }));
        fatal.map_or(Ok(()), Err)
    }

    fn process(&mut self, ops: Vec<Op>) {
        if let Some(e) = &self.poisoned {
            let e = e.clone();
            for op in ops {
                self.apply_poisoned(op, &e);
            }
            return;
        }
        let now = self.opts.clock.now_ms();
        let timers_due = self
            .queues
            .values()
            .any(|q| q.next_timer().is_some_and(|t| t <= now));
        let prune_due = self
            .queues
            .values()
            .any(|q| q.prune_due_at().is_some_and(|t| t <= now));
        let read_only = ops
            .iter()
            .all(|o| matches!(o, Op::Stats { .. } | Op::Pending { .. } | Op::Sync { .. }));
        if read_only && !timers_due && !prune_due {
            // Everything sent before these is committed already.
            for op in ops {
                match op {
                    Op::Stats { queue, reply } => {
                        let r = self.qid(&queue).map(|id| self.queues[&id].stats(now));
                        reply.send(r);
                    }
                    Op::Pending {
                        queue,
                        after,
                        limit,
                        reply,
                    } => reply.send(self.pending(&queue, after, limit)),
                    Op::Sync { reply } => {
                        reply.send(Ok(()));
                    }
                    _ => unreachable!("read-only batch"),
                }
            }
            return;
        }
        let res = self
            .db
            .begin_write()
            .map_err(Error::from)
            .and_then(|mut txn| {
                if self.opts.durability == Durability::None {
                    txn.set_durability(redb::Durability::None)
                        .map_err(|e| Error::Io(e.to_string()))?;
                }
                self.wrote = false;
                self.apply_batch(&txn, ops, now)?;
                if self.wrote {
                    txn.commit()?;
                    self.counters.commits.fetch_add(1, Relaxed);
                } else {
                    txn.abort()?;
                }
                Ok(())
            });
        let failed = res.err();
        if failed.is_none() {
            self.saved_fence = self.next_fence;
        }
        for d in self.deferred.drain(..) {
            d(failed.as_ref());
        }
        if failed.is_some() {
            if let Err(e) = self.load() {
                self.poisoned = Some(e);
            }
        }
    }

    fn apply_poisoned(&mut self, op: Op, e: &Error) {
        match op {
            Op::CreateQueue { reply, .. } => reply.send(Err(e.clone())),
            Op::DeleteQueue { reply, .. } => reply.send(Err(e.clone())),
            Op::Enqueue { reply, .. } => reply.send(Err(e.clone())),
            Op::Claim { reply, .. } => reply.send(Err(e.clone())),
            Op::Heartbeat { reply, .. } => reply.send(Err(e.clone())),
            Op::Start { reply, .. } => reply.send(Err(e.clone())),
            Op::Complete { reply, .. } => reply.send(Err(e.clone())),
            Op::Fail { reply, .. } => reply.send(Err(e.clone())),
            Op::Release { reply, .. } => reply.send(Err(e.clone())),
            Op::Redrive { reply, .. } => reply.send(Err(e.clone())),
            Op::Purge { reply, .. } => reply.send(Err(e.clone())),
            Op::Stats { reply, .. } => reply.send(Err(e.clone())),
            Op::Pending { reply, .. } => reply.send(Err(e.clone())),
            Op::Sync { reply } => reply.send(Err(e.clone())),
            Op::Shutdown { reply } => reply.send(()),
        }
    }

    fn apply_batch(&mut self, txn: &redb::WriteTransaction, ops: Vec<Op>, now: u64) -> Result<()> {
        let mut tx = Tx::open(txn)?;
        for q in self.queues.values_mut() {
            self.wrote |= q.fire_timers(&mut tx, now)?;
        }
        for op in ops {
            self.apply(&mut tx, now, op)?;
        }
        self.serve_waiters(&mut tx, now)?;
        let retain = millis(self.opts.retain_done);
        for q in self.queues.values_mut() {
            if q.prune_due_at().is_some_and(|t| t <= now) {
                q.prune(&mut tx, now, retain, PRUNE_BUDGET)?;
            }
            self.wrote |= q.persist(&mut tx)?;
        }
        if self.next_fence != self.saved_fence {
            tx.meta
                .insert(META_FENCE, self.next_fence.to_le_bytes().as_slice())?;
        }
        Ok(())
    }

    fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<u64>> {
        self.qid(queue)
            .map(|id| self.queues[&id].pending_offsets(after, limit))
    }

    fn qid(&self, name: &str) -> Result<u32> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| Error::NotFound(format!("queue {name}")))
    }

    fn for_token(&mut self, t: &Token) -> Result<&mut QueueSched> {
        self.queues
            .get_mut(&t.queue_id)
            .ok_or_else(|| Error::LeaseLost(format!("queue {} no longer exists", t.queue_id)))
    }

    fn apply(&mut self, tx: &mut Tx<'_>, now: u64, op: Op) -> Result<()> {
        match op {
            Op::CreateQueue { name, cfg, reply } => {
                let r = self.create_queue(tx, now, name, cfg);
                self.defer(reply, r)
            }
            Op::DeleteQueue { name, reply } => {
                let r = self.delete_queue(tx, &name);
                self.defer(reply, r)
            }
            Op::Enqueue {
                queue,
                items,
                reply,
            } => {
                let r = self.qid(&queue).and_then(|id| {
                    let q = self.queues.get_mut(&id).expect("queue");
                    items
                        .iter()
                        .map(|it| q.enqueue(tx, now, &it.key, &it.payload, &it.opts, None))
                        .collect()
                });
                self.defer(reply, r)
            }
            Op::Claim {
                queue,
                worker,
                opts,
                reply,
            } => {
                let id = match self.qid(&queue) {
                    Ok(id) => id,
                    Err(e) => return self.defer(reply, Err(e)),
                };
                let r = self.claim(tx, now, id, &worker, &opts);
                let empty = matches!(&r, Ok(v) if v.is_empty());
                if empty && !opts.wait.is_zero() {
                    self.waiters.push(Waiter {
                        qid: id,
                        worker,
                        deadline: far_deadline(opts.wait),
                        opts,
                        reply,
                    });
                    return Ok(());
                }
                if empty {
                    return self.defer_read(reply, r);
                }
                self.defer(reply, r)
            }
            Op::Heartbeat {
                token,
                lease,
                reply,
            } => {
                let r = self.for_token(&token).and_then(|q| {
                    let ms = millis(lease.unwrap_or(q.info.config.lease));
                    q.heartbeat(tx, now, &token, ms)
                });
                self.defer(reply, r)
            }
            Op::Start { token, reply } => {
                let r = self
                    .for_token(&token)
                    .and_then(|q| q.start(tx, now, &token));
                self.defer(reply, r)
            }
            Op::Complete { items, reply } => {
                let mut out = Vec::with_capacity(items.len());
                let mut fatal = None;
                for (t, res) in &items {
                    let r = self.for_token(t).and_then(|q| q.complete(tx, now, t, res));
                    if let Err(e) = &r {
                        if is_fatal(e) {
                            fatal = Some(e.clone());
                        }
                    }
                    out.push(r);
                }
                self.defer(reply, Ok(out))?;
                fatal.map_or(Ok(()), Err)
            }
            Op::Fail {
                token,
                error,
                retryable,
                reply,
            } => {
                let r = self
                    .for_token(&token)
                    .and_then(|q| q.fail(tx, now, &token, &error, retryable));
                self.defer(reply, r)
            }
            Op::Release { token, reply } => {
                let r = self
                    .for_token(&token)
                    .and_then(|q| q.release(tx, now, &token));
                self.defer(reply, r)
            }
            Op::Redrive {
                queue,
                offset,
                mode,
                reply,
            } => {
                let r = self.qid(&queue).and_then(|id| {
                    let q = self.queues.get_mut(&id).expect("queue");
                    q.redrive(tx, now, offset, mode)
                });
                self.defer(reply, r)
            }
            Op::Purge {
                queue,
                offset,
                reply,
            } => {
                let r = self.qid(&queue).and_then(|id| {
                    let q = self.queues.get_mut(&id).expect("queue");
                    q.purge(tx, now, offset)
                });
                self.defer(reply, r)
            }
            Op::Stats { queue, reply } => {
                let r = self.qid(&queue).map(|id| self.queues[&id].stats(now));
                self.defer_read(reply, r)
            }
            Op::Pending {
                queue,
                after,
                limit,
                reply,
            } => {
                let r = self.pending(&queue, after, limit);
                self.defer_read(reply, r)
            }
            Op::Sync { reply } => self.defer_read(reply, Ok(())),
            Op::Shutdown { reply } => {
                // `run` takes shutdown out of every batch; never reached.
                reply.send(());
                Ok(())
            }
        }
    }

    fn claim(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        id: u32,
        worker: &str,
        opts: &ClaimOptions,
    ) -> Result<Vec<Claimed>> {
        let q = self.queues.get_mut(&id).expect("queue");
        if let Some(s) = &opts.shards {
            if let Some(bad) = s.iter().find(|&&s| s >= q.info.config.shards) {
                return Err(Error::InvalidArgument(format!(
                    "shard {bad} out of range: queue {} has {} shards",
                    q.info.name, q.info.config.shards
                )));
            }
        }
        let lease = millis(opts.lease.unwrap_or(q.info.config.lease));
        q.claim(
            tx,
            now,
            worker,
            lease,
            opts.max,
            opts.shards.as_deref(),
            &mut self.next_fence,
        )
    }

    fn serve_waiters(&mut self, tx: &mut Tx<'_>, now: u64) -> Result<()> {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            let eligible = self
                .queues
                .get(&w.qid)
                .map(|q| q.has_eligible(w.opts.shards.as_deref()));
            match eligible {
                Some(false) => i += 1,
                None => {
                    let w = self.waiters.remove(i);
                    self.defer(w.reply, Err(Error::NotFound("queue was deleted".into())))?;
                }
                Some(true) => {
                    let w = self.waiters.remove(i);
                    let r = self.claim(tx, now, w.qid, &w.worker, &w.opts);
                    self.defer(w.reply, r)?;
                }
            }
        }
        Ok(())
    }

    fn create_queue(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        name: String,
        cfg: QueueConfig,
    ) -> Result<QueueInfo> {
        if self.names.contains_key(&name) {
            return Err(Error::AlreadyExists(format!("queue {name}")));
        }
        let id = self.next_queue_id;
        let info = QueueInfo {
            name: name.clone(),
            id,
            config: cfg,
            created_at: now,
        };
        let j = serde_json::to_vec(&info).map_err(|e| Error::Io(e.to_string()))?;
        tx.queues.insert(name.as_str(), j.as_slice())?;
        tx.meta
            .insert(META_NEXT_QUEUE, (id + 1).to_le_bytes().as_slice())?;
        let mut q = QueueSched::new(info.clone(), QueueState::default());
        q.dirty = true;
        self.next_queue_id += 1;
        self.names.insert(name, id);
        self.queues.insert(id, q);
        Ok(info)
    }

    fn delete_queue(&mut self, tx: &mut Tx<'_>, name: &str) -> Result<()> {
        let id = self.qid(name)?;
        self.queues[&id].drop_rows(tx)?;
        self.queues.remove(&id);
        self.names.remove(name);
        Ok(())
    }
}
