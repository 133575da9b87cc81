//! [`Engine`]: every operation of the worker contract and the admin calls,
//! implemented by the local engine ([`crate::Db`]) and by the broker client
//! (`ordq_wire::Client`), so callers (the C ABI, the CLI, the broker)
//! treat both alike.

use crate::audit::AuditReport;
use crate::backup::BackupInfo;
use crate::config::{ClaimOptions, EnqueueItem, QueueConfig, RedriveMode};
use crate::db::Db;
use crate::error::Result;
use crate::types::{
    Completion, DeadLetter, FailOutcome, Fault, Lease, LogInfo, QueueInfo, QueueStats, Receipt,
    TaskInfo, Token,
};
use crate::verify::VerifyReport;
use std::time::Duration;

/// The whole ordq API behind one object-safe trait. Semantics are those of
/// the [`Db`] method of the same name.
pub trait Engine: Send + Sync {
    /// See [`Db::close`].
    fn close(&self) -> Result<()>;
    /// See [`Db::sync`].
    fn sync(&self) -> Result<()>;
    /// See [`Db::create_queue`].
    fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo>;
    /// See [`Db::create_queue_if_not_exists`].
    fn create_queue_if_not_exists(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo>;
    /// See [`Db::queue`].
    fn queue(&self, name: &str) -> Result<QueueInfo>;
    /// See [`Db::list_queues`].
    fn list_queues(&self) -> Result<Vec<QueueInfo>>;
    /// See [`Db::delete_queue`].
    fn delete_queue(&self, name: &str) -> Result<()>;
    /// See [`Db::enqueue_batch`].
    fn enqueue_batch(&self, queue: &str, items: Vec<EnqueueItem>) -> Result<Vec<Receipt>>;
    /// See [`Db::claim`].
    fn claim(&self, queue: &str, worker: &str, opts: ClaimOptions) -> Result<Vec<Lease>>;
    /// See [`Db::heartbeat`].
    fn heartbeat(&self, token: Token, lease: Option<Duration>) -> Result<u64>;
    /// See [`Db::start`].
    fn start(&self, token: Token) -> Result<()>;
    /// See [`Db::complete`].
    fn complete(&self, token: Token, result: &[u8]) -> Result<Completion>;
    /// See [`Db::complete_batch`].
    fn complete_batch(&self, items: Vec<(Token, Vec<u8>)>) -> Result<Vec<Result<Completion>>>;
    /// See [`Db::fail`].
    fn fail(&self, token: Token, error: &str, retryable: bool) -> Result<FailOutcome>;
    /// See [`Db::release`].
    fn release(&self, token: Token) -> Result<()>;
    /// See [`Db::get_task`].
    fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo>;
    /// See [`Db::faults`].
    fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>>;
    /// See [`Db::stats`].
    fn stats(&self, queue: &str) -> Result<QueueStats>;
    /// See [`Db::pending`].
    fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>>;
    /// See [`Db::dlq_list`].
    fn dlq_list(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>>;
    /// See [`Db::dlq_get`].
    fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter>;
    /// See [`Db::dlq_redrive`].
    fn dlq_redrive(&self, queue: &str, offset: u64, mode: RedriveMode) -> Result<Receipt>;
    /// See [`Db::dlq_purge`].
    fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64>;
    /// See [`Db::checkpoint`].
    fn checkpoint(&self) -> Result<LogInfo>;
    /// See [`Db::verify`].
    fn verify(&self, pubkey: Option<[u8; 32]>) -> Result<VerifyReport>;
    /// See [`Db::audit`].
    fn audit(&self, queue: &str, key: Option<&str>) -> Result<AuditReport>;
    /// See [`Db::backup`]; through a broker, `to` is a path on the
    /// broker's machine.
    fn backup(&self, to: &str) -> Result<BackupInfo>;
}

impl Engine for Db {
    fn close(&self) -> Result<()> {
        Db::close(self);
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Db::sync(self)
    }
    fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        Db::create_queue(self, name, cfg)
    }
    fn create_queue_if_not_exists(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        Db::create_queue_if_not_exists(self, name, cfg)
    }
    fn queue(&self, name: &str) -> Result<QueueInfo> {
        Db::queue(self, name)
    }
    fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        Db::list_queues(self)
    }
    fn delete_queue(&self, name: &str) -> Result<()> {
        Db::delete_queue(self, name)
    }
    fn enqueue_batch(&self, queue: &str, items: Vec<EnqueueItem>) -> Result<Vec<Receipt>> {
        Db::enqueue_batch(self, queue, items)
    }
    fn claim(&self, queue: &str, worker: &str, opts: ClaimOptions) -> Result<Vec<Lease>> {
        Db::claim(self, queue, worker, opts)
    }
    fn heartbeat(&self, token: Token, lease: Option<Duration>) -> Result<u64> {
        Db::heartbeat(self, token, lease)
    }
    fn start(&self, token: Token) -> Result<()> {
        Db::start(self, token)
    }
    fn complete(&self, token: Token, result: &[u8]) -> Result<Completion> {
        Db::complete(self, token, result)
    }
    fn complete_batch(&self, items: Vec<(Token, Vec<u8>)>) -> Result<Vec<Result<Completion>>> {
        Db::complete_batch(self, items)
    }
    fn fail(&self, token: Token, error: &str, retryable: bool) -> Result<FailOutcome> {
        Db::fail(self, token, error, retryable)
    }
    fn release(&self, token: Token) -> Result<()> {
        Db::release(self, token)
    }
    fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo> {
        Db::get_task(self, queue, offset)
    }
    fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>> {
        Db::faults(self, queue, offset)
    }
    fn stats(&self, queue: &str) -> Result<QueueStats> {
        Db::stats(self, queue)
    }
    fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        Db::pending(self, queue, after, limit)
    }
    fn dlq_list(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        Db::dlq_list(self, queue, after, limit)
    }
    fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter> {
        Db::dlq_get(self, queue, offset)
    }
    fn dlq_redrive(&self, queue: &str, offset: u64, mode: RedriveMode) -> Result<Receipt> {
        Db::dlq_redrive(self, queue, offset, mode)
    }
    fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64> {
        Db::dlq_purge(self, queue, offset)
    }
    fn checkpoint(&self) -> Result<LogInfo> {
        Db::checkpoint(self)
    }
    fn verify(&self, pubkey: Option<[u8; 32]>) -> Result<VerifyReport> {
        Db::verify(self, pubkey)
    }
    fn audit(&self, queue: &str, key: Option<&str>) -> Result<AuditReport> {
        Db::audit(self, queue, key)
    }
    fn backup(&self, to: &str) -> Result<BackupInfo> {
        Db::backup(self, to)
    }
}
