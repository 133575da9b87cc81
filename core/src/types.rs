//! Values the engine returns: receipts, leases, task records, faults, stats.

use crate::config::QueueConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Queue-wide position of the task; order is the offset.
    pub offset: u64,
    /// Shard of the task's key.
    pub shard: u32,
    /// Stable task id (hex, from the record's chain hash).
    pub id: String,
    /// True when an idempotency key matched an earlier enqueue.
    pub duplicate: bool,
}

/// Identifies one lease: the task and the fencing value it was leased with.
/// Every lease operation takes it; a superseded one is refused with
/// `LeaseLost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    /// Internal id of the task's queue.
    pub queue_id: u32,
    /// Offset of the leased task.
    pub offset: u64,
    /// Fencing value: a database-wide counter that only grows.
    pub fence: u64,
}

/// A claimed task with its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The lease's identity, for heartbeat/start/complete/fail/release.
    pub token: Token,
    /// Queue name.
    pub queue: String,
    /// Task id.
    pub id: String,
    /// Task offset.
    pub offset: u64,
    /// Task key.
    pub key: String,
    /// Task shard.
    pub shard: u32,
    /// Task priority.
    pub priority: i32,
    /// This lease's attempt number (1-based).
    pub attempt: u32,
    /// Attempts allowed before dead-lettering.
    pub max_attempts: u32,
    /// Task payload.
    pub payload: Vec<u8>,
    /// Task headers.
    pub headers: BTreeMap<String, String>,
    /// Enqueue time, ms since the epoch.
    pub enqueued_at: u64,
    /// Lease time, ms since the epoch.
    pub leased_at: u64,
    /// Lease expiry, ms since the epoch.
    pub expires_at: u64,
}

/// Lifecycle state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting (possibly until `not_before`) for its lane turn.
    Ready,
    /// Held by a worker under a lease.
    Leased,
    /// Failed; waiting for its retry time.
    RetryWait,
    /// Completed.
    Done,
    /// Dead-lettered.
    Dead,
}

impl TaskState {
    /// The state's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Ready => "ready",
            TaskState::Leased => "leased",
            TaskState::RetryWait => "retry_wait",
            TaskState::Done => "done",
            TaskState::Dead => "dead",
        }
    }

    /// True for `Done` and `Dead`.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Done | TaskState::Dead)
    }
}

/// Everything known about one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Record version.
    pub v: u32,
    /// Task id.
    pub id: String,
    /// Queue name.
    pub queue: String,
    /// Task key.
    pub key: String,
    /// Task shard.
    pub shard: u32,
    /// Task offset.
    pub offset: u64,
    /// Priority.
    pub priority: i32,
    /// Attempts made so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Earliest run time, ms since the epoch.
    pub not_before: u64,
    /// Idempotency key given at enqueue.
    pub idempotency_key: Option<String>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// Lifecycle state.
    pub state: TaskState,
    /// Enqueue time, ms.
    pub enqueued_at: u64,
    /// Last lease time, ms (0 if never leased).
    pub leased_at: u64,
    /// Last start time, ms (0 if not started in the last lease).
    pub started_at: u64,
    /// Completion or dead-letter time, ms (0 if neither).
    pub committed_at: u64,
    /// Lease expiry while leased, ms.
    pub lease_expires_at: u64,
    /// Fencing value of the last lease (0 if never leased).
    pub fence: u64,
    /// Worker of the last lease, start and commit.
    pub worker: Option<String>,
    /// Payload; `None` once pruned or purged. Base64 in JSON.
    #[serde(with = "crate::b64::opt")]
    pub payload: Option<Vec<u8>>,
    /// Result of completion; `None` if none or pruned. Base64 in JSON.
    #[serde(with = "crate::b64::opt")]
    pub result: Option<Vec<u8>>,
    /// Offset this task was re-enqueued from by a redrive.
    pub redriven_from: Option<u64>,
    /// Offset this dead letter was re-enqueued at by a redrive.
    pub redriven_to: Option<u64>,
}

/// Why an attempt ended without completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The worker called `fail`.
    Failed,
    /// The lease expired.
    Expired,
}

/// One recorded failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Attempt number (1-based).
    pub attempt: u32,
    /// Worker that held the lease.
    pub worker: String,
    /// Error text.
    pub error: String,
    /// Time, ms since the epoch.
    pub at: u64,
    /// Failure or expiry.
    pub kind: FaultKind,
    /// Whether the failure allowed a retry.
    pub retryable: bool,
}

/// A dead letter with its full fault history.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The task.
    pub task: TaskInfo,
    /// Every recorded failure, oldest first.
    pub faults: Vec<Fault>,
}

/// Answer to a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// Completed offset.
    pub offset: u64,
    /// Commit time, ms.
    pub committed_at: u64,
    /// True when this token had completed already (first outcome returned).
    pub duplicate: bool,
}

/// What a `fail` led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum FailOutcome {
    /// The task will be retried at `not_before`.
    Retry {
        /// Attempts made so far.
        attempt: u32,
        /// Retry time, ms since the epoch.
        not_before: u64,
    },
    /// The task was dead-lettered.
    Dead {
        /// Attempts made.
        attempt: u32,
    },
}

/// A queue's name, id and configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Internal id, never reused.
    pub id: u32,
    /// Configuration.
    pub config: QueueConfig,
    /// Creation time, ms.
    pub created_at: u64,
}

/// Lifetime totals of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Tasks enqueued (duplicates excluded).
    pub enqueued: u64,
    /// Tasks completed.
    pub completed: u64,
    /// `fail` calls.
    pub failed: u64,
    /// Retries scheduled by `fail`.
    pub retried: u64,
    /// Tasks dead-lettered.
    pub dead_lettered: u64,
    /// Leases that expired.
    pub lease_expired: u64,
    /// Leases given back by `release`.
    pub released: u64,
    /// Dead letters redriven.
    pub redriven: u64,
    /// Dead letters purged.
    pub purged: u64,
    /// Rollbacks: `complete` or `fail` calls refused by fencing because the
    /// token's lease was lost (expired and, usually, leased again). The
    /// work of that attempt was thrown away; another attempt owns the task.
    #[serde(default)]
    pub rollbacks: u64,
}

/// Per-shard load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStats {
    /// Tasks waiting in this shard (ready, delayed or in retry wait).
    pub pending: u64,
    /// Lane heads claimable right now.
    pub eligible: u64,
    /// Tasks leased.
    pub in_flight: u64,
}

/// A queue's state counts, per-shard load and totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Tasks in state ready.
    pub ready: u64,
    /// Tasks leased.
    pub leased: u64,
    /// Tasks waiting for a retry.
    pub retry_wait: u64,
    /// Tasks done (not counting pruned records' disappearance).
    pub done: u64,
    /// Dead letters currently held.
    pub dead: u64,
    /// Tasks not yet done or dead: ready + leased + retry_wait. A queue is
    /// drained when this is 0 (what drain-and-exit workers wait for).
    pub unfinished: u64,
    /// Age of the oldest unfinished task, ms (0 if none).
    pub oldest_pending_age_ms: u64,
    /// Offset the next enqueue gets.
    pub next_offset: u64,
    /// Per-shard load, indexed by shard.
    pub shards: Vec<ShardStats>,
    /// Lifetime totals.
    pub totals: Totals,
}

/// The segment log's extent ([`crate::Db::log_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInfo {
    /// Segment files.
    pub segments: usize,
    /// Bytes they hold (zero fill of the active one included).
    pub bytes: u64,
    /// LSN of the oldest record kept (the first segment's base).
    pub first_lsn: u64,
    /// LSN the next record gets.
    pub next_lsn: u64,
    /// LSN up to which the last state checkpoint covers the log: opening
    /// replays from here.
    pub checkpoint_lsn: u64,
}

/// What [`crate::Db::compact_log`] removed, and the log after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    /// Segment files removed.
    pub removed_segments: usize,
    /// Bytes they held.
    pub removed_bytes: u64,
    /// The log after the removal.
    pub log: LogInfo,
}
