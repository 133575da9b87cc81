//! Enqueue: a task appended to the log, its idempotency key, its lane.

use super::lanes::Slot;
use super::QueueSched;
use crate::clock::millis;
use crate::config::EnqueueOptions;
use crate::error::{Error, Result};
use crate::hash::{chain, digest, hex, key_hash, task_id};
use crate::record::{Chained, LogHeader, StateRec};
use crate::tables::Tx;
use crate::types::Receipt;
use redb::ReadableTable;

impl QueueSched {
    /// Appends one task to the log and its lane.
    pub fn enqueue(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        key: &str,
        payload: &[u8],
        opts: &EnqueueOptions,
        redriven_from: Option<u64>,
    ) -> Result<Receipt> {
        let id = self.id();
        if let Some(ik) = &opts.idempotency_key {
            if let Some(off) = tx.idem.get((id, ik.as_str()))? {
                let off = off.value();
                let v = tx
                    .log
                    .get((id, off))?
                    .ok_or_else(|| Error::Corrupt(format!("idempotency key points at {off}")))?;
                let (h, hdr) = LogHeader::decode(v.value())?;
                return Ok(Receipt {
                    offset: off,
                    shard: hdr.shard,
                    id: task_id(&h),
                    duplicate: true,
                });
            }
        }
        let khash = key_hash(key);
        let shard = (khash % self.cfg().shards as u64) as u32;
        let offset = self.qs.next_offset;
        let lane = self.lane_for(khash, shard, offset);
        let not_before = opts
            .not_before
            .or_else(|| opts.delay.map(|d| now.saturating_add(millis(d))))
            .unwrap_or(now);
        let max_attempts = opts.max_attempts.unwrap_or(self.cfg().max_attempts);
        let hdr = LogHeader {
            v: 1,
            offset,
            key: key.to_string(),
            shard,
            priority: opts.priority,
            not_before,
            max_attempts,
            idempotency_key: opts.idempotency_key.clone(),
            headers: opts.headers.clone(),
            enqueued_at: now,
            payload_len: payload.len() as u64,
            payload_digest: hex(&digest(payload)),
            redriven_from,
        };
        let body = serde_json::to_vec(&hdr).map_err(|e| Error::Io(e.to_string()))?;
        let h = chain(&self.qs.log_head, &body);
        tx.log
            .insert((id, offset), Chained::join(&h, &body, payload).as_slice())?;
        // No state row until the task is first leased: the log record is
        // its state (see `StateRec::fresh`).
        let slot = Slot {
            offset,
            st: StateRec::fresh(&hdr, lane),
        };
        if let Some(ik) = &opts.idempotency_key {
            tx.idem.insert((id, ik.as_str()), offset)?;
        }
        self.qs.next_offset += 1;
        self.qs.log_head = h;
        self.qs.totals.enqueued += 1;
        self.dirty = true;
        self.pending.insert(offset, now);
        self.pending_per_shard[shard as usize] += 1;
        let l = self.lanes.entry(lane).or_default();
        l.tasks.push_back(slot);
        if l.tasks.len() == 1 {
            self.refresh(lane, now);
        }
        Ok(Receipt {
            offset,
            shard,
            id: task_id(&h),
            duplicate: false,
        })
    }
}
