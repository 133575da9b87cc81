//! Timers: delayed and retrying tasks becoming eligible, and leases
//! expiring.

use super::QueueSched;
use crate::error::Result;
use crate::tables::Tx;
use crate::types::{Fault, FaultKind};

/// Timer kinds; a timer is `(at_ms, kind, offset, aux)`.
pub(super) const WAKE: u8 = 0;

pub(super) const EXPIRE: u8 = 1;

impl QueueSched {
    /// Earliest pending timer, ms.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// Fires every timer due at `now`: expired leases count as attempts,
    /// delayed heads become eligible.
    pub fn fire_timers(&mut self, tx: &mut Tx<'_>, now: u64) -> Result<()> {
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
        }
        Ok(())
    }
}
