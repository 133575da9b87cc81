//! The JSON documents of the C ABI's admin calls (shapes in docs/FFI.md),
//! parsed with serde into private wire structs and converted to the typed
//! values of [`crate::types`]. Bytes are standard base64 with padding
//! (RFC 4648 §4), decoded here: a dozen lines rather than a dependency.

use crate::error::{Error, ErrorKind, Result};
use crate::options::{Backoff, DlqPolicy, Ordering, QueueConfig};
use crate::types::{
    opt_time, time, DeadLetter, Fault, FaultKind, QueueInfo, QueueStats, ShardStats, TaskInfo,
    TaskState, Totals,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Parses one ABI JSON document. A document that does not parse means the
/// library and this crate disagree on a shape: reported as `Unknown(0)`
/// with the parser's message rather than a panic.
pub(crate) fn parse<W: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<W> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Unknown(0),
            format!("ordq returned a {what} document this crate cannot read: {e}"),
        )
    })
}

/// Decodes standard base64 with `=` padding (RFC 4648 §4).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if b.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let chunks = b.len() / 4;
    for (i, c) in b.chunks(4).enumerate() {
        let last = i + 1 == chunks;
        let pad = c.iter().rev().take_while(|&&x| x == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &x in &c[..4 - pad] {
            n = (n << 6) | val(x)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Non-canonical encodings (stray bits in the padding) are refused.
        if bytes[3 - pad..].iter().any(|&x| x != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

fn bytes(field: &str, v: Option<String>) -> Result<Option<Vec<u8>>> {
    v.map(|s| {
        base64_decode(&s).ok_or_else(|| {
            Error::new(
                ErrorKind::Unknown(0),
                format!("ordq returned invalid base64 in `{field}`"),
            )
        })
    })
    .transpose()
}

#[derive(Deserialize)]
pub(crate) struct WireTask {
    id: String,
    queue: String,
    key: String,
    shard: u32,
    offset: u64,
    priority: i32,
    attempt: u32,
    max_attempts: u32,
    not_before: u64,
    idempotency_key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    state: WireState,
    enqueued_at: u64,
    leased_at: u64,
    started_at: u64,
    committed_at: u64,
    lease_expires_at: u64,
    fence: u64,
    worker: Option<String>,
    payload: Option<String>,
    result: Option<String>,
    redriven_from: Option<u64>,
    redriven_to: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireState {
    Ready,
    Leased,
    RetryWait,
    Done,
    Dead,
}

impl WireTask {
    pub(crate) fn into_task(self) -> Result<TaskInfo> {
        Ok(TaskInfo {
            id: self.id,
            queue: self.queue,
            key: self.key,
            shard: self.shard,
            offset: self.offset,
            priority: self.priority,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            not_before: time(self.not_before),
            idempotency_key: self.idempotency_key,
            headers: self.headers,
            state: match self.state {
                WireState::Ready => TaskState::Ready,
                WireState::Leased => TaskState::Leased,
                WireState::RetryWait => TaskState::RetryWait,
                WireState::Done => TaskState::Done,
                WireState::Dead => TaskState::Dead,
            },
            enqueued_at: time(self.enqueued_at),
            leased_at: opt_time(self.leased_at),
            started_at: opt_time(self.started_at),
            committed_at: opt_time(self.committed_at),
            lease_expires_at: opt_time(self.lease_expires_at),
            fence: self.fence,
            worker: self.worker,
            payload: bytes("payload", self.payload)?,
            result: bytes("result", self.result)?,
            redriven_from: self.redriven_from,
            redriven_to: self.redriven_to,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct WireFault {
    attempt: u32,
    worker: String,
    error: String,
    at: u64,
    kind: WireFaultKind,
    retryable: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireFaultKind {
    Failed,
    Expired,
}

impl WireFault {
    pub(crate) fn into_fault(self) -> Fault {
        Fault {
            attempt: self.attempt,
            worker: self.worker,
            error: self.error,
            at: time(self.at),
            kind: match self.kind {
                WireFaultKind::Failed => FaultKind::Failed,
                WireFaultKind::Expired => FaultKind::Expired,
            },
            retryable: self.retryable,
        }
    }
}

/// Faults as typed values.
pub(crate) fn faults(w: Vec<WireFault>) -> Vec<Fault> {
    w.into_iter().map(WireFault::into_fault).collect()
}

/// Tasks as typed values.
pub(crate) fn tasks(w: Vec<WireTask>) -> Result<Vec<TaskInfo>> {
    w.into_iter().map(WireTask::into_task).collect()
}

#[derive(Deserialize)]
pub(crate) struct WireDeadLetter {
    task: WireTask,
    faults: Vec<WireFault>,
}

impl WireDeadLetter {
    pub(crate) fn into_dead_letter(self) -> Result<DeadLetter> {
        Ok(DeadLetter {
            task: self.task.into_task()?,
            faults: faults(self.faults),
        })
    }
}

#[derive(Deserialize)]
struct WireBackoff {
    initial_ms: u64,
    max_ms: u64,
    multiplier: f64,
    jitter: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireOrdering {
    Key,
    Shard,
    Global,
    None,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireDlqPolicy {
    Skip,
    Block,
}

#[derive(Deserialize)]
struct WireConfig {
    backoff: WireBackoff,
    dlq_policy: WireDlqPolicy,
    lease_ms: u64,
    max_attempts: u32,
    ordering: WireOrdering,
    shards: u32,
}

#[derive(Deserialize)]
pub(crate) struct WireQueueInfo {
    config: WireConfig,
    created_at: u64,
    id: u32,
    name: String,
}

impl WireQueueInfo {
    pub(crate) fn into_info(self) -> QueueInfo {
        let c = self.config;
        QueueInfo {
            name: self.name,
            id: self.id,
            config: QueueConfig {
                shards: c.shards,
                ordering: match c.ordering {
                    WireOrdering::Key => Ordering::Key,
                    WireOrdering::Shard => Ordering::Shard,
                    WireOrdering::Global => Ordering::Global,
                    WireOrdering::None => Ordering::None,
                },
                max_attempts: c.max_attempts,
                backoff: Backoff {
                    initial: Duration::from_millis(c.backoff.initial_ms),
                    max: Duration::from_millis(c.backoff.max_ms),
                    multiplier: c.backoff.multiplier,
                    jitter: c.backoff.jitter,
                },
                lease: Duration::from_millis(c.lease_ms),
                dlq_policy: match c.dlq_policy {
                    WireDlqPolicy::Skip => DlqPolicy::Skip,
                    WireDlqPolicy::Block => DlqPolicy::Block,
                },
            },
            created_at: time(self.created_at),
        }
    }
}

#[derive(Deserialize)]
struct WireShard {
    pending: u64,
    eligible: u64,
    in_flight: u64,
}

#[derive(Deserialize)]
struct WireTotals {
    enqueued: u64,
    completed: u64,
    failed: u64,
    retried: u64,
    dead_lettered: u64,
    lease_expired: u64,
    released: u64,
    redriven: u64,
    purged: u64,
    rollbacks: u64,
}

#[derive(Deserialize)]
pub(crate) struct WireStats {
    queue: String,
    ready: u64,
    leased: u64,
    retry_wait: u64,
    done: u64,
    dead: u64,
    unfinished: u64,
    oldest_pending_age_ms: u64,
    next_offset: u64,
    shards: Vec<WireShard>,
    totals: WireTotals,
}

impl WireStats {
    pub(crate) fn into_stats(self) -> QueueStats {
        let t = self.totals;
        QueueStats {
            queue: self.queue,
            ready: self.ready,
            leased: self.leased,
            retry_wait: self.retry_wait,
            done: self.done,
            dead: self.dead,
            unfinished: self.unfinished,
            oldest_pending_age: Duration::from_millis(self.oldest_pending_age_ms),
            next_offset: self.next_offset,
            shards: self
                .shards
                .into_iter()
                .map(|s| ShardStats {
                    pending: s.pending,
                    eligible: s.eligible,
                    in_flight: s.in_flight,
                })
                .collect(),
            totals: Totals {
                enqueued: t.enqueued,
                completed: t.completed,
                failed: t.failed,
                retried: t.retried,
                dead_lettered: t.dead_lettered,
                lease_expired: t.lease_expired,
                released: t.released,
                redriven: t.redriven,
                purged: t.purged,
                rollbacks: t.rollbacks,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors_and_rejects() {
        let cases: [(&[u8], &str); 8] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xfe], "+//+"),
        ];
        for (raw, enc) in cases {
            assert_eq!(base64_decode(enc).as_deref(), Some(raw), "{enc}");
        }
        for bad in [
            "Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "Zh==", "Zm9=", "====",
        ] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
        let all: Vec<u8> = (0..=255).collect();
        // Round trip against a straightforward encoder.
        let enc = {
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in all.chunks(3) {
                let n = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                for i in 0..4 {
                    s.push(if i <= c.len() {
                        A[((n >> (18 - 6 * i)) & 63) as usize] as char
                    } else {
                        '='
                    });
                }
            }
            s
        };
        assert_eq!(base64_decode(&enc), Some(all));
    }
}
