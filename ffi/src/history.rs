//! Verifiable history: an on-demand checkpoint, `verify` and `audit`
//! (JSON reports, see docs/FFI.md), on a file or through a broker (which
//! runs them on its database while serving).

use crate::base::ordq_error;
use crate::base::ordq_status;
use crate::base::{boundary, obj, opt_str_in, str_in, Out};
use crate::bytes::ordq_bytes;
use crate::handle::ordq_db;
use crate::json;
use std::ffi::c_char;

/// Makes a state checkpoint now: the state committed durably and a
/// checkpoint record appended to the log. Writes the log's extent after it
/// as JSON (`segments`, `bytes`, `first_lsn`, `next_lsn`, `checkpoint_lsn`)
/// to `*json_out`, to free with `ordq_bytes_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_db_checkpoint(
    db: *const ordq_db,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, out) = unsafe { (obj(db, "db")?, Out::new(json_out, "json_out")?) };
        let info = db.engine().checkpoint()?;
        out.write(json::to_bytes(&json::to_value(&info)?)?);
        Ok(())
    })
}

/// Verifies the database against its own history (frames, both hash
/// chains of every queue, the checkpoint chain and its signatures, the
/// state rebuilt from the log) on a read snapshot, and writes the report
/// as JSON to `*json_out` (free with `ordq_bytes_free`). `pubkey`: NULL,
/// or 32 bytes of an Ed25519 public key to check signatures with (else the
/// key the database recorded). Damage found is in the report (`ok`
/// false), not an error status; an error status means verify could not
/// run.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header; `pubkey`
/// is NULL or points to 32 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ordq_db_verify_json(
    db: *const ordq_db,
    pubkey: *const u8,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, out) = unsafe { (obj(db, "db")?, Out::new(json_out, "json_out")?) };
        let key = if pubkey.is_null() {
            None
        } else {
            // SAFETY: non-NULL `pubkey` points to 32 bytes (caller contract).
            Some(unsafe { *(pubkey as *const [u8; 32]) })
        };
        let r = db.engine().verify(key)?;
        out.write(json::to_bytes(&json::to_value(&r)?)?);
        Ok(())
    })
}

/// Audits `queue` from the segment log alone (lane order, completions
/// under the latest lease, one outcome per task), only the tasks of `key`
/// when it is not NULL, and writes the report as JSON to `*json_out` (free
/// with `ordq_bytes_free`). Violations are in the report (`ok` false);
/// `ORDQ_NOT_FOUND` for an unknown queue.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_db_audit_json(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    key: *const c_char,
    key_len: usize,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, key, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                opt_str_in(key, key_len, "key")?,
                Out::new(json_out, "json_out")?,
            )
        };
        let r = db.engine().audit(queue, key)?;
        out.write(json::to_bytes(&json::to_value(&r)?)?);
        Ok(())
    })
}
