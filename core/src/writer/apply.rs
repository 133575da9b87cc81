//! Each operation applied to the open batch: the engine calls, their
//! answers deferred until the batch commits; queue creation and deletion.

use super::waiters::{far_deadline, Waiter};
use super::{is_fatal, Op, Writer};
use crate::clock::millis;
use crate::config::QueueConfig;
use crate::error::{Error, Result};
use crate::record::QueueState;
use crate::sched::QueueSched;
use crate::tables::{Tx, META_NEXT_QUEUE};
use crate::types::{QueueInfo, Token};

impl Writer {
    pub(super) fn apply(&mut self, tx: &mut Tx<'_>, now: u64, op: Op) -> Result<()> {
        match op {
            Op::CreateQueue {
                name,
                cfg,
                if_not_exists,
                reply,
            } => {
                let r = self.create_queue(tx, now, name, cfg, if_not_exists);
                self.defer(reply, r)
            }
            Op::DeleteQueue { name, reply } => {
                let r = self.delete_queue(tx, &name);
                self.defer(reply, r)
            }
            Op::Enqueue {
                queue,
                items,
                reply,
            } => {
                let r = self.qid(&queue).and_then(|id| {
                    let q = self.queues.get_mut(&id).expect("queue");
                    items
                        .iter()
                        .map(|it| q.enqueue(tx, now, &it.key, &it.payload, &it.opts, None))
                        .collect()
                });
                self.defer(reply, r)
            }
            Op::Claim {
                queue,
                worker,
                opts,
                reply,
            } => {
                let id = match self.qid(&queue) {
                    Ok(id) => id,
                    Err(e) => return self.defer(reply, Err(e)),
                };
                let r = self.claim(tx, now, id, &worker, &opts);
                let empty = matches!(&r, Ok(v) if v.is_empty());
                if empty && !opts.wait.is_zero() {
                    self.waiters.push(Waiter {
                        qid: id,
                        worker,
                        deadline: far_deadline(opts.wait),
                        opts,
                        reply,
                    });
                    return Ok(());
                }
                if empty {
                    return self.defer(reply, r);
                }
                self.defer(reply, r)
            }
            Op::Heartbeat {
                token,
                lease,
                reply,
            } => {
                let r = self.for_token(&token).and_then(|q| {
                    let ms = millis(lease.unwrap_or(q.info.config.lease));
                    q.heartbeat(tx, now, &token, ms)
                });
                self.defer(reply, r)
            }
            Op::Start { token, reply } => {
                let r = self
                    .for_token(&token)
                    .and_then(|q| q.start(tx, now, &token));
                self.defer(reply, r)
            }
            Op::Complete { items, reply } => {
                let mut out = Vec::with_capacity(items.len());
                let mut fatal = None;
                for (t, res) in &items {
                    let r = self.for_token(t).and_then(|q| q.complete(tx, now, t, res));
                    if let Err(e) = &r {
                        if is_fatal(e) {
                            fatal = Some(e.clone());
                        }
                    }
                    out.push(r);
                }
                self.defer(reply, Ok(out))?;
                fatal.map_or(Ok(()), Err)
            }
            Op::Fail {
                token,
                error,
                retryable,
                reply,
            } => {
                let r = self
                    .for_token(&token)
                    .and_then(|q| q.fail(tx, now, &token, &error, retryable));
                self.defer(reply, r)
            }
            Op::Release { token, reply } => {
                let r = self
                    .for_token(&token)
                    .and_then(|q| q.release(tx, now, &token));
                self.defer(reply, r)
            }
            Op::Redrive {
                queue,
                offset,
                mode,
                reply,
            } => {
                let r = self.qid(&queue).and_then(|id| {
                    let q = self.queues.get_mut(&id).expect("queue");
                    q.redrive(tx, now, offset, mode)
                });
                self.defer(reply, r)
            }
            Op::Purge {
                queue,
                offset,
                reply,
            } => {
                let r = self.qid(&queue).and_then(|id| {
                    let q = self.queues.get_mut(&id).expect("queue");
                    q.purge(tx, now, offset)
                });
                self.defer(reply, r)
            }
            Op::Stats { queue, reply } => {
                let r = self.qid(&queue).map(|id| self.queues[&id].stats(now));
                self.defer(reply, r)
            }
            Op::Pending {
                queue,
                after,
                limit,
                reply,
            } => {
                let r = self.pending(&queue, after, limit);
                self.defer(reply, r)
            }
            Op::Sync { reply } => {
                self.sync_requested = true;
                self.defer(reply, Ok(()))
            }
            Op::Publish { reply } => {
                self.publish_requested = true;
                self.defer(reply, Ok(()))
            }
            Op::LogInfo { reply } => {
                let r = self.log_info();
                self.defer(reply, r)
            }
            Op::Snapshot { reply } => {
                // Taken after the batch (see `answer_snapshots`).
                self.snapshots.push(reply);
                Ok(())
            }
            Op::CompactLog { reply } => {
                self.compactions.push(reply);
                Ok(())
            }
            Op::Checkpoint { reply } => {
                self.checkpoints_asked.push(reply);
                Ok(())
            }
            Op::Shutdown { reply } => {
                // `run` takes shutdown out of every batch; never reached.
                reply.send(());
                Ok(())
            }
        }
    }

    pub(super) fn apply_poisoned(&mut self, op: Op, e: &Error) {
        match op {
            Op::CreateQueue { reply, .. } => reply.send(Err(e.clone())),
            Op::DeleteQueue { reply, .. } => reply.send(Err(e.clone())),
            Op::Enqueue { reply, .. } => reply.send(Err(e.clone())),
            Op::Claim { reply, .. } => reply.send(Err(e.clone())),
            Op::Heartbeat { reply, .. } => reply.send(Err(e.clone())),
            Op::Start { reply, .. } => reply.send(Err(e.clone())),
            Op::Complete { reply, .. } => reply.send(Err(e.clone())),
            Op::Fail { reply, .. } => reply.send(Err(e.clone())),
            Op::Release { reply, .. } => reply.send(Err(e.clone())),
            Op::Redrive { reply, .. } => reply.send(Err(e.clone())),
            Op::Purge { reply, .. } => reply.send(Err(e.clone())),
            Op::Stats { reply, .. } => reply.send(Err(e.clone())),
            Op::Pending { reply, .. } => reply.send(Err(e.clone())),
            Op::Sync { reply } => reply.send(Err(e.clone())),
            Op::Publish { reply } => reply.send(Err(e.clone())),
            Op::LogInfo { reply } => reply.send(Err(e.clone())),
            Op::Snapshot { reply } => reply.send(Err(e.clone())),
            Op::CompactLog { reply } => reply.send(Err(e.clone())),
            Op::Checkpoint { reply } => reply.send(Err(e.clone())),
            Op::Shutdown { reply } => reply.send(()),
        }
    }

    pub(super) fn pending(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>> {
        self.qid(queue)
            .map(|id| self.queues[&id].pending_offsets(after, limit))
    }

    pub(super) fn qid(&self, name: &str) -> Result<u32> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| Error::NotFound(format!("queue {name}")))
    }

    pub(super) fn for_token(&mut self, t: &Token) -> Result<&mut QueueSched> {
        self.queues
            .get_mut(&t.queue_id)
            .ok_or_else(|| Error::LeaseLost(format!("queue {} no longer exists", t.queue_id)))
    }

    pub(super) fn create_queue(
        &mut self,
        tx: &mut Tx<'_>,
        now: u64,
        name: String,
        cfg: QueueConfig,
        if_not_exists: bool,
    ) -> Result<QueueInfo> {
        if let Some(id) = self.names.get(&name) {
            let info = &self.queues[id].info;
            if !if_not_exists {
                return Err(Error::AlreadyExists(format!("queue {name}")));
            }
            let diff = cfg.differences(&info.config);
            if !diff.is_empty() {
                return Err(Error::AlreadyExists(format!(
                    "queue {name} exists with another configuration: {}",
                    diff.join(", ")
                )));
            }
            return Ok(info.clone());
        }
        let id = self.next_queue_id;
        let info = QueueInfo {
            name: name.clone(),
            id,
            config: cfg,
            created_at: now,
        };
        let j = serde_json::to_vec(&info).map_err(|e| Error::Io(e.to_string()))?;
        tx.queues.insert(name.as_str(), j.as_slice())?;
        tx.meta
            .insert(META_NEXT_QUEUE, (id + 1).to_le_bytes().as_slice())?;
        let mut q = QueueSched::new(info.clone(), QueueState::default());
        q.dirty = true;
        self.next_queue_id += 1;
        self.names.insert(name, id);
        self.queues.insert(id, q);
        Ok(info)
    }

    pub(super) fn delete_queue(&mut self, tx: &mut Tx<'_>, name: &str) -> Result<()> {
        let id = self.qid(name)?;
        self.queues[&id].drop_rows(tx)?;
        self.queues.remove(&id);
        self.names.remove(name);
        Ok(())
    }
}
