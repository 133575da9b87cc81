//! One queue's engine state: lanes, the ready set, timers and in-flight
//! leases, kept in memory by the writer and rebuilt from the database on
//! open. Every transition is written to the open write transaction.

use crate::clock::millis;
use crate::config::{DlqPolicy, EnqueueOptions, Ordering, QueueConfig, RedriveMode};
use crate::error::{Error, Result};
use crate::hash::{chain, digest, hex, key_hash, task_id, unit_from};
use crate::record::{Chained, Event, EventKind, LogHeader, QueueState, StateRec};
use crate::tables::Tx;
use crate::types::{
    Completion, FailOutcome, Fault, FaultKind, QueueInfo, QueueStats, Receipt, ShardStats,
    TaskState, Token,
};
use redb::ReadableTable;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};

/// A task waiting in or heading a lane.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub offset: u64,
    pub st: StateRec,
}

/// A lane: its unfinished tasks, head first.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    tasks: VecDeque<Slot>,
    /// Offset of the dead letter blocking the lane (`block` policy).
    blocked_by: Option<u64>,
    /// Set when a redrive placed a lower offset behind an in-flight head.
    unsorted: bool,
}

/// Timer kinds; a timer is `(at_ms, kind, offset, aux)`.
const WAKE: u8 = 0;
const EXPIRE: u8 = 1;

/// Ready-set entry: `(-priority, offset, lane)`, so the smallest is next.
type ReadyKey = (i64, u64, u64);

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
const MAX_ERROR: usize = 16 << 10;

pub(crate) struct QueueSched {
    pub info: QueueInfo,
    pub qs: QueueState,
    pub dirty: bool,
    lanes: HashMap<u64, Lane>,
    ready: Vec<BTreeSet<ReadyKey>>,
    timers: BTreeSet<(u64, u8, u64, u64)>,
    /// In-flight offset -> lane.
    inflight: HashMap<u64, u64>,
    /// Unfinished offset -> enqueue time.
    pending: BTreeMap<u64, u64>,
    pending_per_shard: Vec<u64>,
    inflight_per_shard: Vec<u64>,
    n_retry: u64,
    /// When retention next has work: the oldest unpruned event's time plus
    /// the retention (0 = look now).
    prune_at: u64,
}

/// Rewrites a chained record without its tail (payload or result).
fn cut_tail(t: &mut redb::Table<'_, (u32, u64), &'static [u8]>, key: (u32, u64)) -> Result<()> {
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

fn ready_key(s: &Slot) -> ReadyKey {
    (-(s.st.priority as i64), s.offset, s.st.lane)
}

impl QueueSched {
    /// An empty queue.
    pub fn new(info: QueueInfo, qs: QueueState) -> Self {
        let n = info.config.shards as usize;
        QueueSched {
            info,
            qs,
            dirty: false,
            lanes: HashMap::new(),
            ready: vec![BTreeSet::new(); n],
            timers: BTreeSet::new(),
            inflight: HashMap::new(),
            pending: BTreeMap::new(),
            pending_per_shard: vec![0; n],
            inflight_per_shard: vec![0; n],
            n_retry: 0,
            prune_at: 0,
        }
    }

    fn id(&self) -> u32 {
        self.info.id
    }

    fn cfg(&self) -> &QueueConfig {
        &self.info.config
    }

    /// Rebuilds the in-memory state from the database: scans unfinished
    /// tasks from the watermark and the dead letters blocking lanes.
    pub fn load(tx: &Tx<'_>, info: QueueInfo, qs: QueueState, now: u64) -> Result<Self> {
        let mut q = QueueSched::new(info, qs);
        let id = q.id();
        // Unfinished tasks: a log record without a state row was never
        // leased; with one, the row says where the task stands.
        for row in tx.log.range((id, q.qs.watermark)..=(id, u64::MAX))? {
            let (k, v) = row?;
            let offset = k.value().1;
            let st = match tx.tasks.get((id, offset))? {
                Some(s) => StateRec::decode(s.value())?,
                None => {
                    let (_, hdr) = LogHeader::decode(v.value())?;
                    let lane = q.lane_for(key_hash(&hdr.key), hdr.shard, offset);
                    StateRec::fresh(&hdr, lane)
                }
            };
            if st.state.is_terminal() {
                continue;
            }
            let shard = st.shard as usize;
            if shard >= q.pending_per_shard.len() {
                return Err(Error::Corrupt(format!("task {offset} has shard {shard}")));
            }
            q.pending.insert(offset, st.enqueued_at);
            q.pending_per_shard[shard] += 1;
            if st.state == TaskState::RetryWait {
                q.n_retry += 1;
            }
            let lane = q.lanes.entry(st.lane).or_default();
            lane.tasks.push_back(Slot { offset, st });
        }
        if q.cfg().dlq_policy == DlqPolicy::Block {
            for row in tx.dlq.range((id, 0)..=(id, u64::MAX))? {
                let offset = row?.0.value().1;
                if let Some(v) = tx.tasks.get((id, offset))? {
                    let st = StateRec::decode(v.value())?;
                    q.lanes.entry(st.lane).or_default().blocked_by = Some(offset);
                }
            }
        }
        let ids: Vec<u64> = q.lanes.keys().copied().collect();
        for lane_id in ids {
            let lane = q.lanes.get_mut(&lane_id).expect("lane");
            if let Some(pos) = lane
                .tasks
                .iter()
                .position(|s| s.st.state == TaskState::Leased)
            {
                if pos != 0 {
                    let s = lane.tasks.remove(pos).expect("pos");
                    lane.tasks.push_front(s);
                    lane.unsorted = true;
                }
                let h = &lane.tasks[0];
                q.inflight.insert(h.offset, lane_id);
                q.inflight_per_shard[h.st.shard as usize] += 1;
                q.timers
                    .insert((h.st.lease_until, EXPIRE, h.offset, h.st.fence));
            }
            q.refresh(lane_id, now);
        }
        Ok(q)
    }

    fn lane_for(&self, khash: u64, shard: u32, offset: u64) -> u64 {
        match self.cfg().ordering {
            Ordering::Key => khash,
            Ordering::Shard => shard as u64,
            Ordering::Global => 0,
            Ordering::None => offset,
        }
    }

    /// Puts an idle lane's head where it belongs: the ready set if it is
    /// eligible now, else a wake timer at its `not_before`.
    fn refresh(&mut self, lane_id: u64, now: u64) {
        let Some(lane) = self.lanes.get_mut(&lane_id) else {
            return;
        };
        if lane.blocked_by.is_some() {
            return;
        }
        let Some(h) = lane.tasks.front_mut() else {
            self.lanes.remove(&lane_id);
            return;
        };
        if h.st.state == TaskState::Leased {
            return;
        }
        if h.st.not_before <= now {
            if h.st.state == TaskState::RetryWait {
                h.st.state = TaskState::Ready;
                self.n_retry -= 1;
            }
            self.ready[h.st.shard as usize].insert(ready_key(h));
        } else {
            self.timers
                .insert((h.st.not_before, WAKE, h.offset, lane_id));
        }
    }

    /// Takes an idle lane's head out of the ready set and wake timers.
    fn unready(&mut self, lane_id: u64) {
        if let Some(h) = self.lanes.get(&lane_id).and_then(|l| l.tasks.front()) {
            if h.st.state != TaskState::Leased {
                self.ready[h.st.shard as usize].remove(&ready_key(h));
                self.timers
                    .remove(&(h.st.not_before, WAKE, h.offset, lane_id));
            }
        }
    }

    fn sort_lane(&mut self, lane_id: u64) {
        if let Some(l) = self.lanes.get_mut(&lane_id) {
            if l.unsorted {
                l.tasks.make_contiguous().sort_by_key(|s| s.offset);
                l.unsorted = false;
            }
        }
    }

    fn head_mut(&mut self, lane_id: u64) -> &mut Slot {
        self.lanes
            .get_mut(&lane_id)
            .and_then(|l| l.tasks.front_mut())
            .expect("lane head")
    }

    fn write_state(&self, tx: &mut Tx<'_>, s: &Slot) -> Result<()> {
        tx.tasks
            .insert((self.id(), s.offset), s.st.encode().as_slice())?;
        Ok(())
    }

    /// Appends to the event chain; `tail` is the completion's result.
    /// Returns the event's sequence number.
    fn append_event(&mut self, tx: &mut Tx<'_>, ev: &Event, tail: &[u8]) -> Result<u64> {
        let body = serde_json::to_vec(ev).map_err(|e| Error::Io(e.to_string()))?;
        let h = chain(&self.qs.event_head, &body);
        let seq = self.qs.next_event;
        tx.events
            .insert((self.id(), seq), Chained::join(&h, &body, tail).as_slice())?;
        self.qs.next_event += 1;
        self.qs.event_head = h;
        self.dirty = true;
        Ok(seq)
    }

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

    /// True when some head is claimable now from `shards` (all if `None`).
    pub fn has_eligible(&self, shards: Option<&[u32]>) -> bool {
        match shards {
            None => self.ready.iter().any(|r| !r.is_empty()),
            Some(s) => s.iter().any(|&i| !self.ready[i as usize].is_empty()),
        }
    }

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
    fn check(&self, t: &Token) -> Result<u64> {
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
    fn rollback(&mut self, e: Error) -> Error {
        self.qs.totals.rollbacks += 1;
        self.dirty = true;
        e
    }

    /// Ends the head's lease (not its task).
    fn end_lease(&mut self, lane_id: u64) {
        let h = &self.lanes[&lane_id].tasks[0];
        let (off, until, fence, shard) = (h.offset, h.st.lease_until, h.st.fence, h.st.shard);
        self.inflight.remove(&off);
        self.inflight_per_shard[shard as usize] -= 1;
        self.timers.remove(&(until, EXPIRE, off, fence));
    }

    /// Removes a finished head from its lane and moves the lane on.
    fn pop_head(&mut self, lane_id: u64, now: u64) {
        let lane = self.lanes.get_mut(&lane_id).expect("lane");
        let s = lane.tasks.pop_front().expect("head");
        self.pending.remove(&s.offset);
        self.pending_per_shard[s.st.shard as usize] -= 1;
        self.sort_lane(lane_id);
        self.refresh(lane_id, now);
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

    fn record_fault(&self, tx: &mut Tx<'_>, s: &Slot, f: &Fault) -> Result<()> {
        let j = serde_json::to_vec(f).map_err(|e| Error::Io(e.to_string()))?;
        tx.faults
            .insert((self.id(), s.offset, s.st.fence), j.as_slice())?;
        Ok(())
    }

    /// Dead-letters the (no longer leased) head of a lane.
    fn dead_head(&mut self, tx: &mut Tx<'_>, now: u64, lane_id: u64) -> Result<()> {
        let slot = self.head_mut(lane_id);
        slot.st.state = TaskState::Dead;
        slot.st.finished_at = now;
        let slot = slot.clone();
        self.write_state(tx, &slot)?;
        tx.dlq.insert((self.id(), slot.offset), now)?;
        self.append_event(
            tx,
            &Event {
                fence: slot.st.fence,
                attempt: slot.st.attempt,
                worker: slot.st.worker.clone(),
                ..Event::new(EventKind::Dead, slot.offset, lane_id, now)
            },
            &[],
        )?;
        self.qs.totals.dead_lettered += 1;
        self.qs.dead_now += 1;
        if self.cfg().dlq_policy == DlqPolicy::Block {
            self.lanes.get_mut(&lane_id).expect("lane").blocked_by = Some(slot.offset);
        }
        self.pop_head(lane_id, now);
        Ok(())
    }

    /// Ends an attempt that did not complete: dead-letters the task when
    /// attempts are spent (or `dead`), else makes it wait `delay_ms`.
    fn end_attempt(
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

    /// Earliest pending timer, ms.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// Fires every timer due at `now`: expired leases count as attempts,
    /// delayed heads become eligible. True when a lease expired (written).
    pub fn fire_timers(&mut self, tx: &mut Tx<'_>, now: u64) -> Result<bool> {
        let mut wrote = false;
        while let Some(&t) = self.timers.first() {
            if t.0 > now {
                break;
            }
            self.timers.remove(&t);
            let (_, kind, offset, aux) = t;
            if kind == WAKE {
                let is_head = self
                    .lanes
                    .get(&aux)
                    .and_then(|l| l.tasks.front())
                    .is_some_and(|h| h.offset == offset);
                if is_head {
                    self.refresh(aux, now);
                }
                continue;
            }
            let Some(&lane_id) = self.inflight.get(&offset) else {
                continue;
            };
            let slot = self.lanes[&lane_id].tasks[0].clone();
            if slot.st.fence != aux {
                continue;
            }
            let fault = Fault {
                attempt: slot.st.attempt,
                worker: slot.st.worker.clone(),
                error: "lease expired".into(),
                at: now,
                kind: FaultKind::Expired,
                retryable: true,
            };
            self.record_fault(tx, &slot, &fault)?;
            self.end_lease(lane_id);
            self.qs.totals.lease_expired += 1;
            self.dirty = true;
            self.end_attempt(tx, now, lane_id, false, 0)?;
            wrote = true;
        }
        Ok(wrote)
    }

    fn dead_letter(&self, tx: &Tx<'_>, offset: u64) -> Result<StateRec> {
        let not_dead = || {
            Error::InvalidState(format!(
                "task {offset} in queue {} is not a dead letter",
                self.info.name
            ))
        };
        let st = match tx.tasks.get((self.id(), offset))? {
            Some(v) => StateRec::decode(v.value())?,
            // Never leased: ready, so not a dead letter.
            None if tx.log.get((self.id(), offset))?.is_some() => return Err(not_dead()),
            None => {
                return Err(Error::NotFound(format!(
                    "task {offset} in queue {}",
                    self.info.name
                )))
            }
        };
        if st.state != TaskState::Dead || tx.dlq.get((self.id(), offset))?.is_none() {
            return Err(not_dead());
        }
        Ok(st)
    }

    /// Takes a dead letter out of the DLQ and unblocks its lane.
    fn leave_dlq(&mut self, tx: &mut Tx<'_>, now: u64, offset: u64, lane_id: u64) -> Result<()> {
        tx.dlq.remove((self.id(), offset))?;
        self.qs.dead_now -= 1;
        self.dirty = true;
        if let Some(l) = self.lanes.get_mut(&lane_id) {
            if l.blocked_by == Some(offset) {
                l.blocked_by = None;
                self.refresh(lane_id, now);
            }
        }
        Ok(())
    }

    /// Sends a dead letter back to its lane's head or to a new offset.
    pub fn redrive(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        offset: u64,
        mode: RedriveMode,
    ) -> Result<Receipt> {
        let mut st = self.dead_letter(tx, offset)?;
        let lane_id = st.lane;
        let v = tx
            .log
            .get((self.id(), offset))?
            .ok_or_else(|| Error::Corrupt(format!("dead letter {offset} has no log record")))?;
        let (h, hdr) = LogHeader::decode(v.value())?;
        let payload = hdr.payload(v.value())?.map(<[u8]>::to_vec);
        drop(v);
        self.qs.totals.redriven += 1;
        match mode {
            RedriveMode::Head => {
                self.leave_dlq(tx, now, offset, lane_id)?;
                self.unready(lane_id);
                st.state = TaskState::Ready;
                st.attempt = 0;
                st.not_before = now;
                st.started_at = 0;
                st.finished_at = 0;
                let slot = Slot { offset, st };
                self.write_state(tx, &slot)?;
                self.append_event(
                    tx,
                    &Event::new(EventKind::RedriveHead, offset, lane_id, now),
                    &[],
                )?;
                self.pending.insert(offset, slot.st.enqueued_at);
                self.pending_per_shard[slot.st.shard as usize] += 1;
                let lane = self.lanes.entry(lane_id).or_default();
                let leased = lane
                    .tasks
                    .front()
                    .is_some_and(|s| s.st.state == TaskState::Leased);
                if leased {
                    let pos = 1 + lane
                        .tasks
                        .range(1..)
                        .take_while(|s| s.offset < offset)
                        .count();
                    lane.tasks.insert(pos, slot);
                    lane.unsorted = true;
                } else {
                    let pos = lane.tasks.iter().take_while(|s| s.offset < offset).count();
                    lane.tasks.insert(pos, slot);
                }
                self.refresh(lane_id, now);
                Ok(Receipt {
                    offset,
                    shard: hdr.shard,
                    id: task_id(&h),
                    duplicate: false,
                })
            }
            RedriveMode::NewOffset => {
                let Some(payload) = payload else {
                    return Err(Error::InvalidState(format!(
                        "dead letter {offset} has no payload left"
                    )));
                };
                let new_offset = self.qs.next_offset;
                st.redriven_to = Some(new_offset);
                self.write_state(tx, &Slot { offset, st })?;
                self.append_event(
                    tx,
                    &Event {
                        new_offset: Some(new_offset),
                        ..Event::new(EventKind::RedriveNew, offset, lane_id, now)
                    },
                    &[],
                )?;
                let opts = EnqueueOptions {
                    priority: hdr.priority,
                    max_attempts: Some(hdr.max_attempts),
                    headers: hdr.headers,
                    ..Default::default()
                };
                let r = self.enqueue(tx, now, &hdr.key, &payload, &opts, Some(offset))?;
                self.leave_dlq(tx, now, offset, lane_id)?;
                Ok(r)
            }
        }
    }

    /// Purges one dead letter, or all of them; returns how many.
    pub fn purge(&mut self, tx: &mut Tx<'_>, now: u64, offset: Option<u64>) -> Result<u64> {
        let id = self.id();
        let offsets: Vec<u64> = match offset {
            Some(o) => {
                self.dead_letter(tx, o)?;
                vec![o]
            }
            None => {
                let mut v = Vec::new();
                for row in tx.dlq.range((id, 0)..=(id, u64::MAX))? {
                    v.push(row?.0.value().1);
                }
                v
            }
        };
        for &o in &offsets {
            let st = self.dead_letter(tx, o)?;
            cut_tail(&mut tx.log, (id, o))?;
            tx.faults
                .retain_in((id, o, 0)..=(id, o, u64::MAX), |_, _| false)?;
            self.append_event(
                tx,
                &Event {
                    attempt: st.attempt,
                    ..Event::new(EventKind::Purge, o, st.lane, now)
                },
                &[],
            )?;
            self.qs.totals.purged += 1;
            self.leave_dlq(tx, now, o, st.lane)?;
        }
        Ok(offsets.len() as u64)
    }

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

    /// Writes the queue state row if anything changed; true if it did.
    pub fn persist(&mut self, tx: &mut Tx<'_>) -> Result<bool> {
        let wrote = self.dirty;
        if self.dirty {
            self.qs.watermark = self
                .pending
                .keys()
                .next()
                .copied()
                .unwrap_or(self.qs.next_offset);
            let j = serde_json::to_vec(&self.qs).map_err(|e| Error::Io(e.to_string()))?;
            tx.qstate.insert(self.id(), j.as_slice())?;
            self.dirty = false;
        }
        Ok(wrote)
    }

    /// Offsets of unfinished tasks (ready, delayed, retry wait, leased)
    /// after `after`, at most `limit`, in offset order.
    pub fn pending_offsets(&self, after: Option<u64>, limit: usize) -> Vec<u64> {
        let from = match after {
            None => 0,
            Some(a) => match a.checked_add(1) {
                Some(f) => f,
                None => return Vec::new(),
            },
        };
        self.pending
            .range(from..)
            .map(|(&o, _)| o)
            .take(limit)
            .collect()
    }

    /// Counts per state, per-shard load and totals.
    pub fn stats(&self, now: u64) -> QueueStats {
        let leased = self.inflight.len() as u64;
        let pending = self.pending.len() as u64;
        let shards = (0..self.pending_per_shard.len())
            .map(|i| ShardStats {
                pending: self.pending_per_shard[i] - self.inflight_per_shard[i],
                eligible: self.ready[i].len() as u64,
                in_flight: self.inflight_per_shard[i],
            })
            .collect();
        QueueStats {
            queue: self.info.name.clone(),
            ready: pending - leased - self.n_retry,
            leased,
            retry_wait: self.n_retry,
            done: self.qs.totals.completed,
            dead: self.qs.dead_now,
            oldest_pending_age_ms: self
                .pending
                .values()
                .next()
                .map(|&t| now.saturating_sub(t))
                .unwrap_or(0),
            next_offset: self.qs.next_offset,
            shards,
            totals: self.qs.totals,
        }
    }

    /// Deletes every row of this queue.
    pub fn drop_rows(&self, tx: &mut Tx<'_>) -> Result<()> {
        let id = self.id();
        let all = (id, 0)..=(id, u64::MAX);
        tx.log.retain_in(all.clone(), |_, _| false)?;
        tx.tasks.retain_in(all.clone(), |_, _| false)?;
        tx.events.retain_in(all.clone(), |_, _| false)?;
        tx.dlq.retain_in(all, |_, _| false)?;
        tx.faults
            .retain_in((id, 0, 0)..=(id, u64::MAX, u64::MAX), |_, _| false)?;
        let mut keys = Vec::new();
        for row in tx.idem.range((id, "")..(id + 1, ""))? {
            keys.push(row?.0.value().1.to_string());
        }
        for k in keys {
            tx.idem.remove((id, k.as_str()))?;
        }
        tx.qstate.remove(id)?;
        tx.queues.remove(self.info.name.as_str())?;
        Ok(())
    }
}
