//! Task inspection: task info and fault history, as JSON.

use crate::base::ordq_error;
use crate::base::ordq_status;
use crate::base::{boundary, obj, str_in, Out};
use crate::bytes::ordq_bytes;
use crate::handle::ordq_db;
use crate::json;
use std::ffi::c_char;

/// Everything known about the task at `offset` of `queue`, as a JSON
/// object (see docs/FFI.md; payload and result are base64) in
/// `*json_out`, to free with `ordq_bytes_free`. `ORDQ_NOT_FOUND` for an
/// unknown queue or offset.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_task_get_json(
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
        let task = db.engine().get_task(queue, offset)?;
        out.write(json::to_bytes(&json::to_value(&task)?)?);
        Ok(())
    })
}

/// The fault history of the task at `offset` (a JSON array of faults,
/// oldest first; see docs/FFI.md) in `*json_out`, to free with
/// `ordq_bytes_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_task_faults_json(
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
        let faults = db.engine().faults(queue, offset)?;
        out.write(json::to_bytes(&json::to_value(&faults)?)?);
        Ok(())
    })
}
