//! Lanes and the ready set: a lane holds its unfinished tasks head first;
//! the ready set holds, per shard, the lane heads that may be claimed now,
//! by priority then offset.

use super::timers::WAKE;
use super::QueueSched;
use crate::config::Ordering;
use crate::record::StateRec;
use crate::types::TaskState;
use std::collections::VecDeque;

/// A task waiting in or heading a lane.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub offset: u64,
    pub st: StateRec,
}

/// A lane: its unfinished tasks, head first.
#[derive(Debug, Default)]
pub(super) struct Lane {
    pub(super) tasks: VecDeque<Slot>,
    /// Offset of the dead letter blocking the lane (`block` policy).
    pub(super) blocked_by: Option<u64>,
    /// Set when a redrive placed a lower offset behind an in-flight head.
    pub(super) unsorted: bool,
}

/// Ready-set entry: `(-priority, offset, lane)`, so the smallest is next.
pub(super) type ReadyKey = (i64, u64, u64);

pub(super) fn ready_key(s: &Slot) -> ReadyKey {
    (-(s.st.priority as i64), s.offset, s.st.lane)
}

impl QueueSched {
    pub(super) fn lane_for(&self, khash: u64, shard: u32, offset: u64) -> u64 {
        match self.cfg().ordering {
            Ordering::Key => khash,
            Ordering::Shard => shard as u64,
            Ordering::Global => 0,
            Ordering::None => offset,
        }
    }

    /// Puts an idle lane's head where it belongs: the ready set if it is
    /// eligible now, else a wake timer at its `not_before`.
    pub(super) fn refresh(&mut self, lane_id: u64, now: u64) {
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
    pub(super) fn unready(&mut self, lane_id: u64) {
        if let Some(h) = self.lanes.get(&lane_id).and_then(|l| l.tasks.front()) {
            if h.st.state != TaskState::Leased {
                self.ready[h.st.shard as usize].remove(&ready_key(h));
                self.timers
                    .remove(&(h.st.not_before, WAKE, h.offset, lane_id));
            }
        }
    }

    pub(super) fn sort_lane(&mut self, lane_id: u64) {
        if let Some(l) = self.lanes.get_mut(&lane_id) {
            if l.unsorted {
                l.tasks.make_contiguous().sort_by_key(|s| s.offset);
                l.unsorted = false;
            }
        }
    }

    pub(super) fn head_mut(&mut self, lane_id: u64) -> &mut Slot {
        self.lanes
            .get_mut(&lane_id)
            .and_then(|l| l.tasks.front_mut())
            .expect("lane head")
    }

    /// Removes a finished head from its lane and moves the lane on.
    pub(super) fn pop_head(&mut self, lane_id: u64, now: u64) {
        let lane = self.lanes.get_mut(&lane_id).expect("lane");
        let s = lane.tasks.pop_front().expect("head");
        self.pending.remove(&s.offset);
        self.pending_per_shard[s.st.shard as usize] -= 1;
        self.sort_lane(lane_id);
        self.refresh(lane_id, now);
    }

    /// True when some head is claimable now from `shards` (all if `None`).
    pub fn has_eligible(&self, shards: Option<&[u32]>) -> bool {
        match shards {
            None => self.ready.iter().any(|r| !r.is_empty()),
            Some(s) => s.iter().any(|&i| !self.ready[i as usize].is_empty()),
        }
    }
}
