//! The dead-letter queue: dead-lettering a lane head, redrive and purge.

use super::lanes::Slot;
use super::retention::cut_tail;
use super::QueueSched;
use crate::config::{DlqPolicy, EnqueueOptions, RedriveMode};
use crate::error::{Error, Result};
use crate::hash::task_id;
use crate::record::{Event, EventKind, LogHeader, StateRec};
use crate::tables::Tx;
use crate::types::{Receipt, TaskState};
use redb::ReadableTable;

impl QueueSched {
    /// Dead-letters the (no longer leased) head of a lane.
    pub(super) fn dead_head(&mut self, tx: &mut Tx<'_>, now: u64, lane_id: u64) -> Result<()> {
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

    pub(super) fn dead_letter(&self, tx: &Tx<'_>, offset: u64) -> Result<StateRec> {
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
    pub(super) fn leave_dlq(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        offset: u64,
        lane_id: u64,
    ) -> Result<()> {
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
            tx.faults.delete_range((id, o, 0), (id, o, u64::MAX))?;
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
}
