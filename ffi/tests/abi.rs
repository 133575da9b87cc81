//! The C ABI called from Rust exactly as a foreign caller would: one handle
//! shared by threads, extreme durations, and the documented JSON shapes.

use ordq_ffi::*;
use serde_json::Value;
use std::ffi::CStr;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

/// A raw handle that may cross threads: the header documents `ordq_db` as
/// thread-safe.
#[derive(Clone, Copy)]
struct Shared(*const ordq_db);
// SAFETY: `ordq_db` is documented thread-safe; the pointer stays valid until
// `ordq_db_free`, which each test calls only after joining its threads.
unsafe impl Send for Shared {}

fn temp_path(name: &str) -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ordq-ffi-abi-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Panics with the error message when `st` is not OK.
fn ok(st: ordq_status, err: *mut ordq_error) {
    if st != ordq_status::ORDQ_OK {
        // SAFETY: on failure `err` is NULL or an owned error.
        let msg = unsafe { CStr::from_ptr(ordq_error_message(err)) };
        panic!("{st:?}: {}", msg.to_string_lossy());
    }
}

fn open(path: &std::path::Path) -> *mut ordq_db {
    let uri = path.to_str().unwrap();
    let mut opts = std::mem::MaybeUninit::uninit();
    let mut db = ptr::null_mut();
    let mut err = ptr::null_mut();
    // SAFETY: all pointers refer to live locals.
    unsafe {
        ordq_options_init(opts.as_mut_ptr());
        let mut opts = opts.assume_init();
        opts.durability = ORDQ_DURABILITY_NONE;
        ok(
            ordq_open(uri.as_ptr().cast(), uri.len(), &opts, &mut db, &mut err),
            err,
        );
    }
    db
}

fn create_queue(db: *const ordq_db, name: &str, ordering: i32) {
    let mut cfg = std::mem::MaybeUninit::uninit();
    let mut err = ptr::null_mut();
    // SAFETY: live locals.
    unsafe {
        ordq_queue_config_init(cfg.as_mut_ptr());
        let mut cfg = cfg.assume_init();
        cfg.ordering = ordering;
        ok(
            ordq_queue_create(db, name.as_ptr().cast(), name.len(), &cfg, &mut err),
            err,
        );
    }
}

fn json(f: impl FnOnce(*mut ordq_bytes, *mut *mut ordq_error) -> ordq_status) -> Value {
    let mut out = ordq_bytes {
        ptr: ptr::null_mut(),
        len: 0,
    };
    let mut err = ptr::null_mut();
    ok(f(&mut out, &mut err), err);
    // SAFETY: `out` was filled by ordq.
    let v = unsafe { serde_json::from_slice(std::slice::from_raw_parts(out.ptr, out.len)) };
    // SAFETY: as above.
    unsafe { ordq_bytes_free(&mut out) };
    v.expect("ordq returns valid JSON")
}

#[test]
fn threads_share_one_handle() {
    let path = temp_path("threads.ordq");
    let db = open(&path);
    let q = "shared";
    create_queue(db, q, ORDQ_ORDERING_NONE);
    let shared = Shared(db);
    const THREADS: usize = 4;
    const PER: usize = 50;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let db = shared;
                let keys: Vec<String> = (0..PER).map(|i| format!("t{t}-{i}")).collect();
                let items: Vec<ordq_enqueue_item> = keys
                    .iter()
                    .map(|k| ordq_enqueue_item {
                        key: k.as_ptr().cast(),
                        key_len: k.len(),
                        payload: k.as_ptr(),
                        payload_len: k.len(),
                        opts: ptr::null(),
                    })
                    .collect();
                let mut receipts = vec![
                    ordq_receipt {
                        offset: 0,
                        shard: 0,
                        duplicate: false,
                        id: [0; ORDQ_TASK_ID_SIZE],
                    };
                    PER
                ];
                let mut err = ptr::null_mut();
                // SAFETY: arrays of `PER` live elements; strings outlive the call.
                unsafe {
                    ok(
                        ordq_enqueue_batch(
                            db.0,
                            q.as_ptr().cast(),
                            q.len(),
                            items.as_ptr(),
                            items.len(),
                            receipts.as_mut_ptr(),
                            &mut err,
                        ),
                        err,
                    );
                }
                // Work until this thread has completed its share.
                let worker = format!("w{t}");
                let mut done = 0;
                let mut co = ordq_claim_options {
                    max: 10,
                    lease_ms: 0,
                    wait_ms: 50,
                    shards: ptr::null(),
                    shards_len: 0,
                };
                while done < PER {
                    co.max = (PER - done).min(10) as u32;
                    let mut list = ptr::null_mut();
                    // SAFETY: live locals; list freed below.
                    unsafe {
                        ok(
                            ordq_claim(
                                db.0,
                                q.as_ptr().cast(),
                                q.len(),
                                worker.as_ptr().cast(),
                                worker.len(),
                                &co,
                                &mut list,
                                &mut err,
                            ),
                            err,
                        );
                        let n = ordq_lease_list_len(list);
                        let mut items = Vec::with_capacity(n);
                        for i in 0..n {
                            let mut info = std::mem::MaybeUninit::uninit();
                            ok(
                                ordq_lease_get_info(
                                    ordq_lease_list_get(list, i),
                                    info.as_mut_ptr(),
                                    &mut err,
                                ),
                                err,
                            );
                            let info: ordq_lease_info = info.assume_init();
                            // The payload is the key: echo it as the result.
                            let key =
                                std::slice::from_raw_parts(info.key.cast::<u8>(), info.key_len);
                            let pay = std::slice::from_raw_parts(info.payload, info.payload_len);
                            assert_eq!(key, pay);
                            items.push(ordq_complete_item {
                                token: info.token,
                                result: info.payload,
                                result_len: info.payload_len,
                            });
                        }
                        let mut outs = vec![ordq_completion::default(); n];
                        let mut sts = vec![ordq_status::ORDQ_PANIC; n];
                        ok(
                            ordq_complete_batch(
                                db.0,
                                items.as_ptr(),
                                n,
                                outs.as_mut_ptr(),
                                sts.as_mut_ptr(),
                                &mut err,
                            ),
                            err,
                        );
                        assert!(sts.iter().all(|s| *s == ordq_status::ORDQ_OK), "{sts:?}");
                        ordq_lease_list_free(list);
                        done += n;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // SAFETY: `db` is live; out-params are handled by `json`.
    let stats =
        json(|out, err| unsafe { ordq_queue_stats_json(db, q.as_ptr().cast(), q.len(), out, err) });
    assert_eq!(stats["totals"]["completed"], (THREADS * PER) as u64);
    assert_eq!(stats["totals"]["enqueued"], (THREADS * PER) as u64);
    assert_eq!(stats["ready"], 0);
    // SAFETY: every thread is joined; the handle is freed once.
    unsafe { ordq_db_free(db) };
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn huge_waits_and_leases_are_harmless() {
    let path = temp_path("huge.ordq");
    let db = open(&path);
    let q = "huge";
    create_queue(db, q, ORDQ_ORDERING_KEY);
    let shared = Shared(db);
    // A claim that would wait ~585 million years, served by the enqueue below.
    let waiter = thread::spawn(move || {
        let db = shared;
        let co = ordq_claim_options {
            max: 1,
            lease_ms: u64::MAX,
            wait_ms: u64::MAX,
            shards: ptr::null(),
            shards_len: 0,
        };
        let mut list = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: live locals; the handle outlives the thread.
        unsafe {
            ok(
                ordq_claim(
                    db.0,
                    q.as_ptr().cast(),
                    q.len(),
                    "w".as_ptr().cast(),
                    1,
                    &co,
                    &mut list,
                    &mut err,
                ),
                err,
            );
            assert_eq!(ordq_lease_list_len(list), 1);
            let lease = ordq_lease_list_get(list, 0);
            assert_eq!(ordq_lease_expires_at(lease), u64::MAX, "lease saturates");
            let mut tok = ordq_token::default();
            ok(ordq_lease_token(lease, &mut tok, &mut err), err);
            let mut expires = 0;
            ok(
                ordq_heartbeat(db.0, tok, u64::MAX, &mut expires, &mut err),
                err,
            );
            assert_eq!(expires, u64::MAX);
            ordq_lease_list_free(list);
        }
    });
    thread::sleep(std::time::Duration::from_millis(200));
    let mut r = ordq_receipt {
        offset: 9,
        shard: 0,
        duplicate: true,
        id: [0; ORDQ_TASK_ID_SIZE],
    };
    let mut err = ptr::null_mut();
    // SAFETY: live locals.
    unsafe {
        ok(
            ordq_enqueue(
                db,
                q.as_ptr().cast(),
                q.len(),
                "k".as_ptr().cast(),
                1,
                ptr::null(),
                0,
                ptr::null(),
                &mut r,
                &mut err,
            ),
            err,
        );
    }
    assert_eq!((r.offset, r.duplicate), (0, false));
    waiter.join().unwrap();
    // SAFETY: the waiter is joined.
    unsafe { ordq_db_free(db) };
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Every JSON document has the shape docs/FFI.md documents.
#[test]
fn json_shapes_match_the_docs() {
    let path = temp_path("json.ordq");
    let db = open(&path);
    let q = "docs";
    let mut cfg = std::mem::MaybeUninit::uninit();
    let mut err = ptr::null_mut();
    // SAFETY: live locals throughout.
    unsafe {
        ordq_queue_config_init(cfg.as_mut_ptr());
        let mut cfg = cfg.assume_init();
        cfg.max_attempts = 1;
        ok(
            ordq_queue_create(db, q.as_ptr().cast(), q.len(), &cfg, &mut err),
            err,
        );
        let mut r = std::mem::zeroed::<ordq_receipt>();
        let payload = [0u8, 1, 2, 250, 255];
        ok(
            ordq_enqueue(
                db,
                q.as_ptr().cast(),
                q.len(),
                "key".as_ptr().cast(),
                3,
                payload.as_ptr(),
                payload.len(),
                ptr::null(),
                &mut r,
                &mut err,
            ),
            err,
        );
        let mut list = ptr::null_mut();
        ok(
            ordq_claim(
                db,
                q.as_ptr().cast(),
                q.len(),
                "json-worker".as_ptr().cast(),
                11,
                ptr::null(),
                &mut list,
                &mut err,
            ),
            err,
        );
        let mut tok = ordq_token::default();
        ok(
            ordq_lease_token(ordq_lease_list_get(list, 0), &mut tok, &mut err),
            err,
        );
        ordq_lease_list_free(list);
        let mut fo = ordq_fail_outcome::default();
        ok(
            ordq_fail(db, tok, "bad".as_ptr().cast(), 3, true, &mut fo, &mut err),
            err,
        );
        assert!(fo.dead);
    }
    let qn = (q.as_ptr().cast(), q.len());
    // SAFETY (all closures below): `db` is live, `qn` points to a static str.
    let info = json(|o, e| unsafe { ordq_queue_get_json(db, qn.0, qn.1, o, e) });
    for k in ["name", "id", "config", "created_at"] {
        assert!(info.get(k).is_some(), "queue info lacks {k}: {info}");
    }
    for k in [
        "shards",
        "ordering",
        "max_attempts",
        "backoff",
        "lease_ms",
        "dlq_policy",
    ] {
        assert!(info["config"].get(k).is_some(), "config lacks {k}");
    }
    assert_eq!(info["config"]["ordering"], "key");
    assert_eq!(info["config"]["backoff"]["initial_ms"], 1000);

    let task = json(|o, e| unsafe { ordq_task_get_json(db, qn.0, qn.1, 0, o, e) });
    for k in [
        "v",
        "id",
        "queue",
        "key",
        "shard",
        "offset",
        "priority",
        "attempt",
        "max_attempts",
        "not_before",
        "idempotency_key",
        "headers",
        "state",
        "enqueued_at",
        "leased_at",
        "started_at",
        "committed_at",
        "lease_expires_at",
        "fence",
        "worker",
        "payload",
        "result",
        "redriven_from",
        "redriven_to",
    ] {
        assert!(task.get(k).is_some(), "task lacks {k}: {task}");
    }
    assert_eq!(task["state"], "dead");
    assert_eq!(task["payload"], "AAEC+v8=", "payload is standard base64");
    assert_eq!(task["result"], Value::Null);
    assert_eq!(task["worker"], "json-worker");

    let faults = json(|o, e| unsafe { ordq_task_faults_json(db, qn.0, qn.1, 0, o, e) });
    let f = &faults[0];
    for k in ["attempt", "worker", "error", "at", "kind", "retryable"] {
        assert!(f.get(k).is_some(), "fault lacks {k}: {f}");
    }
    assert_eq!(f["kind"], "failed");
    assert_eq!(f["error"], "bad");

    let list = json(|o, e| unsafe { ordq_dlq_list_json(db, qn.0, qn.1, false, 0, 10, o, e) });
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["payload"], "AAEC+v8=");
    let dl = json(|o, e| unsafe { ordq_dlq_get_json(db, qn.0, qn.1, 0, o, e) });
    assert_eq!(dl["task"]["offset"], 0);
    assert_eq!(dl["faults"][0]["attempt"], 1);

    let stats = json(|o, e| unsafe { ordq_queue_stats_json(db, qn.0, qn.1, o, e) });
    for k in [
        "queue",
        "ready",
        "leased",
        "retry_wait",
        "done",
        "dead",
        "oldest_pending_age_ms",
        "next_offset",
        "shards",
        "totals",
    ] {
        assert!(stats.get(k).is_some(), "stats lack {k}: {stats}");
    }
    assert_eq!(stats["shards"].as_array().map(Vec::len), Some(16));
    for k in ["pending", "eligible", "in_flight"] {
        assert!(stats["shards"][0].get(k).is_some(), "shard stats lack {k}");
    }
    for k in [
        "enqueued",
        "completed",
        "failed",
        "retried",
        "dead_lettered",
        "lease_expired",
        "released",
        "redriven",
        "purged",
        "rollbacks",
    ] {
        assert!(stats["totals"].get(k).is_some(), "totals lack {k}");
    }
    assert_eq!(stats["dead"], 1);
    // SAFETY: no other user of the handle.
    unsafe { ordq_db_free(db) };
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// `ordq_queue_pending_json`: unfinished tasks as task objects in offset
/// order, paged by `has_after`/`after`/`limit`; bad input is refused with
/// the usual statuses and nothing written.
#[test]
fn pending_lists_unfinished_tasks() {
    let path = temp_path("pending.ordq");
    let db = open(&path);
    let q = "pend";
    create_queue(db, q, ORDQ_ORDERING_NONE);
    let mut err = ptr::null_mut();
    // SAFETY: live locals throughout.
    unsafe {
        for i in 0..4u8 {
            let key = format!("k{i}");
            let mut r = std::mem::zeroed::<ordq_receipt>();
            ok(
                ordq_enqueue(
                    db,
                    q.as_ptr().cast(),
                    q.len(),
                    key.as_ptr().cast(),
                    key.len(),
                    [i].as_ptr(),
                    1,
                    ptr::null(),
                    &mut r,
                    &mut err,
                ),
                err,
            );
            assert_eq!(r.offset, u64::from(i));
        }
        // Offset 0 is claimed and completed (finished), offset 1 claimed
        // and left leased.
        for complete in [true, false] {
            let mut list = ptr::null_mut();
            ok(
                ordq_claim(
                    db,
                    q.as_ptr().cast(),
                    q.len(),
                    "pw".as_ptr().cast(),
                    2,
                    ptr::null(),
                    &mut list,
                    &mut err,
                ),
                err,
            );
            assert_eq!(ordq_lease_list_len(list), 1);
            let mut tok = ordq_token::default();
            ok(
                ordq_lease_token(ordq_lease_list_get(list, 0), &mut tok, &mut err),
                err,
            );
            ordq_lease_list_free(list);
            if complete {
                let mut c = std::mem::zeroed::<ordq_completion>();
                ok(
                    ordq_complete(db, tok, ptr::null(), 0, &mut c, &mut err),
                    err,
                );
            }
        }
    }
    let qn = (q.as_ptr().cast(), q.len());
    let offsets = |v: &Value| -> Vec<u64> {
        v.as_array()
            .expect("a JSON array")
            .iter()
            .map(|t| t["offset"].as_u64().unwrap())
            .collect()
    };
    // SAFETY (all closures below): `db` is live, `qn` points to a static str.
    let all = json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, false, 0, 100, o, e) });
    assert_eq!(offsets(&all), [1, 2, 3]);
    for k in [
        "id", "queue", "key", "offset", "state", "attempt", "payload",
    ] {
        assert!(all[0].get(k).is_some(), "task lacks {k}: {}", all[0]);
    }
    assert_eq!(all[0]["state"], "leased");
    assert_eq!(all[0]["worker"], "pw");
    assert_eq!(all[1]["state"], "ready");
    assert_eq!(all[1]["key"], "k2");
    assert_eq!(all[1]["payload"], "Ag==");
    assert_eq!(all[2]["queue"], q);
    // Paging.
    let page = json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, true, 1, 1, o, e) });
    assert_eq!(offsets(&page), [2]);
    let page = json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, true, 2, 100, o, e) });
    assert_eq!(offsets(&page), [3]);
    let page = json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, true, 3, 100, o, e) });
    assert_eq!(offsets(&page), Vec::<u64>::new());
    let page = json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, false, 0, 2, o, e) });
    assert_eq!(offsets(&page), [1, 2]);
    let page = json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, false, 0, 0, o, e) });
    assert_eq!(offsets(&page), Vec::<u64>::new());
    // Leases nothing: the two ready tasks are still there to claim.
    let again =
        json(|o, e| unsafe { ordq_queue_pending_json(db, qn.0, qn.1, false, 0, 100, o, e) });
    assert_eq!(again, all);

    // Bad input: the status, an error naming the problem, and no output.
    let fails =
        |st: ordq_status, out: &ordq_bytes, err: *mut ordq_error, code: ordq_status, what: &str| {
            assert_eq!(st, code);
            assert!(
                out.ptr.is_null() && out.len == 0,
                "output written on failure"
            );
            // SAFETY: on failure `err` is an owned error.
            unsafe {
                assert_eq!(ordq_error_code(err), code);
                let msg = CStr::from_ptr(ordq_error_message(err)).to_string_lossy();
                assert!(msg.contains(what), "{code:?}: {msg:?} lacks {what:?}");
                ordq_error_free(err);
            }
        };
    let mut out = ordq_bytes {
        ptr: ptr::null_mut(),
        len: 0,
    };
    let bad_utf8 = b"ab\xff\xfe";
    let unknown = "nope";
    // SAFETY: `db` is live; every other pointer is NULL, a live local or a
    // static byte string of the length given.
    unsafe {
        let mut err = ptr::null_mut();
        let st = ordq_queue_pending_json(ptr::null(), qn.0, qn.1, false, 0, 10, &mut out, &mut err);
        fails(st, &out, err, ordq_status::ORDQ_NULL_POINTER, "db");
        let mut err = ptr::null_mut();
        let st = ordq_queue_pending_json(db, ptr::null(), 4, false, 0, 10, &mut out, &mut err);
        fails(st, &out, err, ordq_status::ORDQ_NULL_POINTER, "queue");
        let mut err = ptr::null_mut();
        let st = ordq_queue_pending_json(db, qn.0, qn.1, false, 0, 10, ptr::null_mut(), &mut err);
        fails(st, &out, err, ordq_status::ORDQ_NULL_POINTER, "json_out");
        let mut err = ptr::null_mut();
        let st = ordq_queue_pending_json(
            db,
            bad_utf8.as_ptr().cast(),
            bad_utf8.len(),
            false,
            0,
            10,
            &mut out,
            &mut err,
        );
        fails(st, &out, err, ordq_status::ORDQ_INVALID_ARGUMENT, "UTF-8");
        let mut err = ptr::null_mut();
        let st = ordq_queue_pending_json(
            db,
            unknown.as_ptr().cast(),
            unknown.len(),
            false,
            0,
            10,
            &mut out,
            &mut err,
        );
        fails(st, &out, err, ordq_status::ORDQ_NOT_FOUND, unknown);
        // err_out NULL: the status alone.
        let st = ordq_queue_pending_json(
            db,
            unknown.as_ptr().cast(),
            unknown.len(),
            false,
            0,
            10,
            &mut out,
            ptr::null_mut(),
        );
        assert_eq!(st, ordq_status::ORDQ_NOT_FOUND);
        assert!(out.ptr.is_null());
        ordq_db_free(db);
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
