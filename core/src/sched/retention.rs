//! Retention: payloads, results and idempotency keys of done tasks
//! pruned after `retain_done`, with their records' bodies and chains kept.

use super::QueueSched;
use crate::error::{Error, Result};
use crate::record::{Chained, Event, EventKind, LogHeader};
use crate::tables::{Logged, Tx};
use redb::ReadableTable;

/// Rewrites a chained record without its tail (payload or result).
pub(super) fn cut_tail(
    t: &mut Logged<'_, (u32, u64), &'static [u8]>,
    key: (u32, u64),
) -> Result<()> {
    let cut = match t.get(key)? {
        Some(v) => {
            let c = Chained::split(v.value())?;
            if c.tail.is_empty() {
                return Ok(());
            }
            c.without_tail()
        }
        None => return Ok(()),
    };
    t.insert(key, cut.as_slice())?;
    Ok(())
}

impl QueueSched {
    /// Prunes payloads, results and idempotency keys of tasks done more
    /// than `retain_ms` ago, at most `budget` events; returns events passed.
    pub fn prune(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        retain_ms: u64,
        budget: usize,
    ) -> Result<usize> {
        let id = self.id();
        let mut n = 0;
        while n < budget && self.qs.retention_cursor < self.qs.next_event {
            let cur = self.qs.retention_cursor;
            let ev = match tx.events.get((id, cur))? {
                Some(v) => Event::decode(v.value())?.1,
                None => return Err(Error::Corrupt(format!("event {cur} missing"))),
            };
            let due = ev.at.saturating_add(retain_ms);
            if due > now {
                self.prune_at = due;
                break;
            }
            if ev.kind == EventKind::Done {
                cut_tail(&mut tx.events, (id, cur))?;
                let hdr = match tx.log.get((id, ev.offset))? {
                    Some(v) => LogHeader::decode(v.value())?.1,
                    None => return Err(Error::Corrupt(format!("log {} missing", ev.offset))),
                };
                cut_tail(&mut tx.log, (id, ev.offset))?;
                if let Some(k) = &hdr.idempotency_key {
                    tx.idem.remove((id, k.as_str()))?;
                }
            }
            self.qs.retention_cursor += 1;
            self.dirty = true;
            n += 1;
        }
        Ok(n)
    }

    /// When retention next has work, if it has any events left.
    pub fn prune_due_at(&self) -> Option<u64> {
        (self.qs.retention_cursor < self.qs.next_event).then_some(self.prune_at)
    }
}
