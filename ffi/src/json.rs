//! JSON documents for the admin calls (task info, faults, stats, dead
//! letters, queue info). Shapes are documented in docs/FFI.md. Bytes
//! (payload, result) are standard base64 with padding (RFC 4648 §4), as on
//! the broker's wire protocol: `TaskInfo` serialises them so itself.

use crate::base::ordq_status;
use crate::base::{boundary, obj, str_in, Out};
use crate::base::{ordq_error, Failure, FfiResult};
use crate::bytes::ordq_bytes;
use crate::handle::ordq_db;
use ordq_core::engine::Engine;
use ordq_core::{DeadLetter, TaskInfo};
use serde::Serialize;
use serde_json::Value;
use std::ffi::c_char;

/// Runs a task-list call (`ordq_queue_pending_json`, `ordq_dlq_list_json`):
/// checks the pointers, calls `list` with the engine and the queue name,
/// and writes the tasks as a JSON array to `*json_out`.
///
/// # Safety
/// The pointer arguments follow the rules of include/ordq.h.
pub(crate) unsafe fn task_list(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    json_out: *mut ordq_bytes,
    err_out: *mut *mut ordq_error,
    list: impl FnOnce(&dyn Engine, &str) -> ordq_core::Result<Vec<TaskInfo>>,
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
        let tasks = list(db.engine(), queue)?;
        let arr = tasks.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
        out.write(to_bytes(&Value::Array(arr))?);
        Ok(())
    })
}

/// A dead letter as `{"task": {...}, "faults": [...]}`.
pub(crate) fn dead_letter_value(d: &DeadLetter) -> FfiResult<Value> {
    let mut m = serde_json::Map::new();
    m.insert("task".into(), to_value(&d.task)?);
    m.insert("faults".into(), to_value(&d.faults)?);
    Ok(Value::Object(m))
}

/// Any serialisable value as JSON.
pub(crate) fn to_value<T: Serialize + ?Sized>(v: &T) -> FfiResult<Value> {
    serde_json::to_value(v).map_err(|e| {
        Failure::new(
            ordq_status::ORDQ_PANIC,
            format!("ordq could not serialise a JSON answer (a bug): {e}"),
        )
    })
}

/// Compact JSON text as an owned buffer.
pub(crate) fn to_bytes(v: &Value) -> FfiResult<ordq_bytes> {
    let text = serde_json::to_vec(v).map_err(|e| {
        Failure::new(
            ordq_status::ORDQ_PANIC,
            format!("ordq could not serialise a JSON answer (a bug): {e}"),
        )
    })?;
    Ok(ordq_bytes::from_vec(text))
}

#[cfg(test)]
mod tests {
    use ordq_core::b64::encode as base64;

    #[test]
    fn base64_rfc4648_vectors() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (raw, enc) in cases {
            assert_eq!(base64(raw), enc);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xfe]), "+//+");
    }
}
