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

mod messages;

pub use messages::*;

use ordq_core::error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Protocol version spoken by this build; `hello` must carry it.
pub const PROTOCOL_VERSION: u32 = 1;
/// Default largest frame, bytes, including the newline.
pub const DEFAULT_MAX_FRAME: usize = 4 << 20;

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
    /// Makes a state checkpoint; answers the log's `LogInfo`.
    Checkpoint(NoArgs) = "checkpoint",
    /// Verifies the database; answers a `VerifyReport`.
    Verify(Verify) = "verify",
    /// Audits a queue; answers an `AuditReport`.
    Audit(Audit) = "audit",
    /// Writes a verified backup on the broker's machine; answers `BackupInfo`.
    Backup(Backup) = "backup",
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

#[cfg(test)]
mod tests {
    use super::*;
    use ordq_core::types::Token;

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
