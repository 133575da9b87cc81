//! The only module with `unsafe`: every call into the C ABI of `ordq-ffi`
//! (the `#[no_mangle] extern "C"` functions Go, Python and C call, linked
//! here from the rlib), the RAII owners of the handles it returns, and
//! the copying of its borrowed outputs into owned Rust values.
//!
//! Soundness rests on the ABI's documented contract (docs/FFI.md,
//! include/ordq.h): inputs are borrowed `(ptr, len)` pairs copied before a
//! call returns, so any live Rust borrow passed for the duration of a call
//! is enough; outputs are written only on success; every owned object has
//! a `_free`; borrowed output pointers stay valid until their owner is
//! freed. Every function here takes only safe Rust types, so the rest of
//! the crate cannot break those rules.

use crate::error::{Error, ErrorKind, Result};
use crate::options::{ClaimOptions, EnqueueItem, EnqueueOptions};
use crate::types::{epoch_ms, millis, time, Completion, Lease, Receipt, Token};
use ordq_ffi as ffi;
use ordq_ffi::{
    ordq_bytes, ordq_claim_options, ordq_complete_item, ordq_completion, ordq_db,
    ordq_enqueue_item, ordq_enqueue_options, ordq_error, ordq_fail_outcome, ordq_header,
    ordq_lease, ordq_lease_info, ordq_lease_list, ordq_options, ordq_queue_config, ordq_receipt,
    ordq_status, ordq_string_list, ordq_token,
};
use std::collections::BTreeMap;
use std::ffi::{c_char, CStr};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

/// A paged task-list call: `(db, queue, queue_len, has_after, after, limit,
/// json_out, err)`.
type TaskListFn = unsafe extern "C" fn(
    *const ordq_db,
    *const c_char,
    usize,
    bool,
    u64,
    usize,
    *mut ordq_bytes,
    *mut *mut ordq_error,
) -> ordq_status;

/// The library's packed ABI version (`major << 16 | minor << 8 | patch`).
pub(crate) fn abi_version() -> u32 {
    ffi::ordq_abi_version()
}

/// The library's semver string.
pub(crate) fn version_string() -> &'static str {
    // SAFETY: `ordq_version_string` returns a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ffi::ordq_version_string()) };
    s.to_str().unwrap_or("?")
}

/// The ABI's stable name of a status value (`"UNKNOWN"` if unknown).
pub(crate) fn status_name(code: i32) -> &'static str {
    // SAFETY: `ordq_status_name` returns a static NUL-terminated string
    // for any value.
    let s = unsafe { CStr::from_ptr(ffi::ordq_status_name(code)) };
    s.to_str().unwrap_or("UNKNOWN")
}

/// Turns a failed call's status and owned error (possibly NULL) into an
/// [`Error`], freeing the C error.
fn take_error(st: ordq_status, err: *mut ordq_error) -> Error {
    let code = st as i32;
    let message = if err.is_null() {
        status_name(code).to_string()
    } else {
        // SAFETY: `err` is the owned error the failed call wrote to our
        // `err_out`; its message is a NUL-terminated string borrowed from it,
        // copied before the error is freed exactly once below.
        unsafe {
            let m = CStr::from_ptr(ffi::ordq_error_message(err))
                .to_string_lossy()
                .into_owned();
            ffi::ordq_error_free(err);
            m
        }
    };
    Error::new(ErrorKind::from_code(code), message)
}

/// Runs one fallible C call with a fresh `err_out` slot.
fn call(f: impl FnOnce(*mut *mut ordq_error) -> ordq_status) -> Result<()> {
    let mut err: *mut ordq_error = ptr::null_mut();
    match f(&mut err) {
        ordq_status::ORDQ_OK => Ok(()),
        st => Err(take_error(st, err)),
    }
}

/// A `&str` as the ABI's `(ptr, len)`.
fn s(x: &str) -> (*const c_char, usize) {
    (x.as_ptr().cast(), x.len())
}

/// Bytes borrowed from an ordq object as a slice (empty for len 0).
///
/// # Safety
/// Unless `len` is 0, `ptr` points to `len` bytes valid for `'a`.
unsafe fn borrowed<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: per the function contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// An owned copy of a UTF-8 string ordq handed out.
fn owned_str(what: &str, b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| {
        Error::new(
            ErrorKind::Unknown(0),
            format!("ordq returned a {what} that is not UTF-8"),
        )
    })
}

fn token_in(t: Token) -> ordq_token {
    ordq_token {
        queue_id: t.queue_id,
        offset: t.offset,
        fence: t.fence,
    }
}

fn token_out(t: ordq_token) -> Token {
    Token {
        queue_id: t.queue_id,
        offset: t.offset,
        fence: t.fence,
    }
}

fn receipt_out(r: &ordq_receipt) -> Receipt {
    // 32 hex characters and a NUL (ASCII, so one byte per `c_char`).
    let bytes = r.id.map(|c| c as u8);
    let len = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    let id = String::from_utf8_lossy(&bytes[..len]).into_owned();
    Receipt {
        offset: r.offset,
        shard: r.shard,
        id,
        duplicate: r.duplicate,
    }
}

fn completion_out(c: ordq_completion) -> Completion {
    Completion {
        offset: c.offset,
        committed_at: time(c.committed_at),
        duplicate: c.duplicate,
    }
}

/// Owns an `ordq_bytes` until it is copied out.
struct Bytes(ordq_bytes);

impl Bytes {
    fn new() -> Bytes {
        Bytes(ordq_bytes {
            ptr: ptr::null_mut(),
            len: 0,
        })
    }
    fn to_vec(&self) -> Vec<u8> {
        // SAFETY: filled by a successful call (or still zeroed): `ptr` holds
        // `len` bytes owned by this struct until `Drop`.
        unsafe { borrowed(self.0.ptr, self.0.len) }.to_vec()
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        // SAFETY: zeroed or filled by ordq and unmodified; `ordq_bytes_free`
        // resets it, so this can never double free.
        unsafe { ffi::ordq_bytes_free(&mut self.0) }
    }
}

/// Owns an `ordq_lease_list` from `ordq_claim`.
struct LeaseList(*mut ordq_lease_list);

impl Drop for LeaseList {
    fn drop(&mut self) {
        // SAFETY: the list came from a successful `ordq_claim` and is freed
        // once; nothing borrowed from it outlives this guard.
        unsafe { ffi::ordq_lease_list_free(self.0) }
    }
}

/// Owns an `ordq_string_list` from `ordq_queue_list`.
struct StringList(*mut ordq_string_list);

impl Drop for StringList {
    fn drop(&mut self) {
        // SAFETY: the list came from a successful `ordq_queue_list` and is
        // freed once.
        unsafe { ffi::ordq_string_list_free(self.0) }
    }
}

/// C enqueue options built from [`EnqueueOptions`]; the header array and
/// every pointer borrow `o`, so the value must not outlive it.
struct RawOpts {
    opts: ordq_enqueue_options,
    _headers: Vec<ordq_header>,
}

impl RawOpts {
    fn new(o: &EnqueueOptions) -> Result<RawOpts> {
        if o.max_attempts == Some(0) {
            return Err(Error::invalid("max_attempts must be at least 1"));
        }
        let headers: Vec<ordq_header> = o
            .headers
            .iter()
            .map(|(n, v)| ordq_header {
                name: n.as_ptr().cast(),
                name_len: n.len(),
                value: v.as_ptr().cast(),
                value_len: v.len(),
            })
            .collect();
        let (idem, idem_len) = match &o.idempotency_key {
            Some(k) => s(k),
            None => (ptr::null(), 0),
        };
        Ok(RawOpts {
            opts: ordq_enqueue_options {
                priority: o.priority,
                max_attempts: o.max_attempts.unwrap_or(0),
                not_before_ms: o.not_before.map_or(0, epoch_ms),
                delay_ms: o.delay.map_or(0, millis),
                idempotency_key: idem,
                idempotency_key_len: idem_len,
                // The Vec's heap buffer does not move when `headers` is
                // moved into the struct below.
                headers: headers.as_ptr(),
                headers_len: headers.len(),
            },
            _headers: headers,
        })
    }
}

/// An open `ordq_db` handle; freed (closing first if needed) on drop.
pub(crate) struct DbHandle(NonNull<ordq_db>);

// SAFETY: the C ABI documents `ordq_db` as thread-safe: any number of
// threads may call any function on one handle at once (the engine
// serialises writes on its own writer thread), and `ordq_db_close` may race
// with other calls. The one exclusive operation, `ordq_db_free`, is only
// called from `Drop`, which Rust runs when no borrow of the handle is left.
// The handle has no thread affinity, so it may also move between threads.
unsafe impl Send for DbHandle {}
// SAFETY: see `Send` above: all `&self` methods map to calls the ABI
// allows concurrently on one handle.
unsafe impl Sync for DbHandle {}

impl Drop for DbHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from `ordq_open`, is freed exactly once,
        // and `&mut self` proves no other call is using it.
        unsafe { ffi::ordq_db_free(self.0.as_ptr()) }
    }
}

impl DbHandle {
    fn ptr(&self) -> *const ordq_db {
        self.0.as_ptr()
    }

    /// `ordq_open`.
    pub(crate) fn open(uri: &str, opts: &ordq_options) -> Result<DbHandle> {
        let (p, n) = s(uri);
        let mut db: *mut ordq_db = ptr::null_mut();
        // SAFETY: `uri` and `opts` are live borrows for the call; `db` and
        // `e` are writable locals.
        call(|e| unsafe { ffi::ordq_open(p, n, opts, &mut db, e) })?;
        NonNull::new(db)
            .map(DbHandle)
            .ok_or_else(|| Error::new(ErrorKind::NullPointer, "ordq_open returned no handle"))
    }

    /// `ordq_db_close`.
    pub(crate) fn close(&self) -> Result<()> {
        // SAFETY: `self.ptr()` is a live handle (freed only in Drop).
        call(|e| unsafe { ffi::ordq_db_close(self.ptr(), e) })
    }

    /// `ordq_db_sync`.
    pub(crate) fn sync(&self) -> Result<()> {
        // SAFETY: live handle.
        call(|e| unsafe { ffi::ordq_db_sync(self.ptr(), e) })
    }

    /// `ordq_db_checkpoint`.
    pub(crate) fn checkpoint_json(&self) -> Result<Vec<u8>> {
        let mut out = Bytes::new();
        // SAFETY: live handle; `out` is a writable, zeroed `ordq_bytes`
        // that the guard frees.
        call(|e| unsafe { ffi::ordq_db_checkpoint(self.ptr(), &mut out.0, e) })?;
        Ok(out.to_vec())
    }

    /// `ordq_db_verify_json`.
    pub(crate) fn verify_json(&self, pubkey: Option<&[u8; 32]>) -> Result<Vec<u8>> {
        let mut out = Bytes::new();
        let key = pubkey.map_or(ptr::null(), |k| k.as_ptr());
        // SAFETY: live handle; `key` NULL or 32 readable bytes; `out` as above.
        call(|e| unsafe { ffi::ordq_db_verify_json(self.ptr(), key, &mut out.0, e) })?;
        Ok(out.to_vec())
    }

    /// `ordq_db_audit_json`.
    pub(crate) fn audit_json(&self, queue: &str, key: Option<&str>) -> Result<Vec<u8>> {
        let mut out = Bytes::new();
        let (q, qn) = s(queue);
        let (k, kn) = key.map_or((ptr::null(), 0), s);
        // SAFETY: live handle; strings borrowed for the call; `out` as above.
        call(|e| unsafe { ffi::ordq_db_audit_json(self.ptr(), q, qn, k, kn, &mut out.0, e) })?;
        Ok(out.to_vec())
    }

    /// `ordq_queue_create`.
    pub(crate) fn queue_create(&self, name: &str, cfg: &ordq_queue_config) -> Result<()> {
        let (p, n) = s(name);
        // SAFETY: live handle; `name` and `cfg` are borrowed for the call.
        call(|e| unsafe { ffi::ordq_queue_create(self.ptr(), p, n, cfg, e) })
    }

    /// `ordq_queue_create_if_not_exists`.
    pub(crate) fn queue_create_if_not_exists(
        &self,
        name: &str,
        cfg: &ordq_queue_config,
    ) -> Result<()> {
        let (p, n) = s(name);
        // SAFETY: live handle; `name` and `cfg` are borrowed for the call.
        call(|e| unsafe { ffi::ordq_queue_create_if_not_exists(self.ptr(), p, n, cfg, e) })
    }

    /// `ordq_queue_get`.
    pub(crate) fn queue_get(&self, name: &str) -> Result<ordq_queue_config> {
        let (p, n) = s(name);
        let mut cfg = MaybeUninit::<ordq_queue_config>::uninit();
        // SAFETY: live handle; `name` borrowed; `cfg` is writable.
        call(|e| unsafe { ffi::ordq_queue_get(self.ptr(), p, n, cfg.as_mut_ptr(), e) })?;
        // SAFETY: the call succeeded, so it wrote the whole struct.
        Ok(unsafe { cfg.assume_init() })
    }

    /// A JSON-returning call taking `(db, name, name_len, json_out, err)`.
    fn json_by_name(
        &self,
        name: &str,
        f: unsafe extern "C" fn(
            *const ordq_db,
            *const c_char,
            usize,
            *mut ordq_bytes,
            *mut *mut ordq_error,
        ) -> ordq_status,
    ) -> Result<Vec<u8>> {
        let (p, n) = s(name);
        let mut out = Bytes::new();
        // SAFETY: live handle; `name` borrowed; `out` is a writable, zeroed
        // `ordq_bytes` that the guard frees.
        call(|e| unsafe { f(self.ptr(), p, n, &mut out.0, e) })?;
        Ok(out.to_vec())
    }

    /// `ordq_queue_get_json`.
    pub(crate) fn queue_get_json(&self, name: &str) -> Result<Vec<u8>> {
        self.json_by_name(name, ffi::ordq_queue_get_json)
    }

    /// `ordq_queue_stats_json`.
    pub(crate) fn queue_stats_json(&self, name: &str) -> Result<Vec<u8>> {
        self.json_by_name(name, ffi::ordq_queue_stats_json)
    }

    /// `ordq_queue_list`.
    pub(crate) fn queue_list(&self) -> Result<Vec<String>> {
        let mut list: *mut ordq_string_list = ptr::null_mut();
        // SAFETY: live handle; `list` is writable.
        call(|e| unsafe { ffi::ordq_queue_list(self.ptr(), &mut list, e) })?;
        let list = StringList(list);
        // SAFETY: `list.0` is a live list until the guard drops.
        let n = unsafe { ffi::ordq_string_list_len(list.0) };
        (0..n)
            .map(|i| {
                // SAFETY: live list, `i < len`: a NUL-terminated string
                // borrowed from the list, copied before the list is freed.
                let p = unsafe { ffi::ordq_string_list_get(list.0, i) };
                if p.is_null() {
                    return Err(Error::new(
                        ErrorKind::NullPointer,
                        "ordq_string_list_get returned NULL in range",
                    ));
                }
                // SAFETY: non-NULL, NUL-terminated, borrowed from `list`.
                owned_str("queue name", unsafe { CStr::from_ptr(p) }.to_bytes())
            })
            .collect()
    }

    /// `ordq_queue_delete`.
    pub(crate) fn queue_delete(&self, name: &str) -> Result<()> {
        let (p, n) = s(name);
        // SAFETY: live handle; `name` borrowed.
        call(|e| unsafe { ffi::ordq_queue_delete(self.ptr(), p, n, e) })
    }

    /// `ordq_enqueue`; default options are passed as NULL.
    pub(crate) fn enqueue(
        &self,
        queue: &str,
        key: &str,
        payload: &[u8],
        opts: &EnqueueOptions,
    ) -> Result<Receipt> {
        let raw = if opts.is_default() {
            None
        } else {
            Some(RawOpts::new(opts)?)
        };
        let o = raw.as_ref().map_or(ptr::null(), |r| &r.opts as *const _);
        let ((qp, qn), (kp, kn)) = (s(queue), s(key));
        let mut r = MaybeUninit::<ordq_receipt>::uninit();
        // SAFETY: live handle; every input (`queue`, `key`, `payload`, the
        // options and the header array they point to, all borrowed from
        // `opts`) outlives the call; `r` is writable.
        call(|e| unsafe {
            ffi::ordq_enqueue(
                self.ptr(),
                qp,
                qn,
                kp,
                kn,
                payload.as_ptr(),
                payload.len(),
                o,
                r.as_mut_ptr(),
                e,
            )
        })?;
        // SAFETY: written on success.
        Ok(receipt_out(&unsafe { r.assume_init() }))
    }

    /// `ordq_enqueue_batch`.
    pub(crate) fn enqueue_batch(
        &self,
        queue: &str,
        items: &[EnqueueItem<'_>],
    ) -> Result<Vec<Receipt>> {
        // Pass 1: C options for the items that set any. `raws` is not
        // touched after this loop, so pointers into it stay valid.
        let mut raws: Vec<RawOpts> = Vec::new();
        let mut which: Vec<usize> = Vec::with_capacity(items.len());
        for it in items {
            if it.opts.is_default() {
                which.push(usize::MAX);
            } else {
                which.push(raws.len());
                raws.push(RawOpts::new(&it.opts)?);
            }
        }
        // Pass 2: the item array.
        let c_items: Vec<ordq_enqueue_item> = items
            .iter()
            .zip(&which)
            .map(|(it, &w)| ordq_enqueue_item {
                key: it.key.as_ptr().cast(),
                key_len: it.key.len(),
                payload: it.payload.as_ptr(),
                payload_len: it.payload.len(),
                opts: raws.get(w).map_or(ptr::null(), |r| &r.opts as *const _),
            })
            .collect();
        let (qp, qn) = s(queue);
        let mut out: Vec<ordq_receipt> = Vec::with_capacity(items.len());
        // SAFETY: live handle; `c_items` and everything it points to
        // (`items`' keys and payloads, `raws` and their header arrays) outlive
        // the call; `out` has capacity for `items.len()` receipts.
        call(|e| unsafe {
            ffi::ordq_enqueue_batch(
                self.ptr(),
                qp,
                qn,
                c_items.as_ptr(),
                c_items.len(),
                out.as_mut_ptr(),
                e,
            )
        })?;
        // SAFETY: on success the call wrote all `items.len()` receipts.
        unsafe { out.set_len(items.len()) };
        Ok(out.iter().map(receipt_out).collect())
    }

    /// `ordq_claim`, copying every lease into an owned [`Lease`].
    pub(crate) fn claim(
        &self,
        queue: &str,
        worker: &str,
        opts: &ClaimOptions,
        lease_ms: u64,
        wait_ms: u64,
    ) -> Result<Vec<Lease>> {
        let c = ordq_claim_options {
            max: opts.max,
            lease_ms,
            wait_ms,
            shards: if opts.shards.is_empty() {
                ptr::null()
            } else {
                opts.shards.as_ptr()
            },
            shards_len: opts.shards.len(),
        };
        let ((qp, qn), (wp, wn)) = (s(queue), s(worker));
        let mut list: *mut ordq_lease_list = ptr::null_mut();
        // SAFETY: live handle; `queue`, `worker`, `c` and the shard array it
        // points to (borrowed from `opts`) outlive the call; `list` is
        // writable.
        call(|e| unsafe { ffi::ordq_claim(self.ptr(), qp, qn, wp, wn, &c, &mut list, e) })?;
        let list = LeaseList(list);
        // SAFETY: `list.0` is live until the guard drops.
        let n = unsafe { ffi::ordq_lease_list_len(list.0) };
        let mut leases = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: live list, `i < len`, nothing taken: a borrowed lease
            // valid until the list is freed, after this loop.
            let l = unsafe { ffi::ordq_lease_list_get(list.0, i) };
            if l.is_null() {
                return Err(Error::new(
                    ErrorKind::NullPointer,
                    "ordq_lease_list_get returned NULL in range",
                ));
            }
            leases.push(read_lease(l)?);
        }
        Ok(leases)
    }

    /// `ordq_heartbeat`: the new expiry, ms since the epoch.
    pub(crate) fn heartbeat(&self, token: Token, lease_ms: u64) -> Result<u64> {
        let mut exp = 0u64;
        // SAFETY: live handle; `exp` is writable.
        call(|e| unsafe {
            ffi::ordq_heartbeat(self.ptr(), token_in(token), lease_ms, &mut exp, e)
        })?;
        Ok(exp)
    }

    /// `ordq_start`.
    pub(crate) fn start(&self, token: Token) -> Result<()> {
        // SAFETY: live handle.
        call(|e| unsafe { ffi::ordq_start(self.ptr(), token_in(token), e) })
    }

    /// `ordq_complete`.
    pub(crate) fn complete(&self, token: Token, result: &[u8]) -> Result<Completion> {
        let mut c = ordq_completion::default();
        // SAFETY: live handle; `result` borrowed for the call; `c` writable.
        call(|e| unsafe {
            ffi::ordq_complete(
                self.ptr(),
                token_in(token),
                result.as_ptr(),
                result.len(),
                &mut c,
                e,
            )
        })?;
        Ok(completion_out(c))
    }

    /// `ordq_complete_batch`, with one outcome per item.
    pub(crate) fn complete_batch(
        &self,
        items: &[(Token, &[u8])],
    ) -> Result<Vec<Result<Completion>>> {
        let c_items: Vec<ordq_complete_item> = items
            .iter()
            .map(|(t, r)| ordq_complete_item {
                token: token_in(*t),
                result: r.as_ptr(),
                result_len: r.len(),
            })
            .collect();
        let mut comps = vec![ordq_completion::default(); items.len()];
        let mut statuses = vec![ordq_status::ORDQ_OK; items.len()];
        // SAFETY: live handle; `c_items` and the results it points to
        // outlive the call; both output arrays hold `items.len()` elements.
        call(|e| unsafe {
            ffi::ordq_complete_batch(
                self.ptr(),
                c_items.as_ptr(),
                c_items.len(),
                comps.as_mut_ptr(),
                statuses.as_mut_ptr(),
                e,
            )
        })?;
        Ok(statuses
            .iter()
            .zip(comps)
            .enumerate()
            .map(|(i, (&st, c))| match st {
                ordq_status::ORDQ_OK => Ok(completion_out(c)),
                st => {
                    let code = st as i32;
                    Err(Error::new(
                        ErrorKind::from_code(code),
                        format!("complete_batch item {i}: {}", status_name(code)),
                    ))
                }
            })
            .collect())
    }

    /// `ordq_fail`.
    pub(crate) fn fail(
        &self,
        token: Token,
        error: &str,
        retryable: bool,
    ) -> Result<ordq_fail_outcome> {
        let (p, n) = s(error);
        let mut o = ordq_fail_outcome::default();
        // SAFETY: live handle; `error` borrowed; `o` writable.
        call(|e| unsafe {
            ffi::ordq_fail(self.ptr(), token_in(token), p, n, retryable, &mut o, e)
        })?;
        Ok(o)
    }

    /// `ordq_release`.
    pub(crate) fn release(&self, token: Token) -> Result<()> {
        // SAFETY: live handle.
        call(|e| unsafe { ffi::ordq_release(self.ptr(), token_in(token), e) })
    }

    /// A JSON-returning call taking `(db, queue, queue_len, offset, json_out, err)`.
    fn json_by_offset(
        &self,
        queue: &str,
        offset: u64,
        f: unsafe extern "C" fn(
            *const ordq_db,
            *const c_char,
            usize,
            u64,
            *mut ordq_bytes,
            *mut *mut ordq_error,
        ) -> ordq_status,
    ) -> Result<Vec<u8>> {
        let (p, n) = s(queue);
        let mut out = Bytes::new();
        // SAFETY: live handle; `queue` borrowed; `out` is a writable zeroed
        // `ordq_bytes` the guard frees.
        call(|e| unsafe { f(self.ptr(), p, n, offset, &mut out.0, e) })?;
        Ok(out.to_vec())
    }

    /// `ordq_task_get_json`.
    pub(crate) fn task_get_json(&self, queue: &str, offset: u64) -> Result<Vec<u8>> {
        self.json_by_offset(queue, offset, ffi::ordq_task_get_json)
    }

    /// `ordq_task_faults_json`.
    pub(crate) fn task_faults_json(&self, queue: &str, offset: u64) -> Result<Vec<u8>> {
        self.json_by_offset(queue, offset, ffi::ordq_task_faults_json)
    }

    /// `ordq_dlq_get_json`.
    pub(crate) fn dlq_get_json(&self, queue: &str, offset: u64) -> Result<Vec<u8>> {
        self.json_by_offset(queue, offset, ffi::ordq_dlq_get_json)
    }

    /// `ordq_queue_pending_json`.
    pub(crate) fn queue_pending_json(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u8>> {
        self.task_list_json(queue, after, limit, ffi::ordq_queue_pending_json)
    }

    /// `ordq_dlq_list_json`.
    pub(crate) fn dlq_list_json(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u8>> {
        self.task_list_json(queue, after, limit, ffi::ordq_dlq_list_json)
    }

    /// A paged task-list call (`ordq_queue_pending_json`,
    /// `ordq_dlq_list_json`).
    fn task_list_json(
        &self,
        queue: &str,
        after: Option<u64>,
        limit: usize,
        list: TaskListFn,
    ) -> Result<Vec<u8>> {
        let (p, n) = s(queue);
        let mut out = Bytes::new();
        // SAFETY: live handle; `queue` borrowed; `out` writable, freed by
        // its guard.
        call(|e| unsafe {
            list(
                self.ptr(),
                p,
                n,
                after.is_some(),
                after.unwrap_or(0),
                limit,
                &mut out.0,
                e,
            )
        })?;
        Ok(out.to_vec())
    }

    /// `ordq_dlq_redrive` with an `ORDQ_REDRIVE_*` mode.
    pub(crate) fn dlq_redrive(&self, queue: &str, offset: u64, mode: i32) -> Result<Receipt> {
        let (p, n) = s(queue);
        let mut r = MaybeUninit::<ordq_receipt>::uninit();
        // SAFETY: live handle; `queue` borrowed; `r` writable.
        call(|e| unsafe {
            ffi::ordq_dlq_redrive(self.ptr(), p, n, offset, mode, r.as_mut_ptr(), e)
        })?;
        // SAFETY: written on success.
        Ok(receipt_out(&unsafe { r.assume_init() }))
    }

    /// `ordq_dlq_purge`: one offset, or all when `offset` is `None`.
    pub(crate) fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64> {
        let (p, n) = s(queue);
        let mut purged = 0u64;
        // SAFETY: live handle; `queue` borrowed; `purged` writable.
        call(|e| unsafe {
            ffi::ordq_dlq_purge(
                self.ptr(),
                p,
                n,
                offset.is_none(),
                offset.unwrap_or(0),
                &mut purged,
                e,
            )
        })?;
        Ok(purged)
    }
}

/// Copies a lease borrowed from a live list into an owned [`Lease`].
fn read_lease(l: *const ordq_lease) -> Result<Lease> {
    let mut info = MaybeUninit::<ordq_lease_info>::uninit();
    // SAFETY: `l` is a live lease of a list the caller keeps alive; `info`
    // is writable.
    call(|e| unsafe { ffi::ordq_lease_get_info(l, info.as_mut_ptr(), e) })?;
    // SAFETY: written on success.
    let info = unsafe { info.assume_init() };
    // SAFETY: the info's pointers borrow from the lease, alive for this
    // whole function; each is copied before returning.
    let (queue, id, key, payload) = unsafe {
        (
            borrowed(info.queue.cast(), info.queue_len),
            borrowed(info.id.cast(), info.id_len),
            borrowed(info.key.cast(), info.key_len),
            borrowed(info.payload, info.payload_len),
        )
    };
    let mut headers = BTreeMap::new();
    for i in 0..info.header_count {
        let (mut np, mut nl, mut vp, mut vl) = (ptr::null(), 0usize, ptr::null(), 0usize);
        // SAFETY: live lease; every out-param is a writable local.
        call(|e| unsafe {
            ffi::ordq_lease_header_get(l, i, &mut np, &mut nl, &mut vp, &mut vl, e)
        })?;
        // SAFETY: on success the pointers borrow `nl`/`vl` bytes from the
        // live lease; copied at once.
        let (name, value) = unsafe { (borrowed(np.cast(), nl), borrowed(vp.cast(), vl)) };
        headers.insert(
            owned_str("header name", name)?,
            owned_str("header value", value)?,
        );
    }
    Ok(Lease {
        token: token_out(info.token),
        queue: owned_str("queue name", queue)?,
        id: owned_str("task id", id)?,
        offset: info.offset,
        key: owned_str("task key", key)?,
        shard: info.shard,
        priority: info.priority,
        attempt: info.attempt,
        max_attempts: info.max_attempts,
        payload: payload.to_vec(),
        headers,
        enqueued_at: time(info.enqueued_at),
        leased_at: time(info.leased_at),
        expires_at: time(info.expires_at),
    })
}
