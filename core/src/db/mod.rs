//! The public handle: [`Db`]. Writes go to the writer thread; reads use
//! their own read transactions and never wait for it.

mod checks;
mod reads;

use crate::audit::AuditReport;
use crate::backup::BackupInfo;
use crate::config::{
    validate_queue_name, ClaimOptions, EnqueueItem, EnqueueOptions, Options, QueueConfig,
    RedriveMode,
};
use crate::durability;
use crate::error::{Error, Result};
use crate::hash::task_id;
use crate::oneshot;
use crate::recover::RecoverReport;
use crate::sched::Claimed;
use crate::store;
use crate::types::{Compacted, Completion, FailOutcome, Lease, LogInfo, QueueInfo, Receipt, Token};
use crate::verify::{LedgerEntry, VerifyReport};
use crate::wal::Recovery;
use crate::writer::{Counters, Op, Reply, Writer};
use checks::{check_lease, check_worker};
use crossbeam_channel::Sender;
use redb::ReadableDatabase;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest worker id, in bytes.
pub const MAX_WORKER_ID: usize = 256;

/// Most leases one claim may ask for.
pub const MAX_CLAIM: usize = 10_000;

struct Inner {
    path: PathBuf,
    opts: Options,
    ops: Sender<Op>,
    db: RwLock<Option<Arc<redb::Database>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    counters: Arc<Counters>,
    recovery: Recovery,
}

impl Inner {
    fn shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.ops.send(Op::Shutdown { reply: tx }).is_ok() {
            rx.recv();
        }
        if let Some(h) = self.writer.lock().map(|mut g| g.take()).unwrap_or(None) {
            let _ = h.join();
        }
        if let Ok(mut g) = self.db.write() {
            g.take();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An open ordq database. Cheap to clone; every clone shares one engine.
/// `Send + Sync`: all methods may be called from any thread at once.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Runs `f`, turning a panic inside redb on a damaged state file (it
/// trusts the lengths in its pages) into `Corrupt`, so bad bytes never
/// take the process down.
fn contain_damage<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Error::Corrupt(format!(
            "{}: the state file is damaged ({why})",
            path.display()
        )))
    })
}

impl Db {
    /// Opens the database at `path`, creating it (crash-atomically) if it
    /// does not exist. Fails with `AlreadyOpen` when another process or
    /// handle holds the file, `FormatTooNew` for a newer format.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        let (db, wal, recovery) = contain_damage(&path, || durability::open(&path, &opts))?;
        let db = Arc::new(db);
        let counters = Arc::new(Counters::default());
        let (ops, handle) = contain_damage(&path, || {
            Writer::start(db.clone(), wal, opts.clone(), counters.clone())
        })?;
        Ok(Db {
            inner: Arc::new(Inner {
                path,
                opts,
                ops,
                db: RwLock::new(Some(db)),
                writer: Mutex::new(Some(handle)),
                closed: AtomicBool::new(false),
                counters,
                recovery,
            }),
        })
    }

    /// The file this handle opened.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// What opening found in the segment log: its segments, its end, and
    /// an unfinished last group it cut (left by a crash or power loss
    /// during a write that no caller was answered for).
    pub fn log_recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// `(commits, operations)` of the writer since open: many operations
    /// per commit is group commit at work (metrics and tests read this).
    pub fn writer_counters(&self) -> (u64, u64) {
        let c = &self.inner.counters;
        (
            c.commits.load(Ordering::Relaxed),
            c.ops.load(Ordering::Relaxed),
        )
    }

    /// The segment log's extent: segments, bytes, LSNs.
    pub fn log_info(&self) -> Result<LogInfo> {
        self.call(|reply| Op::LogInfo { reply })
    }

    /// Makes a state checkpoint now: redb committed durably, and a
    /// checkpoint record (signed with `Options::signing_key`) appended to
    /// the log. Answers the log's extent after it.
    pub fn checkpoint(&self) -> Result<LogInfo> {
        self.call(|reply| Op::Checkpoint { reply })
    }

    /// Makes a state checkpoint, then removes every sealed log segment it
    /// covers (whatever `Options::log_retention` says). The state keeps
    /// every task, payload and result; what goes is the history that
    /// verification and audit read.
    pub fn compact_log(&self) -> Result<Compacted> {
        self.call(|reply| Op::CompactLog { reply })
    }

    /// Verifies the database against its own history (see
    /// [`crate::verify`]) on a read snapshot, while writers go on.
    /// Signatures are checked with `pubkey`, else with the key the database
    /// recorded; with `pubkey` given, an unsigned checkpoint is a problem.
    pub fn verify(&self, pubkey: Option<[u8; 32]>) -> Result<VerifyReport> {
        self.verify_anchored(pubkey, &[])
    }

    /// [`Db::verify`], and that every checkpoint of `anchor` (a ledger
    /// exported earlier with [`Db::checkpoint_ledger`] and kept elsewhere)
    /// is in the database unchanged: this finds history cut back to an
    /// older, consistent point, which verifies on its own.
    pub fn verify_anchored(
        &self,
        pubkey: Option<[u8; 32]>,
        anchor: &[LedgerEntry],
    ) -> Result<VerifyReport> {
        self.on_snapshot(|dir, snapshot, end| {
            crate::verify::run(dir, snapshot, end.lsn, pubkey, anchor)
        })
    }

    /// The checkpoint ledger: every checkpoint record with `seq >= since`,
    /// with its hash and signature, to export and keep outside the machine
    /// (`ordq checkpoint export`).
    pub fn checkpoint_ledger(&self, since: u64) -> Result<Vec<LedgerEntry>> {
        self.on_snapshot(|dir, snapshot, end| crate::verify::ledger(dir, snapshot, end.lsn, since))
    }

    /// Audits queue `queue` (only the tasks of `key`, if given) from the
    /// segment log alone (see [`crate::audit`]): lane order, fencing, one
    /// outcome per task. On a read snapshot, while writers go on.
    pub fn audit(&self, queue: &str, key: Option<&str>) -> Result<AuditReport> {
        validate_queue_name(queue)?;
        self.on_snapshot(|dir, snapshot, end| crate::audit::run(dir, snapshot, end.lsn, queue, key))
    }

    /// Writes a consistent copy of the database — its state as of a read
    /// snapshot and its log up to that point, history and signatures
    /// included — to `to` (which must not exist; its log goes to
    /// `to.log/`), while writers go on; then opens the copy and verifies
    /// it. See [`crate::backup`].
    pub fn backup(&self, to: impl AsRef<Path>) -> Result<BackupInfo> {
        let to = to.as_ref();
        let mut info =
            self.on_snapshot(|dir, snapshot, end| crate::backup::write(dir, snapshot, end, to))?;
        let copy = Db::open(to, Options::default())?;
        let report = copy.verify(None);
        copy.close();
        let report = report?;
        if let Some(p) = report.problems.first() {
            return Err(Error::Corrupt(format!(
                "the backup at {} does not verify: {}: {}",
                to.display(),
                p.at,
                p.why
            )));
        }
        info.verified_records = report.records;
        Ok(info)
    }

    /// Restores the backup at `backup` to `to` (which must not exist): the
    /// backup is opened, copied like [`Db::backup`] and the copy verified;
    /// the backup itself is left as it was.
    pub fn restore(backup: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<BackupInfo> {
        let backup = backup.as_ref();
        if !backup.exists() {
            return Err(Error::NotFound(format!("backup {}", backup.display())));
        }
        let src = Db::open(backup, Options::default())?;
        let r = src.backup(to);
        src.close();
        r
    }

    /// Rebuilds the database at `src` from its segment log alone into a new
    /// database at `out` (never overwritten) — up to the log's last whole
    /// group, or through checkpoint `checkpoint` — and compares the current
    /// state with it (see [`crate::recover`]). `src` is only read: run it
    /// on a database no process is writing (stop the broker, or use a
    /// backup).
    pub fn recover(
        src: impl AsRef<Path>,
        out: impl AsRef<Path>,
        checkpoint: Option<u64>,
    ) -> Result<RecoverReport> {
        let (src, out) = (src.as_ref(), out.as_ref());
        if !src.exists() {
            return Err(Error::NotFound(format!("database {}", src.display())));
        }
        contain_damage(src, || crate::recover::run(src, out, checkpoint))
    }

    /// Finishes queued work, makes it durable and releases the file.
    /// Idempotent; later calls on any clone fail with `Closed`.
    pub fn close(&self) {
        self.inner.shutdown();
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (tx, rx) = oneshot::channel();
        self.inner.ops.send(make(tx)).map_err(|_| Error::Closed)?;
        rx.recv().ok_or(Error::Closed)?
    }

    /// Runs `f` on a read snapshot, given the log directory and the log
    /// position the snapshot is built to (writers go on meanwhile); a redb
    /// panic on damaged pages becomes `Corrupt`.
    fn on_snapshot<T>(
        &self,
        f: impl FnOnce(&Path, &redb::ReadTransaction, crate::wal::Position) -> Result<T>,
    ) -> Result<T> {
        let (snapshot, end) = self.call(|reply| Op::Snapshot { reply })?;
        let dir = crate::wal::dir_of(&self.inner.path);
        contain_damage(&self.inner.path, || f(&dir, &snapshot, end))
    }

    /// A read snapshot holding every change answered before the call.
    fn read(&self) -> Result<redb::ReadTransaction> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.inner.counters.unpublished.load(Ordering::Acquire) {
            self.call(|reply| Op::Publish { reply })?;
        }
        let db = self
            .inner
            .db
            .read()
            .map_err(|_| Error::Closed)?
            .clone()
            .ok_or(Error::Closed)?;
        Ok(db.begin_read()?)
    }

    /// Creates a queue; `AlreadyExists` if the name is taken.
    pub fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        self.create(name, cfg, false)
    }

    /// Creates a queue unless one of that name exists with the same
    /// configuration, which is then answered as it is (atomically: of many
    /// concurrent callers one creates it, the others get it).
    /// `AlreadyExists` names the fields that differ when it exists with
    /// another configuration.
    pub fn create_queue_if_not_exists(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        self.create(name, cfg, true)
    }

    fn create(&self, name: &str, cfg: QueueConfig, if_not_exists: bool) -> Result<QueueInfo> {
        validate_queue_name(name)?;
        cfg.validate()?;
        self.call(|reply| Op::CreateQueue {
            name: name.to_string(),
            cfg,
            if_not_exists,
            reply,
        })
    }

    /// Deletes a queue and all its tasks, results and dead letters.
    pub fn delete_queue(&self, name: &str) -> Result<()> {
        validate_queue_name(name)?;
        self.call(|reply| Op::DeleteQueue {
            name: name.to_string(),
            reply,
        })
    }

    /// Appends one task. With an idempotency key seen before, returns the
    /// first receipt with `duplicate = true`.
    pub fn enqueue(
        &self,
        queue: &str,
        key: &str,
        payload: &[u8],
        opts: EnqueueOptions,
    ) -> Result<Receipt> {
        let mut r = self.enqueue_batch(
            queue,
            vec![EnqueueItem {
                key: key.to_string(),
                payload: payload.to_vec(),
                opts,
            }],
        )?;
        Ok(r.remove(0))
    }

    /// Appends many tasks in one commit; receipts come back in order. All
    /// or nothing: one invalid item fails the whole batch.
    pub fn enqueue_batch(&self, queue: &str, items: Vec<EnqueueItem>) -> Result<Vec<Receipt>> {
        validate_queue_name(queue)?;
        for it in &items {
            self.check_item(&it.key, &it.payload, &it.opts)?;
        }
        if items.is_empty() {
            self.queue(queue)?;
            return Ok(Vec::new());
        }
        self.call(|reply| Op::Enqueue {
            queue: queue.to_string(),
            items,
            reply,
        })
    }

    /// Leases up to `opts.max` eligible tasks, priority first then offset,
    /// never two of one lane. With `opts.wait`, blocks until work arrives
    /// or the wait ends (then returns an empty vector).
    pub fn claim(&self, queue: &str, worker: &str, opts: ClaimOptions) -> Result<Vec<Lease>> {
        validate_queue_name(queue)?;
        check_worker(worker)?;
        if opts.max == 0 || opts.max > MAX_CLAIM {
            return Err(Error::InvalidArgument(format!(
                "max must be 1..={MAX_CLAIM}"
            )));
        }
        check_lease(opts.lease)?;
        let claimed = self.call(|reply| Op::Claim {
            queue: queue.to_string(),
            worker: worker.to_string(),
            opts,
            reply,
        })?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let rtx = self.read()?;
        claimed
            .into_iter()
            .map(|c| self.lease_from(&rtx, queue, c))
            .collect()
    }

    fn lease_from(&self, rtx: &redb::ReadTransaction, queue: &str, c: Claimed) -> Result<Lease> {
        let t = c.token;
        let (h, hdr, payload) = store::log_record(rtx, t.queue_id, t.offset)?;
        let payload = payload.ok_or_else(|| {
            Error::Corrupt(format!("payload of leased task {} missing", t.offset))
        })?;
        Ok(Lease {
            token: t,
            queue: queue.to_string(),
            id: task_id(&h),
            offset: t.offset,
            key: hdr.key,
            shard: hdr.shard,
            priority: hdr.priority,
            attempt: c.attempt,
            max_attempts: c.max_attempts,
            payload,
            headers: hdr.headers,
            enqueued_at: hdr.enqueued_at,
            leased_at: c.leased_at,
            expires_at: c.expires_at,
        })
    }

    /// Extends a lease by `lease` (the queue default if `None`) from now;
    /// returns the new expiry (ms).
    pub fn heartbeat(&self, token: Token, lease: Option<Duration>) -> Result<u64> {
        check_lease(lease)?;
        self.call(|reply| Op::Heartbeat {
            token,
            lease,
            reply,
        })
    }

    /// Records the start of processing.
    pub fn start(&self, token: Token) -> Result<()> {
        self.call(|reply| Op::Start { token, reply })
    }

    /// Commits a task's result and frees its lane. Refuses a stale token
    /// with `LeaseLost`; a repeat with the same token returns the first
    /// outcome with `duplicate = true`.
    pub fn complete(&self, token: Token, result: &[u8]) -> Result<Completion> {
        self.check_result(result)?;
        let mut v = self.call(|reply| Op::Complete {
            items: vec![(token, result.to_vec())],
            reply,
        })?;
        v.remove(0)
    }

    /// Completes many leases in one commit, each with its own outcome.
    pub fn complete_batch(&self, items: Vec<(Token, Vec<u8>)>) -> Result<Vec<Result<Completion>>> {
        for (_, r) in &items {
            self.check_result(r)?;
        }
        if items.is_empty() {
            self.read()?;
            return Ok(Vec::new());
        }
        self.call(|reply| Op::Complete { items, reply })
    }

    /// Records a failure: retried after backoff, or dead-lettered when
    /// attempts are spent or `retryable` is false.
    pub fn fail(&self, token: Token, error: &str, retryable: bool) -> Result<FailOutcome> {
        self.call(|reply| Op::Fail {
            token,
            error: error.to_string(),
            retryable,
            reply,
        })
    }

    /// Gives a lease back; the attempt does not count.
    pub fn release(&self, token: Token) -> Result<()> {
        self.call(|reply| Op::Release { token, reply })
    }

    /// Sends a dead letter back to the head of its lane (original offset)
    /// or re-enqueues it at a new offset.
    pub fn dlq_redrive(&self, queue: &str, offset: u64, mode: RedriveMode) -> Result<Receipt> {
        validate_queue_name(queue)?;
        self.call(|reply| Op::Redrive {
            queue: queue.to_string(),
            offset,
            mode,
            reply,
        })
    }

    /// Purges one dead letter, or all of a queue's with `None`; returns
    /// how many were purged.
    pub fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64> {
        validate_queue_name(queue)?;
        self.call(|reply| Op::Purge {
            queue: queue.to_string(),
            offset,
            reply,
        })
    }

    /// Runs due timers and retention, and waits until everything sent
    /// before is committed.
    pub fn sync(&self) -> Result<()> {
        self.call(|reply| Op::Sync { reply })
    }
}
