//! # ordq-core
//!
//! The ordq engine: a durable, strictly ordered job queue on one redb file.
//! One append-only, hash-chained log per queue; lanes give strict order
//! (per key, per shard, global or none); leases carry fencing tokens so a
//! zombie worker can never commit; failures retry with bounded backoff and
//! end in a dead-letter queue. One writer thread applies every waiting
//! operation in one transaction (group commit).
//!
//! ```no_run
//! use ordq_core::{ClaimOptions, Db, EnqueueOptions, Options, QueueConfig};
//! let db = Db::open("jobs.ordq", Options::default())?;
//! db.create_queue("emails", QueueConfig::default())?;
//! db.enqueue("emails", "user-1", b"hello", EnqueueOptions::default())?;
//! for lease in db.claim("emails", "worker-1", ClaimOptions::default())? {
//!     db.complete(lease.token, b"sent")?;
//! }
//! # Ok::<(), ordq_core::Error>(())
//! ```
#![warn(missing_docs)]

#[macro_use]
mod failpoint;

pub mod audit;
pub mod b64;
pub mod backup;
pub mod checkpoint;
pub mod clock;
pub mod config;
mod db;
mod durability;
pub mod engine;
pub mod error;
pub mod hash;
pub mod keys;
mod oneshot;
pub mod record;
pub mod recover;
pub mod redo;
pub mod rows;
mod sched;
mod store;
pub mod tables;
pub mod types;
pub mod verify;
pub mod wal;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Backoff, ClaimOptions, DlqPolicy, Durability, EnqueueItem, EnqueueOptions, Options, Ordering,
    QueueConfig, RedriveMode,
};
pub use db::{Db, MAX_CLAIM, MAX_WORKER_ID};
pub use engine::Engine;
pub use error::{Error, ErrorCode, Result};
pub use types::{
    Compacted, Completion, DeadLetter, FailOutcome, Fault, FaultKind, Lease, LogInfo, QueueInfo,
    QueueStats, Receipt, ShardStats, TaskInfo, TaskState, Token, Totals,
};

/// The README's usage example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
