//! Log retention: `compact_log` removes the sealed segments a checkpoint
//! covers and nothing the state needs; `Options::log_retention` does it at
//! checkpoints; a log whose first segment starts after what the state
//! covers refuses to open.

mod common;

use common::TempDir;
use ordq_core::{wal, ClaimOptions, Db, EnqueueItem, ErrorCode, LogInfo, Options, QueueConfig};
use std::path::Path;
use std::time::Duration;

/// Small segments, so a few hundred tasks fill several; no periodic
/// checkpoint unless a test asks.
fn opts() -> Options {
    Options {
        segment_size: 16 << 10,
        checkpoint_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

/// Enqueues `n` tasks in batches of 10 and completes the first `done`.
fn work(db: &Db, from: u64, n: u64, done: usize) {
    for b in (from..from + n).step_by(10) {
        let items = (b..(b + 10).min(from + n))
            .map(|i| EnqueueItem {
                key: format!("k{}", i % 7),
                payload: format!("p{i}").into_bytes(),
                ..EnqueueItem::default()
            })
            .collect();
        db.enqueue_batch("q", items).unwrap();
    }
    let mut left = done;
    while left > 0 {
        let opts = ClaimOptions {
            max: left.min(100),
            ..ClaimOptions::default()
        };
        let ls = db.claim("q", "w", opts).unwrap();
        assert!(!ls.is_empty());
        left -= ls.len();
        let items = ls.into_iter().map(|l| (l.token, b"ok".to_vec())).collect();
        for r in db.complete_batch(items).unwrap() {
            r.unwrap();
        }
    }
}

/// Every task from 0 to `n` is there with its payload.
fn check_tasks(db: &Db, n: u64) {
    for i in 0..n {
        let t = db.get_task("q", i).unwrap();
        assert_eq!(t.payload.as_deref(), Some(format!("p{i}").as_bytes()));
    }
}

/// Copies the database and its log while a handle is open: what a crash
/// at that moment leaves on disk.
fn image(path: &Path, dst: &Path) {
    std::fs::copy(path, dst).unwrap();
    let log = wal::dir_of(dst);
    std::fs::create_dir(&log).unwrap();
    for e in std::fs::read_dir(wal::dir_of(path)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), log.join(e.file_name())).unwrap();
    }
}

#[test]
fn compact_removes_covered_segments_and_keeps_every_task() {
    let tmp = TempDir::new("ret-compact");
    let path = tmp.join("db.ordq");
    let db = Db::open(&path, opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    work(&db, 0, 300, 200);
    let before = db.log_info().unwrap();
    assert!(before.segments >= 3, "{before:?}");
    assert_eq!(before.first_lsn, 0);
    let c = db.compact_log().unwrap();
    assert_eq!(c.removed_segments, before.segments - 1, "{c:?}");
    assert!(c.removed_bytes > 0);
    let after: LogInfo = c.log;
    assert_eq!(after.segments, 1);
    assert!(after.first_lsn > 0 && after.first_lsn <= after.checkpoint_lsn);
    assert_eq!(after.checkpoint_lsn, after.next_lsn);
    assert_eq!(after.bytes, before.bytes - c.removed_bytes);
    check_tasks(&db, 300);
    // Nothing more to remove: the active segment stays.
    assert_eq!(db.compact_log().unwrap().removed_segments, 0);
    // A crash after the compaction replays from the checkpoint as before.
    work(&db, 300, 100, 50);
    let stats = db.stats("q").unwrap();
    image(&path, &tmp.join("image.ordq"));
    db.close();
    let img = Db::open(tmp.join("image.ordq"), opts()).unwrap();
    let got = img.stats("q").unwrap();
    assert_eq!((got.next_offset, got.done), (stats.next_offset, stats.done));
    check_tasks(&img, 400);
    img.close();
    let db = Db::open(&path, opts()).unwrap();
    assert_eq!(db.stats("q").unwrap().done, 250);
    check_tasks(&db, 400);
}

#[test]
fn retention_removes_covered_segments_at_checkpoints() {
    let tmp = TempDir::new("ret-auto");
    let path = tmp.join("db.ordq");
    let db = Db::open(
        &path,
        Options {
            checkpoint_interval: Duration::from_millis(10),
            log_retention: Some(Duration::ZERO),
            ..opts()
        },
    )
    .unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    let mut most = 0;
    for round in 0..10 {
        work(&db, round * 50, 50, 50);
        most = most.max(db.log_info().unwrap().segments);
    }
    // The checkpoint 10 ms after the last group removes every sealed
    // segment (on a loaded machine it may come late: wait up to 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let info = loop {
        let info = db.log_info().unwrap();
        if info.segments == 1 || std::time::Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(info.first_lsn > 0, "nothing removed: {info:?}");
    assert_eq!(info.segments, 1, "{info:?} (most seen {most})");
    assert!(most >= 2, "the work never filled a second segment");
    check_tasks(&db, 500);
    db.close();
    // Keeping (the default) removes nothing.
    let db = Db::open(&path, opts()).unwrap();
    let first = db.log_info().unwrap().first_lsn;
    work(&db, 500, 300, 0);
    db.close();
    let db = Db::open(&path, opts()).unwrap();
    assert_eq!(db.log_info().unwrap().first_lsn, first);
    assert_eq!(db.stats("q").unwrap().done, 500);
}

#[test]
fn a_log_starting_after_the_checkpoint_refuses_to_open() {
    let tmp = TempDir::new("ret-gap");
    let path = tmp.join("db.ordq");
    let db = Db::open(&path, opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    db.close();
    let db = Db::open(&path, opts()).unwrap();
    work(&db, 0, 300, 0);
    image(&path, &tmp.join("image.ordq"));
    db.close();
    // The image's state covers only the queue's creation; its first
    // segment goes, as a careless clean-up would remove it.
    let log = wal::dir_of(&tmp.join("image.ordq"));
    let mut segs: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[0]).unwrap();
    let e = Db::open(tmp.join("image.ordq"), opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert!(
        e.to_string()
            .contains("segments removed below the checkpoint"),
        "{e}"
    );
}
