//! Every queue's log chain and event chain, recomputed from the stored
//! records of the snapshot.

use super::{Findings, ProblemClass, QueueReport};
use crate::error::{Error, Result};
use crate::hash::{self, Digest, GENESIS};
use crate::record::{Chained, Event, LogHeader, QueueState};
use crate::tables::{EVENTS, LOG, QSTATE, QUEUES};
use crate::types::QueueInfo;
use redb::ReadableTable;

/// Checks one chain of `(seq, stored value)` rows: contiguous from 0,
/// each hash `BLAKE3(prev ‖ body)`, `check` on each body and tail, ending
/// at `head` after `count` rows. Answers the rows seen.
fn chain<'a>(
    rows: impl Iterator<Item = Result<(u64, Vec<u8>)>> + 'a,
    what: &str,
    queue: &str,
    count: u64,
    head: &Digest,
    mut check: impl FnMut(u64, &Chained<'_>) -> Option<String>,
    f: &mut Findings,
) -> Result<u64> {
    let mut prev = GENESIS;
    let mut next = 0u64;
    for row in rows {
        let (seq, v) = row?;
        let at = format!("queue {queue} {what} {seq}");
        if seq != next {
            f.add(
                ProblemClass::Chain,
                &at,
                format!("expected {what} {next} (a record is missing)"),
            );
            return Ok(next);
        }
        let c = match Chained::split(&v) {
            Ok(c) => c,
            Err(e) => {
                f.add(ProblemClass::Chain, &at, e.to_string());
                return Ok(next);
            }
        };
        if hash::chain(&prev, c.body) != c.hash {
            f.add(
                ProblemClass::Chain,
                &at,
                "hash does not follow from the previous record and the body",
            );
            return Ok(next);
        }
        if let Some(why) = check(seq, &c) {
            f.add(ProblemClass::Chain, &at, why);
        }
        prev = c.hash;
        next += 1;
    }
    if next != count || &prev != head {
        f.add(
            ProblemClass::Chain,
            format!("queue {queue} {what} chain"),
            format!(
                "ends at {next} records with head {}, the queue state names {count} and {}",
                hash::hex(&prev),
                hash::hex(head)
            ),
        );
    }
    Ok(next)
}

/// A tail that is present must match the digest its body names.
fn tail_matches(tail: &[u8], len: u64, digest: &str) -> Option<String> {
    (!tail.is_empty() && (tail.len() as u64 != len || hash::hex(&hash::digest(tail)) != digest))
        .then(|| "the stored payload or result does not match its digest".to_string())
}

/// Checks both chains of every queue of `snapshot`.
pub(super) fn check(
    snapshot: &redb::ReadTransaction,
    f: &mut Findings,
) -> Result<Vec<QueueReport>> {
    let queues = snapshot.open_table(QUEUES)?;
    let qstate = snapshot.open_table(QSTATE)?;
    let log = snapshot.open_table(LOG)?;
    let events = snapshot.open_table(EVENTS)?;
    let mut out = Vec::new();
    for row in queues.iter()? {
        let (_, v) = row?;
        let info: QueueInfo =
            serde_json::from_slice(v.value()).map_err(|e| Error::Corrupt(format!("queue: {e}")))?;
        let qs: QueueState = match qstate.get(info.id)? {
            Some(v) => serde_json::from_slice(v.value())
                .map_err(|e| Error::Corrupt(format!("queue state: {e}")))?,
            None => QueueState::default(),
        };
        let id = info.id;
        let log_rows = log.range((id, 0)..=(id, u64::MAX))?.map(|r| {
            r.map(|(k, v)| (k.value().1, v.value().to_vec()))
                .map_err(Error::from)
        });
        let log_records = chain(
            log_rows,
            "offset",
            &info.name,
            qs.next_offset,
            &qs.log_head,
            |off, c| match serde_json::from_slice::<LogHeader>(c.body) {
                Ok(h) if h.offset != off => Some(format!("the record names offset {}", h.offset)),
                Ok(h) => tail_matches(c.tail, h.payload_len, &h.payload_digest),
                Err(e) => Some(format!("log header: {e}")),
            },
            f,
        )?;
        let event_rows = events.range((id, 0)..=(id, u64::MAX))?.map(|r| {
            r.map(|(k, v)| (k.value().1, v.value().to_vec()))
                .map_err(Error::from)
        });
        let n_events = chain(
            event_rows,
            "event",
            &info.name,
            qs.next_event,
            &qs.event_head,
            |_, c| match serde_json::from_slice::<Event>(c.body) {
                Ok(e) => match (e.result_len, e.result_digest.as_deref()) {
                    (Some(n), Some(d)) => tail_matches(c.tail, n, d),
                    _ => (!c.tail.is_empty())
                        .then(|| "an event without a result has a tail".to_string()),
                },
                Err(e) => Some(format!("event: {e}")),
            },
            f,
        )?;
        out.push(QueueReport {
            name: info.name,
            log_records,
            events: n_events,
        });
    }
    Ok(out)
}
