//! Database options, queue configuration and per-call options.

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// When a call returns relative to its data reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A call returns only after its batch is fsynced (default).
    #[default]
    Immediate,
    /// A call returns after its batch is committed in memory; a power loss
    /// can lose the last moments of work but never corrupts the file.
    None,
}

/// Options for [`crate::Db::open`].
#[derive(Clone)]
pub struct Options {
    /// Commit durability.
    pub durability: Durability,
    /// Time source for every timestamp and timer.
    pub clock: Arc<dyn Clock>,
    /// Largest payload accepted by enqueue, in bytes (default 1 MiB).
    pub max_payload: usize,
    /// Largest result accepted by complete, in bytes (default 1 MiB).
    pub max_result: usize,
    /// Largest task key, in bytes (default 1 KiB).
    pub max_key: usize,
    /// Largest total size of a task's headers (names and values), in bytes
    /// (default 64 KiB).
    pub max_headers: usize,
    /// How long payloads, results and idempotency keys of done tasks are
    /// kept before the writer prunes them (default 24 h).
    pub retain_done: Duration,
    /// Most operations the writer applies in one transaction (default 8192).
    pub max_batch: usize,
    /// redb page cache size in bytes (default 64 MiB).
    pub cache_size: usize,
    /// Size of each segment file of the segment log, preallocated
    /// (default 64 MiB).
    pub segment_size: u64,
    /// How long after the first write since the last state checkpoint the
    /// next one is made (a durable redb commit that records the log
    /// position it covers, so opening replays only the log after it);
    /// default 1 s. Also at close.
    pub checkpoint_interval: Duration,
    /// How long segments of the log the state no longer needs are kept:
    /// `None` (the default) keeps the whole history, for verify and audit;
    /// `Some(d)` removes, at each state checkpoint, the sealed segments it
    /// covers that were last written more than `d` ago.
    /// [`crate::Db::compact_log`] removes them on demand.
    pub log_retention: Option<Duration>,
    /// Ed25519 secret key (32-byte seed) that signs every checkpoint
    /// record; its public key is recorded in the database the first time,
    /// and a database whose recorded key differs refuses to open with
    /// another. `None`: checkpoints are hash-chained but unsigned.
    pub signing_key: Option<[u8; 32]>,
    /// Refuse to create the database: a missing file is `NotFound`
    /// instead of a new, empty database (default `false`: created
    /// crash-atomically if missing). Guards against a typo in a path.
    pub must_exist: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Immediate,
            clock: Arc::new(SystemClock),
            max_payload: 1 << 20,
            max_result: 1 << 20,
            max_key: 1024,
            max_headers: 64 << 10,
            retain_done: Duration::from_secs(24 * 3600),
            max_batch: 8192,
            cache_size: 64 << 20,
            segment_size: crate::wal::DEFAULT_SEGMENT_SIZE,
            checkpoint_interval: Duration::from_secs(1),
            log_retention: None,
            signing_key: None,
            must_exist: false,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("durability", &self.durability)
            .field("max_payload", &self.max_payload)
            .field("max_result", &self.max_result)
            .field("max_key", &self.max_key)
            .field("max_headers", &self.max_headers)
            .field("retain_done", &self.retain_done)
            .field("max_batch", &self.max_batch)
            .field("cache_size", &self.cache_size)
            .field("segment_size", &self.segment_size)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("log_retention", &self.log_retention)
            .field("signing_key", &self.signing_key.map(|_| "<secret>"))
            .finish()
    }
}

/// How a queue groups tasks into lanes, the unit of strict order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// FIFO per task key, parallel across keys (default).
    #[default]
    Key,
    /// One lane per shard, like a Kafka partition.
    Shard,
    /// One lane for the whole queue.
    Global,
    /// Every task is its own lane: no ordering.
    None,
}

/// What a lane does when one of its tasks is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DlqPolicy {
    /// The lane moves on to its next task (default).
    #[default]
    Skip,
    /// The lane waits until an operator redrives or purges the dead letter.
    Block,
}

/// Bounded exponential backoff with jitter between retries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay before the first retry.
    #[serde(with = "ms", rename = "initial_ms")]
    pub initial: Duration,
    /// Upper bound on any delay.
    #[serde(with = "ms", rename = "max_ms")]
    pub max: Duration,
    /// Growth factor per attempt (≥ 1).
    pub multiplier: f64,
    /// Fraction of the delay randomly taken off, in `[0, 1]`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based); `unit` in `[0, 1)`
    /// picks the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self
            .multiplier
            .powi(attempt.saturating_sub(1).min(1000) as i32);
        let base = (self.initial.as_millis() as f64 * exp).min(self.max.as_millis() as f64);
        let ms = base * (1.0 - self.jitter * unit);
        Duration::from_millis(ms.max(0.0) as u64)
    }
}

/// A queue's configuration, fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Number of shards (1..=4096, default 16).
    pub shards: u32,
    /// Lane grouping.
    pub ordering: Ordering,
    /// Attempts before a task is dead-lettered (≥ 1, default 10).
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
    /// Default lease duration for claims (default 30 s).
    #[serde(with = "ms", rename = "lease_ms")]
    pub lease: Duration,
    /// Lane behaviour on dead letter.
    pub dlq_policy: DlqPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            shards: 16,
            ordering: Ordering::Key,
            max_attempts: 10,
            backoff: Backoff::default(),
            lease: Duration::from_secs(30),
            dlq_policy: DlqPolicy::Skip,
        }
    }
}

impl QueueConfig {
    /// Each field where `self` differs from `existing`, as
    /// `field=WANTED (exists with HAVE)` (nested fields dotted), for the
    /// error of a create-if-not-exists that finds another configuration.
    pub fn differences(&self, existing: &QueueConfig) -> Vec<String> {
        fn walk(prefix: &str, want: &Value, have: &Value, out: &mut Vec<String>) {
            match (want, have) {
                (Value::Object(w), Value::Object(h)) => {
                    for (k, wv) in w {
                        let name = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&name, wv, h.get(k).unwrap_or(&Value::Null), out);
                    }
                }
                _ if want != have => out.push(format!("{prefix}={want} (exists with {have})")),
                _ => {}
            }
        }
        let as_value = |c: &QueueConfig| serde_json::to_value(c).unwrap_or(Value::Null);
        let mut out = Vec::new();
        walk("", &as_value(self), &as_value(existing), &mut out);
        out
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if self.shards == 0 || self.shards > 4096 {
            return bad("shards must be in 1..=4096");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if self.lease < Duration::from_millis(1) {
            return bad("lease must be at least 1 ms (leases have millisecond resolution)");
        }
        let b = &self.backoff;
        if !(b.multiplier.is_finite() && b.multiplier >= 1.0) {
            return bad("backoff multiplier must be a finite number >= 1");
        }
        if !(0.0..=1.0).contains(&b.jitter) {
            return bad("backoff jitter must be in [0, 1]");
        }
        if b.initial > b.max {
            return bad("backoff initial must not exceed max");
        }
        Ok(())
    }
}

/// Checks a queue name against `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
pub fn validate_queue_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "queue name {name:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$"
        )))
    }
}

/// Options of one enqueued task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueOptions {
    /// Higher runs first among eligible lane heads (default 0).
    pub priority: i32,
    /// Earliest run time, ms since the epoch; wins over `delay`.
    pub not_before: Option<u64>,
    /// Earliest run time relative to now.
    pub delay: Option<Duration>,
    /// Overrides the queue's max_attempts.
    pub max_attempts: Option<u32>,
    /// Makes a repeated enqueue return the first receipt.
    pub idempotency_key: Option<String>,
    /// String headers, e.g. `traceparent`.
    pub headers: BTreeMap<String, String>,
}

/// One task of an [`crate::Db::enqueue_batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueItem {
    /// Task key: picks the shard and (with key ordering) the lane.
    pub key: String,
    /// Opaque payload bytes.
    pub payload: Vec<u8>,
    /// Per-task options.
    pub opts: EnqueueOptions,
}

/// Options of a claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimOptions {
    /// Most leases returned (≥ 1, default 1).
    pub max: usize,
    /// Lease duration; the queue's default when `None`.
    pub lease: Option<Duration>,
    /// How long to block when nothing is eligible (default 0: don't block).
    pub wait: Duration,
    /// Only claim from these shards.
    pub shards: Option<Vec<u32>>,
}

impl Default for ClaimOptions {
    fn default() -> Self {
        ClaimOptions {
            max: 1,
            lease: None,
            wait: Duration::ZERO,
            shards: None,
        }
    }
}

/// Where a redriven dead letter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedriveMode {
    /// Back to the head of its lane, at its original offset.
    Head,
    /// Re-enqueued at a new offset at the tail of its lane.
    NewOffset,
}

/// Serde helper: a `Duration` stored as whole milliseconds.
pub(crate) mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(crate::clock::millis(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
