//! Claims and leases: `ordq_claim`, `ordq_lease_list`, `ordq_lease` and
//! its accessors, `ordq_token`.

use crate::base::ordq_status;
use crate::base::{boundary, boundary_value, obj, obj_mut, opt_obj, slice_in, str_in, Out};
use crate::base::{ordq_error, Failure};
use crate::handle::ordq_db;
use ordq_core::{ClaimOptions, Lease, Token};
use std::ffi::c_char;
use std::time::Duration;

/// Identifies one lease: pass it (by value) to heartbeat, start, complete,
/// fail and release. A superseded token is refused with `ORDQ_LEASE_LOST`.
/// A plain value: copy it freely, it owns nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ordq_token {
    /// Internal id of the task's queue.
    pub queue_id: u32,
    /// Offset of the leased task.
    pub offset: u64,
    /// Fencing value of the lease.
    pub fence: u64,
}

impl From<Token> for ordq_token {
    fn from(t: Token) -> Self {
        ordq_token {
            queue_id: t.queue_id,
            offset: t.offset,
            fence: t.fence,
        }
    }
}

impl From<ordq_token> for Token {
    fn from(t: ordq_token) -> Self {
        Token {
            queue_id: t.queue_id,
            offset: t.offset,
            fence: t.fence,
        }
    }
}

/// Options of a claim. Fill with `ordq_claim_options_init`, then change
/// fields. `shards` is borrowed for the duration of the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ordq_claim_options {
    /// Most leases returned, 1..=10000 (default 1).
    pub max: u32,
    /// Lease duration, ms; 0 = the queue's default.
    pub lease_ms: u64,
    /// How long to block when nothing is eligible, ms; 0 = don't block
    /// (default). An empty list is returned when the wait ends.
    pub wait_ms: u64,
    /// Only claim from these shards; ignored when `shards_len` is 0 (claim
    /// from every shard).
    pub shards: *const u32,
    /// Number of entries in `shards`.
    pub shards_len: usize,
}

impl Default for ordq_claim_options {
    fn default() -> Self {
        ordq_claim_options {
            max: 1,
            lease_ms: 0,
            wait_ms: 0,
            shards: std::ptr::null(),
            shards_len: 0,
        }
    }
}

/// Fills `opts` with the defaults. NULL is a no-op.
///
/// # Safety
/// `opts` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ordq_claim_options_init(opts: *mut ordq_claim_options) {
    boundary_value((), || {
        // SAFETY: the caller passes NULL or writable storage.
        if let Ok(out) = unsafe { Out::new(opts, "opts") } {
            out.write(ordq_claim_options::default());
        }
    })
}

/// A claimed task with its lease. Owned (from `ordq_lease_list_take`) or
/// borrowed from its list (`ordq_lease_list_get`). Immutable: accessors may
/// run from any thread. Strings it hands out are borrowed from it and are
/// also NUL-terminated (not counted in the length; a key may contain NUL
/// bytes itself, so use the length).
pub struct ordq_lease {
    token: ordq_token,
    offset: u64,
    shard: u32,
    priority: i32,
    attempt: u32,
    max_attempts: u32,
    enqueued_at: u64,
    leased_at: u64,
    expires_at: u64,
    queue: NulString,
    id: NulString,
    key: NulString,
    payload: Vec<u8>,
    headers: Vec<(NulString, NulString)>,
}

/// A UTF-8 string stored with a trailing NUL.
struct NulString(String);

impl NulString {
    fn new(mut s: String) -> NulString {
        s.push('\0');
        NulString(s)
    }
    fn ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
    fn len(&self) -> usize {
        self.0.len() - 1
    }
}

impl From<Lease> for ordq_lease {
    fn from(l: Lease) -> Self {
        ordq_lease {
            token: l.token.into(),
            offset: l.offset,
            shard: l.shard,
            priority: l.priority,
            attempt: l.attempt,
            max_attempts: l.max_attempts,
            enqueued_at: l.enqueued_at,
            leased_at: l.leased_at,
            expires_at: l.expires_at,
            queue: NulString::new(l.queue),
            id: NulString::new(l.id),
            key: NulString::new(l.key),
            payload: l.payload,
            headers: l
                .headers
                .into_iter()
                .map(|(k, v)| (NulString::new(k), NulString::new(v)))
                .collect(),
        }
    }
}

/// Every field of a lease in one struct, filled by `ordq_lease_get_info`.
/// The pointers are borrowed from the lease (valid until it is freed);
/// strings are UTF-8 and also NUL-terminated.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ordq_lease_info {
    /// The lease's token.
    pub token: ordq_token,
    /// Task offset.
    pub offset: u64,
    /// Task shard.
    pub shard: u32,
    /// Task priority.
    pub priority: i32,
    /// This lease's attempt number (1-based).
    pub attempt: u32,
    /// Attempts allowed before dead-lettering.
    pub max_attempts: u32,
    /// Enqueue time, ms since the Unix epoch.
    pub enqueued_at: u64,
    /// Lease time, ms since the Unix epoch.
    pub leased_at: u64,
    /// Lease expiry, ms since the Unix epoch.
    pub expires_at: u64,
    /// Queue name.
    pub queue: *const c_char,
    /// Length of `queue` in bytes.
    pub queue_len: usize,
    /// Task id (32 hex characters).
    pub id: *const c_char,
    /// Length of `id` in bytes.
    pub id_len: usize,
    /// Task key.
    pub key: *const c_char,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// Payload bytes (never NULL, even when empty).
    pub payload: *const u8,
    /// Length of `payload` in bytes.
    pub payload_len: usize,
    /// Number of headers (read them with `ordq_lease_header_get`).
    pub header_count: usize,
}

/// The leases of one claim, in claim order (priority, then offset). Free
/// with `ordq_lease_list_free`, which also frees every lease not taken out.
pub struct ordq_lease_list {
    items: Vec<Option<Box<ordq_lease>>>,
}

/// Leases up to `opts->max` eligible tasks of `queue` for `worker` (UTF-8,
/// 1..=256 bytes), never two of one lane; `opts` may be NULL (max 1, queue
/// lease, no wait). With `wait_ms` the call blocks until work arrives or
/// the wait ends. `*list_out` receives a list (possibly empty) to free with
/// `ordq_lease_list_free`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_claim(
    db: *const ordq_db,
    queue: *const c_char,
    queue_len: usize,
    worker: *const c_char,
    worker_len: usize,
    opts: *const ordq_claim_options,
    list_out: *mut *mut ordq_lease_list,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, queue, worker, o, out) = unsafe {
            (
                obj(db, "db")?,
                str_in(queue, queue_len, "queue")?,
                str_in(worker, worker_len, "worker")?,
                opt_obj(opts, "opts")?.copied().unwrap_or_default(),
                Out::new(list_out, "list_out")?,
            )
        };
        // SAFETY: caller contract for `opts.shards`.
        let shards = unsafe { slice_in(o.shards, o.shards_len, "opts.shards") }?;
        let copts = ClaimOptions {
            max: o.max as usize,
            lease: (o.lease_ms != 0).then(|| Duration::from_millis(o.lease_ms)),
            wait: Duration::from_millis(o.wait_ms),
            shards: (!shards.is_empty()).then(|| shards.to_vec()),
        };
        let leases = db.engine().claim(queue, worker, copts)?;
        let items = leases
            .into_iter()
            .map(|l| Some(Box::new(ordq_lease::from(l))))
            .collect();
        out.write(Box::into_raw(Box::new(ordq_lease_list { items })));
        Ok(())
    })
}

/// Number of slots in `list` (taken ones included; 0 for NULL).
///
/// # Safety
/// `list` is NULL or a live `ordq_lease_list`.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_list_len(list: *const ordq_lease_list) -> usize {
    boundary_value(0, || {
        // SAFETY: the caller passes NULL or a live list.
        unsafe { list.as_ref() }.map_or(0, |l| l.items.len())
    })
}

/// Lease `index` of `list`, borrowed: valid until the list is freed (or,
/// once taken with `ordq_lease_list_take`, until that owned lease is
/// freed). NULL when `list` is NULL, `index` is out of range or the lease
/// was taken.
///
/// # Safety
/// `list` is NULL or a live `ordq_lease_list`.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_list_get(
    list: *const ordq_lease_list,
    index: usize,
) -> *const ordq_lease {
    boundary_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live list.
        unsafe { list.as_ref() }
            .and_then(|l| l.items.get(index))
            .and_then(|slot| slot.as_deref())
            .map_or(std::ptr::null(), |l| l as *const ordq_lease)
    })
}

/// Moves lease `index` out of `list` into `*lease_out` as an owned lease
/// (free it with `ordq_lease_free`), leaving an empty slot.
/// `ORDQ_INVALID_ARGUMENT` when `index` is out of range or already taken.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header; no other
/// thread may use `list` during the call.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_list_take(
    list: *mut ordq_lease_list,
    index: usize,
    lease_out: *mut *mut ordq_lease,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (list, out) = unsafe { (obj_mut(list, "list")?, Out::new(lease_out, "lease_out")?) };
        let n = list.items.len();
        let slot = list.items.get_mut(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} is out of range (list has {n} leases)"
            ))
        })?;
        let lease = slot
            .take()
            .ok_or_else(|| Failure::invalid(format!("lease {index} was already taken")))?;
        out.write(Box::into_raw(lease));
        Ok(())
    })
}

/// Frees a lease list and every lease still in it. NULL is a no-op.
///
/// # Safety
/// `list` is NULL or a list not yet freed; it and the leases borrowed from
/// it are invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_list_free(list: *mut ordq_lease_list) {
    boundary_value((), || {
        if !list.is_null() {
            // SAFETY: a non-NULL list came from `Box::into_raw` in
            // `ordq_claim` and is freed once (caller contract).
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

/// Frees an owned lease (from `ordq_lease_list_take`). NULL is a no-op.
/// Never pass a lease borrowed with `ordq_lease_list_get`.
///
/// # Safety
/// `lease` is NULL or an owned lease not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_free(lease: *mut ordq_lease) {
    boundary_value((), || {
        if !lease.is_null() {
            // SAFETY: an owned lease came from `Box::into_raw` in
            // `ordq_lease_list_take` and is freed once (caller contract).
            drop(unsafe { Box::from_raw(lease) });
        }
    })
}

/// Runs an accessor on a lease borrowed from a raw pointer; `fallback`
/// when NULL or on panic.
fn with_lease<T>(lease: *const ordq_lease, fallback: T, f: impl FnOnce(&ordq_lease) -> T) -> T
where
    T: Copy,
{
    boundary_value(fallback, || {
        // SAFETY: every accessor's contract: NULL or a live lease.
        match unsafe { lease.as_ref() } {
            Some(l) => f(l),
            None => fallback,
        }
    })
}

/// Fills `*info_out` with every scalar field of `lease` and borrowed
/// pointers to its strings and payload: the cheapest way to read a lease.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_get_info(
    lease: *const ordq_lease,
    info_out: *mut ordq_lease_info,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (l, out) = unsafe { (obj(lease, "lease")?, Out::new(info_out, "info_out")?) };
        out.write(ordq_lease_info {
            token: l.token,
            offset: l.offset,
            shard: l.shard,
            priority: l.priority,
            attempt: l.attempt,
            max_attempts: l.max_attempts,
            enqueued_at: l.enqueued_at,
            leased_at: l.leased_at,
            expires_at: l.expires_at,
            queue: l.queue.ptr(),
            queue_len: l.queue.len(),
            id: l.id.ptr(),
            id_len: l.id.len(),
            key: l.key.ptr(),
            key_len: l.key.len(),
            payload: l.payload.as_ptr(),
            payload_len: l.payload.len(),
            header_count: l.headers.len(),
        });
        Ok(())
    })
}

/// Writes the lease's token to `*token_out`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_token(
    lease: *const ordq_lease,
    token_out: *mut ordq_token,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (l, out) = unsafe { (obj(lease, "lease")?, Out::new(token_out, "token_out")?) };
        out.write(l.token);
        Ok(())
    })
}

// Scalar accessors are written out (not macro-generated) so that cbindgen
// sees them.

/// Task offset. 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_offset(lease: *const ordq_lease) -> u64 {
    with_lease(lease, 0, |l| l.offset)
}

/// This lease's attempt number (1-based). 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_attempt(lease: *const ordq_lease) -> u32 {
    with_lease(lease, 0, |l| l.attempt)
}

/// Attempts allowed before dead-lettering. 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_max_attempts(lease: *const ordq_lease) -> u32 {
    with_lease(lease, 0, |l| l.max_attempts)
}

/// Task shard. 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_shard(lease: *const ordq_lease) -> u32 {
    with_lease(lease, 0, |l| l.shard)
}

/// Task priority. 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_priority(lease: *const ordq_lease) -> i32 {
    with_lease(lease, 0, |l| l.priority)
}

/// Enqueue time, ms since the Unix epoch. 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_enqueued_at(lease: *const ordq_lease) -> u64 {
    with_lease(lease, 0, |l| l.enqueued_at)
}

/// Lease time, ms since the Unix epoch. 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_leased_at(lease: *const ordq_lease) -> u64 {
    with_lease(lease, 0, |l| l.leased_at)
}

/// Lease expiry at claim time, ms since the Unix epoch (a heartbeat
/// returns the new one). 0 when `lease` is NULL.
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_expires_at(lease: *const ordq_lease) -> u64 {
    with_lease(lease, 0, |l| l.expires_at)
}

/// Number of headers of `lease` (0 for NULL).
///
/// # Safety
/// `lease` is NULL or a live lease.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_header_count(lease: *const ordq_lease) -> usize {
    with_lease(lease, 0, |l| l.headers.len())
}

/// Writes a borrowed string of a lease to `(ptr_out, len_out)`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
unsafe fn string_accessor(
    lease: *const ordq_lease,
    ptr_out: *mut *const c_char,
    len_out: *mut usize,
    err_out: *mut *mut ordq_error,
    pick: impl FnOnce(&ordq_lease) -> &NulString,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (l, p, n) = unsafe {
            (
                obj(lease, "lease")?,
                Out::new(ptr_out, "ptr_out")?,
                Out::new(len_out, "len_out")?,
            )
        };
        let s = pick(l);
        p.write(s.ptr());
        n.write(s.len());
        Ok(())
    })
}

/// The task key (UTF-8, borrowed from the lease, also NUL-terminated).
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_key(
    lease: *const ordq_lease,
    ptr_out: *mut *const c_char,
    len_out: *mut usize,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    // SAFETY: forwarded caller contract.
    unsafe { string_accessor(lease, ptr_out, len_out, err_out, |l| &l.key) }
}

/// The task id (32 hex characters, borrowed, also NUL-terminated).
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_id(
    lease: *const ordq_lease,
    ptr_out: *mut *const c_char,
    len_out: *mut usize,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    // SAFETY: forwarded caller contract.
    unsafe { string_accessor(lease, ptr_out, len_out, err_out, |l| &l.id) }
}

/// The queue name (borrowed, also NUL-terminated).
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_queue(
    lease: *const ordq_lease,
    ptr_out: *mut *const c_char,
    len_out: *mut usize,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    // SAFETY: forwarded caller contract.
    unsafe { string_accessor(lease, ptr_out, len_out, err_out, |l| &l.queue) }
}

/// The payload bytes (borrowed from the lease; never NULL, even when
/// empty).
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_payload(
    lease: *const ordq_lease,
    ptr_out: *mut *const u8,
    len_out: *mut usize,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (l, p, n) = unsafe {
            (
                obj(lease, "lease")?,
                Out::new(ptr_out, "ptr_out")?,
                Out::new(len_out, "len_out")?,
            )
        };
        p.write(l.payload.as_ptr());
        n.write(l.payload.len());
        Ok(())
    })
}

/// Header `index` of `lease` (headers are sorted by name): name and value,
/// UTF-8, borrowed, also NUL-terminated. `ORDQ_INVALID_ARGUMENT` when
/// `index` is out of range.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_lease_header_get(
    lease: *const ordq_lease,
    index: usize,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
    value_out: *mut *const c_char,
    value_len_out: *mut usize,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (l, np, nl, vp, vl) = unsafe {
            (
                obj(lease, "lease")?,
                Out::new(name_out, "name_out")?,
                Out::new(name_len_out, "name_len_out")?,
                Out::new(value_out, "value_out")?,
                Out::new(value_len_out, "value_len_out")?,
            )
        };
        let (name, value) = l.headers.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "header index {index} is out of range (lease has {} headers)",
                l.headers.len()
            ))
        })?;
        np.write(name.ptr());
        nl.write(name.len());
        vp.write(value.ptr());
        vl.write(value.len());
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::CStr;

    fn sample() -> Lease {
        Lease {
            token: Token {
                queue_id: 1,
                offset: 9,
                fence: 77,
            },
            queue: "q".into(),
            id: "ab".repeat(16),
            offset: 9,
            key: "k\0ey".into(),
            shard: 3,
            priority: -1,
            attempt: 2,
            max_attempts: 5,
            payload: b"pay".to_vec(),
            headers: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            enqueued_at: 10,
            leased_at: 11,
            expires_at: 12,
        }
    }

    #[test]
    fn info_and_accessors() {
        let lease = Box::new(ordq_lease::from(sample()));
        let p: *const ordq_lease = &*lease;
        let mut info = std::mem::MaybeUninit::<ordq_lease_info>::uninit();
        // SAFETY: `p` is live; out-params point to locals.
        unsafe {
            let st = ordq_lease_get_info(p, info.as_mut_ptr(), std::ptr::null_mut());
            assert_eq!(st, ordq_status::ORDQ_OK);
            let info = info.assume_init();
            assert_eq!(info.token.fence, 77);
            assert_eq!((info.offset, info.shard, info.priority), (9, 3, -1));
            assert_eq!((info.attempt, info.max_attempts), (2, 5));
            assert_eq!(
                (info.enqueued_at, info.leased_at, info.expires_at),
                (10, 11, 12)
            );
            let key = std::slice::from_raw_parts(info.key.cast::<u8>(), info.key_len);
            assert_eq!(key, b"k\0ey");
            assert_eq!(CStr::from_ptr(info.id).to_bytes().len(), 32);
            assert_eq!(info.header_count, 2);
            assert_eq!(ordq_lease_attempt(p), 2);
            assert_eq!(ordq_lease_priority(p), -1);
            assert_eq!(ordq_lease_offset(std::ptr::null()), 0);
            let (mut np, mut nl, mut vp, mut vl) = (std::ptr::null(), 0, std::ptr::null(), 0);
            let st = ordq_lease_header_get(
                p,
                0,
                &mut np,
                &mut nl,
                &mut vp,
                &mut vl,
                std::ptr::null_mut(),
            );
            assert_eq!(st, ordq_status::ORDQ_OK);
            assert_eq!(CStr::from_ptr(np).to_bytes(), b"a");
            assert_eq!((nl, vl), (1, 1));
            let st = ordq_lease_header_get(
                p,
                2,
                &mut np,
                &mut nl,
                &mut vp,
                &mut vl,
                std::ptr::null_mut(),
            );
            assert_eq!(st, ordq_status::ORDQ_INVALID_ARGUMENT);
        }
    }

    #[test]
    fn take_moves_out_and_leaves_a_hole() {
        let list = Box::into_raw(Box::new(ordq_lease_list {
            items: vec![Some(Box::new(ordq_lease::from(sample())))],
        }));
        // SAFETY: `list` is live until freed at the end.
        unsafe {
            let borrowed = ordq_lease_list_get(list, 0);
            assert!(!borrowed.is_null());
            let mut owned = std::ptr::null_mut();
            let st = ordq_lease_list_take(list, 0, &mut owned, std::ptr::null_mut());
            assert_eq!(st, ordq_status::ORDQ_OK);
            assert_eq!(owned.cast_const(), borrowed);
            assert!(ordq_lease_list_get(list, 0).is_null());
            let st = ordq_lease_list_take(list, 0, &mut owned, std::ptr::null_mut());
            assert_eq!(st, ordq_status::ORDQ_INVALID_ARGUMENT);
            assert_eq!(ordq_lease_list_len(list), 1);
            ordq_lease_list_free(list);
            assert_eq!(ordq_lease_offset(owned), 9);
            ordq_lease_free(owned);
        }
    }
}
