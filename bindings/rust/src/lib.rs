//! # ordq — the safe Rust API over ordq's C ABI
//!
//! This crate wraps the C ABI of `ordq-ffi` (header `include/ordq.h`,
//! reference docs/FFI.md). It links that crate statically as an rlib and
//! calls the very `extern "C"` functions that C, Go (cgo) and Python
//! (ctypes) call, so its tests exercise the ABI too. For the engine's
//! native Rust API without the ABI in between, see `ordq-core`.
//!
//! - [`Db`]: open a database, manage queues, enqueue, claim, complete,
//!   fail, inspect tasks (and list the unfinished ones), stats and dead
//!   letters. `Send + Sync`; dropping it closes and frees the handle.
//! - [`Lease`]: a claimed task (owned copy) with its [`Token`].
//! - [`Worker`]: claim → handler → complete/fail in a loop, with automatic
//!   heartbeats and graceful shutdown.
//! - [`Error`]: an [`ErrorKind`] from the ABI's status code, and the
//!   message of its `ordq_error`.
//!
//! ```
//! use ordq::{ClaimOptions, Db, EnqueueOptions, Options, QueueConfig};
//! use std::time::Duration;
//!
//! # fn main() -> ordq::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("ordq-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("lib.ordq");
//! let db = Db::open(path.to_str().unwrap(), &Options::new())?;
//! db.create_queue("emails", &QueueConfig::new())?;
//! db.enqueue("emails", "user-42", b"welcome", &EnqueueOptions::new().priority(1))?;
//!
//! let opts = ClaimOptions::new().max(10).wait(Duration::from_millis(100));
//! for lease in db.claim("emails", "worker-1", &opts)? {
//!     lease.complete(&db, b"sent")?;
//! }
//! assert_eq!(db.stats("emails")?.totals.completed, 1);
//! db.close()?;
//! # drop(db); std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```
//!
//! All `unsafe` code lives in one private module (`sys`), each block with
//! the reason it is sound; `#![deny(unsafe_code)]` keeps it there.
#![deny(unsafe_code)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod db;
mod error;
mod json;
mod options;
#[allow(unsafe_code)] // the one module with unsafe: the C calls
mod sys;
mod types;
mod worker;

pub use db::Db;
pub use error::{Error, ErrorKind, Result};
pub use options::{
    Backoff, ClaimOptions, DlqPolicy, Durability, EnqueueItem, EnqueueOptions, Options, Ordering,
    QueueConfig, RedriveMode,
};
pub use types::{
    Completion, DeadLetter, FailOutcome, Fault, FaultKind, Lease, QueueInfo, QueueStats, Receipt,
    ShardStats, TaskInfo, TaskState, Token, Totals,
};
pub use worker::{HandlerError, StopHandle, Worker, WorkerReport};

/// Major ABI version this crate was written for ([`Db::open`] refuses a
/// library with another one).
pub const ABI_MAJOR: u32 = 0;
/// Minor ABI version this crate was written for (while the major is 0,
/// [`Db::open`] refuses another minor too).
pub const ABI_MINOR: u32 = 5;

/// The linked library's ABI version as `(major, minor, patch)`
/// (`ordq_abi_version`).
pub fn abi_version() -> (u32, u32, u32) {
    let v = sys::abi_version();
    (v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// The linked library's version string (`ordq_version_string`).
pub fn library_version() -> &'static str {
    sys::version_string()
}

/// The ABI's stable name of a status value (`ordq_status_name`):
/// `"LEASE_LOST"`, `"UNKNOWN"` for a value the library does not know.
pub fn status_name(code: i32) -> &'static str {
    sys::status_name(code)
}
