//! The argument and answer objects of every operation, as they look on
//! the wire (unknown fields ignored, bytes as base64).

use super::WireError;
use ordq_core::b64;
use ordq_core::config::{ClaimOptions, EnqueueItem, EnqueueOptions, QueueConfig, RedriveMode};
use ordq_core::error::Result;
use ordq_core::types::{Completion, Fault, Lease, Receipt, TaskInfo, Token};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `hello` arguments: who the client is and what it speaks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the client speaks; must equal [`super::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Client library name, e.g. `ordq-go`.
    #[serde(default)]
    pub client: String,
    /// Runtime and version, e.g. `go1.26`.
    #[serde(default)]
    pub runtime: String,
    /// Shared secret; required when the broker has a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `hello` answer: the broker's version and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloOk {
    /// Protocol version the broker speaks.
    pub protocol: u32,
    /// Broker name and version.
    pub server: String,
    /// Largest frame accepted, bytes.
    pub max_frame: usize,
    /// Most requests one connection may have in flight.
    pub max_inflight: usize,
}

/// Arguments naming no object. Like every argument object, unknown fields
/// are ignored (a newer client may send more).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoArgs {}

/// Arguments naming a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRef {
    /// Queue name.
    pub queue: String,
}

/// `create_queue` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateQueue {
    /// Queue name.
    pub queue: String,
    /// Configuration; every field is required (defaults are the client's).
    pub config: QueueConfig,
    /// Answer an existing queue of the same configuration instead of
    /// `ALREADY_EXISTS` (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub if_not_exists: bool,
}

/// Arguments naming one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// Queue name.
    pub queue: String,
    /// Task offset.
    pub offset: u64,
}

/// One task of an `enqueue`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireItem {
    /// Task key.
    pub key: String,
    /// Payload, base64.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// Priority (default 0).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub priority: i32,
    /// Earliest run time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// Earliest run time relative to now, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Overrides the queue's max_attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

impl From<EnqueueItem> for WireItem {
    fn from(it: EnqueueItem) -> Self {
        let o = it.opts;
        WireItem {
            key: it.key,
            payload: it.payload,
            priority: o.priority,
            not_before: o.not_before,
            delay_ms: o.delay.map(ordq_core::clock::millis),
            max_attempts: o.max_attempts,
            idempotency_key: o.idempotency_key,
            headers: o.headers,
        }
    }
}

impl From<WireItem> for EnqueueItem {
    fn from(w: WireItem) -> Self {
        EnqueueItem {
            key: w.key,
            payload: w.payload,
            opts: EnqueueOptions {
                priority: w.priority,
                not_before: w.not_before,
                delay: w.delay_ms.map(Duration::from_millis),
                max_attempts: w.max_attempts,
                idempotency_key: w.idempotency_key,
                headers: w.headers,
            },
        }
    }
}

/// `enqueue` arguments: a batch, all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enqueue {
    /// Queue name.
    pub queue: String,
    /// Tasks in order.
    pub items: Vec<WireItem>,
}

/// `claim` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Queue name.
    pub queue: String,
    /// Worker id (1..=256 bytes); recorded with the lease.
    pub worker: String,
    /// Most leases (default 1).
    #[serde(default = "one")]
    pub max: usize,
    /// Lease duration, ms (the queue's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// How long to wait for work, ms (default 0).
    #[serde(default)]
    pub wait_ms: u64,
    /// Only these shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<u32>>,
}

fn one() -> usize {
    1
}

impl Claim {
    /// The wire form of a claim.
    pub fn new(queue: &str, worker: &str, o: &ClaimOptions) -> Claim {
        Claim {
            queue: queue.to_string(),
            worker: worker.to_string(),
            max: o.max,
            lease_ms: o.lease.map(ordq_core::clock::millis),
            wait_ms: ordq_core::clock::millis(o.wait),
            shards: o.shards.clone(),
        }
    }

    /// The engine's claim options.
    pub fn options(&self) -> ClaimOptions {
        ClaimOptions {
            max: self.max,
            lease: self.lease_ms.map(Duration::from_millis),
            wait: Duration::from_millis(self.wait_ms),
            shards: self.shards.clone(),
        }
    }
}

/// A lease on the wire: [`Lease`] with the payload as base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireLease {
    /// Lease identity for every later lease operation.
    pub token: Token,
    /// Queue name.
    pub queue: String,
    /// Task id.
    pub id: String,
    /// Task offset.
    pub offset: u64,
    /// Task key.
    pub key: String,
    /// Shard.
    pub shard: u32,
    /// Priority.
    pub priority: i32,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Payload, base64.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Enqueue time, ms.
    pub enqueued_at: u64,
    /// Lease time, ms.
    pub leased_at: u64,
    /// Lease expiry, ms.
    pub expires_at: u64,
}

impl From<Lease> for WireLease {
    fn from(l: Lease) -> Self {
        WireLease {
            token: l.token,
            queue: l.queue,
            id: l.id,
            offset: l.offset,
            key: l.key,
            shard: l.shard,
            priority: l.priority,
            attempt: l.attempt,
            max_attempts: l.max_attempts,
            payload: l.payload,
            headers: l.headers,
            enqueued_at: l.enqueued_at,
            leased_at: l.leased_at,
            expires_at: l.expires_at,
        }
    }
}

impl From<WireLease> for Lease {
    fn from(l: WireLease) -> Self {
        Lease {
            token: l.token,
            queue: l.queue,
            id: l.id,
            offset: l.offset,
            key: l.key,
            shard: l.shard,
            priority: l.priority,
            attempt: l.attempt,
            max_attempts: l.max_attempts,
            payload: l.payload,
            headers: l.headers,
            enqueued_at: l.enqueued_at,
            leased_at: l.leased_at,
            expires_at: l.expires_at,
        }
    }
}

/// Arguments naming one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRef {
    /// The lease's token.
    pub token: Token,
}

/// `heartbeat` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The lease's token.
    pub token: Token,
    /// New lease duration from now, ms (the queue's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// `heartbeat` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// New lease expiry, ms since the epoch.
    pub expires_at: u64,
}

/// One completion of a `complete` batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteItem {
    /// The lease's token.
    pub token: Token,
    /// Result bytes, base64 (default empty).
    #[serde(with = "b64", default)]
    pub result: Vec<u8>,
}

/// `complete` arguments: each item gets its own outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complete {
    /// Completions in order.
    pub items: Vec<CompleteItem>,
}

/// Outcome of one item of a batch: `{"ok": ...}` or `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemOutcome<T> {
    /// The item succeeded.
    Ok(T),
    /// The item failed.
    Error(WireError),
}

impl<T> ItemOutcome<T> {
    /// The wire form of one item's result.
    pub fn from_result(r: Result<T>) -> Self {
        match r {
            Ok(v) => ItemOutcome::Ok(v),
            Err(e) => ItemOutcome::Error(WireError::from(&e)),
        }
    }

    /// The item's result.
    pub fn into_result(self) -> Result<T> {
        match self {
            ItemOutcome::Ok(v) => Ok(v),
            ItemOutcome::Error(e) => Err(e.into_error()),
        }
    }
}

/// `fail` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fail {
    /// The lease's token.
    pub token: Token,
    /// Error text, recorded in the fault history.
    #[serde(default)]
    pub error: String,
    /// False dead-letters at once (default true).
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

/// `dlq_list` and `pending` arguments: a page of a queue's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    /// Queue name.
    pub queue: String,
    /// Only tasks after this offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Most returned (default 100).
    #[serde(default = "hundred")]
    pub limit: usize,
}

fn hundred() -> usize {
    100
}

/// `dlq_redrive` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqRedrive {
    /// Queue name.
    pub queue: String,
    /// Dead letter offset.
    pub offset: u64,
    /// `head` or `new_offset`.
    pub mode: RedriveMode,
}

/// `dlq_purge` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqPurge {
    /// Queue name.
    pub queue: String,
    /// One dead letter; all of the queue's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// `dlq_purge` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    /// Dead letters purged.
    pub purged: u64,
}

/// `dlq_get` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDeadLetter {
    /// The task.
    pub task: TaskInfo,
    /// Its faults, oldest first.
    pub faults: Vec<Fault>,
}

/// Receipts of an `enqueue`, as answered.
pub type Receipts = Vec<Receipt>;
/// Outcomes of a `complete`, as answered.
pub type Completions = Vec<ItemOutcome<Completion>>;

/// `verify` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// Hex of a 32-byte Ed25519 public key to check signatures with (else
    /// the key the database recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
}

/// `audit` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Queue name.
    pub queue: String,
    /// Only the tasks of this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `backup` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Absolute path, on the broker's machine, of the backup's state file
    /// (its log goes to `PATH.log/`); must not exist.
    pub to: String,
}
