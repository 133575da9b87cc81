//! Online backup and restore: a copy made while a writer goes on is a
//! consistent database of its own — it opens, verifies with the original's
//! history and signatures, and holds exactly the tasks of a prefix of the
//! original's log; a restore does the same from a backup; neither ever
//! overwrites.

mod common;

use common::TempDir;
use ordq_core::{ClaimOptions, Db, EnqueueOptions, ErrorCode, Options, QueueConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn opts() -> Options {
    Options {
        checkpoint_interval: Duration::from_millis(5),
        segment_size: 32 << 10,
        signing_key: Some([9; 32]),
        ..Options::default()
    }
}

#[test]
fn a_backup_made_while_writing_is_consistent_and_verifies() {
    let tmp = TempDir::new("backup-online");
    let db = Db::open(tmp.join("db.ordq"), opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.enqueue(
                    "q",
                    &format!("k{}", n % 5),
                    format!("p{n}").as_bytes(),
                    EnqueueOptions::default(),
                )
                .unwrap();
                if n % 3 == 0 {
                    for l in db.claim("q", "w", ClaimOptions::default()).unwrap() {
                        db.complete(l.token, b"ok").unwrap();
                    }
                }
                n += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let info = db.backup(tmp.join("b1.ordq")).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let info2 = db.backup(tmp.join("b2.ordq")).unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(info.end_lsn > 0 && info.verified_records > 0, "{info:?}");
    assert!(info2.end_lsn > info.end_lsn, "{info:?} {info2:?}");
    assert!(info2.segments >= 2, "{info2:?}");
    // Already there: never overwritten.
    let e = db.backup(tmp.join("b1.ordq")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists, "{e}");
    let full = db.stats("q").unwrap();
    for (path, info) in [("b1.ordq", &info), ("b2.ordq", &info2)] {
        let b = Db::open(tmp.join(path), Options::default()).unwrap();
        let r = b.verify(None).unwrap();
        assert!(
            r.ok && r.state_checked && r.signed >= 1 && r.unsigned == 0,
            "{r:?}"
        );
        assert_eq!(r.end_lsn, info.end_lsn);
        assert!(b.audit("q", None).unwrap().ok);
        // A prefix of the original: every task it has is the original's.
        let s = b.stats("q").unwrap();
        assert!(
            s.next_offset > 0 && s.next_offset <= full.next_offset,
            "{s:?}"
        );
        for o in 0..s.next_offset {
            assert_eq!(
                b.get_task("q", o).unwrap().payload,
                db.get_task("q", o).unwrap().payload
            );
        }
        b.close();
    }
}

#[test]
fn restore_copies_a_backup_and_never_overwrites() {
    let tmp = TempDir::new("backup-restore");
    let db = Db::open(tmp.join("db.ordq"), opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..300 {
        db.enqueue(
            "q",
            "k",
            format!("p{i}").as_bytes(),
            EnqueueOptions::default(),
        )
        .unwrap();
    }
    // A compacted log backs up and restores too.
    assert!(db.compact_log().unwrap().removed_segments > 0);
    db.backup(tmp.join("b.ordq")).unwrap();
    db.close();
    let info = Db::restore(tmp.join("b.ordq"), tmp.join("restored.ordq")).unwrap();
    assert!(info.verified_records > 0);
    let r = Db::open(tmp.join("restored.ordq"), opts()).unwrap();
    assert_eq!(r.stats("q").unwrap().next_offset, 300);
    assert_eq!(
        r.get_task("q", 299).unwrap().payload.as_deref(),
        Some(b"p299".as_slice())
    );
    r.enqueue("q", "k", b"after", EnqueueOptions::default())
        .unwrap();
    assert!(r.verify(None).unwrap().ok);
    r.close();
    let e = Db::restore(tmp.join("b.ordq"), tmp.join("restored.ordq")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists, "{e}");
    let e = Db::restore(tmp.join("missing.ordq"), tmp.join("x.ordq")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    // No temporary left behind.
    let stray: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
