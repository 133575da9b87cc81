//! Values returned by calls: receipts, leases and their tokens,
//! completions, fail outcomes, and the admin views (tasks, faults, dead
//! letters, queues, stats). All own their data; timestamps are
//! [`SystemTime`] (the engine keeps whole milliseconds since the Unix
//! epoch), durations are [`Duration`].

use crate::options::QueueConfig;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Identifies one lease: pass it (or `&Lease`) to heartbeat, start,
/// complete, fail and release. A superseded token is refused with
/// [`crate::ErrorKind::LeaseLost`]. A plain value: copy it freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    pub(crate) queue_id: u32,
    pub(crate) offset: u64,
    pub(crate) fence: u64,
}

impl Token {
    /// Offset of the leased task.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Fencing value of the lease (grows with every lease of the task).
    pub fn fence(&self) -> u64 {
        self.fence
    }
}

impl From<&Lease> for Token {
    fn from(l: &Lease) -> Token {
        l.token
    }
}

/// Answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// Queue-wide position of the task (offsets start at 0).
    pub offset: u64,
    /// Shard of the task's key.
    pub shard: u32,
    /// Task id: 32 lower-case hex characters.
    pub id: String,
    /// True when an idempotency key matched an earlier enqueue (this is
    /// the first receipt).
    pub duplicate: bool,
}

/// A claimed task with its lease. Owns its data: it stays valid after
/// the lease ends. Complete it with [`Lease::complete`] (or
/// [`crate::Db::complete`]), fail it, release it, or keep it alive with
/// heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The lease's token.
    pub token: Token,
    /// Queue name.
    pub queue: String,
    /// Task id (32 hex characters).
    pub id: String,
    /// Task offset.
    pub offset: u64,
    /// Task key (may contain any character, NUL included).
    pub key: String,
    /// Task shard.
    pub shard: u32,
    /// Task priority.
    pub priority: i32,
    /// This lease's attempt number (1-based).
    pub attempt: u32,
    /// Attempts allowed before dead-lettering.
    pub max_attempts: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Task headers.
    pub headers: BTreeMap<String, String>,
    /// When the task was enqueued.
    pub enqueued_at: SystemTime,
    /// When this lease was granted.
    pub leased_at: SystemTime,
    /// When this lease expires unless heartbeated.
    pub expires_at: SystemTime,
}

impl Lease {
    /// The lease's token.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Length of the lease as granted (`expires_at - leased_at`).
    pub fn duration(&self) -> Duration {
        self.expires_at
            .duration_since(self.leased_at)
            .unwrap_or(Duration::ZERO)
    }
}

/// Answer to a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Completion {
    /// Completed offset.
    pub offset: u64,
    /// Commit time.
    pub committed_at: SystemTime,
    /// True when this token had completed the task already (the first
    /// outcome is returned).
    pub duplicate: bool,
}

/// What a [`crate::Db::fail`] led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailOutcome {
    /// A retry is scheduled.
    Retry {
        /// Attempts made so far.
        attempt: u32,
        /// When the task becomes eligible again.
        not_before: SystemTime,
    },
    /// The task was dead-lettered (attempts spent, or not retryable).
    Dead {
        /// Attempts made.
        attempt: u32,
    },
}

impl FailOutcome {
    /// True for [`FailOutcome::Dead`].
    pub fn is_dead(&self) -> bool {
        matches!(self, FailOutcome::Dead { .. })
    }

    /// Attempts made so far.
    pub fn attempt(&self) -> u32 {
        match *self {
            FailOutcome::Retry { attempt, .. } | FailOutcome::Dead { attempt } => attempt,
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting for its turn or a worker.
    Ready,
    /// Held by a worker's lease.
    Leased,
    /// Failed; waiting for its retry time (still shown once that time has
    /// come, until it is claimed).
    RetryWait,
    /// Completed.
    Done,
    /// Dead-lettered.
    Dead,
}

/// Everything known about one task ([`crate::Db::get_task`], dead-letter
/// listings).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// Task id (32 hex characters).
    pub id: String,
    /// Queue name.
    pub queue: String,
    /// Task key.
    pub key: String,
    /// Task shard.
    pub shard: u32,
    /// Task offset.
    pub offset: u64,
    /// Task priority.
    pub priority: i32,
    /// Attempts made so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Earliest run time.
    pub not_before: SystemTime,
    /// Idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// Task headers.
    pub headers: BTreeMap<String, String>,
    /// Current state.
    pub state: TaskState,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// When it was last leased.
    pub leased_at: Option<SystemTime>,
    /// When processing was last marked started.
    pub started_at: Option<SystemTime>,
    /// When it was completed or dead-lettered.
    pub committed_at: Option<SystemTime>,
    /// When the current lease expires (while leased).
    pub lease_expires_at: Option<SystemTime>,
    /// Fencing value of the last lease (0 = never leased).
    pub fence: u64,
    /// Worker of the last lease, start or commit.
    pub worker: Option<String>,
    /// Payload (`None` once pruned after `retain_done`).
    pub payload: Option<Vec<u8>>,
    /// Result of a completed task (`None` if none or pruned).
    pub result: Option<Vec<u8>>,
    /// Offset of the dead letter this task was redriven from.
    pub redriven_from: Option<u64>,
    /// Offset of the task this dead letter was redriven to.
    pub redriven_to: Option<u64>,
}

/// Why an attempt ended without completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The worker called fail.
    Failed,
    /// The lease ran out.
    Expired,
}

/// One failed attempt of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fault {
    /// Attempt number.
    pub attempt: u32,
    /// Worker holding the lease.
    pub worker: String,
    /// Error text.
    pub error: String,
    /// When it was recorded.
    pub at: SystemTime,
    /// Failed or expired.
    pub kind: FaultKind,
    /// Whether the worker asked for a retry.
    pub retryable: bool,
}

/// A dead letter with its fault history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The task.
    pub task: TaskInfo,
    /// Its faults, oldest first.
    pub faults: Vec<Fault>,
}

/// A queue's name, id, configuration and creation time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Internal id.
    pub id: u32,
    /// Configuration.
    pub config: QueueConfig,
    /// Creation time.
    pub created_at: SystemTime,
}

/// Load of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShardStats {
    /// Tasks not yet done or dead.
    pub pending: u64,
    /// Lane heads claimable now.
    pub eligible: u64,
    /// Leased tasks.
    pub in_flight: u64,
}

/// Lifetime counters of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Totals {
    /// Tasks enqueued (new-offset redrives included, duplicates not).
    pub enqueued: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Tasks dead-lettered.
    pub dead_lettered: u64,
    /// Leases that expired.
    pub lease_expired: u64,
    /// Leases released.
    pub released: u64,
    /// Dead letters redriven.
    pub redriven: u64,
    /// Dead letters purged.
    pub purged: u64,
    /// `complete`/`fail` calls refused by fencing (the lease was lost):
    /// work thrown away because another attempt owns the task.
    pub rollbacks: u64,
}

/// Counts of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Ready tasks.
    pub ready: u64,
    /// Leased tasks.
    pub leased: u64,
    /// Tasks waiting for a retry.
    pub retry_wait: u64,
    /// Completed tasks.
    pub done: u64,
    /// Dead letters held.
    pub dead: u64,
    /// Tasks not yet done or dead (ready + leased + retry_wait, counted by
    /// the engine): 0 when the queue is drained.
    pub unfinished: u64,
    /// Age of the oldest pending task.
    pub oldest_pending_age: Duration,
    /// Offset the next enqueue gets.
    pub next_offset: u64,
    /// Per shard, indexed by shard.
    pub shards: Vec<ShardStats>,
    /// Lifetime counters.
    pub totals: Totals,
}

/// Milliseconds since the Unix epoch as a time (saturating).
pub(crate) fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 1000))
}

/// Like [`time`], with 0 meaning "never".
pub(crate) fn opt_time(ms: u64) -> Option<SystemTime> {
    (ms != 0).then(|| time(ms))
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A time as milliseconds since the Unix epoch (0 before the epoch).
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}
