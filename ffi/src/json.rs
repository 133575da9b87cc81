//! JSON documents for the admin calls (task info, faults, stats, dead
//! letters, queue info). Shapes are documented in docs/FFI.md. Bytes
//! (payload, result) are standard base64 with padding (RFC 4648 §4), as on
//! the broker's wire protocol.

use crate::bytes::ordq_bytes;
use crate::error::{Failure, FfiResult};
use crate::status::ordq_status;
use ordq_core::{DeadLetter, TaskInfo};
use serde::Serialize;
use serde_json::Value;

/// Standard base64 (RFC 4648 §4) with `=` padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A task as JSON, with `payload` and `result` as base64 strings or null.
pub(crate) fn task_value(t: &TaskInfo) -> FfiResult<Value> {
    let mut v = to_value(t)?;
    if let Value::Object(m) = &mut v {
        for (name, bytes) in [("payload", &t.payload), ("result", &t.result)] {
            let enc = bytes
                .as_deref()
                .map_or(Value::Null, |b| Value::String(base64(b)));
            m.insert(name.to_string(), enc);
        }
    }
    Ok(v)
}

/// A dead letter as `{"task": {...}, "faults": [...]}`.
pub(crate) fn dead_letter_value(d: &DeadLetter) -> FfiResult<Value> {
    let mut m = serde_json::Map::new();
    m.insert("task".into(), task_value(&d.task)?);
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
    use super::*;

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
