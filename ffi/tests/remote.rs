//! Remote mode through the C ABI: `ordq_open("unix://…" | "tcp://…")`
//! against an in-process broker returns the same handle type, and every
//! call behaves as on a file — the worker contract, error codes, threads
//! sharing the handle, a broker restart with leases kept, the token from
//! the options or `ORDQ_TOKEN`, and the timeout option.

use ordq_broker::{Broker, BrokerConfig, Listen};
use ordq_core::{Db, Durability, Options};
use ordq_ffi::*;
use serde_json::Value;
use std::ffi::CStr;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "ffi-remote-token";

/// A broker on a fresh database, on a Unix socket and loopback TCP.
struct Served {
    db: Db,
    sock: PathBuf,
    dir: PathBuf,
    broker: Option<Broker>,
}

impl Served {
    fn new() -> Served {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ordq-ffi-remote-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = Options {
            durability: Durability::None,
            ..Options::default()
        };
        let db = Db::open(dir.join("served.ordq"), opts).unwrap();
        let mut s = Served {
            db,
            sock: dir.join("ordq.sock"),
            dir,
            broker: None,
        };
        s.start();
        s
    }

    fn start(&mut self) {
        let cfg = BrokerConfig {
            listen: vec![
                Listen::Unix(self.sock.clone()),
                Listen::parse("tcp://127.0.0.1:0").unwrap(),
            ],
            token: Some(TOKEN.into()),
            ..BrokerConfig::default()
        };
        self.broker = Some(Broker::start(self.db.clone(), cfg).unwrap());
    }

    fn stop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().unwrap();
        }
    }

    fn unix(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn tcp(&self) -> String {
        let addrs = self.broker.as_ref().unwrap().addrs();
        addrs.into_iter().find(|a| a.starts_with("tcp://")).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The message of an owned error, which it frees.
fn take_message(err: *mut ordq_error) -> String {
    // SAFETY: `err` is an owned error from a failing call.
    unsafe {
        let m = CStr::from_ptr(ordq_error_message(err))
            .to_string_lossy()
            .into_owned();
        ordq_error_free(err);
        m
    }
}

/// Panics with the error message when `st` is not OK.
fn ok(st: ordq_status, err: *mut ordq_error) {
    if st != ordq_status::ORDQ_OK {
        panic!("{st:?}: {}", take_message(err));
    }
}

/// Asserts `st` is `want`; returns (and frees) the error message.
fn fails(st: ordq_status, err: *mut ordq_error, want: ordq_status) -> String {
    assert_eq!(st, want);
    take_message(err)
}

/// `ordq_open(uri)` with `token` (None = NULL, read from `ORDQ_TOKEN`)
/// and `timeout_ms`; the status, the handle and the error.
fn open(
    uri: &str,
    token: Option<&str>,
    timeout_ms: u64,
) -> (ordq_status, *mut ordq_db, *mut ordq_error) {
    let mut opts = std::mem::MaybeUninit::uninit();
    let mut db = ptr::null_mut();
    let mut err = ptr::null_mut();
    let client = "ordq-ffi-test/1";
    // SAFETY: all pointers refer to live locals for the call.
    let st = unsafe {
        ordq_options_init(opts.as_mut_ptr());
        let mut opts = opts.assume_init();
        if let Some(t) = token {
            opts.token = t.as_ptr().cast();
            opts.token_len = t.len();
        }
        opts.timeout_ms = timeout_ms;
        opts.client = client.as_ptr().cast();
        opts.client_len = client.len();
        ordq_open(uri.as_ptr().cast(), uri.len(), &opts, &mut db, &mut err)
    };
    (st, db, err)
}

fn open_ok(uri: &str) -> *mut ordq_db {
    let (st, db, err) = open(uri, Some(TOKEN), 0);
    ok(st, err);
    db
}

fn s(x: &str) -> (*const std::ffi::c_char, usize) {
    (x.as_ptr().cast(), x.len())
}

fn create_queue(db: *const ordq_db, name: &str, max_attempts: u32) {
    let mut cfg = std::mem::MaybeUninit::uninit();
    let mut err = ptr::null_mut();
    let (p, n) = s(name);
    // SAFETY: live locals.
    unsafe {
        ordq_queue_config_init(cfg.as_mut_ptr());
        let mut cfg = cfg.assume_init();
        cfg.max_attempts = max_attempts;
        ok(ordq_queue_create(db, p, n, &cfg, &mut err), err);
    }
}

fn enqueue(db: *const ordq_db, queue: &str, key: &str, payload: &[u8]) -> ordq_receipt {
    let mut rc = std::mem::MaybeUninit::uninit();
    let mut err = ptr::null_mut();
    let ((qp, qn), (kp, kn)) = (s(queue), s(key));
    // SAFETY: live locals and borrows.
    unsafe {
        ok(
            ordq_enqueue(
                db,
                qp,
                qn,
                kp,
                kn,
                payload.as_ptr(),
                payload.len(),
                ptr::null(),
                rc.as_mut_ptr(),
                &mut err,
            ),
            err,
        );
        rc.assume_init()
    }
}

/// Claims up to `max` leases; returns (offset, token, payload) of each.
fn claim(db: *const ordq_db, queue: &str, max: u32) -> Vec<(u64, ordq_token, Vec<u8>)> {
    let mut co = std::mem::MaybeUninit::uninit();
    let mut list = ptr::null_mut();
    let mut err = ptr::null_mut();
    let ((qp, qn), (wp, wn)) = (s(queue), s("ffi-worker"));
    // SAFETY: live locals; the list is read, then freed once.
    unsafe {
        ordq_claim_options_init(co.as_mut_ptr());
        let mut co = co.assume_init();
        co.max = max;
        ok(
            ordq_claim(db, qp, qn, wp, wn, &co, &mut list, &mut err),
            err,
        );
        let out = (0..ordq_lease_list_len(list))
            .map(|i| {
                let l = ordq_lease_list_get(list, i);
                let mut tok = std::mem::MaybeUninit::uninit();
                let mut e = ptr::null_mut();
                ok(ordq_lease_token(l, tok.as_mut_ptr(), &mut e), e);
                let (mut pp, mut pn) = (ptr::null(), 0);
                ok(ordq_lease_payload(l, &mut pp, &mut pn, &mut e), e);
                let payload = std::slice::from_raw_parts(pp, pn).to_vec();
                (ordq_lease_offset(l), tok.assume_init(), payload)
            })
            .collect();
        ordq_lease_list_free(list);
        out
    }
}

fn complete(db: *const ordq_db, token: ordq_token) -> (ordq_status, *mut ordq_error) {
    let mut c = std::mem::MaybeUninit::uninit();
    let mut err = ptr::null_mut();
    // SAFETY: live locals.
    let st = unsafe { ordq_complete(db, token, b"ok".as_ptr(), 2, c.as_mut_ptr(), &mut err) };
    (st, err)
}

fn stats(db: *const ordq_db, queue: &str) -> Value {
    let mut out = ordq_bytes {
        ptr: ptr::null_mut(),
        len: 0,
    };
    let mut err = ptr::null_mut();
    let (qp, qn) = s(queue);
    // SAFETY: live locals; the bytes are read, then freed once.
    unsafe {
        ok(ordq_queue_stats_json(db, qp, qn, &mut out, &mut err), err);
        let v = serde_json::from_slice(std::slice::from_raw_parts(out.ptr, out.len)).unwrap();
        ordq_bytes_free(&mut out);
        v
    }
}

#[test]
fn remote_handles_run_the_worker_contract_over_unix_and_tcp() {
    let srv = Served::new();
    for uri in [srv.unix(), srv.tcp()] {
        let db = open_ok(&uri);
        let q = if uri.starts_with("tcp") { "tq" } else { "uq" };
        create_queue(db, q, 1);
        let r = enqueue(db, q, "k", b"\x00payload\xff");
        assert_eq!(r.offset, 0);
        let leases = claim(db, q, 10);
        assert_eq!(leases.len(), 1);
        let (off, tok, payload) = &leases[0];
        assert_eq!((*off, payload.as_slice()), (0, &b"\x00payload\xff"[..]));
        let mut err = ptr::null_mut();
        let mut exp = 0u64;
        // SAFETY: live locals.
        unsafe {
            ok(ordq_heartbeat(db, *tok, 60_000, &mut exp, &mut err), err);
            ok(ordq_start(db, *tok, &mut err), err);
        }
        assert!(exp > 0);
        let stale = ordq_token {
            fence: tok.fence + 1,
            ..*tok
        };
        let (st, e) = complete(db, stale);
        fails(st, e, ordq_status::ORDQ_LEASE_LOST);
        let (st, e) = complete(db, *tok);
        ok(st, e);
        let st = stats(db, q);
        assert_eq!(
            (st["done"].as_u64(), st["leased"].as_u64()),
            (Some(1), Some(0))
        );

        // Errors keep their codes through the broker and the ABI.
        let mut err = ptr::null_mut();
        let (mp, mn) = s("missing");
        let mut cfg = std::mem::MaybeUninit::uninit();
        // SAFETY: live locals.
        unsafe {
            let st = ordq_queue_get(db, mp, mn, cfg.as_mut_ptr(), &mut err);
            fails(st, err, ordq_status::ORDQ_NOT_FOUND);
            let (bp, bn) = s("-bad");
            let st = ordq_queue_delete(db, bp, bn, &mut err);
            fails(st, err, ordq_status::ORDQ_INVALID_ARGUMENT);
            // Close, then every call is CLOSED; free works after close.
            ok(ordq_db_close(db, &mut err), err);
            ok(ordq_db_close(db, &mut err), err);
            let st = ordq_db_sync(db, &mut err);
            fails(st, err, ordq_status::ORDQ_CLOSED);
            ordq_db_free(db);
        }
    }
}

/// A raw handle that may cross threads: the header documents `ordq_db` as
/// thread-safe.
#[derive(Clone, Copy)]
struct SharedDb(*const ordq_db);
// SAFETY: `ordq_db` is documented thread-safe; the handle is freed only
// after the threads using it are joined.
unsafe impl Send for SharedDb {}

#[test]
fn threads_share_a_remote_handle_across_a_broker_restart() {
    let mut srv = Served::new();
    let db = open_ok(&srv.unix());
    create_queue(db, "q", 3);
    let shared = SharedDb(db);
    let hs: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let db = shared;
                (0..50)
                    .map(|i| enqueue(db.0, "q", &format!("t{t}-{i}"), b"x").offset)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut offsets: Vec<u64> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).collect::<Vec<_>>());

    // Hold leases, restart the broker: the handle reconnects by itself and
    // the leases are still ours.
    let leases = claim(db, "q", 5);
    assert_eq!(leases.len(), 5);
    srv.stop();
    srv.start();
    for (_, tok, _) in &leases {
        let (st, e) = complete(db, *tok);
        ok(st, e);
    }
    assert_eq!(stats(db, "q")["done"], 5);
    // SAFETY: no other thread uses the handle any more.
    unsafe { ordq_db_free(db) };
}

#[test]
fn token_and_timeout_options() {
    let srv = Served::new();
    // A wrong or missing token: refused at once with a clear message.
    let t0 = Instant::now();
    let (st, db, err) = open(&srv.tcp(), Some("wrong"), 0);
    assert!(db.is_null());
    let m = fails(st, err, ordq_status::ORDQ_INVALID_ARGUMENT);
    assert!(m.contains("token") && m.contains("refused"), "{m}");
    let (st, _, err) = open(&srv.tcp(), Some(""), 0);
    let m = fails(st, err, ordq_status::ORDQ_INVALID_ARGUMENT);
    assert!(m.contains("token"), "{m}");
    assert!(t0.elapsed() < Duration::from_secs(5));

    // NULL token: ORDQ_TOKEN is used. (The only test here that reads it.)
    std::env::set_var("ORDQ_TOKEN", TOKEN);
    let (st, db, err) = open(&srv.tcp(), None, 0);
    std::env::remove_var("ORDQ_TOKEN");
    ok(st, err);
    // SAFETY: a live handle, freed once.
    unsafe { ordq_db_free(db) };

    // The timeout bounds every call: a broker that went away answers
    // ORDQ_UNAVAILABLE by then, not never.
    let mut srv = srv;
    let (st, db, err) = open(&srv.unix(), Some(TOKEN), 300);
    ok(st, err);
    srv.stop();
    let t0 = Instant::now();
    let mut err = ptr::null_mut();
    // SAFETY: live handle and locals.
    let st = unsafe { ordq_db_sync(db, &mut err) };
    let m = fails(st, err, ordq_status::ORDQ_UNAVAILABLE);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(m.contains("broker"), "{m}");
    // SAFETY: a live handle, freed once.
    unsafe { ordq_db_free(db) };
}
