//! `Db::recover`: the state rebuilt from the log alone into a new
//! database — whole, through a chosen checkpoint, or up to damage in the
//! log — verifies clean, and the current state is compared with it: a row
//! edited behind the log's back is named. The original is never written.

mod common;

use common::TempDir;
use ordq_core::checkpoint::{Stored, KIND_CHECKPOINT};
use ordq_core::wal::{self, frame, segment};
use ordq_core::{Db, EnqueueOptions, ErrorCode, Options, QueueConfig};
use std::path::Path;
use std::time::Duration;

fn opts() -> Options {
    Options {
        checkpoint_interval: Duration::from_secs(3600),
        segment_size: 16 << 10,
        ..Options::default()
    }
}

/// 3 rounds of 100 enqueues, each ended by an explicit checkpoint.
fn make(path: &Path) {
    let db = Db::open(path, opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    for round in 0..3 {
        for i in 0..100 {
            db.enqueue(
                "q",
                "k",
                format!("p{round}-{i}").as_bytes(),
                EnqueueOptions::default(),
            )
            .unwrap();
        }
        db.checkpoint().unwrap();
    }
    db.close();
}

fn files(path: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v = vec![(path.to_path_buf(), std::fs::read(path).unwrap())];
    let mut segs: Vec<_> = std::fs::read_dir(wal::dir_of(path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    v.extend(segs.into_iter().map(|p| {
        let b = std::fs::read(&p).unwrap();
        (p, b)
    }));
    v
}

#[test]
fn recover_rebuilds_the_state_and_names_what_differs() {
    let tmp = TempDir::new("recover");
    let src = tmp.join("db.ordq");
    make(&src);
    let before = files(&src);
    let r = Db::recover(&src, tmp.join("out.ordq"), None).unwrap();
    assert!(
        r.compared && r.difference_count == 0 && r.log_problems.is_empty(),
        "{r:?}"
    );
    assert_eq!(files(&src), before, "the original was written");
    let out = Db::open(tmp.join("out.ordq"), opts()).unwrap();
    assert_eq!(out.stats("q").unwrap().next_offset, 300);
    assert!(out.verify(None).unwrap().ok);
    out.close();
    assert_eq!(
        Db::recover(&src, tmp.join("out.ordq"), None)
            .unwrap_err()
            .code(),
        ErrorCode::AlreadyExists
    );
    // A row changed behind the log's back: named, and the rebuilt state
    // has the log's value.
    {
        let raw = redb::Database::open(&src).unwrap();
        let w = raw.begin_write().unwrap();
        {
            use redb::ReadableTable;
            let mut t = w.open_table(ordq_core::tables::LOG).unwrap();
            let k = t.first().unwrap().unwrap().0.value();
            t.insert(k, b"forged".as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let r = Db::recover(&src, tmp.join("fixed.ordq"), None).unwrap();
    assert_eq!(r.difference_count, 1, "{r:?}");
    assert!(r.differences[0].at.starts_with("table log"), "{r:?}");
    let fixed = Db::open(tmp.join("fixed.ordq"), opts()).unwrap();
    assert_eq!(
        fixed.get_task("q", 0).unwrap().payload.as_deref(),
        Some(b"p0-0".as_slice())
    );
}

#[test]
fn recover_through_a_checkpoint_or_up_to_damage() {
    let tmp = TempDir::new("recover-cut");
    let src = tmp.join("db.ordq");
    make(&src);
    // Through the first checkpoint: the first 100 tasks.
    let r = Db::recover(&src, tmp.join("one.ordq"), Some(1)).unwrap();
    assert_eq!(r.checkpoint, Some(1));
    assert!(r.difference_count > 0, "the current state is later: {r:?}");
    let one = Db::open(tmp.join("one.ordq"), opts()).unwrap();
    assert_eq!(one.stats("q").unwrap().next_offset, 100);
    let v = one.verify(None).unwrap();
    assert!(v.ok && v.checkpoints == 1, "{v:?}");
    one.close();
    assert_eq!(
        Db::recover(&src, tmp.join("x.ordq"), Some(99))
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    // A frame damaged in the second round: the rebuilt state stops before it.
    let seg = {
        let mut segs: Vec<_> = std::fs::read_dir(wal::dir_of(&src))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        // The segment holding the second checkpoint.
        segs.into_iter()
            .find(|p| {
                let b = std::fs::read(p).unwrap();
                let mut lsn = u64::from_le_bytes(b[16..24].try_into().unwrap());
                let mut pos = segment::HEADER as usize;
                while let frame::Decoded::Frame { kind, body, len } =
                    frame::decode(&b[pos..], segment::seed_of(&b), lsn)
                {
                    if kind == KIND_CHECKPOINT
                        && Stored::decode(body).unwrap().checkpoint().unwrap().seq == 2
                    {
                        return true;
                    }
                    pos += len;
                    lsn += 1;
                }
                false
            })
            .unwrap()
    };
    let mut b = std::fs::read(&seg).unwrap();
    b[segment::HEADER as usize + 5] ^= 0x40;
    std::fs::write(&seg, b).unwrap();
    let r = Db::recover(&src, tmp.join("cut.ordq"), None).unwrap();
    assert!(!r.log_problems.is_empty(), "{r:?}");
    let cut = Db::open(tmp.join("cut.ordq"), opts()).unwrap();
    let n = cut.stats("q").unwrap().next_offset;
    assert!(
        (100..200).contains(&n) || n < 100,
        "stops before the damage: {n}"
    );
    assert!(cut.verify(None).unwrap().ok);
}
