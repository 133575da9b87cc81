//! The writer thread: owns the one write transaction. It drains all
//! waiting operations, applies them to its open transaction, appends their
//! changes to the segment log as one group and syncs it (group commit),
//! then answers every caller. The transaction stays open across batches:
//! it is committed (without durability) when a reader asks to see it, and
//! durably at each state checkpoint. Parked claims are answered by the
//! writer when work arrives or their wait ends.

mod apply;
mod checkpoints;
mod log;
mod waiters;

use crate::clock::millis;
use crate::config::{ClaimOptions, EnqueueItem, Options, QueueConfig, RedriveMode};
use crate::durability;
use crate::error::{Error, Result};
use crate::oneshot;
use crate::record::QueueState;
use crate::redo::Changes;
use crate::sched::{Claimed, QueueSched};
use crate::tables::{Tx, META_FENCE, META_NEXT_QUEUE};
use crate::types::{
    Compacted, Completion, FailOutcome, LogInfo, QueueInfo, QueueStats, Receipt, Token,
};
use crate::wal::{Position, Wal};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waiters::Waiter;

/// Reply channel of one operation.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// An operation sent to the writer.
pub(crate) enum Op {
    CreateQueue {
        name: String,
        cfg: QueueConfig,
        if_not_exists: bool,
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
    /// Commits the open transaction so that readers see every change
    /// answered so far.
    Publish {
        reply: Reply<()>,
    },
    /// The log's extent.
    LogInfo {
        reply: Reply<LogInfo>,
    },
    /// A read snapshot of the state and the log position it is built to.
    Snapshot {
        reply: Reply<(redb::ReadTransaction, Position)>,
    },
    /// Checkpoints, then removes the log segments the state covers.
    CompactLog {
        reply: Reply<Compacted>,
    },
    /// Makes a state checkpoint (with its checkpoint record) now.
    Checkpoint {
        reply: Reply<LogInfo>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

type Deferred = Box<dyn FnOnce(Option<&Error>) + Send>;

/// What the writer has done since open, to observe group commit.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Commit groups appended to the log.
    pub commits: AtomicU64,
    /// Operations received.
    pub ops: AtomicU64,
    /// Whether answered changes wait in the writer's open transaction:
    /// set before their callers are answered, cleared when it commits. A
    /// reader that sees it set asks the writer to publish first.
    pub unpublished: AtomicBool,
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
    counters: Arc<Counters>,
    /// The open write transaction every batch is applied to.
    txn: Option<redb::WriteTransaction>,
    /// The segment log every batch's changes are appended to.
    wal: Wal,
    /// When the next state checkpoint is due: set by the first group
    /// logged after the last one.
    checkpoint_due: Option<Instant>,
    /// Whether the open batch holds a `sync` (the log is synced even with
    /// durability `None`).
    sync_requested: bool,
    /// Whether the open batch holds a `publish`.
    publish_requested: bool,
    /// Callers of `compact_log` in the open batch, answered after it.
    compactions: Vec<Reply<Compacted>>,
    /// Callers of `checkpoint` in the open batch, answered after it.
    checkpoints_asked: Vec<Reply<LogInfo>>,
    /// Callers of a snapshot in a batch that writes, answered after it.
    snapshots: Vec<Reply<(redb::ReadTransaction, Position)>>,
    /// LSN the last state checkpoint covers the log up to.
    checkpoint_lsn: u64,
    /// Sequence number and hash of the last checkpoint record.
    checkpoint_head: (u64, crate::hash::Digest),
    /// The key checkpoints are signed with.
    signing_key: Option<ed25519_dalek::SigningKey>,
    /// Whether the signing key's public key is still to be recorded.
    record_pubkey: bool,
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
        wal: Wal,
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
            counters,
            txn: None,
            wal,
            checkpoint_due: None,
            sync_requested: false,
            publish_requested: false,
            compactions: Vec::new(),
            snapshots: Vec::new(),
            checkpoints_asked: Vec::new(),
            checkpoint_lsn: 0,
            checkpoint_head: (0, crate::hash::GENESIS),
            signing_key: None,
            record_pubkey: false,
        };
        w.signing_key = w
            .opts
            .signing_key
            .map(|seed| ed25519_dalek::SigningKey::from_bytes(&seed));
        // Opening replayed the log and checkpointed: the state covers it.
        w.checkpoint_lsn = w.wal.next_lsn();
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
            self.load_checkpoint_meta(&tx)?;
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
            self.checkpoint_if_due();
            self.answer_checkpoints();
            self.compact_log();
            self.answer_snapshots();
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

    /// Checkpoints the state before exit, so the next open replays
    /// nothing (and, with durability `None`, nothing is lost).
    fn final_sync(&mut self) {
        if self.checkpoint_due.is_some() && self.poisoned.is_none() {
            self.checkpoint();
        }
    }

    /// Answers after the batch's group is logged; a fatal error fails the
    /// whole batch.
    fn defer<T: Send + 'static>(&mut self, reply: Reply<T>, r: Result<T>) -> Result<()> {
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
        let read_only = ops.iter().all(|o| {
            matches!(
                o,
                Op::Stats { .. }
                    | Op::Pending { .. }
                    | Op::Sync { .. }
                    | Op::Publish { .. }
                    | Op::LogInfo { .. }
                    | Op::Snapshot { .. }
            )
        });
        let failed = if read_only && !timers_due && !prune_due {
            self.serve_read_only(ops, now)
        } else {
            self.write_batch(ops, now).err()
        };
        if failed.is_none() {
            self.saved_fence = self.next_fence;
        }
        for d in self.deferred.drain(..) {
            d(failed.as_ref());
        }
        if failed.is_some() && self.poisoned.is_none() {
            if let Err(e) = self.recover() {
                self.poisoned = Some(e);
            }
        }
    }

    /// Answers a batch that changes nothing: everything sent before it is
    /// logged already. Answers the error of a failed publish.
    fn serve_read_only(&mut self, ops: Vec<Op>, now: u64) -> Option<Error> {
        let mut failed = None;
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
                    let r = self.sync_log();
                    reply.send(r);
                }
                Op::Publish { reply } => {
                    let r = self.publish();
                    if let Err(e) = &r {
                        failed.get_or_insert(e.clone());
                    }
                    reply.send(r);
                }
                Op::LogInfo { reply } => reply.send(self.log_info()),
                Op::Snapshot { reply } => {
                    let r = self.snapshot();
                    if let Err(e) = &r {
                        failed.get_or_insert(e.clone());
                    }
                    reply.send(r);
                }
                _ => unreachable!("read-only batch"),
            }
        }
        failed
    }

    /// Applies a batch to the open transaction and logs its changes as
    /// one group.
    fn write_batch(&mut self, ops: Vec<Op>, now: u64) -> Result<()> {
        let txn = match self.txn.take() {
            Some(t) => t,
            None => {
                let mut t = self.db.begin_write()?;
                // Durable through the log: redb is checkpointed apart.
                t.set_durability(redb::Durability::None)
                    .map_err(|e| Error::Io(e.to_string()))?;
                t
            }
        };
        self.sync_requested = false;
        self.publish_requested = false;
        let changes = self.apply_batch(&txn, ops, now);
        self.txn = Some(txn);
        let changes = changes?;
        if !changes.is_empty() {
            self.log_group(&changes)?;
            self.counters.commits.fetch_add(1, Relaxed);
            self.counters.unpublished.store(true, Release);
        } else if self.sync_requested {
            self.sync_log()?;
        }
        if self.publish_requested {
            self.publish()?;
        }
        Ok(())
    }

    /// Publishes, then opens a read snapshot: the state built from every
    /// log record before the answered position.
    fn snapshot(&mut self) -> Result<(redb::ReadTransaction, Position)> {
        self.publish()?;
        Ok((self.db.begin_read()?, self.wal.position()))
    }

    /// Answers the snapshots asked for in a batch that wrote.
    fn answer_snapshots(&mut self) {
        for reply in std::mem::take(&mut self.snapshots) {
            let r = match &self.poisoned {
                Some(e) => Err(e.clone()),
                None => self.snapshot(),
            };
            reply.send(r);
        }
    }

    /// Commits the open transaction without durability, so readers see it.
    fn publish(&mut self) -> Result<()> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        self.counters.unpublished.store(false, Release);
        Ok(())
    }

    /// After a failed batch: drops the open transaction (and the batch's
    /// partial changes with it), rebuilds redb's state from the last
    /// checkpoint and the log, and reloads the schedulers from it.
    fn recover(&mut self) -> Result<()> {
        if let Some(txn) = self.txn.take() {
            txn.abort()?;
        }
        durability::replay(&self.db, &self.wal)?;
        self.counters.unpublished.store(false, Release);
        self.load()
    }

    /// Applies a batch to `txn`; answers the changes it made, in order.
    fn apply_batch(
        &mut self,
        txn: &redb::WriteTransaction,
        ops: Vec<Op>,
        now: u64,
    ) -> Result<Changes> {
        let mut tx = Tx::open(txn)?;
        for q in self.queues.values_mut() {
            q.fire_timers(&mut tx, now)?;
        }
        for op in ops {
            self.apply(&mut tx, now, op)?;
        }
        failpoint!("writer-apply", error);
        self.serve_waiters(&mut tx, now)?;
        let retain = millis(self.opts.retain_done);
        for q in self.queues.values_mut() {
            if q.prune_due_at().is_some_and(|t| t <= now) {
                q.prune(&mut tx, now, retain, PRUNE_BUDGET)?;
            }
            q.persist(&mut tx)?;
        }
        if self.next_fence != self.saved_fence {
            tx.meta
                .insert(META_FENCE, self.next_fence.to_le_bytes().as_slice())?;
        }
        Ok(tx.take_changes())
    }
}
