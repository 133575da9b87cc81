//! Options of calls, with chaining setters: [`Options`] (open),
//! [`QueueConfig`] and [`Backoff`] (queues), [`EnqueueOptions`] and
//! [`EnqueueItem`] (enqueue), [`ClaimOptions`] (claim), [`RedriveMode`].
//!
//! Every struct is `#[non_exhaustive]`: start from `new()` (or
//! `default()`), then chain setters; fields are public to read.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// When a call returns relative to its data reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A call returns after its batch is fsynced (default).
    #[default]
    Immediate,
    /// A call returns after its batch is committed in memory: a power loss
    /// can lose the last moments of work, never corrupt the file.
    None,
}

/// Options of [`crate::Db::open`]. The file fields (`durability` to
/// `cache_size`) apply to a database file and are ignored in remote mode
/// (the broker's own options apply); `token` and `timeout` apply to a
/// broker address (`unix://…`, `tcp://…`) only.
///
/// ```
/// # use ordq::{Durability, Options};
/// # use std::time::Duration;
/// let opts = Options::new().durability(Durability::None).max_payload(64 << 10);
/// assert_eq!(opts.max_payload, 64 << 10);
/// let remote = Options::new().token("s3cret").timeout(Duration::from_secs(5));
/// assert_eq!(remote.timeout, Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Commit durability (default [`Durability::Immediate`]).
    pub durability: Durability,
    /// Largest payload accepted by enqueue, bytes (default 1 MiB).
    pub max_payload: u64,
    /// Largest result accepted by complete, bytes (default 1 MiB).
    pub max_result: u64,
    /// Largest task key or idempotency key, bytes (default 1024).
    pub max_key: u64,
    /// Largest total size of a task's header names and values, bytes
    /// (default 64 KiB).
    pub max_headers: u64,
    /// How long payloads, results and idempotency keys of done tasks are
    /// kept (default 24 h; millisecond resolution).
    pub retain_done: Duration,
    /// Most operations the engine applies in one transaction (default 8192).
    pub max_batch: u64,
    /// Page cache size, bytes (default 64 MiB).
    pub cache_size: u64,
    /// Remote mode: the broker's access token. `None` (default) reads the
    /// `ORDQ_TOKEN` environment variable; `Some("")` sends no token.
    pub token: Option<String>,
    /// Remote mode: deadline of every call (`None` = 30 s; millisecond
    /// resolution); a claim adds its wait. A call not answered in time
    /// fails with [`crate::ErrorKind::Unavailable`].
    pub timeout: Option<Duration>,
    /// A missing file is [`crate::ErrorKind::NotFound`] instead of a new
    /// database (default `false`: created crash-atomically). A guard
    /// against a typo in a path; ignored in remote mode.
    pub must_exist: bool,
    /// Ed25519 signing key (32-byte seed) for checkpoint records (default
    /// `None`: unsigned); ignored in remote mode.
    pub signing_key: Option<[u8; 32]>,
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
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("must_exist", &self.must_exist)
            .field("signing_key", &self.signing_key.map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Immediate,
            max_payload: 1 << 20,
            max_result: 1 << 20,
            max_key: 1024,
            max_headers: 64 << 10,
            retain_done: Duration::from_secs(24 * 3600),
            max_batch: 8192,
            cache_size: 64 << 20,
            token: None,
            timeout: None,
            must_exist: false,
            signing_key: None,
        }
    }
}

impl Options {
    /// The defaults (the same as the C ABI's `ordq_options_init`).
    pub fn new() -> Options {
        Options::default()
    }
    /// Sets [`Options::durability`].
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Sets [`Options::max_payload`].
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = bytes;
        self
    }
    /// Sets [`Options::max_result`].
    pub fn max_result(mut self, bytes: u64) -> Self {
        self.max_result = bytes;
        self
    }
    /// Sets [`Options::max_key`].
    pub fn max_key(mut self, bytes: u64) -> Self {
        self.max_key = bytes;
        self
    }
    /// Sets [`Options::max_headers`].
    pub fn max_headers(mut self, bytes: u64) -> Self {
        self.max_headers = bytes;
        self
    }
    /// Sets [`Options::retain_done`].
    pub fn retain_done(mut self, d: Duration) -> Self {
        self.retain_done = d;
        self
    }
    /// Sets [`Options::max_batch`] (0 = default).
    pub fn max_batch(mut self, n: u64) -> Self {
        self.max_batch = n;
        self
    }
    /// Sets [`Options::cache_size`] (0 = default).
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_size = bytes;
        self
    }
    /// Sets [`Options::token`] (remote mode).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Sets [`Options::timeout`] (remote mode).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// Sets [`Options::must_exist`].
    pub fn must_exist(mut self, yes: bool) -> Self {
        self.must_exist = yes;
        self
    }
    /// Sets [`Options::signing_key`].
    pub fn signing_key(mut self, seed: [u8; 32]) -> Self {
        self.signing_key = Some(seed);
        self
    }
}

/// How a queue groups tasks into lanes, the unit of strict order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// FIFO per task key, parallel across keys (default).
    #[default]
    Key,
    /// One lane per shard.
    Shard,
    /// One lane for the whole queue.
    Global,
    /// Every task is its own lane: no ordering.
    None,
}

/// What a lane does when one of its tasks is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DlqPolicy {
    /// The lane moves on to its next task (default).
    #[default]
    Skip,
    /// The lane waits until the dead letter is redriven or purged.
    Block,
}

/// Bounded exponential backoff with jitter between retries: the delay
/// after attempt `n` is `min(max, initial * multiplier^(n-1))`, minus up
/// to `jitter` of it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry (default 1 s).
    pub initial: Duration,
    /// Upper bound of any delay (default 600 s).
    pub max: Duration,
    /// Growth factor per attempt, >= 1 (default 2.0).
    pub multiplier: f64,
    /// Fraction of each delay randomly taken off, in `[0, 1]` (default 0.2).
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
    /// The defaults.
    pub fn new() -> Backoff {
        Backoff::default()
    }
    /// Sets [`Backoff::initial`].
    pub fn initial(mut self, d: Duration) -> Self {
        self.initial = d;
        self
    }
    /// Sets [`Backoff::max`].
    pub fn max(mut self, d: Duration) -> Self {
        self.max = d;
        self
    }
    /// Sets [`Backoff::multiplier`].
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = m;
        self
    }
    /// Sets [`Backoff::jitter`].
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = j;
        self
    }
}

/// A queue's configuration, fixed at creation. Ranges are checked by the
/// engine ([`crate::ErrorKind::InvalidArgument`]).
///
/// ```
/// # use ordq::{Backoff, DlqPolicy, Ordering, QueueConfig};
/// # use std::time::Duration;
/// let cfg = QueueConfig::new()
///     .shards(4)
///     .ordering(Ordering::Global)
///     .max_attempts(3)
///     .lease(Duration::from_secs(10))
///     .backoff(Backoff::new().initial(Duration::from_millis(100)))
///     .dlq_policy(DlqPolicy::Block);
/// assert_eq!(cfg.shards, 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Number of shards, 1..=4096 (default 16).
    pub shards: u32,
    /// Lane grouping (default [`Ordering::Key`]).
    pub ordering: Ordering,
    /// Attempts before a task is dead-lettered, >= 1 (default 10).
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
    /// Default lease of a claim, >= 1 ms (default 30 s).
    pub lease: Duration,
    /// Lane behaviour on a dead letter (default [`DlqPolicy::Skip`]).
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
    /// The defaults (the same as the C ABI's `ordq_queue_config_init`).
    pub fn new() -> QueueConfig {
        QueueConfig::default()
    }
    /// Sets [`QueueConfig::shards`].
    pub fn shards(mut self, n: u32) -> Self {
        self.shards = n;
        self
    }
    /// Sets [`QueueConfig::ordering`].
    pub fn ordering(mut self, o: Ordering) -> Self {
        self.ordering = o;
        self
    }
    /// Sets [`QueueConfig::max_attempts`].
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Sets [`QueueConfig::backoff`].
    pub fn backoff(mut self, b: Backoff) -> Self {
        self.backoff = b;
        self
    }
    /// Sets [`QueueConfig::lease`].
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }
    /// Sets [`QueueConfig::dlq_policy`].
    pub fn dlq_policy(mut self, p: DlqPolicy) -> Self {
        self.dlq_policy = p;
        self
    }
}

/// Options of one enqueued task; the default sets none.
///
/// ```
/// # use ordq::EnqueueOptions;
/// # use std::time::Duration;
/// let o = EnqueueOptions::new()
///     .priority(5)
///     .delay(Duration::from_secs(2))
///     .max_attempts(3)
///     .idempotency_key("signup-42")
///     .header("traceparent", "00-4bf9-01");
/// assert_eq!(o.headers.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// Higher runs first among eligible lane heads (default 0).
    pub priority: i32,
    /// Earliest run time (wins over `delay`); millisecond resolution.
    pub not_before: Option<SystemTime>,
    /// Earliest run time relative to now; millisecond resolution.
    pub delay: Option<Duration>,
    /// Attempts allowed for this task (default: the queue's).
    pub max_attempts: Option<u32>,
    /// A repeated enqueue with the same key returns the first receipt,
    /// marked `duplicate`.
    pub idempotency_key: Option<String>,
    /// Task headers (e.g. `traceparent`); names must be non-empty.
    pub headers: BTreeMap<String, String>,
}

impl EnqueueOptions {
    /// No option set.
    pub fn new() -> EnqueueOptions {
        EnqueueOptions::default()
    }
    /// Sets [`EnqueueOptions::priority`].
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    /// Sets [`EnqueueOptions::not_before`].
    pub fn not_before(mut self, t: SystemTime) -> Self {
        self.not_before = Some(t);
        self
    }
    /// Sets [`EnqueueOptions::delay`].
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
    /// Sets [`EnqueueOptions::max_attempts`].
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Sets [`EnqueueOptions::idempotency_key`].
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// Adds (or replaces) one header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// True when no option is set (the C call then gets NULL options).
    pub(crate) fn is_default(&self) -> bool {
        self.priority == 0
            && self.not_before.is_none()
            && self.delay.is_none()
            && self.max_attempts.is_none()
            && self.idempotency_key.is_none()
            && self.headers.is_empty()
    }
}

/// One task of [`crate::Db::enqueue_batch`]: key and payload are borrowed
/// (ordq copies them before the call returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueItem<'a> {
    /// Task key: picks the shard and, with key ordering, the lane.
    pub key: &'a str,
    /// Payload bytes (any bytes, NUL included).
    pub payload: &'a [u8],
    /// Options of this task.
    pub opts: EnqueueOptions,
}

impl<'a> EnqueueItem<'a> {
    /// A task with default options.
    pub fn new(key: &'a str, payload: &'a [u8]) -> EnqueueItem<'a> {
        EnqueueItem {
            key,
            payload,
            opts: EnqueueOptions::default(),
        }
    }
    /// Sets the options.
    pub fn opts(mut self, opts: EnqueueOptions) -> Self {
        self.opts = opts;
        self
    }
}

/// Options of [`crate::Db::claim`].
///
/// ```
/// # use ordq::ClaimOptions;
/// # use std::time::Duration;
/// let o = ClaimOptions::new()
///     .max(10)
///     .lease(Duration::from_secs(60))
///     .wait(Duration::from_secs(1))
///     .shards([0, 1]);
/// assert_eq!(o.max, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimOptions {
    /// Most leases returned, 1..=10000 (default 1).
    pub max: u32,
    /// Lease duration (default: the queue's); at least 1 ms.
    pub lease: Option<Duration>,
    /// How long to block when nothing is eligible (default 0: don't block).
    pub wait: Duration,
    /// Only claim from these shards (empty, the default: every shard).
    pub shards: Vec<u32>,
}

impl Default for ClaimOptions {
    fn default() -> Self {
        ClaimOptions {
            max: 1,
            lease: None,
            wait: Duration::ZERO,
            shards: Vec::new(),
        }
    }
}

impl ClaimOptions {
    /// The defaults: one lease, the queue's lease duration, no wait.
    pub fn new() -> ClaimOptions {
        ClaimOptions::default()
    }
    /// Sets [`ClaimOptions::max`].
    pub fn max(mut self, n: u32) -> Self {
        self.max = n;
        self
    }
    /// Sets [`ClaimOptions::lease`].
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = Some(d);
        self
    }
    /// Sets [`ClaimOptions::wait`].
    pub fn wait(mut self, d: Duration) -> Self {
        self.wait = d;
        self
    }
    /// Sets [`ClaimOptions::shards`].
    pub fn shards(mut self, shards: impl IntoIterator<Item = u32>) -> Self {
        self.shards = shards.into_iter().collect();
        self
    }
}

/// How [`crate::Db::dlq_redrive`] puts a dead letter back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedriveMode {
    /// Back to the head of its lane at its original offset, attempts reset.
    Head,
    /// Re-enqueued at a new offset at the tail of its lane.
    NewOffset,
}
