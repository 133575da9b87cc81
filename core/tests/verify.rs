//! `Db::verify`: a clean database verifies clean, signed or not, migrated
//! or not, while writers go on; each kind of damage is found with its own
//! class: a state row edited behind the log's back, a forged checkpoint
//! (CRC fixed up), a wrong key, a log frame flipped, an edited chain.

mod common;

use common::TempDir;
use ordq_core::checkpoint::{Stored, KIND_CHECKPOINT};
use ordq_core::verify::{ProblemClass, VerifyReport};
use ordq_core::wal::{self, frame, segment};
use ordq_core::{ClaimOptions, Db, EnqueueOptions, ErrorCode, Options, QueueConfig, RedriveMode};
use std::path::Path;
use std::time::Duration;

fn opts(key: Option<[u8; 32]>) -> Options {
    Options {
        checkpoint_interval: Duration::from_millis(5),
        signing_key: key,
        ..Options::default()
    }
}

/// A bit of every kind of work, with checkpoints in between.
fn work(db: &Db) {
    let cfg = QueueConfig {
        max_attempts: 1,
        ..QueueConfig::default()
    };
    db.create_queue("q", cfg).unwrap();
    db.create_queue("gone", QueueConfig::default()).unwrap();
    db.enqueue("gone", "k", b"x", EnqueueOptions::default())
        .unwrap();
    for i in 0..30 {
        let o = EnqueueOptions {
            idempotency_key: (i % 5 == 0).then(|| format!("idem-{i}")),
            ..EnqueueOptions::default()
        };
        db.enqueue("q", &format!("k{}", i % 4), format!("p{i}").as_bytes(), o)
            .unwrap();
        if i % 7 == 0 {
            std::thread::sleep(Duration::from_millis(8));
        }
    }
    db.delete_queue("gone").unwrap();
    for round in 0..3 {
        let ls = db
            .claim(
                "q",
                "w",
                ClaimOptions {
                    max: 4,
                    ..ClaimOptions::default()
                },
            )
            .unwrap();
        for (i, l) in ls.into_iter().enumerate() {
            if i == 0 && round < 2 {
                db.fail(l.token, "boom", false).unwrap();
            } else {
                db.complete(l.token, b"ok").unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    let dead = db.dlq_list("q", None, 10).unwrap();
    assert_eq!(dead.len(), 2);
    db.dlq_redrive("q", dead[0].offset, RedriveMode::NewOffset)
        .unwrap();
    db.dlq_purge("q", Some(dead[1].offset)).unwrap();
}

fn clean(r: &VerifyReport) {
    assert!(r.ok, "{:#?}", r.problems);
    assert_eq!(r.problem_count, 0);
}

fn has(r: &VerifyReport, class: ProblemClass) -> bool {
    r.problems.iter().any(|p| p.class == class)
}

fn key(seed: u8) -> [u8; 32] {
    [seed; 32]
}

fn public(seed: u8) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&key(seed))
        .verifying_key()
        .to_bytes()
}

#[test]
fn a_clean_database_verifies_clean_signed_or_not() {
    let tmp = TempDir::new("verify-clean");
    let path = tmp.join("db.ordq");
    let db = Db::open(&path, opts(None)).unwrap();
    work(&db);
    // Let the periodic checkpoint after the last write happen first, so
    // the count below changes by the on-demand one only.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let i = db.log_info().unwrap();
        if i.checkpoint_lsn == i.next_lsn || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = db.verify(None).unwrap();
    clean(&r);
    assert!(r.state_checked && r.checkpoints >= 2, "{r:?}");
    assert_eq!((r.signed, r.unsigned), (0, r.checkpoints));
    assert_eq!(r.queues.len(), 1);
    assert_eq!(r.queues[0].log_records, 31);
    // An on-demand checkpoint adds one record to the chain.
    let info = db.checkpoint().unwrap();
    assert_eq!(info.checkpoint_lsn, info.next_lsn);
    let again = db.verify(None).unwrap();
    clean(&again);
    assert_eq!(again.checkpoints, r.checkpoints + 1);
    // Asking for signatures makes the unsigned checkpoints problems.
    let r = db.verify(Some(public(1))).unwrap();
    assert!(has(&r, ProblemClass::Signature), "{r:?}");
    db.close();

    let path = tmp.join("signed.ordq");
    let db = Db::open(&path, opts(Some(key(1)))).unwrap();
    work(&db);
    db.close();
    let db = Db::open(&path, opts(Some(key(1)))).unwrap();
    let r = db.verify(None).unwrap();
    clean(&r);
    assert!(r.checkpoints >= 2 && r.signed == r.checkpoints, "{r:?}");
    clean(&db.verify(Some(public(1))).unwrap());
    let wrong = db.verify(Some(public(2))).unwrap();
    assert!(has(&wrong, ProblemClass::Signature), "{wrong:?}");
    db.close();
    // Another key cannot take over the database.
    let e = Db::open(&path, opts(Some(key(2)))).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("key rotation"), "{e}");
    // Written once without its key: the unsigned checkpoint is found.
    let db = Db::open(&path, opts(None)).unwrap();
    db.enqueue("q", "k", b"unsigned", EnqueueOptions::default())
        .unwrap();
    db.close();
    let db = Db::open(&path, opts(Some(key(1)))).unwrap();
    let r = db.verify(None).unwrap();
    assert!(r.unsigned >= 1 && has(&r, ProblemClass::Signature), "{r:?}");
}

#[test]
fn verify_runs_while_writers_go_on() {
    let tmp = TempDir::new("verify-online");
    let db = Db::open(tmp.join("db.ordq"), opts(None)).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                db.enqueue("q", "k", b"x", EnqueueOptions::default())
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    for _ in 0..5 {
        clean(&db.verify(None).unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    clean(&db.verify(None).unwrap());
}

/// Rewrites the frame at byte `pos` of `seg` with `body`, CRC recomputed:
/// what a forger who knows the format would do.
fn forge_frame(seg: &Path, pos: usize, lsn: u64, kind: u8, body: &[u8]) {
    let mut b = std::fs::read(seg).unwrap();
    let mut f = Vec::new();
    frame::encode(&mut f, segment::seed_of(&b), lsn, kind, body);
    b[pos..pos + f.len()].copy_from_slice(&f);
    std::fs::write(seg, b).unwrap();
}

/// Every frame of a segment: (byte position, lsn, kind, body).
fn frames(seg: &Path) -> Vec<(usize, u64, u8, Vec<u8>)> {
    let b = std::fs::read(seg).unwrap();
    let mut lsn = u64::from_le_bytes(b[16..24].try_into().unwrap());
    let mut pos = segment::HEADER as usize;
    let mut out = Vec::new();
    while let frame::Decoded::Frame { kind, body, len } =
        frame::decode(&b[pos..], segment::seed_of(&b), lsn)
    {
        out.push((pos, lsn, kind, body.to_vec()));
        pos += len;
        lsn += 1;
    }
    out
}

fn only_segment(path: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(wal::dir_of(path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(segs.len(), 1);
    segs.pop().unwrap()
}

#[test]
fn a_forged_checkpoint_is_found() {
    let tmp = TempDir::new("verify-forge");
    for signed in [false, true] {
        let path = tmp.join(&format!("db-{signed}.ordq"));
        let k = signed.then(|| key(3));
        let db = Db::open(&path, opts(k)).unwrap();
        work(&db);
        db.close();
        // The first checkpoint claims another fence; its CRC is fixed up.
        let seg = only_segment(&path);
        let (pos, lsn, _, body) = frames(&seg)
            .into_iter()
            .find(|f| f.2 == KIND_CHECKPOINT)
            .unwrap();
        let mut s = Stored::decode(&body).unwrap();
        let mut c = s.checkpoint().unwrap();
        c.fence ^= 1;
        // Same length, so the frames after it stay in place.
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(json.len(), s.json.len());
        s.json = json;
        forge_frame(&seg, pos, lsn, KIND_CHECKPOINT, &s.encode());
        let db = Db::open(&path, opts(k)).unwrap();
        let r = db.verify(None).unwrap();
        assert!(has(&r, ProblemClass::Checkpoint), "{signed}: {r:?}");
        assert_eq!(has(&r, ProblemClass::Signature), signed, "{r:?}");
        assert!(!r.ok);
    }
}

#[test]
fn a_state_row_edited_behind_the_logs_back_is_found() {
    let tmp = TempDir::new("verify-state");
    let path = tmp.join("db.ordq");
    let db = Db::open(&path, opts(None)).unwrap();
    work(&db);
    db.close();
    {
        // A task's state row rewritten straight in redb: done -> attempt 9.
        let raw = redb::Database::open(&path).unwrap();
        let w = raw.begin_write().unwrap();
        {
            let mut t = w.open_table(ordq_core::tables::TASKS).unwrap();
            let (k, mut v) = {
                use redb::ReadableTable;
                let (k, v) = t.first().unwrap().unwrap();
                (k.value(), v.value().to_vec())
            };
            v[4] = 9;
            t.insert(k, v.as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let db = Db::open(&path, opts(None)).unwrap();
    let r = db.verify(None).unwrap();
    assert!(has(&r, ProblemClass::State), "{r:?}");
    assert!(
        r.problems[0].at.starts_with("table tasks"),
        "{:?}",
        r.problems
    );
}

#[test]
fn an_edited_log_record_breaks_its_chain_and_the_state() {
    let tmp = TempDir::new("verify-chain");
    let path = tmp.join("db.ordq");
    let db = Db::open(&path, opts(None)).unwrap();
    work(&db);
    db.close();
    {
        // The payload digest of offset 3 changed in the stored record.
        let raw = redb::Database::open(&path).unwrap();
        let w = raw.begin_write().unwrap();
        {
            let mut t = w.open_table(ordq_core::tables::LOG).unwrap();
            let mut v = {
                use redb::ReadableTable;
                let q = t.first().unwrap().unwrap().0.value().0;
                t.get((q, 3)).unwrap().unwrap().value().to_vec()
            };
            let at = v.len() - 20;
            v[at] = if v[at] == b'a' { b'b' } else { b'a' };
            let q = {
                use redb::ReadableTable;
                t.first().unwrap().unwrap().0.value().0
            };
            t.insert((q, 3), v.as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let db = Db::open(&path, opts(None)).unwrap();
    let r = db.verify(None).unwrap();
    assert!(has(&r, ProblemClass::Chain), "{r:?}");
    assert!(has(&r, ProblemClass::State), "{r:?}");
}

#[test]
fn a_flipped_frame_in_an_old_segment_is_found() {
    let tmp = TempDir::new("verify-frame");
    let path = tmp.join("db.ordq");
    let small = Options {
        segment_size: 16 << 10,
        ..opts(None)
    };
    let db = Db::open(&path, small.clone()).unwrap();
    work(&db);
    for i in 0..200 {
        db.enqueue(
            "q",
            "k",
            format!("more{i}").as_bytes(),
            EnqueueOptions::default(),
        )
        .unwrap();
    }
    db.close();
    // The first segment is older than the checkpoint: open does not read
    // its frames, verify does.
    let mut segs: Vec<_> = std::fs::read_dir(wal::dir_of(&path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert!(segs.len() >= 3);
    let mut b = std::fs::read(&segs[0]).unwrap();
    b[segment::HEADER as usize + 30] ^= 0x10;
    std::fs::write(&segs[0], b).unwrap();
    let db = Db::open(&path, small).unwrap();
    let r = db.verify(None).unwrap();
    assert_eq!(r.worst(), Some(ProblemClass::Log), "{r:?}");
    assert_eq!(r.worst().unwrap().exit_code(), 40);
}

#[test]
fn a_compacted_log_verifies_what_it_still_holds() {
    let tmp = TempDir::new("verify-compact");
    let path = tmp.join("db.ordq");
    let small = Options {
        segment_size: 16 << 10,
        ..opts(Some(key(4)))
    };
    let db = Db::open(&path, small).unwrap();
    work(&db);
    for i in 0..200 {
        db.enqueue(
            "q",
            "k",
            format!("more{i}").as_bytes(),
            EnqueueOptions::default(),
        )
        .unwrap();
    }
    assert!(db.compact_log().unwrap().removed_segments > 0);
    db.enqueue("q", "k", b"after", EnqueueOptions::default())
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let r = db.verify(None).unwrap();
    clean(&r);
    assert!(!r.state_checked && !r.notes.is_empty(), "{r:?}");
    assert!(r.signed >= 1, "{r:?}");
}
