//! What a command talks to. Today only a database file opened in-process;
//! a broker connection (`unix://…`, `tcp://…`) becomes a second variant
//! once the broker exists, and every command keeps working unchanged.

use crate::error::CliError;
use ordq_core::{
    Db, DeadLetter, EnqueueOptions, Fault, Options, QueueConfig, QueueInfo, QueueStats, Receipt,
    RedriveMode, TaskInfo,
};
use std::path::Path;

/// A database the CLI operates on.
pub enum Target {
    /// A database file opened directly by this process.
    File(Db),
}

/// URI schemes reserved for the broker.
const REMOTE_SCHEMES: [&str; 2] = ["unix://", "tcp://"];

impl Target {
    /// Opens `spec`: a file path, or (later) a broker address. With
    /// `create` false a missing file is `NotFound` rather than silently
    /// created, so a typo in `--db` cannot make a new empty database.
    pub fn open(spec: &str, create: bool) -> Result<Target, CliError> {
        if let Some(scheme) = REMOTE_SCHEMES.iter().find(|s| spec.starts_with(**s)) {
            return Err(CliError::unavailable(format!(
                "remote mode ({}) is not built yet: the broker does not exist in this version; pass a database file path",
                scheme.trim_end_matches("://")
            )));
        }
        if spec.contains("://") {
            return Err(CliError::invalid(format!(
                "unsupported address {spec:?}: use a file path (unix:// and tcp:// are reserved for the broker)"
            )));
        }
        if spec.is_empty() {
            return Err(CliError::invalid("empty database path"));
        }
        if !create && !Path::new(spec).exists() {
            return Err(CliError::not_found(format!(
                "database {spec} does not exist (create it with `ordq init`)"
            )));
        }
        Ok(Target::File(Db::open(spec, Options::default())?))
    }

    /// Releases the target (closes the file). Idempotent.
    pub fn close(&self) {
        match self {
            Target::File(db) => db.close(),
        }
    }

    /// See [`Db::create_queue`].
    pub fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo, CliError> {
        match self {
            Target::File(db) => Ok(db.create_queue(name, cfg)?),
        }
    }

    /// See [`Db::queue`].
    pub fn queue(&self, name: &str) -> Result<QueueInfo, CliError> {
        match self {
            Target::File(db) => Ok(db.queue(name)?),
        }
    }

    /// See [`Db::list_queues`].
    pub fn list_queues(&self) -> Result<Vec<QueueInfo>, CliError> {
        match self {
            Target::File(db) => Ok(db.list_queues()?),
        }
    }

    /// See [`Db::delete_queue`].
    pub fn delete_queue(&self, name: &str) -> Result<(), CliError> {
        match self {
            Target::File(db) => Ok(db.delete_queue(name)?),
        }
    }

    /// See [`Db::enqueue`].
    pub fn enqueue(
        &self,
        queue: &str,
        key: &str,
        payload: &[u8],
        opts: EnqueueOptions,
    ) -> Result<Receipt, CliError> {
        match self {
            Target::File(db) => Ok(db.enqueue(queue, key, payload, opts)?),
        }
    }

    /// See [`Db::get_task`].
    pub fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo, CliError> {
        match self {
            Target::File(db) => Ok(db.get_task(queue, offset)?),
        }
    }

    /// See [`Db::faults`].
    pub fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>, CliError> {
        match self {
            Target::File(db) => Ok(db.faults(queue, offset)?),
        }
    }

    /// See [`Db::stats`].
    pub fn stats(&self, queue: &str) -> Result<QueueStats, CliError> {
        match self {
            Target::File(db) => Ok(db.stats(queue)?),
        }
    }

    /// See [`Db::dlq_list`].
    pub fn dlq_list(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TaskInfo>, CliError> {
        match self {
            Target::File(db) => Ok(db.dlq_list(queue, after, limit)?),
        }
    }

    /// See [`Db::dlq_get`].
    pub fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter, CliError> {
        match self {
            Target::File(db) => Ok(db.dlq_get(queue, offset)?),
        }
    }

    /// See [`Db::dlq_redrive`].
    pub fn dlq_redrive(
        &self,
        queue: &str,
        offset: u64,
        mode: RedriveMode,
    ) -> Result<Receipt, CliError> {
        match self {
            Target::File(db) => Ok(db.dlq_redrive(queue, offset, mode)?),
        }
    }

    /// See [`Db::dlq_purge`].
    pub fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64, CliError> {
        match self {
            Target::File(db) => Ok(db.dlq_purge(queue, offset)?),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.close();
    }
}
