//! Queues: configuration, create/get/list/delete, stats, pending tasks,
//! and `ordq_string_list`.

use crate::base::ordq_status;
use crate::base::{boundary, boundary_value, obj, opt_obj, str_in, Out};
use crate::base::{ordq_error, Failure, FfiResult};
use crate::bytes::ordq_bytes;
use crate::handle::ordq_db;
use crate::json;
use ordq_core::clock::millis;
use ordq_core::{Backoff, DlqPolicy, Ordering, QueueConfig};
use std::ffi::{c_char, CString};
use std::time::Duration;

/// `ordq_queue_config.ordering`: FIFO per task key, parallel across keys.
pub const ORDQ_ORDERING_KEY: i32 = 0;
/// `ordq_queue_config.ordering`: one lane per shard.
pub const ORDQ_ORDERING_SHARD: i32 = 1;
/// `ordq_queue_config.ordering`: one lane for the whole queue.
pub const ORDQ_ORDERING_GLOBAL: i32 = 2;
/// `ordq_queue_config.ordering`: every task is its own lane (no order).
pub const ORDQ_ORDERING_NONE: i32 = 3;
/// `ordq_queue_config.dlq_policy`: a lane moves on past a dead letter.
pub const ORDQ_DLQ_SKIP: i32 = 0;
/// `ordq_queue_config.dlq_policy`: a dead letter blocks its lane until it
/// is redriven or purged.
pub const ORDQ_DLQ_BLOCK: i32 = 1;

/// A queue's configuration, fixed at creation. Fill with
/// `ordq_queue_config_init`, then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ordq_queue_config {
    /// Number of shards, 1..=4096 (default 16).
    pub shards: u32,
    /// `ORDQ_ORDERING_*` (default `ORDQ_ORDERING_KEY`).
    pub ordering: i32,
    /// Attempts before a task is dead-lettered, >= 1 (default 10).
    pub max_attempts: u32,
    /// `ORDQ_DLQ_SKIP` (default) or `ORDQ_DLQ_BLOCK`.
    pub dlq_policy: i32,
    /// Default lease of a claim, ms, >= 1 (default 30000).
    pub lease_ms: u64,
    /// Delay before the first retry, ms (default 1000).
    pub backoff_initial_ms: u64,
    /// Upper bound of any retry delay, ms (default 600000).
    pub backoff_max_ms: u64,
    /// Growth factor per attempt, >= 1 (default 2.0).
    pub backoff_multiplier: f64,
    /// Fraction of each delay randomly taken off, in [0, 1] (default 0.2).
    pub backoff_jitter: f64,
}

impl From<&QueueConfig> for ordq_queue_config {
    fn from(c: &QueueConfig) -> Self {
        ordq_queue_config {
            shards: c.shards,
            ordering: match c.ordering {
                Ordering::Key => ORDQ_ORDERING_KEY,
                Ordering::Shard => ORDQ_ORDERING_SHARD,
                Ordering::Global => ORDQ_ORDERING_GLOBAL,
                Ordering::None => ORDQ_ORDERING_NONE,
            },
            max_attempts: c.max_attempts,
            dlq_policy: match c.dlq_policy {
                DlqPolicy::Skip => ORDQ_DLQ_SKIP,
                DlqPolicy::Block => ORDQ_DLQ_BLOCK,
            },
            lease_ms: millis(c.lease),
            backoff_initial_ms: millis(c.backoff.initial),
            backoff_max_ms: millis(c.backoff.max),
            backoff_multiplier: c.backoff.multiplier,
            backoff_jitter: c.backoff.jitter,
        }
    }
}

impl ordq_queue_config {
    /// The engine's configuration; rejects unknown enum values (ranges are
    /// checked by the engine).
    fn to_core(self) -> FfiResult<QueueConfig> {
        let ordering = match self.ordering {
            ORDQ_ORDERING_KEY => Ordering::Key,
            ORDQ_ORDERING_SHARD => Ordering::Shard,
            ORDQ_ORDERING_GLOBAL => Ordering::Global,
            ORDQ_ORDERING_NONE => Ordering::None,
            v => {
                return Err(Failure::invalid(format!(
                    "config.ordering {v} is not one of ORDQ_ORDERING_KEY (0), _SHARD (1), _GLOBAL (2), _NONE (3)"
                )))
            }
        };
        let dlq_policy = match self.dlq_policy {
            ORDQ_DLQ_SKIP => DlqPolicy::Skip,
            ORDQ_DLQ_BLOCK => DlqPolicy::Block,
            v => {
                return Err(Failure::invalid(format!(
                    "config.dlq_policy {v} is not ORDQ_DLQ_SKIP (0) or ORDQ_DLQ_BLOCK (1)"
                )))
            }
        };
        Ok(QueueConfig {
            shards: self.shards,
            ordering,
            max_attempts: self.max_attempts,
            backoff: Backoff {
                initial: Duration::from_millis(self.backoff_initial_ms),
                max: Duration::from_millis(self.backoff_max_ms),
                multiplier: self.backoff_multiplier,
                jitter: self.backoff_jitter,
            },
            lease: Duration::from_millis(self.lease_ms),
            dlq_policy,
        })
    }
}

/// Fills `cfg` with the defaults. NULL is a no-op.
///
/// # Safety
/// `cfg` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_config_init(cfg: *mut ordq_queue_config) {
    boundary_value((), || {
        // SAFETY: the caller passes NULL or writable storage.
        if let Ok(out) = unsafe { Out::new(cfg, "cfg") } {
            out.write((&QueueConfig::default()).into());
        }
    })
}

/// Creates queue `name` (`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`) with `cfg`
/// (NULL for defaults). An existing name gives `ORDQ_ALREADY_EXISTS`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_create(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    cfg: *const ordq_queue_config,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    // SAFETY: forwarded caller contract.
    unsafe { create(db, name, name_len, cfg, false, err_out) }
}

/// Like `ordq_queue_create`, but a queue of that name that exists with the
/// same configuration is success (atomically: of concurrent callers one
/// creates it). Existing with another configuration gives
/// `ORDQ_ALREADY_EXISTS` with a message naming the fields that differ.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_create_if_not_exists(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    cfg: *const ordq_queue_config,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    // SAFETY: forwarded caller contract.
    unsafe { create(db, name, name_len, cfg, true, err_out) }
}

/// Both queue creations: `if_not_exists` picks the engine call.
///
/// # Safety
/// As for `ordq_queue_create`.
unsafe fn create(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    cfg: *const ordq_queue_config,
    if_not_exists: bool,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, name, cfg) = unsafe {
            (
                obj(db, "db")?,
                str_in(name, name_len, "name")?,
                opt_obj(cfg, "cfg")?.copied(),
            )
        };
        let cfg = match cfg {
            Some(c) => c.to_core()?,
            None => QueueConfig::default(),
        };
        let e = db.engine();
        if if_not_exists {
            e.create_queue_if_not_exists(name, cfg)?;
        } else {
            e.create_queue(name, cfg)?;
        }
        Ok(())
    })
}

/// Writes queue `name`'s configuration to `*cfg_out`; `ORDQ_NOT_FOUND` for
/// an unknown queue.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_get(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    cfg_out: *mut ordq_queue_config,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, name, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(name, name_len, "name")?,
                Out::new(cfg_out, "cfg_out")?,
            )
        };
        let info = db.engine().queue(name)?;
        out.write((&info.config).into());
        Ok(())
    })
}

/// Queue `name`'s info as JSON (`{"name", "id", "config", "created_at"}`,
/// see docs/FFI.md) in `*json_out`, to free with `ordq_bytes_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_get_json(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, name, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(name, name_len, "name")?,
                Out::new(json_out, "json_out")?,
            )
        };
        let info = db.engine().queue(name)?;
        out.write(json::to_bytes(&json::to_value(&info)?)?);
        Ok(())
    })
}

/// Every queue's name, ordered by name, in `*list_out` (free with
/// `ordq_string_list_free`).
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_list(
    db: *const ordq_db,
    list_out: *mut *mut ordq_string_list,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, out) = unsafe { (obj(db, "db")?, Out::new(list_out, "list_out")?) };
        let items = db
            .engine()
            .list_queues()?
            .into_iter()
            .map(|q| CString::new(q.name).map_err(|_| Failure::invalid("queue name with NUL")))
            .collect::<FfiResult<Vec<_>>>()?;
        out.write(Box::into_raw(Box::new(ordq_string_list { items })));
        Ok(())
    })
}

/// Deletes queue `name` with all its tasks, results and dead letters.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_delete(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, name) = unsafe { (obj(db, "db")?, str_in(name, name_len, "name")?) };
        Ok(db.engine().delete_queue(name)?)
    })
}

/// Queue `name`'s statistics as JSON (counts per state, per-shard load,
/// lifetime totals; see docs/FFI.md) in `*json_out`, to free with
/// `ordq_bytes_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_queue_stats_json(
    db: *const ordq_db,
    name: *const c_char,
    name_len: usize,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, name, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(name, name_len, "name")?,
                Out::new(json_out, "json_out")?,
            )
        };
        let stats = db.engine().stats(name)?;
        out.write(json::to_bytes(&json::to_value(&stats)?)?);
        Ok(())
    })
}

/// Unfinished tasks of `queue` (ready, delayed, in retry wait or leased)
/// in offset order, as a JSON array of task objects (see docs/FFI.md):
/// those after offset `after` when `has_after` is true (else from the
/// start), at most `limit`. Offset order is not claim order; nothing is
/// leased. A task that finishes while the list is read is left out, so
/// fewer than `limit` may come back while more are pending. Written to
/// `*json_out`, to free with `ordq_bytes_free`; `ORDQ_NOT_FOUND` for an
/// unknown queue.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ordq_queue_pending_json(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    has_after: bool,
    after: u64,
    limit: usize,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        json::task_list(db, queue, queue_len, json_out, err_out, |e, q| {
            e.pending(q, has_after.then_some(after), limit)
        })
    }
}

/// An owned list of strings (queue names). Immutable: may be read from
/// any thread. Free with `ordq_string_list_free`.
pub struct ordq_string_list {
    items: Vec<CString>,
}

/// Number of strings in `list` (0 for NULL).
///
/// # Safety
/// `list` is NULL or a live `ordq_string_list`.
#[no_mangle]
pub unsafe extern "C" fn ordq_string_list_len(list: *const ordq_string_list) -> usize {
    boundary_value(0, || {
        // SAFETY: the caller passes NULL or a live list.
        unsafe { list.as_ref() }.map_or(0, |l| l.items.len())
    })
}

/// String `index` of `list`, NUL-terminated UTF-8 borrowed from the list
/// (valid until `ordq_string_list_free`); NULL when `list` is NULL or
/// `index` is out of range.
///
/// # Safety
/// `list` is NULL or a live `ordq_string_list`.
#[no_mangle]
pub unsafe extern "C" fn ordq_string_list_get(
    list: *const ordq_string_list,
    index: usize,
) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live list.
        unsafe { list.as_ref() }
            .and_then(|l| l.items.get(index))
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// Frees a string list. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a list not yet freed; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn ordq_string_list_free(list: *mut ordq_string_list) {
    boundary_value((), || {
        if !list.is_null() {
            // SAFETY: a non-NULL list came from `Box::into_raw` in
            // `ordq_queue_list` and is freed once (caller contract).
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_roundtrip_and_enum_checks() {
        let d = QueueConfig::default();
        let c: ordq_queue_config = (&d).into();
        assert_eq!(c.to_core().unwrap(), d);
        let custom = QueueConfig {
            shards: 3,
            ordering: Ordering::None,
            max_attempts: 2,
            dlq_policy: DlqPolicy::Block,
            lease: Duration::from_millis(1500),
            ..QueueConfig::default()
        };
        let c: ordq_queue_config = (&custom).into();
        assert_eq!(c.ordering, ORDQ_ORDERING_NONE);
        assert_eq!(c.dlq_policy, ORDQ_DLQ_BLOCK);
        assert_eq!(c.to_core().unwrap(), custom);
        let bad = ordq_queue_config { ordering: 4, ..c };
        assert_eq!(
            bad.to_core().unwrap_err().code,
            ordq_status::ORDQ_INVALID_ARGUMENT
        );
        let bad = ordq_queue_config {
            dlq_policy: -1,
            ..c
        };
        assert!(bad.to_core().is_err());
    }
}
