//! Claims: granting leases now, or parking the claim as a waiter that the
//! writer answers when work arrives or its wait ends.

use crate::clock::millis;
use crate::config::ClaimOptions;
use crate::error::{Error, Result};
use crate::sched::Claimed;
use crate::tables::Tx;
use std::time::{Duration, Instant};

use super::{Reply, Writer};

pub(super) struct Waiter {
    pub(super) qid: u32,
    pub(super) worker: String,
    pub(super) opts: ClaimOptions,
    pub(super) deadline: Instant,
    pub(super) reply: Reply<Vec<Claimed>>,
}

/// `now + wait`, capped a year ahead instead of overflowing `Instant`.
pub(super) fn far_deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait.min(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

impl Writer {
    pub(super) fn next_wake(&self) -> Option<Duration> {
        let now_ms = self.opts.clock.now_ms();
        let now = Instant::now();
        let mut best: Option<Duration> = None;
        let mut take = |d: Duration| {
            best = Some(best.map_or(d, |b: Duration| b.min(d)));
        };
        for w in &self.waiters {
            take(w.deadline.saturating_duration_since(now));
        }
        if let Some(t) = self.checkpoint_due {
            take(t.saturating_duration_since(now));
        }
        for q in self.queues.values() {
            if let Some(t) = q.next_timer() {
                take(Duration::from_millis(t.saturating_sub(now_ms)));
            }
            if let Some(t) = q.prune_due_at() {
                take(Duration::from_millis(t.saturating_sub(now_ms)));
            }
        }
        best
    }

    pub(super) fn expire_waiters(&mut self) {
        let now = Instant::now();
        let (due, keep): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|w| w.deadline <= now);
        self.waiters = keep;
        for w in due {
            w.reply.send(Ok(Vec::new()));
        }
    }

    pub(super) fn claim(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        id: u32,
        worker: &str,
        opts: &ClaimOptions,
    ) -> Result<Vec<Claimed>> {
        let q = self.queues.get_mut(&id).expect("queue");
        if let Some(s) = &opts.shards {
            if let Some(bad) = s.iter().find(|&&s| s >= q.info.config.shards) {
                return Err(Error::InvalidArgument(format!(
                    "shard {bad} out of range: queue {} has {} shards",
                    q.info.name, q.info.config.shards
                )));
            }
        }
        let lease = millis(opts.lease.unwrap_or(q.info.config.lease));
        q.claim(
            tx,
            now,
            worker,
            lease,
            opts.max,
            opts.shards.as_deref(),
            &mut self.next_fence,
        )
    }

    pub(super) fn serve_waiters(&mut self, tx: &mut Tx<'_>, now: u64) -> Result<()> {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            let eligible = self
                .queues
                .get(&w.qid)
                .map(|q| q.has_eligible(w.opts.shards.as_deref()));
            match eligible {
                Some(false) => i += 1,
                None => {
                    let w = self.waiters.remove(i);
                    self.defer(w.reply, Err(Error::NotFound("queue was deleted".into())))?;
                }
                Some(true) => {
                    let w = self.waiters.remove(i);
                    let r = self.claim(tx, now, w.qid, &w.worker, &w.opts);
                    self.defer(w.reply, r)?;
                }
            }
        }
        Ok(())
    }
}
