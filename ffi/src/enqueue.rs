//! Enqueue: per-task options, headers, receipts, single and batch calls.

use crate::base::ordq_status;
use crate::base::{
    boundary, boundary_value, obj, opt_obj, opt_str_in, slice_in, str_in, Out, OutSlice,
};
use crate::base::{ordq_error, Failure, FfiResult};
use crate::handle::ordq_db;
use ordq_core::{EnqueueItem, EnqueueOptions, Receipt};
use std::collections::BTreeMap;
use std::ffi::c_char;
use std::time::Duration;

/// Length of a task id in hex characters (without the NUL).
pub const ORDQ_TASK_ID_LEN: usize = 32;
/// Size of `ordq_receipt.id`: the id and its NUL.
pub const ORDQ_TASK_ID_SIZE: usize = 33;

/// One task header (e.g. `traceparent`): UTF-8 `(ptr, len)` strings,
/// borrowed for the duration of the call. Names must be non-empty and
/// unique within a task.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ordq_header {
    /// Header name.
    pub name: *const c_char,
    /// Length of `name` in bytes.
    pub name_len: usize,
    /// Header value.
    pub value: *const c_char,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

/// Options of one enqueued task. Fill with `ordq_enqueue_options_init`
/// (all zero/NULL: no option set), then change fields. Pointers are
/// borrowed for the duration of the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ordq_enqueue_options {
    /// Higher runs first among eligible lane heads (default 0).
    pub priority: i32,
    /// Attempts allowed for this task; 0 = the queue's `max_attempts`.
    pub max_attempts: u32,
    /// Earliest run time, ms since the Unix epoch; 0 = none. Wins over
    /// `delay_ms`.
    pub not_before_ms: u64,
    /// Earliest run time relative to now, ms; 0 = none.
    pub delay_ms: u64,
    /// Idempotency key (UTF-8); NULL = none. A repeated enqueue with the
    /// same key returns the first receipt with `duplicate` set.
    pub idempotency_key: *const c_char,
    /// Length of `idempotency_key` in bytes (0 when NULL).
    pub idempotency_key_len: usize,
    /// Array of `headers_len` headers; may be NULL when `headers_len` is 0.
    pub headers: *const ordq_header,
    /// Number of headers.
    pub headers_len: usize,
}

impl Default for ordq_enqueue_options {
    fn default() -> Self {
        ordq_enqueue_options {
            priority: 0,
            max_attempts: 0,
            not_before_ms: 0,
            delay_ms: 0,
            idempotency_key: std::ptr::null(),
            idempotency_key_len: 0,
            headers: std::ptr::null(),
            headers_len: 0,
        }
    }
}

/// One task of `ordq_enqueue_batch`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ordq_enqueue_item {
    /// Task key (UTF-8): picks the shard and, with key ordering, the lane.
    pub key: *const c_char,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// Payload bytes; may be NULL when `payload_len` is 0.
    pub payload: *const u8,
    /// Length of `payload` in bytes.
    pub payload_len: usize,
    /// Options; NULL for defaults.
    pub opts: *const ordq_enqueue_options,
}

/// Answer to an enqueue (a plain value).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ordq_receipt {
    /// Queue-wide position of the task; order is the offset.
    pub offset: u64,
    /// Shard of the task's key.
    pub shard: u32,
    /// True when an idempotency key matched an earlier enqueue (the first
    /// receipt is returned).
    pub duplicate: bool,
    /// Task id: 32 lower-case hex characters and a NUL.
    pub id: [c_char; ORDQ_TASK_ID_SIZE],
}

impl From<&Receipt> for ordq_receipt {
    fn from(r: &Receipt) -> Self {
        let mut id = [0 as c_char; ORDQ_TASK_ID_SIZE];
        for (dst, src) in id.iter_mut().zip(r.id.bytes().take(ORDQ_TASK_ID_LEN)) {
            *dst = src as c_char;
        }
        ordq_receipt {
            offset: r.offset,
            shard: r.shard,
            duplicate: r.duplicate,
            id,
        }
    }
}

/// Fills `opts` with the defaults (no option set). NULL is a no-op.
///
/// # Safety
/// `opts` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ordq_enqueue_options_init(opts: *mut ordq_enqueue_options) {
    boundary_value((), || {
        // SAFETY: the caller passes NULL or writable storage.
        if let Ok(out) = unsafe { Out::new(opts, "opts") } {
            out.write(ordq_enqueue_options::default());
        }
    })
}

/// Copies C enqueue options (NULL = defaults) into the engine's type.
///
/// # Safety
/// `p` is NULL or a live `ordq_enqueue_options` whose pointers follow the
/// input rules.
unsafe fn enqueue_opts(p: *const ordq_enqueue_options, arg: &str) -> FfiResult<EnqueueOptions> {
    // SAFETY: forwarded caller contract.
    let Some(o) = (unsafe { opt_obj(p, arg) })? else {
        return Ok(EnqueueOptions::default());
    };
    // SAFETY: forwarded caller contract for the embedded pointers.
    let (idem, raw_headers) = unsafe {
        (
            opt_str_in(
                o.idempotency_key,
                o.idempotency_key_len,
                &format!("{arg}.idempotency_key"),
            )?,
            slice_in(o.headers, o.headers_len, &format!("{arg}.headers"))?,
        )
    };
    let mut headers = BTreeMap::new();
    for (i, h) in raw_headers.iter().enumerate() {
        // SAFETY: forwarded caller contract for each header's strings.
        let (name, value) = unsafe {
            (
                str_in(h.name, h.name_len, &format!("{arg}.headers[{i}].name"))?,
                str_in(h.value, h.value_len, &format!("{arg}.headers[{i}].value"))?,
            )
        };
        if headers
            .insert(name.to_string(), value.to_string())
            .is_some()
        {
            return Err(Failure::invalid(format!(
                "{arg}.headers[{i}]: duplicate header name {name:?}"
            )));
        }
    }
    Ok(EnqueueOptions {
        priority: o.priority,
        not_before: (o.not_before_ms != 0).then_some(o.not_before_ms),
        delay: (o.delay_ms != 0).then(|| Duration::from_millis(o.delay_ms)),
        max_attempts: (o.max_attempts != 0).then_some(o.max_attempts),
        idempotency_key: idem.map(str::to_string),
        headers,
    })
}

/// Appends one task with `key` (UTF-8) and `payload` (bytes; NULL allowed
/// when `payload_len` is 0) to `queue`; `opts` may be NULL. The receipt is
/// written to `*receipt_out`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ordq_enqueue(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    key: *const c_char,
    key_len: usize,
    payload: *const u8,
    payload_len: usize,
    opts: *const ordq_enqueue_options,
    receipt_out: *mut ordq_receipt,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, key, payload, opts, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                str_in(key, key_len, "key")?,
                slice_in(payload, payload_len, "payload")?,
                enqueue_opts(opts, "opts")?,
                Out::new(receipt_out, "receipt_out")?,
            )
        };
        let item = EnqueueItem {
            key: key.to_string(),
            payload: payload.to_vec(),
            opts,
        };
        let receipts = db.engine().enqueue_batch(queue, vec![item])?;
        let r = receipts
            .first()
            .ok_or_else(|| Failure::new(ordq_status::ORDQ_PANIC, "engine returned no receipt"))?;
        out.write(r.into());
        Ok(())
    })
}

/// Appends `items_len` tasks to `queue` in one commit, all or nothing: an
/// invalid item fails the whole batch. On success `receipts_out` (a
/// caller-owned array of `items_len`) receives the receipts in order.
/// `items` and `receipts_out` may be NULL when `items_len` is 0 (then the
/// call only checks that the queue exists).
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_enqueue_batch(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    items: *const ordq_enqueue_item,
    items_len: usize,
    receipts_out: *mut ordq_receipt,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, raw, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                slice_in(items, items_len, "items")?,
                OutSlice::new(receipts_out, items_len, "receipts_out")?,
            )
        };
        let mut batch = Vec::with_capacity(raw.len());
        for (i, it) in raw.iter().enumerate() {
            // SAFETY: caller contract for each item's pointers.
            let (key, payload, opts) = unsafe {
                (
                    str_in(it.key, it.key_len, "items[i].key").map_err(|e| e.at_item(i))?,
                    slice_in(it.payload, it.payload_len, "items[i].payload")
                        .map_err(|e| e.at_item(i))?,
                    enqueue_opts(it.opts, "items[i].opts").map_err(|e| e.at_item(i))?,
                )
            };
            batch.push(EnqueueItem {
                key: key.to_string(),
                payload: payload.to_vec(),
                opts,
            });
        }
        let receipts = db.engine().enqueue_batch(queue, batch)?;
        if receipts.len() != items_len {
            return Err(Failure::new(
                ordq_status::ORDQ_PANIC,
                format!(
                    "engine returned {} receipts for {items_len} items",
                    receipts.len()
                ),
            ));
        }
        for (i, r) in receipts.iter().enumerate() {
            out.write(i, r.into());
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn receipt_id_is_nul_terminated() {
        assert_eq!(ORDQ_TASK_ID_SIZE, ORDQ_TASK_ID_LEN + 1);
        let r = Receipt {
            offset: 4,
            shard: 2,
            id: "0123456789abcdef0123456789abcdef".into(),
            duplicate: true,
        };
        let c = ordq_receipt::from(&r);
        // SAFETY: `id` ends with a NUL (the array has one more slot).
        let id = unsafe { CStr::from_ptr(c.id.as_ptr()) };
        assert_eq!(id.to_str().unwrap(), r.id);
        assert!(c.duplicate);
    }

    #[test]
    fn options_conversion() {
        let name = "traceparent";
        let value = "00-abc";
        let hs = [
            ordq_header {
                name: name.as_ptr().cast(),
                name_len: name.len(),
                value: value.as_ptr().cast(),
                value_len: value.len(),
            },
            ordq_header {
                name: name.as_ptr().cast(),
                name_len: name.len(),
                value: value.as_ptr().cast(),
                value_len: 2,
            },
        ];
        let idem = "idem-1";
        let o = ordq_enqueue_options {
            priority: -3,
            max_attempts: 4,
            delay_ms: 250,
            idempotency_key: idem.as_ptr().cast(),
            idempotency_key_len: idem.len(),
            headers: hs.as_ptr(),
            headers_len: 1,
            ..Default::default()
        };
        // SAFETY: every pointer refers to a live local.
        let e = unsafe { enqueue_opts(&o, "opts") }.unwrap();
        assert_eq!(e.priority, -3);
        assert_eq!(e.max_attempts, Some(4));
        assert_eq!(e.delay, Some(Duration::from_millis(250)));
        assert_eq!(e.not_before, None);
        assert_eq!(e.idempotency_key.as_deref(), Some("idem-1"));
        assert_eq!(
            e.headers.get("traceparent").map(String::as_str),
            Some(value)
        );
        let dup = ordq_enqueue_options {
            headers_len: 2,
            ..o
        };
        // SAFETY: as above.
        let err = unsafe { enqueue_opts(&dup, "opts") }.unwrap_err();
        assert!(err.message.contains("duplicate header"), "{}", err.message);
        // SAFETY: NULL means defaults.
        let d = unsafe { enqueue_opts(std::ptr::null(), "opts") }.unwrap();
        assert_eq!(d, EnqueueOptions::default());
    }
}
