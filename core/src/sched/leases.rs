//! In-flight leases: claim, the fencing check, heartbeat, start, complete,
//! fail (with the fault store and retry backoff) and release.

use super::lanes::{ReadyKey, Slot};
use super::timers::EXPIRE;
use super::QueueSched;
use crate::clock::millis;
use crate::error::{Error, Result};
use crate::hash::{digest, hex, unit_from};
use crate::record::{Event, EventKind, StateRec};
use crate::tables::Tx;
use crate::types::{Completion, FailOutcome, Fault, FaultKind, TaskState, Token};
use redb::ReadableTable;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A lease granted by a claim, before its task record is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claimed {
    pub token: Token,
    pub attempt: u32,
    pub max_attempts: u32,
    pub leased_at: u64,
    pub expires_at: u64,
}

/// Longest error text kept in the fault store, in bytes.
pub(super) const MAX_ERROR: usize = 16 << 10;

impl QueueSched {
    /// Leases up to `max` eligible lane heads, priority first then offset.
    #[allow(clippy::too_many_arguments)]
    pub fn claim(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        worker: &str,
        lease_ms: u64,
        max: usize,
        shards: Option<&[u32]>,
        next_fence: &mut u64,
    ) -> Result<Vec<Claimed>> {
        let mut heap: BinaryHeap<Reverse<(ReadyKey, usize)>> = BinaryHeap::new();
        let cand: Vec<u32> = match shards {
            Some(s) => {
                let mut v = s.to_vec();
                v.sort_unstable();
                v.dedup();
                v
            }
            None => (0..self.cfg().shards).collect(),
        };
        for &s in &cand {
            if let Some(k) = self.ready[s as usize].first() {
                heap.push(Reverse((*k, s as usize)));
            }
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some(Reverse((key, s))) = heap.pop() else {
                break;
            };
            self.ready[s].remove(&key);
            if let Some(k) = self.ready[s].first() {
                heap.push(Reverse((*k, s)));
            }
            let lane_id = key.2;
            let fence = *next_fence;
            *next_fence += 1;
            let until = now.saturating_add(lease_ms);
            let queue_id = self.info.id;
            let slot = self.head_mut(lane_id);
            debug_assert_eq!(slot.offset, key.1);
            slot.st.state = TaskState::Leased;
            slot.st.attempt += 1;
            slot.st.fence = fence;
            slot.st.worker.clear();
            slot.st.worker.push_str(worker);
            slot.st.leased_at = now;
            slot.st.lease_until = until;
            slot.st.started_at = 0;
            let c = Claimed {
                token: Token {
                    queue_id,
                    offset: slot.offset,
                    fence,
                },
                attempt: slot.st.attempt,
                max_attempts: slot.st.max_attempts,
                leased_at: now,
                expires_at: until,
            };
            let slot = slot.clone();
            self.write_state(tx, &slot)?;
            self.inflight.insert(slot.offset, lane_id);
            self.inflight_per_shard[s] += 1;
            self.timers.insert((until, EXPIRE, slot.offset, fence));
            out.push(c);
        }
        Ok(out)
    }

    /// The lane of a token's lease, if the token is current.
    pub(super) fn check(&self, t: &Token) -> Result<u64> {
        let lost = || {
            Error::LeaseLost(format!(
                "token (offset {}, fence {}) is not the current lease of task {} in queue {}",
                t.offset, t.fence, t.offset, self.info.name
            ))
        };
        let lane_id = *self.inflight.get(&t.offset).ok_or_else(lost)?;
        let h = self.lanes[&lane_id].tasks.front().ok_or_else(lost)?;
        if h.offset == t.offset && h.st.fence == t.fence && h.st.state == TaskState::Leased {
            Ok(lane_id)
        } else {
            Err(lost())
        }
    }

    /// Counts an outcome (`complete`/`fail`) refused by fencing; the count
    /// is persisted with the batch's commit.
    pub(super) fn rollback(&mut self, e: Error) -> Error {
        self.qs.totals.rollbacks += 1;
        self.dirty = true;
        e
    }

    /// Ends the head's lease (not its task).
    pub(super) fn end_lease(&mut self, lane_id: u64) {
        let h = &self.lanes[&lane_id].tasks[0];
        let (off, until, fence, shard) = (h.offset, h.st.lease_until, h.st.fence, h.st.shard);
        self.inflight.remove(&off);
        self.inflight_per_shard[shard as usize] -= 1;
        self.timers.remove(&(until, EXPIRE, off, fence));
    }

    /// Extends a lease; returns the new expiry.
    pub fn heartbeat(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        t: &Token,
        lease_ms: u64,
    ) -> Result<u64> {
        let lane_id = self.check(t)?;
        let slot = self.head_mut(lane_id);
        let old = slot.st.lease_until;
        let until = now.saturating_add(lease_ms);
        slot.st.lease_until = until;
        let slot = slot.clone();
        self.write_state(tx, &slot)?;
        self.timers.remove(&(old, EXPIRE, t.offset, t.fence));
        self.timers.insert((until, EXPIRE, t.offset, t.fence));
        Ok(until)
    }

    /// Records the start of processing.
    pub fn start(&mut self, tx: &mut Tx<'_>, now: u64, t: &Token) -> Result<()> {
        let lane_id = self.check(t)?;
        let slot = self.head_mut(lane_id);
        slot.st.started_at = now;
        let slot = slot.clone();
        self.write_state(tx, &slot)
    }

    /// Commits a result; a repeat with the same token returns the first
    /// outcome.
    pub fn complete(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        t: &Token,
        result: &[u8],
    ) -> Result<Completion> {
        let lane_id = match self.check(t) {
            Ok(l) => l,
            Err(e) => {
                if let Some(v) = tx.tasks.get((self.id(), t.offset))? {
                    let st = StateRec::decode(v.value())?;
                    if st.state == TaskState::Done && st.fence == t.fence {
                        return Ok(Completion {
                            offset: t.offset,
                            committed_at: st.finished_at,
                            duplicate: true,
                        });
                    }
                }
                return Err(self.rollback(e));
            }
        };
        self.end_lease(lane_id);
        let seq = self.qs.next_event;
        let slot = self.head_mut(lane_id);
        slot.st.state = TaskState::Done;
        slot.st.finished_at = now;
        slot.st.done_event = Some(seq);
        let slot = slot.clone();
        self.write_state(tx, &slot)?;
        self.append_event(
            tx,
            &Event {
                fence: t.fence,
                attempt: slot.st.attempt,
                worker: slot.st.worker.clone(),
                result_len: Some(result.len() as u64),
                result_digest: Some(hex(&digest(result))),
                ..Event::new(EventKind::Done, t.offset, lane_id, now)
            },
            result,
        )?;
        self.qs.totals.completed += 1;
        self.pop_head(lane_id, now);
        Ok(Completion {
            offset: t.offset,
            committed_at: now,
            duplicate: false,
        })
    }

    pub(super) fn record_fault(&self, tx: &mut Tx<'_>, s: &Slot, f: &Fault) -> Result<()> {
        let j = serde_json::to_vec(f).map_err(|e| Error::Io(e.to_string()))?;
        tx.faults
            .insert((self.id(), s.offset, s.st.fence), j.as_slice())?;
        Ok(())
    }

    /// Ends an attempt that did not complete: dead-letters the task when
    /// attempts are spent (or `dead`), else makes it wait `delay_ms`.
    pub(super) fn end_attempt(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        lane_id: u64,
        dead: bool,
        delay_ms: u64,
    ) -> Result<FailOutcome> {
        let slot = self.head_mut(lane_id);
        let attempt = slot.st.attempt;
        if dead || attempt >= slot.st.max_attempts {
            self.dead_head(tx, now, lane_id)?;
            return Ok(FailOutcome::Dead { attempt });
        }
        let nb = now.saturating_add(delay_ms);
        slot.st.not_before = nb;
        slot.st.state = if delay_ms > 0 {
            TaskState::RetryWait
        } else {
            TaskState::Ready
        };
        let slot = slot.clone();
        if slot.st.state == TaskState::RetryWait {
            self.n_retry += 1;
        }
        self.write_state(tx, &slot)?;
        self.sort_lane(lane_id);
        self.refresh(lane_id, now);
        Ok(FailOutcome::Retry {
            attempt,
            not_before: nb,
        })
    }

    /// Records a failure; retries after backoff or dead-letters.
    pub fn fail(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        t: &Token,
        error: &str,
        retryable: bool,
    ) -> Result<FailOutcome> {
        let lane_id = self.check(t).map_err(|e| self.rollback(e))?;
        let mut cut = error.len().min(MAX_ERROR);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        let slot = self.lanes[&lane_id].tasks[0].clone();
        let fault = Fault {
            attempt: slot.st.attempt,
            worker: slot.st.worker.clone(),
            error: error[..cut].to_string(),
            at: now,
            kind: FaultKind::Failed,
            retryable,
        };
        self.record_fault(tx, &slot, &fault)?;
        self.end_lease(lane_id);
        self.qs.totals.failed += 1;
        self.dirty = true;
        let delay = self
            .cfg()
            .backoff
            .delay(slot.st.attempt, unit_from(t.fence));
        let delay = millis(delay);
        let out = self.end_attempt(tx, now, lane_id, !retryable, delay.max(1))?;
        if matches!(out, FailOutcome::Retry { .. }) {
            self.qs.totals.retried += 1;
        }
        Ok(out)
    }

    /// Gives a lease back without counting the attempt.
    pub fn release(&mut self, tx: &mut Tx<'_>, now: u64, t: &Token) -> Result<()> {
        let lane_id = self.check(t)?;
        self.end_lease(lane_id);
        let slot = self.head_mut(lane_id);
        slot.st.state = TaskState::Ready;
        slot.st.attempt -= 1;
        slot.st.started_at = 0;
        let slot = slot.clone();
        self.write_state(tx, &slot)?;
        self.qs.totals.released += 1;
        self.dirty = true;
        self.sort_lane(lane_id);
        self.refresh(lane_id, now);
        Ok(())
    }
}
