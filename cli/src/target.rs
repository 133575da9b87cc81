//! What a command talks to: a database file opened in-process, or a broker
//! (`unix://…`, `tcp://…`) serving one. Both are an [`Engine`], so every
//! command works the same on either.

use crate::error::CliError;
use ordq_core::{
    Db, DeadLetter, Engine, EnqueueItem, EnqueueOptions, Fault, Options, QueueConfig, QueueInfo,
    QueueStats, Receipt, RedriveMode, TaskInfo,
};
use ordq_wire::client::{Client, ClientOptions};
use std::path::Path;

/// A database the CLI operates on.
pub enum Target {
    /// A database file opened directly by this process.
    File(Db),
    /// A broker serving a database, reached over its socket.
    Remote(Client),
}

/// URI schemes of a broker address.
const REMOTE_SCHEMES: [&str; 2] = ["unix://", "tcp://"];

/// The broker token: the content of `token_file` without trailing
/// whitespace, else the `ORDQ_TOKEN` environment variable (unset or empty:
/// none).
fn token(token_file: Option<&Path>) -> Result<Option<String>, CliError> {
    if let Some(f) = token_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::io(format!("cannot read token file {}: {e}", f.display())))?;
        // The same reading as `ordq serve --token-file`.
        let t = text.trim_end();
        if t.is_empty() {
            return Err(CliError::invalid(format!(
                "token file {} is empty",
                f.display()
            )));
        }
        return Ok(Some(t.to_string()));
    }
    match std::env::var("ORDQ_TOKEN") {
        Ok(t) if !t.is_empty() => Ok(Some(t)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(CliError::invalid(
            "the ORDQ_TOKEN environment variable is not valid UTF-8",
        )),
    }
}

impl Target {
    /// Opens `spec`: a file path, or a broker address (`unix:///path`,
    /// `tcp://host:port`) with the token from `token_file` or
    /// `ORDQ_TOKEN`. With `create` false a missing file is `NotFound`
    /// rather than silently created, so a typo in `--db` cannot make a new
    /// empty database (a broker always serves an existing one).
    /// A file is opened with `signing_key` (see `Options::signing_key`).
    pub fn open(
        spec: &str,
        create: bool,
        token_file: Option<&Path>,
        signing_key: Option<[u8; 32]>,
    ) -> Result<Target, CliError> {
        if REMOTE_SCHEMES.iter().any(|s| spec.starts_with(s)) {
            let opts = ClientOptions {
                token: token(token_file)?,
                client: concat!("ordq-cli/", env!("CARGO_PKG_VERSION")).to_string(),
                ..ClientOptions::default()
            };
            return Ok(Target::Remote(Client::connect(spec, opts)?));
        }
        if spec.contains("://") {
            return Err(CliError::invalid(format!(
                "unsupported address {spec:?}: use a file path, unix:///path/to/ordq.sock or tcp://host:port"
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
        let opts = Options {
            signing_key,
            ..Options::default()
        };
        Ok(Target::File(Db::open(spec, opts)?))
    }

    fn engine(&self) -> &dyn Engine {
        match self {
            Target::File(db) => db,
            Target::Remote(c) => c,
        }
    }

    /// Releases the target (closes the file or the connection). Idempotent.
    pub fn close(&self) {
        match self {
            Target::File(db) => db.close(),
            Target::Remote(c) => c.close(),
        }
    }

    /// See [`Db::checkpoint`].
    pub fn checkpoint(&self) -> Result<ordq_core::LogInfo, CliError> {
        Ok(self.engine().checkpoint()?)
    }

    /// See [`Db::verify`].
    pub fn verify(
        &self,
        pubkey: Option<[u8; 32]>,
    ) -> Result<ordq_core::verify::VerifyReport, CliError> {
        Ok(self.engine().verify(pubkey)?)
    }

    /// See [`Db::audit`].
    pub fn audit(
        &self,
        queue: &str,
        key: Option<&str>,
    ) -> Result<ordq_core::audit::AuditReport, CliError> {
        Ok(self.engine().audit(queue, key)?)
    }

    /// See [`Db::backup`].
    pub fn backup(&self, to: &str) -> Result<ordq_core::backup::BackupInfo, CliError> {
        Ok(self.engine().backup(to)?)
    }

    /// See [`Db::create_queue`].
    pub fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo, CliError> {
        Ok(self.engine().create_queue(name, cfg)?)
    }

    /// See [`Db::create_queue_if_not_exists`].
    pub fn create_queue_if_not_exists(
        &self,
        name: &str,
        cfg: QueueConfig,
    ) -> Result<QueueInfo, CliError> {
        Ok(self.engine().create_queue_if_not_exists(name, cfg)?)
    }

    /// See [`Db::queue`].
    pub fn queue(&self, name: &str) -> Result<QueueInfo, CliError> {
        Ok(self.engine().queue(name)?)
    }

    /// See [`Db::list_queues`].
    pub fn list_queues(&self) -> Result<Vec<QueueInfo>, CliError> {
        Ok(self.engine().list_queues()?)
    }

    /// See [`Db::delete_queue`].
    pub fn delete_queue(&self, name: &str) -> Result<(), CliError> {
        Ok(self.engine().delete_queue(name)?)
    }

    /// See [`Db::enqueue`].
    pub fn enqueue(
        &self,
        queue: &str,
        key: &str,
        payload: &[u8],
        opts: EnqueueOptions,
    ) -> Result<Receipt, CliError> {
        let item = EnqueueItem {
            key: key.to_string(),
            payload: payload.to_vec(),
            opts,
        };
        let mut r = self.engine().enqueue_batch(queue, vec![item])?;
        r.pop()
            .ok_or_else(|| CliError::unavailable("enqueue answered no receipt"))
    }

    /// See [`Db::get_task`].
    pub fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo, CliError> {
        Ok(self.engine().get_task(queue, offset)?)
    }

    /// See [`Db::faults`].
    pub fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>, CliError> {
        Ok(self.engine().faults(queue, offset)?)
    }

    /// See [`Db::stats`].
    pub fn stats(&self, queue: &str) -> Result<QueueStats, CliError> {
        Ok(self.engine().stats(queue)?)
    }

    /// See [`Db::pending`].
    pub fn pending(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TaskInfo>, CliError> {
        Ok(self.engine().pending(queue, after, limit)?)
    }

    /// See [`Db::dlq_list`].
    pub fn dlq_list(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TaskInfo>, CliError> {
        Ok(self.engine().dlq_list(queue, after, limit)?)
    }

    /// See [`Db::dlq_get`].
    pub fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter, CliError> {
        Ok(self.engine().dlq_get(queue, offset)?)
    }

    /// See [`Db::dlq_redrive`].
    pub fn dlq_redrive(
        &self,
        queue: &str,
        offset: u64,
        mode: RedriveMode,
    ) -> Result<Receipt, CliError> {
        Ok(self.engine().dlq_redrive(queue, offset, mode)?)
    }

    /// See [`Db::dlq_purge`].
    pub fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64, CliError> {
        Ok(self.engine().dlq_purge(queue, offset)?)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.close();
    }
}
