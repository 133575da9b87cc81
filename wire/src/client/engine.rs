//! [`Engine`] for [`Client`]: each operation as its request and answer.

use super::Client;
use crate::protocol::{
    Audit, Backup, Claim, Complete, CompleteItem, Completions, CreateQueue, DlqPurge, DlqRedrive,
    Enqueue, Expiry, Fail, Heartbeat, NoArgs, Purged, QueueRef, Receipts, Request, TaskList,
    TaskRef, TokenRef, Verify, WireDeadLetter, WireLease,
};
use ordq_core::audit::AuditReport;
use ordq_core::backup::BackupInfo;
use ordq_core::config::{ClaimOptions, EnqueueItem, QueueConfig, RedriveMode};
use ordq_core::engine::Engine;
use ordq_core::error::{Error, Result};
use ordq_core::types::{
    Completion, DeadLetter, FailOutcome, Fault, Lease, LogInfo, QueueInfo, QueueStats, Receipt,
    TaskInfo, Token,
};
use ordq_core::verify::VerifyReport;
use std::time::Duration;

fn single<T>(mut v: Vec<T>, op: &str) -> Result<T> {
    if v.len() != 1 {
        return Err(Error::Unavailable(format!(
            "unexpected answer from broker: {op} answered {} items for 1",
            v.len()
        )));
    }
    Ok(v.remove(0))
}

impl Client {
    /// `create_queue`, failing or answering an existing queue.
    fn create(&self, name: &str, cfg: QueueConfig, if_not_exists: bool) -> Result<QueueInfo> {
        self.call(
            Request::CreateQueue(CreateQueue {
                queue: name.to_string(),
                config: cfg,
                if_not_exists,
            }),
            Duration::ZERO,
        )
    }
}

impl Engine for Client {
    fn close(&self) -> Result<()> {
        Client::close(self);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.done(Request::Sync(NoArgs {}))
    }

    fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        self.create(name, cfg, false)
    }

    fn create_queue_if_not_exists(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        self.create(name, cfg, true)
    }

    fn queue(&self, name: &str) -> Result<QueueInfo> {
        self.call(Request::GetQueue(queue_ref(name)), Duration::ZERO)
    }

    fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.call(Request::ListQueues(NoArgs {}), Duration::ZERO)
    }

    fn delete_queue(&self, name: &str) -> Result<()> {
        self.done(Request::DeleteQueue(queue_ref(name)))
    }

    fn enqueue_batch(&self, queue: &str, items: Vec<EnqueueItem>) -> Result<Vec<Receipt>> {
        let n = items.len();
        let r: Receipts = self.call(
            Request::Enqueue(Enqueue {
                queue: queue.to_string(),
                items: items.into_iter().map(Into::into).collect(),
            }),
            Duration::ZERO,
        )?;
        if r.len() != n {
            return Err(Error::Unavailable(format!(
                "unexpected answer from broker: enqueue answered {} receipts for {n} items",
                r.len()
            )));
        }
        Ok(r)
    }

    fn claim(&self, queue: &str, worker: &str, opts: ClaimOptions) -> Result<Vec<Lease>> {
        let wait = opts.wait;
        let v: Vec<WireLease> =
            self.call(Request::Claim(Claim::new(queue, worker, &opts)), wait)?;
        Ok(v.into_iter().map(Lease::from).collect())
    }

    fn heartbeat(&self, token: Token, lease: Option<Duration>) -> Result<u64> {
        let e: Expiry = self.call(
            Request::Heartbeat(Heartbeat {
                token,
                lease_ms: lease.map(ordq_core::clock::millis),
            }),
            Duration::ZERO,
        )?;
        Ok(e.expires_at)
    }

    fn start(&self, token: Token) -> Result<()> {
        self.done(Request::Start(TokenRef { token }))
    }

    fn complete(&self, token: Token, result: &[u8]) -> Result<Completion> {
        let v = self.complete_batch(vec![(token, result.to_vec())])?;
        single(v, "complete")?
    }

    fn complete_batch(&self, items: Vec<(Token, Vec<u8>)>) -> Result<Vec<Result<Completion>>> {
        let n = items.len();
        let v: Completions = self.call(
            Request::Complete(Complete {
                items: items
                    .into_iter()
                    .map(|(token, result)| CompleteItem { token, result })
                    .collect(),
            }),
            Duration::ZERO,
        )?;
        if v.len() != n {
            return Err(Error::Unavailable(format!(
                "unexpected answer from broker: complete answered {} outcomes for {n} items",
                v.len()
            )));
        }
        Ok(v.into_iter().map(|o| o.into_result()).collect())
    }

    fn fail(&self, token: Token, error: &str, retryable: bool) -> Result<FailOutcome> {
        self.call(
            Request::Fail(Fail {
                token,
                error: error.to_string(),
                retryable,
            }),
            Duration::ZERO,
        )
    }

    fn release(&self, token: Token) -> Result<()> {
        self.done(Request::Release(TokenRef { token }))
    }

    fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo> {
        self.call(Request::GetTask(task_ref(queue, offset)), Duration::ZERO)
    }

    fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>> {
        self.call(Request::Faults(task_ref(queue, offset)), Duration::ZERO)
    }

    fn stats(&self, queue: &str) -> Result<QueueStats> {
        self.call(Request::Stats(queue_ref(queue)), Duration::ZERO)
    }

    fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        self.call(
            Request::Pending(task_list(queue, after, limit)),
            Duration::ZERO,
        )
    }

    fn dlq_list(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        self.call(
            Request::DlqList(task_list(queue, after, limit)),
            Duration::ZERO,
        )
    }

    fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter> {
        let d: WireDeadLetter =
            self.call(Request::DlqGet(task_ref(queue, offset)), Duration::ZERO)?;
        Ok(DeadLetter {
            task: d.task,
            faults: d.faults,
        })
    }

    fn dlq_redrive(&self, queue: &str, offset: u64, mode: RedriveMode) -> Result<Receipt> {
        self.call(
            Request::DlqRedrive(DlqRedrive {
                queue: queue.to_string(),
                offset,
                mode,
            }),
            Duration::ZERO,
        )
    }

    fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64> {
        let p: Purged = self.call(
            Request::DlqPurge(DlqPurge {
                queue: queue.to_string(),
                offset,
            }),
            Duration::ZERO,
        )?;
        Ok(p.purged)
    }

    fn checkpoint(&self) -> Result<LogInfo> {
        self.call(Request::Checkpoint(NoArgs {}), Duration::ZERO)
    }

    fn verify(&self, pubkey: Option<[u8; 32]>) -> Result<VerifyReport> {
        let args = Verify {
            pubkey: pubkey.map(|k| ordq_core::hash::hex(&k)),
        };
        // Reading a large log takes longer than a call's deadline.
        self.call(Request::Verify(args), HISTORY_TIME)
    }

    fn audit(&self, queue: &str, key: Option<&str>) -> Result<AuditReport> {
        let args = Audit {
            queue: queue.to_string(),
            key: key.map(str::to_string),
        };
        self.call(Request::Audit(args), HISTORY_TIME)
    }

    fn backup(&self, to: &str) -> Result<BackupInfo> {
        let args = Backup { to: to.to_string() };
        self.call(Request::Backup(args), HISTORY_TIME)
    }
}

/// Extra time a `verify`, `audit` or `backup` call gets beyond the
/// deadline: they read the whole log (about 130k records/s,
/// docs/PERFORMANCE.md).
const HISTORY_TIME: Duration = Duration::from_secs(600);

fn queue_ref(name: &str) -> QueueRef {
    QueueRef {
        queue: name.to_string(),
    }
}

fn task_ref(queue: &str, offset: u64) -> TaskRef {
    TaskRef {
        queue: queue.to_string(),
        offset,
    }
}

fn task_list(queue: &str, after: Option<u64>, limit: usize) -> TaskList {
    TaskList {
        queue: queue.to_string(),
        after,
        limit,
    }
}
