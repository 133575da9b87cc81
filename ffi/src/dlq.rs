//! The dead-letter queue: list, get (JSON), redrive, purge.

use crate::base::ordq_status;
use crate::base::{boundary, obj, str_in, Out};
use crate::base::{ordq_error, Failure};
use crate::bytes::ordq_bytes;
use crate::enqueue::ordq_receipt;
use crate::handle::ordq_db;
use crate::json;
use ordq_core::RedriveMode;
use std::ffi::c_char;

/// `ordq_dlq_redrive` mode: back to the head of its lane at its original
/// offset, attempts reset.
pub const ORDQ_REDRIVE_HEAD: i32 = 0;
/// `ordq_dlq_redrive` mode: re-enqueued at a new offset at the tail of its
/// lane (`redriven_from`/`redriven_to` link the two).
pub const ORDQ_REDRIVE_NEW_OFFSET: i32 = 1;

/// Dead letters of `queue` in offset order, as a JSON array of task
/// objects (see docs/FFI.md): those after offset `after` when `has_after`
/// is true (else from the start), at most `limit`. Written to `*json_out`,
/// to free with `ordq_bytes_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ordq_dlq_list_json(
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
            e.dlq_list(q, has_after.then_some(after), limit)
        })
    }
}

/// One dead letter with its full fault history, as JSON
/// `{"task": {...}, "faults": [...]}` in `*json_out` (free with
/// `ordq_bytes_free`). `ORDQ_NOT_FOUND` if `offset` is not a held dead
/// letter.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_dlq_get_json(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    offset: u64,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                Out::new(json_out, "json_out")?,
            )
        };
        let dl = db.engine().dlq_get(queue, offset)?;
        out.write(json::to_bytes(&json::dead_letter_value(&dl)?)?);
        Ok(())
    })
}

/// Redrives dead letter `offset` with `mode` (`ORDQ_REDRIVE_HEAD` or
/// `ORDQ_REDRIVE_NEW_OFFSET`); writes the task's receipt (its new offset
/// for `NEW_OFFSET`) to `*receipt_out`. `ORDQ_INVALID_STATE` if the task is
/// not a dead letter, `ORDQ_NOT_FOUND` for an unknown offset.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_dlq_redrive(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    offset: u64,
    mode: i32,
    receipt_out: *mut ordq_receipt,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                Out::new(receipt_out, "receipt_out")?,
            )
        };
        let mode = match mode {
            ORDQ_REDRIVE_HEAD => RedriveMode::Head,
            ORDQ_REDRIVE_NEW_OFFSET => RedriveMode::NewOffset,
            v => {
                return Err(Failure::invalid(format!(
                    "mode {v} is not ORDQ_REDRIVE_HEAD (0) or ORDQ_REDRIVE_NEW_OFFSET (1)"
                )))
            }
        };
        let r = db.engine().dlq_redrive(queue, offset, mode)?;
        out.write((&r).into());
        Ok(())
    })
}

/// Purges dead letter `offset`, or every dead letter of `queue` when `all`
/// is true (`offset` is then ignored); writes how many were purged to
/// `*purged_out`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_dlq_purge(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    all: bool,
    offset: u64,
    purged_out: *mut u64,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                Out::new(purged_out, "purged_out")?,
            )
        };
        let n = db.engine().dlq_purge(queue, (!all).then_some(offset))?;
        out.write(n);
        Ok(())
    })
}
