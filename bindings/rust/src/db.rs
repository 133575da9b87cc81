//! [`Db`]: an open database, and the lease operations on [`Lease`].

use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, WireDeadLetter, WireFault, WireQueueInfo, WireStats, WireTask};
use crate::options::{
    Backoff, ClaimOptions, DlqPolicy, Durability, EnqueueItem, EnqueueOptions, Options, Ordering,
    QueueConfig, RedriveMode,
};
use crate::sys::{self, DbHandle};
use crate::types::{
    millis, time, Completion, DeadLetter, FailOutcome, Fault, Lease, QueueInfo, QueueStats,
    Receipt, TaskInfo, Token,
};
use crate::{ABI_MAJOR, ABI_MINOR};
use ordq_ffi::{
    ordq_options, ordq_queue_config, ORDQ_DLQ_BLOCK, ORDQ_DLQ_SKIP, ORDQ_DURABILITY_IMMEDIATE,
    ORDQ_DURABILITY_NONE, ORDQ_ORDERING_GLOBAL, ORDQ_ORDERING_KEY, ORDQ_ORDERING_NONE,
    ORDQ_ORDERING_SHARD, ORDQ_REDRIVE_HEAD, ORDQ_REDRIVE_NEW_OFFSET,
};
use std::fmt;
use std::time::{Duration, SystemTime};

/// An open ordq database: every call goes through the C ABI
/// (`ordq_*` functions of `ordq-ffi`), exactly as from C, Go or Python.
///
/// `Db` is `Send + Sync`: share it between threads with `&Db` (scoped
/// threads) or `Arc<Db>`. Dropping it closes the database and frees the
/// handle (`ordq_db_free`); [`Db::close`] closes it earlier, after which
/// every call fails with [`ErrorKind::Closed`].
///
/// Why `Send + Sync` is sound: the C ABI documents `ordq_db` as
/// thread-safe (any number of threads may call any function on one
/// handle at once; the engine serialises writes on its writer thread, and
/// `ordq_db_close` may race with other calls). The only exclusive call,
/// `ordq_db_free`, runs in `Drop`, when no borrow of the `Db` is left.
pub struct Db {
    handle: DbHandle,
    uri: String,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("uri", &self.uri).finish()
    }
}

// Checked by the compiler: the reason is written on `Db` and in sys.rs.
const _: () = {
    const fn thread_safe<T: Send + Sync>() {}
    thread_safe::<Db>();
    thread_safe::<Lease>();
    thread_safe::<crate::Error>();
};

/// Refuses a library whose ABI this crate was not written for: another
/// major version, or (while the major is 0) another minor version.
pub(crate) fn check_abi(library: u32) -> Result<()> {
    let (major, minor, patch) = (library >> 16, (library >> 8) & 0xff, library & 0xff);
    if major != ABI_MAJOR || (ABI_MAJOR == 0 && minor != ABI_MINOR) {
        return Err(Error::new(
            ErrorKind::AbiMismatch,
            format!(
                "the linked ordq library has ABI version {major}.{minor}.{patch}, but this \
                 crate was written for ABI {ABI_MAJOR}.{ABI_MINOR}.x; rebuild with matching \
                 versions of `ordq` and `ordq-ffi`"
            ),
        ));
    }
    Ok(())
}

/// Client name sent to a broker in remote mode.
const CLIENT: &str = concat!("ordq-rust/", env!("CARGO_PKG_VERSION"));

/// The C options; string fields borrow from `o` (and [`CLIENT`]).
fn c_options(o: &Options) -> ordq_options {
    let (token, token_len) = match &o.token {
        Some(t) => (t.as_ptr().cast(), t.len()),
        None => (std::ptr::null(), 0),
    };
    ordq_options {
        durability: match o.durability {
            Durability::Immediate => ORDQ_DURABILITY_IMMEDIATE,
            Durability::None => ORDQ_DURABILITY_NONE,
        },
        max_payload: o.max_payload,
        max_result: o.max_result,
        max_key: o.max_key,
        max_headers: o.max_headers,
        retain_done_ms: millis(o.retain_done),
        max_batch: o.max_batch,
        cache_size: o.cache_size,
        token,
        token_len,
        // A sub-millisecond timeout rounds up: 0 would mean "the default".
        timeout_ms: o.timeout.map_or(0, |d| millis(d).max(1)),
        client: CLIENT.as_ptr().cast(),
        client_len: CLIENT.len(),
        runtime: "rust".as_ptr().cast(),
        runtime_len: "rust".len(),
        must_exist: o.must_exist,
        signing_key: o
            .signing_key
            .as_ref()
            .map_or(std::ptr::null(), |k| k.as_ptr()),
        signing_key_len: o.signing_key.map_or(0, |k| k.len()),
    }
}

fn c_queue_config(c: &QueueConfig) -> ordq_queue_config {
    ordq_queue_config {
        shards: c.shards,
        ordering: match c.ordering {
            Ordering::Key => ORDQ_ORDERING_KEY,
            Ordering::Shard => ORDQ_ORDERING_SHARD,
            Ordering::Global => ORDQ_ORDERING_GLOBAL,
            Ordering::None => ORDQ_ORDERING_NONE,
        },
        max_attempts: c.max_attempts,
        dlq_policy: match c.dlq_policy {
            DlqPolicy::Skip => ORDQ_DLQ_SKIP,
            DlqPolicy::Block => ORDQ_DLQ_BLOCK,
        },
        lease_ms: millis(c.lease),
        backoff_initial_ms: millis(c.backoff.initial),
        backoff_max_ms: millis(c.backoff.max),
        backoff_multiplier: c.backoff.multiplier,
        backoff_jitter: c.backoff.jitter,
    }
}

fn queue_config(c: &ordq_queue_config) -> Result<QueueConfig> {
    let unknown = |what: &str, v: i32| {
        Error::new(
            ErrorKind::Unknown(0),
            format!("ordq returned an unknown {what} value {v}"),
        )
    };
    Ok(QueueConfig {
        shards: c.shards,
        ordering: match c.ordering {
            ORDQ_ORDERING_KEY => Ordering::Key,
            ORDQ_ORDERING_SHARD => Ordering::Shard,
            ORDQ_ORDERING_GLOBAL => Ordering::Global,
            ORDQ_ORDERING_NONE => Ordering::None,
            v => return Err(unknown("ordering", v)),
        },
        max_attempts: c.max_attempts,
        backoff: Backoff {
            initial: Duration::from_millis(c.backoff_initial_ms),
            max: Duration::from_millis(c.backoff_max_ms),
            multiplier: c.backoff_multiplier,
            jitter: c.backoff_jitter,
        },
        lease: Duration::from_millis(c.lease_ms),
        dlq_policy: match c.dlq_policy {
            ORDQ_DLQ_SKIP => DlqPolicy::Skip,
            ORDQ_DLQ_BLOCK => DlqPolicy::Block,
            v => return Err(unknown("dlq_policy", v)),
        },
    })
}

/// A lease duration in whole ms; a sub-millisecond lease is refused here
/// (the ABI would read 0 as "the queue's default").
fn lease_ms(lease: Option<Duration>) -> Result<u64> {
    match lease {
        None => Ok(0),
        Some(d) if d < Duration::from_millis(1) => Err(Error::invalid(format!(
            "lease must be at least 1 ms (leases have millisecond resolution), not {d:?}"
        ))),
        Some(d) => Ok(millis(d)),
    }
}

impl Db {
    /// Opens (creating crash-atomically if missing) the database at `uri`:
    /// a file path or `file://PATH`; or connects to a broker at
    /// `unix:///path/to/ordq.sock` or `tcp://host:port` (remote mode: the
    /// same API, every call goes to the broker; see [`Options::token`] and
    /// [`Options::timeout`]). A file held by another handle or process is
    /// [`ErrorKind::AlreadyOpen`]; a broker that cannot be reached is
    /// [`ErrorKind::Unavailable`]. First checks the library's ABI version
    /// ([`ErrorKind::AbiMismatch`]).
    pub fn open(uri: &str, opts: &Options) -> Result<Db> {
        check_abi(sys::abi_version())?;
        let handle = DbHandle::open(uri, &c_options(opts))?;
        Ok(Db {
            handle,
            uri: uri.to_string(),
        })
    }

    /// The URI this database was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Closes the database: finishes queued work, makes it durable and
    /// releases the file. Idempotent; every later call (other than
    /// `close`) fails with [`ErrorKind::Closed`]. Dropping a `Db` closes it
    /// too.
    pub fn close(&self) -> Result<()> {
        self.handle.close()
    }

    /// Waits until everything sent before is committed, and runs due timers
    /// (lease expiry, retry readiness) and retention now.
    pub fn sync(&self) -> Result<()> {
        self.handle.sync()
    }

    /// Makes a state checkpoint now (a checkpoint record in the log) and
    /// returns the log's extent as JSON (`segments`, `bytes`, `first_lsn`,
    /// `next_lsn`, `checkpoint_lsn`).
    pub fn checkpoint(&self) -> Result<serde_json::Value> {
        json::parse("checkpoint", &self.handle.checkpoint_json()?)
    }

    /// Verifies the database against its own history (frames, hash chains,
    /// checkpoints and their signatures, the state rebuilt from the log)
    /// and returns the report as JSON (docs/CLI.md, `ordq verify`): `ok`,
    /// `problems` (`class`, `at`, `why`) and the counts. Signatures are
    /// checked with `pubkey` (an Ed25519 public key), else with the key the
    /// database recorded. Through a broker, the broker verifies its
    /// database while it serves.
    pub fn verify(&self, pubkey: Option<&[u8; 32]>) -> Result<serde_json::Value> {
        json::parse("verify", &self.handle.verify_json(pubkey)?)
    }

    /// Audits `queue` (only `key`'s tasks if given) from the log alone:
    /// lane order, completions under the latest lease, one outcome per
    /// task. Returns the report as JSON: `ok`, `violations`, `lanes`.
    pub fn audit(&self, queue: &str, key: Option<&str>) -> Result<serde_json::Value> {
        json::parse("audit", &self.handle.audit_json(queue, key)?)
    }

    /// Creates queue `name` (`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`);
    /// [`ErrorKind::AlreadyExists`] if it exists.
    pub fn create_queue(&self, name: &str, config: &QueueConfig) -> Result<()> {
        self.handle.queue_create(name, &c_queue_config(config))
    }

    /// Creates queue `name` unless it exists with the same configuration
    /// (atomic under concurrent callers); existing with another
    /// configuration is [`ErrorKind::AlreadyExists`], naming the fields
    /// that differ.
    pub fn create_queue_if_not_exists(&self, name: &str, config: &QueueConfig) -> Result<()> {
        self.handle
            .queue_create_if_not_exists(name, &c_queue_config(config))
    }

    /// Queue `name`'s info (id, configuration, creation time);
    /// [`ErrorKind::NotFound`] if unknown.
    pub fn queue(&self, name: &str) -> Result<QueueInfo> {
        let bytes = self.handle.queue_get_json(name)?;
        Ok(json::parse::<WireQueueInfo>("queue", &bytes)?.into_info())
    }

    /// Queue `name`'s configuration only (one call, no JSON).
    pub fn queue_config(&self, name: &str) -> Result<QueueConfig> {
        queue_config(&self.handle.queue_get(name)?)
    }

    /// Every queue's name, sorted.
    pub fn list_queues(&self) -> Result<Vec<String>> {
        self.handle.queue_list()
    }

    /// Deletes queue `name` with all its tasks, results and dead letters.
    pub fn delete_queue(&self, name: &str) -> Result<()> {
        self.handle.queue_delete(name)
    }

    /// Appends one task with `key` and `payload` (any bytes) to `queue`.
    pub fn enqueue(
        &self,
        queue: &str,
        key: &str,
        payload: &[u8],
        opts: &EnqueueOptions,
    ) -> Result<Receipt> {
        self.handle.enqueue(queue, key, payload, opts)
    }

    /// Appends `items` to `queue` in one commit, all or nothing; receipts
    /// in order.
    pub fn enqueue_batch(&self, queue: &str, items: &[EnqueueItem<'_>]) -> Result<Vec<Receipt>> {
        self.handle.enqueue_batch(queue, items)
    }

    /// Leases up to `opts.max` eligible tasks of `queue` for `worker`
    /// (1..=256 bytes), never two of one lane. With `opts.wait` the call
    /// blocks until work arrives or the wait ends (then returns nothing).
    pub fn claim(&self, queue: &str, worker: &str, opts: &ClaimOptions) -> Result<Vec<Lease>> {
        let lease = lease_ms(opts.lease)?;
        // A sub-millisecond wait still waits (1 ms) rather than not at all.
        let wait = match millis(opts.wait) {
            0 if !opts.wait.is_zero() => 1,
            ms => ms,
        };
        self.handle.claim(queue, worker, opts, lease, wait)
    }

    /// Extends a lease by `lease` from now (`None`: the queue's default
    /// lease); returns the new expiry. [`ErrorKind::LeaseLost`] for a stale
    /// token.
    pub fn heartbeat(
        &self,
        token: impl Into<Token>,
        lease: Option<Duration>,
    ) -> Result<SystemTime> {
        let ms = self.handle.heartbeat(token.into(), lease_ms(lease)?)?;
        Ok(time(ms))
    }

    /// Records that processing started (shown in [`TaskInfo::started_at`]).
    pub fn start(&self, token: impl Into<Token>) -> Result<()> {
        self.handle.start(token.into())
    }

    /// Commits a task's `result` and frees its lane. Repeating it with the
    /// same token returns the first outcome with `duplicate` set; any other
    /// stale token is [`ErrorKind::LeaseLost`].
    pub fn complete(&self, token: impl Into<Token>, result: &[u8]) -> Result<Completion> {
        self.handle.complete(token.into(), result)
    }

    /// Completes several leases in one commit. The outer `Result` is the
    /// call's (e.g. a result over the size limit fails it all); each item
    /// has its own outcome (e.g. [`ErrorKind::LeaseLost`] for a stale token).
    pub fn complete_batch(&self, items: &[(Token, &[u8])]) -> Result<Vec<Result<Completion>>> {
        self.handle.complete_batch(items)
    }

    /// Records a failed attempt with `error` text: the task is retried
    /// after backoff, or dead-lettered when its attempts are spent or
    /// `retryable` is false.
    pub fn fail(
        &self,
        token: impl Into<Token>,
        error: &str,
        retryable: bool,
    ) -> Result<FailOutcome> {
        let o = self.handle.fail(token.into(), error, retryable)?;
        Ok(if o.dead {
            FailOutcome::Dead { attempt: o.attempt }
        } else {
            FailOutcome::Retry {
                attempt: o.attempt,
                not_before: time(o.not_before),
            }
        })
    }

    /// Gives a lease back without counting the attempt: the task is ready
    /// again at once.
    pub fn release(&self, token: impl Into<Token>) -> Result<()> {
        self.handle.release(token.into())
    }

    /// Everything known about the task at `offset` of `queue`.
    pub fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo> {
        let bytes = self.handle.task_get_json(queue, offset)?;
        json::parse::<WireTask>("task", &bytes)?.into_task()
    }

    /// The fault history of the task at `offset`, oldest first.
    pub fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>> {
        let bytes = self.handle.task_faults_json(queue, offset)?;
        Ok(json::faults(json::parse::<Vec<WireFault>>(
            "faults", &bytes,
        )?))
    }

    /// Counts of `queue`: per state, per shard, and lifetime totals.
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        let bytes = self.handle.queue_stats_json(queue)?;
        Ok(json::parse::<WireStats>("stats", &bytes)?.into_stats())
    }

    /// Unfinished tasks of `queue` (ready, delayed, in retry wait or
    /// leased) in offset order: those after offset `after` (or from the
    /// start), at most `limit`. Offset order is not claim order, which also
    /// weighs priority and lane heads; nothing is leased. A task that
    /// finishes while the list is read is left out, so fewer than `limit`
    /// may come back while more are pending: page on with the last offset
    /// until a page is empty.
    pub fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        let bytes = self.handle.queue_pending_json(queue, after, limit)?;
        json::tasks(json::parse::<Vec<WireTask>>("pending list", &bytes)?)
    }

    /// Dead letters of `queue` in offset order: those after offset `after`
    /// (or from the start), at most `limit`.
    pub fn dlq_list(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        let bytes = self.handle.dlq_list_json(queue, after, limit)?;
        json::tasks(json::parse::<Vec<WireTask>>("dead-letter list", &bytes)?)
    }

    /// One dead letter with its fault history; [`ErrorKind::NotFound`] if
    /// `offset` is not a held dead letter.
    pub fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter> {
        let bytes = self.handle.dlq_get_json(queue, offset)?;
        json::parse::<WireDeadLetter>("dead letter", &bytes)?.into_dead_letter()
    }

    /// Puts dead letter `offset` back (see [`RedriveMode`]); the receipt has
    /// the task's (new) offset. [`ErrorKind::InvalidState`] if it is not a
    /// dead letter, [`ErrorKind::NotFound`] for an unknown offset.
    pub fn dlq_redrive(&self, queue: &str, offset: u64, mode: RedriveMode) -> Result<Receipt> {
        let mode = match mode {
            RedriveMode::Head => ORDQ_REDRIVE_HEAD,
            RedriveMode::NewOffset => ORDQ_REDRIVE_NEW_OFFSET,
        };
        self.handle.dlq_redrive(queue, offset, mode)
    }

    /// Purges dead letter `offset`, or every dead letter of `queue` when
    /// `None`; returns how many were purged.
    pub fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64> {
        self.handle.dlq_purge(queue, offset)
    }
}

impl Lease {
    /// [`Db::complete`] for this lease.
    pub fn complete(&self, db: &Db, result: &[u8]) -> Result<Completion> {
        db.complete(self, result)
    }

    /// [`Db::fail`] for this lease.
    pub fn fail(&self, db: &Db, error: &str, retryable: bool) -> Result<FailOutcome> {
        db.fail(self, error, retryable)
    }

    /// [`Db::heartbeat`] for this lease, keeping its original duration;
    /// returns the new expiry.
    pub fn heartbeat(&self, db: &Db) -> Result<SystemTime> {
        db.heartbeat(self, Some(self.duration().max(Duration::from_millis(1))))
    }

    /// [`Db::start`] for this lease.
    pub fn start(&self, db: &Db) -> Result<()> {
        db.start(self)
    }

    /// [`Db::release`] for this lease.
    pub fn release(&self, db: &Db) -> Result<()> {
        db.release(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_check_refuses_other_major_and_zero_minor() {
        let v = |maj: u32, min: u32, patch: u32| (maj << 16) | (min << 8) | patch;
        assert!(check_abi(v(ABI_MAJOR, ABI_MINOR, 0)).is_ok());
        assert!(
            check_abi(v(ABI_MAJOR, ABI_MINOR, 7)).is_ok(),
            "patch differs"
        );
        let e = check_abi(v(ABI_MAJOR + 1, ABI_MINOR, 0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AbiMismatch);
        assert!(e.message().contains("ABI version"), "{e}");
        assert_eq!(ABI_MAJOR, 0, "update this test when the ABI reaches 1.0");
        let e = check_abi(v(0, ABI_MINOR + 1, 0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AbiMismatch);
        assert!(check_abi(sys::abi_version()).is_ok());
    }

    #[test]
    fn config_conversion_roundtrips() {
        let cfg = QueueConfig::new()
            .shards(3)
            .ordering(Ordering::None)
            .max_attempts(2)
            .lease(Duration::from_millis(1500))
            .backoff(Backoff::new().initial(Duration::from_millis(5)).jitter(0.0))
            .dlq_policy(DlqPolicy::Block);
        assert_eq!(queue_config(&c_queue_config(&cfg)).unwrap(), cfg);
        let mut bad = c_queue_config(&cfg);
        bad.ordering = 9;
        assert_eq!(
            queue_config(&bad).unwrap_err().kind(),
            ErrorKind::Unknown(0)
        );
    }
}
