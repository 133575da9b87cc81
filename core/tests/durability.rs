//! The database and its segment log together (format 2): the state comes
//! back from the log after a crash that skipped the checkpoint, an
//! unfinished last group is cut and reported, and a log that is missing,
//! cut below the checkpoint or damaged before its last group refuses to
//! open. Crash tests with real SIGKILLs are in crash.rs.

mod common;

use common::TempDir;
use ordq_core::wal::{self, segment};
use ordq_core::{ClaimOptions, Db, EnqueueOptions, ErrorCode, Options, QueueConfig};
use std::path::Path;
use std::time::Duration;

fn opts() -> Options {
    Options {
        // No checkpoint but the one at close: a test that skips close
        // leaves everything to the log.
        checkpoint_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

/// Puts `n` tasks, completes the first `done`; answers their offsets.
fn work(db: &Db, n: usize, done: usize) -> Vec<u64> {
    let mut offs = Vec::new();
    for i in 0..n {
        let r = db
            .enqueue(
                "q",
                &format!("k{}", i % 3),
                format!("p{i}").as_bytes(),
                EnqueueOptions::default(),
            )
            .unwrap();
        offs.push(r.offset);
    }
    let mut left = done;
    while left > 0 {
        let ls = db
            .claim(
                "q",
                "w",
                ClaimOptions {
                    max: left,
                    ..ClaimOptions::default()
                },
            )
            .unwrap();
        assert!(!ls.is_empty());
        for l in ls {
            db.complete(l.token, b"ok").unwrap();
            left -= 1;
        }
    }
    offs
}

fn last_segment(db_path: &Path) -> std::path::PathBuf {
    let dir = wal::dir_of(db_path);
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// Where the log's next group would be written (the end of its data: the
/// last bytes of a group may be zeros).
fn log_end(db_path: &Path) -> usize {
    let dir = wal::dir_of(db_path);
    let head = std::fs::read(last_segment(db_path)).unwrap();
    let id: [u8; 16] = head[24..40].try_into().unwrap();
    let (w, _) = wal::Wal::open(&dir, id, wal::DEFAULT_SEGMENT_SIZE, 0).unwrap();
    w.position().offset as usize
}

#[test]
fn a_crash_without_checkpoint_is_replayed_from_the_log() {
    let tmp = TempDir::new("dur-replay");
    let path = tmp.join("db.ordq");
    {
        let db = Db::open(&path, opts()).unwrap();
        db.create_queue("q", QueueConfig::default()).unwrap();
        db.close();
    }
    // Copy the files while a handle is open and has acknowledged work but
    // never checkpointed: what a crash at that moment leaves on disk.
    let image = tmp.join("image");
    std::fs::create_dir(&image).unwrap();
    let (offs, stats) = {
        let db = Db::open(&path, opts()).unwrap();
        let offs = work(&db, 30, 12);
        let stats = db.stats("q").unwrap();
        std::fs::copy(&path, image.join("db.ordq")).unwrap();
        let log = wal::dir_of(&image.join("db.ordq"));
        std::fs::create_dir(&log).unwrap();
        for e in std::fs::read_dir(wal::dir_of(&path)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), log.join(e.file_name())).unwrap();
        }
        db.close();
        (offs, stats)
    };
    // The image's durable state covers less of the log than it holds.
    let covered = {
        use redb::ReadableDatabase;
        let raw = redb::Database::open(image.join("db.ordq")).unwrap();
        let rtx = raw.begin_read().unwrap();
        let meta = rtx.open_table(ordq_core::tables::META).unwrap();
        let v = meta.get(ordq_core::tables::META_WAL_LSN).unwrap().unwrap();
        u64::from_le_bytes(v.value().try_into().unwrap())
    };
    let db = Db::open(image.join("db.ordq"), opts()).unwrap();
    assert_eq!(db.log_recovery().torn, None);
    assert!(
        covered < db.log_recovery().next_lsn,
        "nothing to replay: covered {covered}, log {:?}",
        db.log_recovery()
    );
    let got = db.stats("q").unwrap();
    assert_eq!(
        (got.next_offset, got.done, got.ready, got.totals),
        (stats.next_offset, stats.done, stats.ready, stats.totals)
    );
    for (i, &o) in offs.iter().enumerate() {
        let t = db.get_task("q", o).unwrap();
        assert_eq!(t.payload.as_deref(), Some(format!("p{i}").as_bytes()));
    }
    // Fences go on growing after the replay.
    let l = db.claim("q", "w2", ClaimOptions::default()).unwrap();
    assert_eq!(l.len(), 1);
    db.complete(l[0].token, b"").unwrap();
    db.close();
    let db = Db::open(image.join("db.ordq"), opts()).unwrap();
    assert_eq!(db.stats("q").unwrap().done, stats.done + 1);
}

#[test]
fn an_unfinished_last_group_is_cut_and_reported() {
    let tmp = TempDir::new("dur-torn");
    let path = tmp.join("db.ordq");
    {
        let db = Db::open(&path, opts()).unwrap();
        db.create_queue("q", QueueConfig::default()).unwrap();
        work(&db, 10, 4);
        db.close();
    }
    // Half a group after the end: a frame header announcing more than
    // was written.
    let seg = last_segment(&path);
    let mut b = std::fs::read(&seg).unwrap();
    let end = log_end(&path);
    let mut torn = Vec::new();
    ordq_core::wal::frame::encode(&mut torn, segment::seed_of(&b), 999, 16, &[7u8; 300]);
    b[end..end + 100].copy_from_slice(&torn[..100]);
    std::fs::write(&seg, &b).unwrap();
    let db = Db::open(&path, opts()).unwrap();
    let t = db.log_recovery().torn.clone().expect("torn tail reported");
    assert_eq!(t.offset as usize, end);
    assert_eq!(t.bytes, 100);
    assert_eq!(db.stats("q").unwrap().done, 4);
    work(&db, 2, 0);
    db.close();
    let db = Db::open(&path, opts()).unwrap();
    assert_eq!(db.log_recovery().torn, None, "the cut is made once");
    assert_eq!(db.stats("q").unwrap().next_offset, 12);
}

#[test]
fn a_missing_cut_or_damaged_log_refuses_to_open() {
    let tmp = TempDir::new("dur-bad");
    let path = tmp.join("db.ordq");
    {
        let db = Db::open(&path, opts()).unwrap();
        db.create_queue("q", QueueConfig::default()).unwrap();
        work(&db, 20, 5);
        db.close();
    }
    let log = wal::dir_of(&path);
    let seg = last_segment(&path);
    let orig = std::fs::read(&seg).unwrap();
    let corrupt = |why: &str| {
        let e = Db::open(&path, opts()).expect_err(why);
        assert_eq!(e.code(), ErrorCode::Corrupt, "{why}: {e}");
        e.to_string()
    };
    // The log cut back below what the durable state covers.
    let mut b = orig.clone();
    b[segment::HEADER as usize..]
        .iter_mut()
        .for_each(|x| *x = 0);
    std::fs::write(&seg, &b).unwrap();
    assert!(corrupt("cut log").contains("covers the log up to LSN"));
    // A bit flipped in an early group.
    let mut b = orig.clone();
    b[segment::HEADER as usize + 20] ^= 0x08;
    std::fs::write(&seg, &b).unwrap();
    corrupt("flipped bit");
    // The log missing.
    std::fs::write(&seg, &orig).unwrap();
    std::fs::rename(&log, tmp.join("aside")).unwrap();
    assert!(corrupt("missing log").contains("missing"));
    std::fs::rename(tmp.join("aside"), &log).unwrap();
    // Restored, it opens with everything.
    let db = Db::open(&path, opts()).unwrap();
    assert_eq!(db.stats("q").unwrap().done, 5);
}

#[test]
fn a_stale_log_without_its_database_is_replaced_only_when_empty() {
    let tmp = TempDir::new("dur-stale");
    // An empty log left by a creation that died before the file existed.
    let path = tmp.join("a.ordq");
    wal::Wal::create(&wal::dir_of(&path), [1; 16], wal::DEFAULT_SEGMENT_SIZE).unwrap();
    let db = Db::open(&path, opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    db.close();
    Db::open(&path, opts()).unwrap().close();
    // A log holding records whose database is gone is never replaced.
    let path = tmp.join("b.ordq");
    let dir = wal::dir_of(&path);
    let mut w = wal::Wal::create(&dir, [2; 16], wal::DEFAULT_SEGMENT_SIZE).unwrap();
    w.append(16, b"x").unwrap();
    w.commit().unwrap();
    w.sync().unwrap();
    drop(w);
    let e = Db::open(&path, opts()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert!(!path.exists());
    let (w, rec) = wal::Wal::open(&dir, [2; 16], wal::DEFAULT_SEGMENT_SIZE, 0).unwrap();
    assert_eq!((rec.next_lsn, w.read_from(0).unwrap().len()), (2, 1));
}
