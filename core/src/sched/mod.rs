//! One queue's engine state: lanes, the ready set, timers and in-flight
//! leases, kept in memory by the writer and rebuilt from the database on
//! open. Every transition is written to the open write transaction.

mod dlq;
mod enqueue;
mod lanes;
mod leases;
mod retention;
mod timers;

pub(crate) use leases::Claimed;

use crate::config::{DlqPolicy, QueueConfig};
use crate::error::{Error, Result};
use crate::hash::{chain, key_hash};
use crate::record::{Chained, Event, LogHeader, QueueState, StateRec};
use crate::tables::Tx;
use crate::types::{QueueInfo, QueueStats, ShardStats, TaskState};
use lanes::{Lane, ReadyKey, Slot};
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use timers::EXPIRE;

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

    /// Writes the queue state row if anything changed.
    pub fn persist(&mut self, tx: &mut Tx<'_>) -> Result<()> {
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
        Ok(())
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
            unfinished: pending,
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
        tx.log.delete_range((id, 0), (id, u64::MAX))?;
        tx.tasks.delete_range((id, 0), (id, u64::MAX))?;
        tx.events.delete_range((id, 0), (id, u64::MAX))?;
        tx.dlq.delete_range((id, 0), (id, u64::MAX))?;
        tx.faults
            .delete_range((id, 0, 0), (id, u64::MAX, u64::MAX))?;
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
