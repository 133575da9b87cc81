//! On-disk encodings: chained records (the log and the event chain), the
//! mutable task state (compact binary) and per-queue state (JSON).
//! Layouts are specified in `docs/FORMAT.md`.
//!
//! A chained record is `hash[32] ‖ body_len (u32 LE) ‖ body (JSON) ‖ tail`,
//! where `hash = BLAKE3(prev_hash ‖ body)` and the tail is the bulk data
//! the body only digests (a task's payload, a completion's result), so
//! retention can cut the tail without touching the chain.

use crate::error::{Error, Result};
use crate::hash::{Digest, GENESIS};
use crate::types::{TaskState, Totals};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Header of an enqueued task: the body of its log record, whose tail is
/// the payload. Unknown fields from newer writers are ignored on read; the
/// body is never rewritten, so they are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogHeader {
    /// Record version (1).
    pub v: u32,
    /// Queue-wide offset.
    pub offset: u64,
    /// Task key.
    pub key: String,
    /// Shard.
    pub shard: u32,
    /// Priority.
    pub priority: i32,
    /// Earliest run time, ms.
    pub not_before: u64,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Enqueue time, ms.
    pub enqueued_at: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Hex BLAKE3 of the payload.
    pub payload_digest: String,
    /// Offset of the dead letter this task was redriven from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redriven_from: Option<u64>,
}

/// A stored chained record, split into its parts.
pub struct Chained<'a> {
    /// `BLAKE3(prev_hash ‖ body)`.
    pub hash: Digest,
    /// The JSON body.
    pub body: &'a [u8],
    /// Bulk data (payload or result); empty once pruned.
    pub tail: &'a [u8],
}

impl<'a> Chained<'a> {
    /// Splits a stored value.
    pub fn split(v: &'a [u8]) -> Result<Chained<'a>> {
        let short = || Error::Corrupt("chained record truncated".into());
        if v.len() < 36 {
            return Err(short());
        }
        let n = u32::from_le_bytes(v[32..36].try_into().expect("4")) as usize;
        let end = 36usize
            .checked_add(n)
            .filter(|&e| e <= v.len())
            .ok_or_else(short)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&v[..32]);
        Ok(Chained {
            hash,
            body: &v[36..end],
            tail: &v[end..],
        })
    }

    /// The stored form of `hash ‖ len ‖ body ‖ tail`.
    pub fn join(hash: &Digest, body: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(36 + body.len() + tail.len());
        v.extend_from_slice(hash);
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(tail);
        v
    }

    /// The stored form without the tail (what retention keeps).
    pub fn without_tail(&self) -> Vec<u8> {
        Chained::join(&self.hash, self.body, &[])
    }
}

impl LogHeader {
    /// Decodes a stored log value into its hash and header.
    pub fn decode(v: &[u8]) -> Result<(Digest, LogHeader)> {
        let c = Chained::split(v)?;
        let hdr = serde_json::from_slice(c.body)
            .map_err(|e| Error::Corrupt(format!("log header: {e}")))?;
        Ok((c.hash, hdr))
    }

    /// The payload in a stored log value: `None` once pruned or purged.
    pub fn payload<'a>(&self, v: &'a [u8]) -> Result<Option<&'a [u8]>> {
        let tail = Chained::split(v)?.tail;
        Ok((tail.len() as u64 == self.payload_len).then_some(tail))
    }
}

const STATE_V1: u8 = 1;
const NONE_U64: u64 = u64::MAX;

/// Mutable state of a task, rewritten on every transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRec {
    /// Lifecycle state.
    pub state: TaskState,
    /// Flag bits, reserved (0).
    pub flags: u8,
    /// Attempts made.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Shard.
    pub shard: u32,
    /// Priority.
    pub priority: i32,
    /// Lane id (see `docs/FORMAT.md`).
    pub lane: u64,
    /// Fence of the last lease.
    pub fence: u64,
    /// Earliest run time, ms.
    pub not_before: u64,
    /// Enqueue time, ms.
    pub enqueued_at: u64,
    /// Last lease time, ms.
    pub leased_at: u64,
    /// Lease expiry, ms.
    pub lease_until: u64,
    /// Start time in the last lease, ms.
    pub started_at: u64,
    /// Done/dead time, ms.
    pub finished_at: u64,
    /// New offset after a redrive to a new offset.
    pub redriven_to: Option<u64>,
    /// Sequence number of the task's `done` event (whose tail holds the
    /// result).
    pub done_event: Option<u64>,
    /// Worker of the last lease.
    pub worker: String,
    /// Trailing bytes from a newer version, kept on rewrite.
    pub ext: Vec<u8>,
}

fn state_byte(s: TaskState) -> u8 {
    match s {
        TaskState::Ready => 0,
        TaskState::Leased => 1,
        TaskState::RetryWait => 2,
        TaskState::Done => 3,
        TaskState::Dead => 4,
    }
}

fn byte_state(b: u8) -> Result<TaskState> {
    Ok(match b {
        0 => TaskState::Ready,
        1 => TaskState::Leased,
        2 => TaskState::RetryWait,
        3 => TaskState::Done,
        4 => TaskState::Dead,
        _ => return Err(Error::Corrupt(format!("unknown task state {b}"))),
    })
}

const FIXED: usize = 4 + 4 * 4 + 10 * 8 + 2;

impl StateRec {
    /// The state of a task never leased: what a log record without a
    /// state row means.
    pub fn fresh(hdr: &LogHeader, lane: u64) -> StateRec {
        StateRec {
            state: TaskState::Ready,
            flags: 0,
            attempt: 0,
            max_attempts: hdr.max_attempts,
            shard: hdr.shard,
            priority: hdr.priority,
            lane,
            fence: 0,
            not_before: hdr.not_before,
            enqueued_at: hdr.enqueued_at,
            leased_at: 0,
            lease_until: 0,
            started_at: 0,
            finished_at: 0,
            redriven_to: None,
            done_event: None,
            worker: String::new(),
            ext: Vec::new(),
        }
    }

    /// Encodes to the v1 binary layout.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED + self.worker.len() + self.ext.len());
        b.extend_from_slice(&[STATE_V1, state_byte(self.state), self.flags, 0]);
        for v in [self.attempt, self.max_attempts, self.shard] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.priority.to_le_bytes());
        for v in [
            self.lane,
            self.fence,
            self.not_before,
            self.enqueued_at,
            self.leased_at,
            self.lease_until,
            self.started_at,
            self.finished_at,
            self.redriven_to.unwrap_or(NONE_U64),
            self.done_event.unwrap_or(NONE_U64),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.worker.len() as u16).to_le_bytes());
        b.extend_from_slice(self.worker.as_bytes());
        b.extend_from_slice(&self.ext);
        b
    }

    /// Decodes a v1 (or newer, keeping unknown trailing bytes) record.
    pub fn decode(b: &[u8]) -> Result<StateRec> {
        let bad = || Error::Corrupt("task state record truncated".into());
        if b.len() < FIXED {
            return Err(bad());
        }
        if b[0] < STATE_V1 {
            return Err(Error::Corrupt(format!("task state version {}", b[0])));
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
        let base = 20;
        let g = |k: usize| u64_at(base + 8 * k);
        let wlen = u16::from_le_bytes([b[FIXED - 2], b[FIXED - 1]]) as usize;
        let wend = FIXED + wlen;
        if b.len() < wend {
            return Err(bad());
        }
        let worker = std::str::from_utf8(&b[FIXED..wend])
            .map_err(|_| Error::Corrupt("worker id is not UTF-8".into()))?
            .to_string();
        let opt = |v: u64| (v != NONE_U64).then_some(v);
        Ok(StateRec {
            state: byte_state(b[1])?,
            flags: b[2],
            attempt: u32_at(4),
            max_attempts: u32_at(8),
            shard: u32_at(12),
            priority: u32_at(16) as i32,
            lane: g(0),
            fence: g(1),
            not_before: g(2),
            enqueued_at: g(3),
            leased_at: g(4),
            lease_until: g(5),
            started_at: g(6),
            finished_at: g(7),
            redriven_to: opt(g(8)),
            done_event: opt(g(9)),
            worker,
            ext: b[wend..].to_vec(),
        })
    }
}

/// Kind of a chained event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A task completed.
    Done,
    /// A task was dead-lettered.
    Dead,
    /// A dead letter went back to the head of its lane.
    RedriveHead,
    /// A dead letter was re-enqueued at `new_offset`.
    RedriveNew,
    /// A dead letter was purged.
    Purge,
}

/// One record of a queue's event chain, stored as `hash(32) || JSON`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Record version (1).
    pub v: u32,
    /// Event kind.
    pub kind: EventKind,
    /// Task offset.
    pub offset: u64,
    /// Lane id of the task.
    pub lane: u64,
    /// Fence of the lease (done/dead), else 0.
    #[serde(default)]
    pub fence: u64,
    /// Attempt number.
    #[serde(default)]
    pub attempt: u32,
    /// Worker (done/dead by failure).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker: String,
    /// Event time, ms.
    pub at: u64,
    /// Result length (done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_len: Option<u64>,
    /// Hex BLAKE3 of the result (done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_digest: Option<String>,
    /// New offset (redrive_new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_offset: Option<u64>,
}

impl Event {
    /// An event of `kind` about task `offset` in `lane` at time `at`, with
    /// every optional field empty.
    pub fn new(kind: EventKind, offset: u64, lane: u64, at: u64) -> Event {
        Event {
            v: 1,
            kind,
            offset,
            lane,
            fence: 0,
            attempt: 0,
            worker: String::new(),
            at,
            result_len: None,
            result_digest: None,
            new_offset: None,
        }
    }

    /// Decodes a stored event value into its hash and event.
    pub fn decode(v: &[u8]) -> Result<(Digest, Event)> {
        let c = Chained::split(v)?;
        let e =
            serde_json::from_slice(c.body).map_err(|e| Error::Corrupt(format!("event: {e}")))?;
        Ok((c.hash, e))
    }
}

/// Per-queue counters and chain heads, rewritten once per commit that
/// touches the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueState {
    /// Record version (1).
    pub v: u32,
    /// Offset the next enqueue gets.
    pub next_offset: u64,
    /// Hash of the last log record.
    #[serde(with = "hex32")]
    pub log_head: Digest,
    /// Sequence number the next event gets.
    pub next_event: u64,
    /// Hash of the last event.
    #[serde(with = "hex32")]
    pub event_head: Digest,
    /// Every offset below this is done or dead.
    pub watermark: u64,
    /// Next event the retention pruner looks at.
    pub retention_cursor: u64,
    /// Dead letters currently held.
    pub dead_now: u64,
    /// Lifetime totals.
    pub totals: Totals,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            v: 1,
            next_offset: 0,
            log_head: GENESIS,
            next_event: 0,
            event_head: GENESIS,
            watermark: 0,
            retention_cursor: 0,
            dead_now: 0,
            totals: Totals::default(),
        }
    }
}

mod hex32 {
    use crate::hash::{hex, Digest};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(D::Error::custom("digest must be 64 hex digits"));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(D::Error::custom)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateRec {
        StateRec {
            state: TaskState::Leased,
            flags: 0x80,
            attempt: 3,
            max_attempts: 10,
            shard: 7,
            priority: -5,
            lane: 0xdead_beef,
            fence: 42,
            not_before: 1,
            enqueued_at: 2,
            leased_at: 3,
            lease_until: 4,
            started_at: 5,
            finished_at: 6,
            redriven_to: Some(99),
            done_event: Some(7),
            worker: "w-ü".into(),
            ext: vec![],
        }
    }

    #[test]
    fn state_round_trips() {
        let s = sample();
        assert_eq!(StateRec::decode(&s.encode()).unwrap(), s);
        let mut n = s.clone();
        n.redriven_to = None;
        n.done_event = None;
        assert_eq!(StateRec::decode(&n.encode()).unwrap(), n);
    }

    #[test]
    fn unknown_trailing_bytes_are_kept() {
        let mut b = sample().encode();
        b[0] = 2; // a newer writer
        b.extend_from_slice(b"future");
        let d = StateRec::decode(&b).unwrap();
        assert_eq!(d.ext, b"future");
        assert!(d.encode().ends_with(b"future"));
    }

    #[test]
    fn truncated_and_bad_state_are_corrupt() {
        let b = sample().encode();
        for n in [0, 10, FIXED - 1, b.len() - 1] {
            assert!(
                matches!(StateRec::decode(&b[..n]), Err(Error::Corrupt(_))),
                "{n}"
            );
        }
        let mut b2 = b.clone();
        b2[1] = 9;
        assert!(matches!(StateRec::decode(&b2), Err(Error::Corrupt(_))));
    }

    #[test]
    fn chained_records_split_and_cut_their_tail() {
        let h = [7u8; 32];
        let v = Chained::join(&h, b"{}", b"payload");
        let c = Chained::split(&v).unwrap();
        assert_eq!((c.hash, c.body, c.tail), (h, &b"{}"[..], &b"payload"[..]));
        let cut = c.without_tail();
        let c2 = Chained::split(&cut).unwrap();
        assert_eq!((c2.body, c2.tail), (&b"{}"[..], &b""[..]));
        for n in [0, 35, 37] {
            assert!(
                matches!(Chained::split(&v[..n]), Err(Error::Corrupt(_))),
                "{n}"
            );
        }
    }

    #[test]
    fn queue_state_json_round_trips() {
        let mut q = QueueState::default();
        q.log_head[0] = 0xab;
        let j = serde_json::to_vec(&q).unwrap();
        assert_eq!(serde_json::from_slice::<QueueState>(&j).unwrap(), q);
    }
}
