//! Error codes are stable, every variant maps to its code, messages name
//! what went wrong, and every operation after `close()` is `Closed`.

mod common;

use common::{manual_options, TempDir, TestDb};
use ordq_core::tables::{FORMAT_VERSION, META, META_FORMAT};
use ordq_core::*;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// The published table: code, number, wire name (docs/ERRORS.md).
const TABLE: [(ErrorCode, i32, &str); 12] = [
    (ErrorCode::InvalidArgument, 1, "INVALID_ARGUMENT"),
    (ErrorCode::NotFound, 2, "NOT_FOUND"),
    (ErrorCode::AlreadyExists, 3, "ALREADY_EXISTS"),
    (ErrorCode::AlreadyOpen, 4, "ALREADY_OPEN"),
    (ErrorCode::LeaseLost, 5, "LEASE_LOST"),
    (ErrorCode::TooLarge, 6, "TOO_LARGE"),
    (ErrorCode::InvalidState, 7, "INVALID_STATE"),
    (ErrorCode::FormatTooNew, 8, "FORMAT_TOO_NEW"),
    (ErrorCode::Corrupt, 9, "CORRUPT"),
    (ErrorCode::Io, 10, "IO"),
    (ErrorCode::Closed, 11, "CLOSED"),
    (ErrorCode::Unavailable, 12, "UNAVAILABLE"),
];

fn code<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

fn err<T: std::fmt::Debug>(r: Result<T>) -> Error {
    r.expect_err("expected an error")
}

#[test]
fn codes_have_stable_numbers_and_names() {
    for (c, n, name) in TABLE {
        assert_eq!(c as i32, n, "{c:?}");
        assert_eq!(c.as_i32(), n, "{c:?}");
        assert_eq!(c.name(), name, "{c:?}");
    }
    assert_eq!(
        ErrorCode::ALL.to_vec(),
        TABLE.iter().map(|t| t.0).collect::<Vec<_>>(),
        "ALL lists every code in numeric order"
    );
}

#[test]
fn from_i32_round_trips_and_rejects_unknown_numbers() {
    for c in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_i32(c.as_i32()), Some(c));
    }
    for n in [0, 13, -1, 100, i32::MIN, i32::MAX] {
        assert_eq!(ErrorCode::from_i32(n), None, "{n}");
    }
}

/// One value of every variant.
fn every_variant() -> Vec<(Error, ErrorCode)> {
    vec![
        (
            Error::InvalidArgument("bad".into()),
            ErrorCode::InvalidArgument,
        ),
        (Error::NotFound("queue x".into()), ErrorCode::NotFound),
        (
            Error::AlreadyExists("queue x".into()),
            ErrorCode::AlreadyExists,
        ),
        (
            Error::AlreadyOpen(PathBuf::from("/data/jobs.ordq")),
            ErrorCode::AlreadyOpen,
        ),
        (Error::LeaseLost("token 1/2".into()), ErrorCode::LeaseLost),
        (Error::TooLarge("payload".into()), ErrorCode::TooLarge),
        (
            Error::InvalidState("task 3".into()),
            ErrorCode::InvalidState,
        ),
        (
            Error::FormatTooNew {
                found: 7,
                supported: 1,
            },
            ErrorCode::FormatTooNew,
        ),
        (Error::Corrupt("log".into()), ErrorCode::Corrupt),
        (Error::Io("disk full".into()), ErrorCode::Io),
        (Error::Closed, ErrorCode::Closed),
        (Error::Unavailable("broker".into()), ErrorCode::Unavailable),
    ]
}

#[test]
fn every_variant_maps_to_its_code() {
    let all = every_variant();
    assert_eq!(all.len(), ErrorCode::ALL.len(), "one variant per code");
    for (e, c) in all {
        assert_eq!(e.code(), c, "{e:?}");
    }
}

#[test]
fn display_messages_are_clear() {
    let want = [
        "invalid argument: bad",
        "not found: queue x",
        "already exists: queue x",
        "database /data/jobs.ordq is already open by another process or handle",
        "lease lost: token 1/2",
        "too large: payload",
        "invalid state: task 3",
        "database format 7 is newer than this build supports (1); upgrade ordq",
        "corrupt database: log",
        "storage error: disk full",
        "database handle is closed",
        "unavailable: broker",
    ];
    for ((e, _), w) in every_variant().into_iter().zip(want) {
        assert_eq!(e.to_string(), w);
    }
}

#[test]
fn error_is_a_std_error_and_converts_from_io() {
    fn assert_traits<E: std::error::Error + Send + Sync + Clone + 'static>() {}
    assert_traits::<Error>();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::Closed);
    assert_eq!(boxed.to_string(), "database handle is closed");
    let io = std::io::Error::other("disk on fire");
    let e: Error = io.into();
    assert_eq!(e.code(), ErrorCode::Io);
    assert!(e.to_string().contains("disk on fire"), "{e}");
}

#[test]
fn engine_errors_carry_codes_and_name_what_went_wrong() {
    let t = TestDb::with(|o| o.max_payload = 10);
    t.create_queue("q", QueueConfig::default()).unwrap();

    // InvalidArgument
    let e = err(t.create_queue("bad name", QueueConfig::default()));
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("bad name"), "{e}");
    let many = ClaimOptions {
        max: 0,
        ..Default::default()
    };
    let e = err(t.claim("q", "w", many));
    assert!(e.to_string().contains("10000"), "{e}");
    let e = err(t.claim("q", "", ClaimOptions::default()));
    assert!(e.to_string().contains("256"), "{e}");
    let e = err(t.claim(
        "q",
        "w",
        ClaimOptions {
            shards: Some(vec![16]),
            ..Default::default()
        },
    ));
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("16"), "{e}");
    let e = err(t.claim(
        "q",
        "w",
        ClaimOptions {
            lease: Some(Duration::ZERO),
            ..Default::default()
        },
    ));
    assert!(e.to_string().contains("lease"), "{e}");

    // NotFound
    let e = err(t.stats("missing"));
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.to_string().contains("missing"), "{e}");
    let e = err(t.get_task("q", 77));
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.to_string().contains("77"), "{e}");

    // AlreadyExists
    let e = err(t.create_queue("q", QueueConfig::default()));
    assert_eq!(e.code(), ErrorCode::AlreadyExists);
    assert!(e.to_string().contains('q'), "{e}");

    // TooLarge: size and limit in the message.
    let e = err(t.enqueue("q", "k", &[0; 11], EnqueueOptions::default()));
    assert_eq!(e.code(), ErrorCode::TooLarge);
    let m = e.to_string();
    assert!(m.contains("11") && m.contains("10"), "{m}");

    // LeaseLost and InvalidState name the task.
    for _ in 0..6 {
        t.enqueue("q", "k", b"", EnqueueOptions::default()).unwrap();
    }
    let l = t
        .claim("q", "w", ClaimOptions::default())
        .unwrap()
        .remove(0);
    t.release(l.token).unwrap();
    let e = err(t.complete(l.token, b""));
    assert_eq!(e.code(), ErrorCode::LeaseLost);
    assert!(e.to_string().contains(&l.offset.to_string()), "{e}");
    let e = err(t.dlq_purge("q", Some(5)));
    assert_eq!(e.code(), ErrorCode::InvalidState);
    assert!(e.to_string().contains('5'), "{e}");

    // AlreadyOpen names the path.
    let e = err(Db::open(&t.path, t.opts.clone()));
    assert_eq!(e.code(), ErrorCode::AlreadyOpen);
    assert!(e.to_string().contains(&t.path.display().to_string()), "{e}");
}

#[test]
fn open_errors_carry_codes() {
    let dir = TempDir::new("open-errors");
    let (opts, _) = manual_options();

    // Io: the directory does not exist.
    let e = err(Db::open(dir.join("none/x.ordq"), opts.clone()));
    assert_eq!(e.code(), ErrorCode::Io);

    // Corrupt: a redb file that is not an ordq database.
    let plain = dir.join("plain.redb");
    drop(redb::Database::create(&plain).unwrap());
    let e = err(Db::open(&plain, opts.clone()));
    assert_eq!(e.code(), ErrorCode::Corrupt);
    assert!(e.to_string().contains("plain.redb"), "{e}");

    // Corrupt, not Io: a file that is not a redb file at all (the CLI's
    // exit 19, as docs/CLI.md says).
    let text = dir.join("notes.ordq");
    std::fs::write(&text, "hello, not a database\n").unwrap();
    let e = err(Db::open(&text, opts.clone()));
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert!(e.to_string().contains("not an ordq database"), "{e}");

    // FormatTooNew: a newer format value in the meta table.
    let newer = dir.join("newer.ordq");
    Db::open(&newer, opts.clone()).unwrap().close();
    {
        let rdb = redb::Database::open(&newer).unwrap();
        let w = rdb.begin_write().unwrap();
        {
            let mut t = w.open_table(META).unwrap();
            t.insert(META_FORMAT, (FORMAT_VERSION + 5).to_le_bytes().as_slice())
                .unwrap();
        }
        w.commit().unwrap();
    }
    let e = err(Db::open(&newer, opts));
    assert_eq!(
        e,
        Error::FormatTooNew {
            found: FORMAT_VERSION + 5,
            supported: FORMAT_VERSION
        }
    );
    assert!(e.to_string().contains("upgrade"), "{e}");
}

#[test]
fn every_operation_after_close_is_closed() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    t.enqueue("q", "k", b"x", EnqueueOptions::default())
        .unwrap();
    let l = t
        .claim("q", "w", ClaimOptions::default())
        .unwrap()
        .remove(0);
    let clone = t.db.clone();
    t.db.close();
    t.db.close(); // idempotent
    let item = || EnqueueItem {
        key: "k".into(),
        payload: b"x".to_vec(),
        opts: EnqueueOptions::default(),
    };
    for db in [&t.db, &clone] {
        let c = ErrorCode::Closed;
        assert_eq!(code(db.create_queue("r", QueueConfig::default())), c);
        assert_eq!(code(db.queue("q")), c);
        assert_eq!(code(db.list_queues()), c);
        assert_eq!(code(db.delete_queue("q")), c);
        assert_eq!(
            code(db.enqueue("q", "k", b"x", EnqueueOptions::default())),
            c
        );
        assert_eq!(code(db.enqueue_batch("q", vec![item()])), c);
        assert_eq!(code(db.claim("q", "w", ClaimOptions::default())), c);
        assert_eq!(code(db.heartbeat(l.token, None)), c);
        assert_eq!(code(db.start(l.token)), c);
        assert_eq!(code(db.complete(l.token, b"")), c);
        assert_eq!(code(db.complete_batch(vec![(l.token, vec![])])), c);
        assert_eq!(code(db.fail(l.token, "e", true)), c);
        assert_eq!(code(db.release(l.token)), c);
        assert_eq!(code(db.get_task("q", 0)), c);
        assert_eq!(code(db.faults("q", 0)), c);
        assert_eq!(code(db.stats("q")), c);
        assert_eq!(code(db.dlq_list("q", None, 10)), c);
        assert_eq!(code(db.dlq_get("q", 0)), c);
        assert_eq!(code(db.dlq_redrive("q", 0, RedriveMode::Head)), c);
        assert_eq!(code(db.dlq_purge("q", None)), c);
        assert_eq!(code(db.sync()), c);
    }
    clone.close();
    // The file was released: it opens again, with the lease intact.
    let db = Db::open(&t.path, t.opts.clone()).unwrap();
    assert_eq!(db.get_task("q", 0).unwrap().state, TaskState::Leased);
    db.complete(l.token, b"").unwrap();
}

#[test]
fn empty_batches_after_close_are_closed() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    assert_eq!(code(t.enqueue_batch("nope", vec![])), ErrorCode::NotFound);
    t.db.close();
    assert_eq!(code(t.enqueue_batch("q", vec![])), ErrorCode::Closed);
    assert_eq!(code(t.complete_batch(vec![])), ErrorCode::Closed);
}

#[test]
fn close_answers_a_parked_claim_with_closed() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let db = t.db.clone();
    let h = thread::spawn(move || {
        let begun = Instant::now();
        let r = db.claim(
            "q",
            "w",
            ClaimOptions {
                wait: Duration::from_secs(30),
                ..Default::default()
            },
        );
        (r, begun.elapsed())
    });
    thread::sleep(Duration::from_millis(100));
    t.db.close();
    let (r, took) = h.join().unwrap();
    assert_eq!(code(r), ErrorCode::Closed);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn calls_racing_with_close_get_closed_and_acknowledged_work_persists() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let db = t.db.clone();
            thread::spawn(move || {
                let mut acked = Vec::new();
                loop {
                    match db.enqueue("q", &format!("t{i}"), b"x", EnqueueOptions::default()) {
                        Ok(r) => acked.push(r.offset),
                        Err(e) => return (acked, e),
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    t.db.close();
    let mut acked = Vec::new();
    for w in workers {
        let (mine, e) = w.join().unwrap();
        assert_eq!(e, Error::Closed);
        acked.extend(mine);
    }
    assert!(!acked.is_empty());
    let db = Db::open(&t.path, t.opts.clone()).unwrap();
    for o in &acked {
        assert!(db.get_task("q", *o).is_ok(), "acknowledged offset {o} lost");
    }
    assert_eq!(
        db.stats("q").unwrap().next_offset,
        acked.len() as u64,
        "nothing unacknowledged was appended"
    );
}
