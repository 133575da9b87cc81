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

#[test]
fn an_anchor_finds_history_cut_back_to_an_older_consistent_point() {
    let tmp = TempDir::new("backup-anchor");
    let db = Db::open(tmp.join("db.ordq"), opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    db.enqueue("q", "k", b"early", EnqueueOptions::default())
        .unwrap();
    db.checkpoint().unwrap();
    // An older, consistent copy: what an attacker (or a bad restore) would
    // put back.
    db.backup(tmp.join("old.ordq")).unwrap();
    for i in 0..10 {
        db.enqueue(
            "q",
            "k",
            format!("later{i}").as_bytes(),
            EnqueueOptions::default(),
        )
        .unwrap();
        db.checkpoint().unwrap();
    }
    let ledger = db.checkpoint_ledger(0).unwrap();
    assert!(ledger.len() >= 11, "{}", ledger.len());
    assert!(ledger.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert!(ledger.iter().all(|e| e.signature.is_some()));
    assert_eq!(db.checkpoint_ledger(5).unwrap()[0].seq, 5);
    // The database itself matches its anchor.
    let r = db.verify_anchored(None, &ledger).unwrap();
    assert!(r.ok, "{r:?}");
    // The old copy verifies on its own, but not against the anchor.
    let old = Db::open(tmp.join("old.ordq"), Options::default()).unwrap();
    assert!(old.verify(None).unwrap().ok);
    let r = old.verify_anchored(None, &ledger).unwrap();
    assert!(!r.ok, "{r:?}");
    assert!(
        r.problems
            .iter()
            .any(|p| p.why.contains("checkpoints dropped from the end")),
        "{:?}",
        r.problems
    );
    // An anchored checkpoint that differs is found too.
    let mut forged = ledger.clone();
    forged[0].hash = "00".repeat(32);
    let r = db.verify_anchored(None, &forged[..1]).unwrap();
    assert!(
        r.problems.iter().any(|p| p.why.contains("differs")),
        "{r:?}"
    );
}
