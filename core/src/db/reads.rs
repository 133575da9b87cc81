//! The reads: each in its own read transaction, never waiting for the
//! writer (stats and pending ask the writer's in-memory scheduler).

use super::Db;
use crate::config::validate_queue_name;
use crate::error::{Error, Result};
use crate::store;
use crate::types::{DeadLetter, Fault, QueueInfo, QueueStats, TaskInfo};
use crate::writer::Op;

impl Db {
    /// A queue's configuration.
    pub fn queue(&self, name: &str) -> Result<QueueInfo> {
        validate_queue_name(name)?;
        store::queue_info(&self.read()?, name)
    }

    /// Every queue, ordered by name.
    pub fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        store::list_queues(&self.read()?)
    }

    pub(super) fn queue_read(&self, queue: &str) -> Result<(redb::ReadTransaction, QueueInfo)> {
        validate_queue_name(queue)?;
        let rtx = self.read()?;
        let q = store::queue_info(&rtx, queue)?;
        Ok((rtx, q))
    }

    /// Everything known about the task at `offset`.
    pub fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo> {
        let (rtx, q) = self.queue_read(queue)?;
        store::task(&rtx, &q, offset)
    }

    /// Fault history of a task, oldest first.
    pub fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>> {
        let (rtx, q) = self.queue_read(queue)?;
        store::task(&rtx, &q, offset)?;
        store::faults(&rtx, q.id, offset)
    }

    /// Counts per state, per-shard load and totals.
    pub fn stats(&self, queue: &str) -> Result<QueueStats> {
        validate_queue_name(queue)?;
        self.call(|reply| Op::Stats {
            queue: queue.to_string(),
            reply,
        })
    }

    /// Unfinished tasks (ready, delayed, in retry wait or leased) after
    /// offset `after` (from the start if `None`), at most `limit`, in
    /// offset order — not claim order, which also weighs priority and lane
    /// heads. Leases nothing. The offsets come from the scheduler, so
    /// finished history costs nothing; a task that finishes between that
    /// and reading it is left out, so fewer than `limit` may come back
    /// while more are pending.
    pub fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        validate_queue_name(queue)?;
        let offsets = self.call(|reply| Op::Pending {
            queue: queue.to_string(),
            after,
            limit,
            reply,
        })?;
        let (rtx, q) = self.queue_read(queue)?;
        let mut out = Vec::with_capacity(offsets.len());
        for o in offsets {
            let t = store::task(&rtx, &q, o)?;
            if !t.state.is_terminal() {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Dead letters after offset `after` (from the start if `None`), at
    /// most `limit`, in offset order.
    pub fn dlq_list(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        let (rtx, q) = self.queue_read(queue)?;
        store::dead_letters(&rtx, q.id, after, limit)?
            .into_iter()
            .map(|o| store::task(&rtx, &q, o))
            .collect()
    }

    /// One dead letter with its full fault history.
    pub fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter> {
        let (rtx, q) = self.queue_read(queue)?;
        if !store::is_dead_letter(&rtx, q.id, offset)? {
            return Err(Error::NotFound(format!(
                "dead letter {offset} in queue {queue}"
            )));
        }
        Ok(DeadLetter {
            task: store::task(&rtx, &q, offset)?,
            faults: store::faults(&rtx, q.id, offset)?,
        })
    }
}
