//! The broker's wire protocol: newline-delimited JSON frames (one object
//! per line, UTF-8, at most [`DEFAULT_MAX_FRAME`] bytes by default).
//!
//! A request is `{"id": N, "op": "name", "args": {...}}`; `args` may be
//! omitted for operations without arguments. A response is
//! `{"id": N, "ok": <value>}` or `{"id": N, "error": {"code", "name",
//! "message"}}`, with the request's id; responses to pipelined requests may
//! come back in any order. Bytes (payloads, results) are standard base64
//! with padding. Every connection starts with `hello`. docs/PROTOCOL.md
//! specifies each operation with an example exchange.

use ordq_core::config::{ClaimOptions, EnqueueItem, EnqueueOptions, QueueConfig, RedriveMode};
use ordq_core::error::{Error, ErrorCode, Result};
use ordq_core::types::{Completion, Fault, Lease, Receipt, TaskInfo, Token};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::time::Duration;

/// Protocol version spoken by this build; `hello` must carry it.
pub const PROTOCOL_VERSION: u32 = 1;
/// Default largest frame, bytes, including the newline.
pub const DEFAULT_MAX_FRAME: usize = 4 << 20;

use ordq_core::b64;

/// `hello` arguments: who the client is and what it speaks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the client speaks; must equal [`PROTOCOL_VERSION`].
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

/// An error on the wire: the stable code, its name and the detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable numeric code (docs/ERRORS.md).
    pub code: i32,
    /// Stable name of the code, e.g. `LEASE_LOST`.
    pub name: String,
    /// Human-readable detail.
    pub message: String,
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        WireError {
            code: e.code().as_i32(),
            name: e.code().name().to_string(),
            message: e.detail(),
        }
    }
}

impl WireError {
    /// The engine error this stands for; an unknown code becomes
    /// `Unavailable` naming it.
    pub fn into_error(self) -> Error {
        match ErrorCode::from_i32(self.code) {
            Some(code) => Error::from_parts(code, self.message),
            None => Error::Unavailable(format!(
                "broker answered with unknown error code {} ({}): {}",
                self.code, self.name, self.message
            )),
        }
    }
}

macro_rules! requests {
    ($( $(#[$doc:meta])* $variant:ident($args:ty) = $name:literal, )*) => {
        /// One request, typed by operation.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[$doc])* $variant($args), )*
        }

        impl Request {
            /// Every operation name, in the order of docs/PROTOCOL.md.
            pub const OPS: &'static [&'static str] = &[$($name),*];

            /// The operation's name on the wire.
            pub fn op(&self) -> &'static str {
                match self { $( Request::$variant(_) => $name, )* }
            }

            /// Builds a request from a frame's `op` and `args`.
            pub fn decode(op: &str, args: Option<&RawValue>) -> Result<Request> {
                match op {
                    $( $name => Ok(Request::$variant(parse_args(op, args)?)), )*
                    other => Err(Error::InvalidArgument(format!(
                        "unknown op {other:?}; known: {}", Self::OPS.join(", ")
                    ))),
                }
            }

            /// The request as one frame, newline included.
            pub fn encode(&self, id: u64) -> Vec<u8> {
                match self { $( Request::$variant(a) => frame(id, $name, a), )* }
            }
        }
    };
}

requests! {
    /// Starts a connection.
    Hello(Hello) = "hello",
    /// Answers `{}`; a liveness check.
    Ping(NoArgs) = "ping",
    /// Waits until everything before is committed; runs timers.
    Sync(NoArgs) = "sync",
    /// Creates a queue; answers its `QueueInfo`.
    CreateQueue(CreateQueue) = "create_queue",
    /// Answers a queue's `QueueInfo`.
    GetQueue(QueueRef) = "get_queue",
    /// Answers every `QueueInfo`.
    ListQueues(NoArgs) = "list_queues",
    /// Deletes a queue.
    DeleteQueue(QueueRef) = "delete_queue",
    /// Appends a batch; answers receipts in order.
    Enqueue(Enqueue) = "enqueue",
    /// Leases tasks; answers `WireLease`s.
    Claim(Claim) = "claim",
    /// Extends a lease; answers `Expiry`.
    Heartbeat(Heartbeat) = "heartbeat",
    /// Records the start of processing.
    Start(TokenRef) = "start",
    /// Completes leases; answers one `ItemOutcome<Completion>` per item.
    Complete(Complete) = "complete",
    /// Records a failure; answers a `FailOutcome`.
    Fail(Fail) = "fail",
    /// Gives a lease back.
    Release(TokenRef) = "release",
    /// Answers a `TaskInfo`.
    GetTask(TaskRef) = "get_task",
    /// Answers a task's faults.
    Faults(TaskRef) = "faults",
    /// Answers `QueueStats`.
    Stats(QueueRef) = "stats",
    /// Answers unfinished tasks as `TaskInfo`s, in offset order.
    Pending(TaskList) = "pending",
    /// Answers dead letters as `TaskInfo`s.
    DlqList(TaskList) = "dlq_list",
    /// Answers a `WireDeadLetter`.
    DlqGet(TaskRef) = "dlq_get",
    /// Redrives a dead letter; answers a `Receipt`.
    DlqRedrive(DlqRedrive) = "dlq_redrive",
    /// Purges dead letters; answers `Purged`.
    DlqPurge(DlqPurge) = "dlq_purge",
}

fn parse_args<T: for<'de> Deserialize<'de>>(op: &str, args: Option<&RawValue>) -> Result<T> {
    let text = args.map_or("{}", |a| a.get());
    serde_json::from_str(text)
        .map_err(|e| Error::InvalidArgument(format!("bad arguments for {op}: {e}")))
}

fn frame<T: Serialize>(id: u64, op: &str, args: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a, T> {
        id: u64,
        op: &'a str,
        args: &'a T,
    }
    let mut v = serde_json::to_vec(&Out { id, op, args }).expect("request serialises");
    v.push(b'\n');
    v
}

/// A request frame as read, before its arguments are typed.
#[derive(Debug, Deserialize)]
pub struct RawRequest<'a> {
    /// Request id, echoed in the response.
    pub id: u64,
    /// Operation name.
    #[serde(borrow)]
    pub op: std::borrow::Cow<'a, str>,
    /// Arguments, parsed once `op` is known.
    #[serde(borrow, default)]
    pub args: Option<&'a RawValue>,
}

impl<'a> RawRequest<'a> {
    /// Parses one frame (without its newline).
    pub fn parse(line: &'a [u8]) -> Result<RawRequest<'a>> {
        serde_json::from_slice(line)
            .map_err(|e| Error::InvalidArgument(format!("malformed request frame: {e}")))
    }

    /// The typed request.
    pub fn request(&self) -> Result<Request> {
        Request::decode(&self.op, self.args)
    }
}

/// A response frame as read, before its value is typed.
#[derive(Debug, Deserialize)]
pub struct RawResponse<'a> {
    /// Id of the request answered; absent for errors about the
    /// connection itself (then the broker closes it).
    #[serde(default)]
    pub id: Option<u64>,
    /// The answer, on success.
    #[serde(borrow, default)]
    pub ok: Option<&'a RawValue>,
    /// The error, on failure.
    #[serde(default)]
    pub error: Option<WireError>,
}

impl<'a> RawResponse<'a> {
    /// Parses one frame (without its newline).
    pub fn parse(line: &'a [u8]) -> Result<RawResponse<'a>> {
        serde_json::from_slice(line)
            .map_err(|e| Error::Unavailable(format!("malformed response frame from broker: {e}")))
    }

    /// The typed answer or the error it carries.
    pub fn into_result<T: for<'de> Deserialize<'de>>(self) -> Result<T> {
        if let Some(e) = self.error {
            return Err(e.into_error());
        }
        let ok = self.ok.map_or("null", |v| v.get());
        serde_json::from_str(ok)
            .map_err(|e| Error::Unavailable(format!("unexpected answer from broker: {e}")))
    }
}

/// A success response frame, newline included.
pub fn encode_ok<T: Serialize + ?Sized>(id: u64, value: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a, T: ?Sized> {
        id: u64,
        ok: &'a T,
    }
    let mut v = serde_json::to_vec(&Out { id, ok: value }).expect("answer serialises");
    v.push(b'\n');
    v
}

/// An error response frame, newline included; `id` is `None` for errors
/// about the connection (malformed frame, bad hello).
pub fn encode_err(id: Option<u64>, e: &Error) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        error: WireError,
    }
    let mut v = serde_json::to_vec(&Out {
        id,
        error: WireError::from(e),
    })
    .expect("error serialises");
    v.push(b'\n');
    v
}

/// Receipts of an `enqueue`, as answered.
pub type Receipts = Vec<Receipt>;
/// Outcomes of a `complete`, as answered.
pub type Completions = Vec<ItemOutcome<Completion>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip_through_a_frame() {
        let reqs = vec![
            Request::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                client: "t".into(),
                runtime: "rust".into(),
                token: Some("s".into()),
            }),
            Request::Ping(NoArgs {}),
            Request::Enqueue(Enqueue {
                queue: "q".into(),
                items: vec![WireItem {
                    key: "k".into(),
                    payload: vec![0, 255, 10],
                    delay_ms: Some(5),
                    ..WireItem::default()
                }],
            }),
            Request::Complete(Complete {
                items: vec![CompleteItem {
                    token: Token {
                        queue_id: 1,
                        offset: 2,
                        fence: 3,
                    },
                    result: b"done\n".to_vec(),
                }],
            }),
        ];
        for (i, r) in reqs.into_iter().enumerate() {
            let f = r.encode(i as u64);
            assert_eq!(f.last(), Some(&b'\n'));
            assert_eq!(f.iter().filter(|&&b| b == b'\n').count(), 1);
            let raw = RawRequest::parse(&f[..f.len() - 1]).unwrap();
            assert_eq!(raw.id, i as u64);
            assert_eq!(raw.request().unwrap(), r);
        }
    }

    #[test]
    fn bad_frames_are_invalid_argument() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"op\":\"ping\"}",
            b"{\"id\":-1,\"op\":\"ping\"}",
            b"\xff\xfe",
        ] {
            let e = RawRequest::parse(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad:?}");
        }
        let raw = RawRequest::parse(b"{\"id\":1,\"op\":\"nope\"}").unwrap();
        assert!(raw
            .request()
            .unwrap_err()
            .to_string()
            .contains("unknown op"));
        let raw = RawRequest::parse(b"{\"id\":1,\"op\":\"claim\",\"args\":{\"queue\":1}}").unwrap();
        assert!(raw
            .request()
            .unwrap_err()
            .to_string()
            .contains("bad arguments for claim"));
        let raw =
            RawRequest::parse(b"{\"id\":1,\"op\":\"enqueue\",\"args\":{\"queue\":\"q\",\"items\":[{\"key\":\"k\",\"payload\":\"@@\"}]}}")
                .unwrap();
        assert_eq!(
            raw.request().unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn errors_roundtrip_with_their_codes() {
        let errs = [
            Error::InvalidArgument("a".into()),
            Error::NotFound("b".into()),
            Error::AlreadyOpen(std::path::PathBuf::from("/x/y")),
            Error::LeaseLost("c".into()),
            Error::FormatTooNew {
                found: 3,
                supported: 1,
            },
            Error::Closed,
            Error::Unavailable("d".into()),
        ];
        for e in errs {
            let f = encode_err(Some(7), &e);
            let r = RawResponse::parse(&f[..f.len() - 1]).unwrap();
            assert_eq!(r.id, Some(7));
            assert_eq!(r.into_result::<NoArgs>().unwrap_err(), e);
        }
        let w = WireError {
            code: 999,
            name: "NEW".into(),
            message: "m".into(),
        };
        assert_eq!(w.into_error().code(), ErrorCode::Unavailable);
    }

    #[test]
    fn ok_response_roundtrip() {
        let f = encode_ok(3, &Expiry { expires_at: 9 });
        let r = RawResponse::parse(&f[..f.len() - 1]).unwrap();
        assert_eq!(r.id, Some(3));
        assert_eq!(r.into_result::<Expiry>().unwrap(), Expiry { expires_at: 9 });
    }
}
