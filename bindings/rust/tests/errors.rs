//! Errors through the ABI: every status an open or a call can produce
//! from Rust, their messages, calls after close, and size limits.

mod common;

use common::{fast, TempDir, TestDb};
use ordq::*;
use std::time::Duration;

fn err<T: std::fmt::Debug>(r: Result<T>) -> Error {
    let e = r.unwrap_err();
    assert!(!e.message().is_empty(), "{e:?}");
    e
}

#[test]
fn open_errors_have_their_kinds() {
    let dir = TempDir::new("open-errors");

    let e = err(Db::open(&dir.uri("none/x.ordq"), &fast()));
    assert_eq!(e.kind(), ErrorKind::Io);

    // A redb file that is not an ordq database.
    let plain = dir.join("plain.redb");
    drop(redb::Database::create(&plain).unwrap());
    let e = err(Db::open(plain.to_str().unwrap(), &fast()));
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.message().contains("plain.redb"), "{e}");

    // A newer format value in the meta table.
    use ordq_core::tables::{FORMAT_VERSION, META, META_FORMAT};
    let newer = dir.uri("newer.ordq");
    Db::open(&newer, &fast()).unwrap().close().unwrap();
    {
        let rdb = redb::Database::open(&newer).unwrap();
        let w = rdb.begin_write().unwrap();
        {
            let mut t = w.open_table(META).unwrap();
            t.insert(META_FORMAT, (FORMAT_VERSION + 1).to_le_bytes().as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let e = err(Db::open(&newer, &fast()));
    assert_eq!(e.kind(), ErrorKind::FormatTooNew);

    // Held by another handle; free again once that handle is dropped.
    let held = dir.uri("held.ordq");
    let db = Db::open(&held, &fast()).unwrap();
    let e = err(Db::open(&held, &fast()));
    assert_eq!(e.kind(), ErrorKind::AlreadyOpen);
    assert!(e.message().contains("held.ordq"), "{e}");
    drop(db);
    Db::open(&format!("file://{held}"), &fast()).unwrap();

    let e = err(Db::open("tcp://127.0.0.1:7000", &fast()));
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let e = err(Db::open("unix:///tmp/ordq.sock", &fast()));
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    for bad in ["", "http://x", "file://", "a\0b"] {
        let e = err(Db::open(bad, &fast()));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
    }
}

#[test]
fn every_call_after_close_is_closed() {
    let t = TestDb::queue("closed", &QueueConfig::new());
    t.enqueue("q", "k", b"x", &EnqueueOptions::new()).unwrap();
    let l = t.claim("q", "w", &ClaimOptions::new()).unwrap().remove(0);
    t.close().unwrap();
    t.close().unwrap(); // idempotent
    let q = &QueueConfig::new();
    let o = &EnqueueOptions::new();
    let results: Vec<(&str, Result<()>)> = vec![
        ("sync", t.sync()),
        ("create_queue", t.create_queue("r", q)),
        ("queue", t.queue("q").map(drop)),
        ("queue_config", t.queue_config("q").map(drop)),
        ("list_queues", t.list_queues().map(drop)),
        ("delete_queue", t.delete_queue("q")),
        ("enqueue", t.enqueue("q", "k", b"", o).map(drop)),
        (
            "enqueue_batch",
            t.enqueue_batch("q", &[EnqueueItem::new("k", b"")])
                .map(drop),
        ),
        ("claim", t.claim("q", "w", &ClaimOptions::new()).map(drop)),
        ("heartbeat", t.heartbeat(&l, None).map(drop)),
        ("start", t.start(&l)),
        ("complete", t.complete(&l, b"").map(drop)),
        (
            "complete_batch",
            t.complete_batch(&[(l.token, b"")]).map(drop),
        ),
        ("fail", t.fail(&l, "e", true).map(drop)),
        ("release", t.release(&l)),
        ("get_task", t.get_task("q", 0).map(drop)),
        ("faults", t.faults("q", 0).map(drop)),
        ("stats", t.stats("q").map(drop)),
        ("pending", t.pending("q", None, 10).map(drop)),
        ("dlq_list", t.dlq_list("q", None, 10).map(drop)),
        ("dlq_get", t.dlq_get("q", 0).map(drop)),
        (
            "dlq_redrive",
            t.dlq_redrive("q", 0, RedriveMode::Head).map(drop),
        ),
        ("dlq_purge", t.dlq_purge("q", None).map(drop)),
    ];
    for (name, r) in results {
        assert_eq!(err(r).kind(), ErrorKind::Closed, "{name}");
    }
    // The file is released at close, before the handle is dropped.
    drop(Db::open(&t.uri, &fast()).unwrap());
}

#[test]
fn size_limits_are_too_large() {
    if common::skip_in_broker_mode(
        "size_limits_are_too_large",
        "the limits are file options; a broker applies its own",
    ) {
        return;
    }
    let opts = fast()
        .max_payload(8)
        .max_result(4)
        .max_key(5)
        .max_headers(10);
    let t = TestDb::with("limits", &opts);
    t.create_queue("q", &QueueConfig::new()).unwrap();
    let o = EnqueueOptions::new();
    t.enqueue("q", "12345", b"12345678", &o).unwrap();
    let cases = [
        ("payload", t.enqueue("q", "k", b"123456789", &o)),
        ("key", t.enqueue("q", "123456", b"", &o)),
        (
            "idempotency key",
            t.enqueue(
                "q",
                "k",
                b"",
                &EnqueueOptions::new().idempotency_key("123456"),
            ),
        ),
        (
            "headers",
            t.enqueue(
                "q",
                "k",
                b"",
                &EnqueueOptions::new().header("name", "value-long"),
            ),
        ),
    ];
    for (what, r) in cases {
        assert_eq!(err(r).kind(), ErrorKind::TooLarge, "{what}");
    }
    let l = t.claim("q", "w", &ClaimOptions::new()).unwrap().remove(0);
    assert_eq!(err(t.complete(&l, b"12345")).kind(), ErrorKind::TooLarge);
    t.complete(&l, b"1234").unwrap();
}

#[test]
fn invalid_arguments_from_the_abi_and_from_this_crate() {
    let t = TestDb::queue("invalid", &QueueConfig::new());
    let e = err(t.enqueue("q", "k", b"", &EnqueueOptions::new().header("", "v")));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = err(t.enqueue("q", "k", b"", &EnqueueOptions::new().max_attempts(0)));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("max_attempts"), "{e}");
    let e = err(t.enqueue("bad name", "k", b"", &EnqueueOptions::new()));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = err(t.get_task("q", 0));
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = err(t.heartbeat(
        Token::from(&fake_lease(&t)),
        Some(Duration::from_micros(10)),
    ));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// A real lease, to borrow its token.
fn fake_lease(t: &TestDb) -> Lease {
    t.enqueue("q", "fake", b"", &EnqueueOptions::new()).unwrap();
    t.claim("q", "w", &ClaimOptions::new()).unwrap().remove(0)
}

#[test]
fn error_is_a_std_error_with_kind_message_and_display() {
    let t = TestDb::new("display");
    let e = err(t.queue("missing"));
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.kind, e.kind());
    assert_eq!(e.code(), Some(2));
    let shown = e.to_string();
    assert!(shown.starts_with("NOT_FOUND: "), "{shown}");
    assert!(shown.contains("missing"), "{shown}");
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e.clone());
    assert_eq!(boxed.to_string(), shown);
    let made = Error::new(ErrorKind::Io, "");
    assert_eq!(made.message(), "IO", "never an empty message");
}
