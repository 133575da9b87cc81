//! Tamper battery: single-byte flips at random places of a signed
//! database's files (the state file and every segment of its log). None
//! may be accepted as clean unless it is harmless: each flipped copy must
//! fail to open with an error, or `verify` must report a problem, or — if
//! it opens and verifies clean — every row it holds must equal the
//! original's (the flip hit space that holds nothing: redb's free pages,
//! a segment's zero fill, which opening cuts and reports as a torn tail;
//! or the two meta rows nothing reads back, `created_at` and `wal_lsn`
//! below the log's end, which replay makes good). No flip may crash the
//! process. Every other flip lands in the written bytes of a segment
//! (header and frames): each of those must be found. Knobs:
//! `ORDQ_TAMPER_FLIPS` (default 1000), `ORDQ_TAMPER_SEED`.

mod common;

use common::TempDir;
use ordq_core::tables::{ID_META, META_CREATED, META_WAL_LSN};
use ordq_core::wal::{self, segment};
use ordq_core::{ClaimOptions, Db, EnqueueOptions, Options, QueueConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn opts() -> Options {
    Options {
        checkpoint_interval: Duration::from_millis(5),
        segment_size: 32 << 10,
        signing_key: Some([7; 32]),
        ..Options::default()
    }
}

type Rows = Vec<(u8, Vec<u8>, Vec<u8>)>;

/// Every row of the state but the meta rows nothing reads back.
fn rows(path: &Path) -> Rows {
    let db = redb::Database::open(path).unwrap();
    let mut out = Vec::new();
    ordq_core::rows::for_each_in(&db, |t, k, v| {
        let unread = t == ID_META && (k == META_CREATED.as_bytes() || k == META_WAL_LSN.as_bytes());
        if !unread {
            out.push((t, k.to_vec(), v.to_vec()));
        }
        Ok(())
    })
    .unwrap();
    out
}

/// The state file, then every segment.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(wal::dir_of(path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let mut v = vec![path.to_path_buf()];
    v.extend(segs);
    v
}

/// Copies the database and its log to `dst`.
fn copy_db(src: &Path, dst: &Path) {
    let _ = std::fs::remove_dir_all(wal::dir_of(dst));
    std::fs::copy(src, dst).unwrap();
    std::fs::create_dir(wal::dir_of(dst)).unwrap();
    for f in files(src).iter().skip(1) {
        std::fs::copy(f, wal::dir_of(dst).join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn no_single_byte_flip_is_accepted_as_clean_unless_harmless() {
    let flips: u64 = std::env::var("ORDQ_TAMPER_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = TempDir::new("tamper");
    let orig = tmp.join("orig.ordq");
    {
        let db = Db::open(&orig, opts()).unwrap();
        db.create_queue("q", QueueConfig::default()).unwrap();
        for i in 0..150 {
            db.enqueue(
                "q",
                &format!("k{}", i % 5),
                format!("p{i}").as_bytes(),
                EnqueueOptions::default(),
            )
            .unwrap();
            if i % 30 == 0 {
                std::thread::sleep(Duration::from_millis(8));
            }
        }
        for l in db
            .claim(
                "q",
                "w",
                ClaimOptions {
                    max: 5,
                    ..ClaimOptions::default()
                },
            )
            .unwrap()
        {
            db.complete(l.token, b"ok").unwrap();
        }
        db.close();
        let db = Db::open(&orig, opts()).unwrap();
        let r = db.verify(None).unwrap();
        assert!(r.ok && r.state_checked && r.signed >= 2, "{r:?}");
        db.close();
    }
    let base_rows = rows(&orig);
    let sizes: Vec<(PathBuf, u64)> = files(&orig)
        .into_iter()
        .map(|f| {
            let n = std::fs::metadata(&f).unwrap().len();
            (f, n)
        })
        .collect();
    let total: u64 = sizes.iter().map(|s| s.1).sum();
    // Every other flip lands in the written part of a segment (header and
    // frames, not the zero fill), where nothing may pass.
    let written: Vec<(PathBuf, u64)> = sizes[1..]
        .iter()
        .map(|(f, _)| {
            let b = std::fs::read(f).unwrap();
            (
                f.clone(),
                b.iter().rposition(|&x| x != 0).map_or(0, |p| p as u64 + 1),
            )
        })
        .collect();
    let total_written: u64 = written.iter().map(|s| s.1).sum();
    let seed = std::env::var("ORDQ_TAMPER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(seed);
    let copy = tmp.join("copy.ordq");
    let mut outcome: HashMap<&str, u64> = HashMap::new();
    for n in 0..flips {
        copy_db(&orig, &copy);
        // A byte position over all files (or over the segments' written
        // bytes), weighted by size, and a bit.
        let (pool, span) = if n % 2 == 0 {
            (&sizes, total)
        } else {
            (&written, total_written)
        };
        let mut at = rng.next() % span;
        let (file, _) = pool
            .iter()
            .find(|(_, len)| {
                if at < *len {
                    true
                } else {
                    at -= len;
                    false
                }
            })
            .unwrap();
        let target = if file == &orig {
            copy.clone()
        } else {
            wal::dir_of(&copy).join(file.file_name().unwrap())
        };
        let mut b = std::fs::read(&target).unwrap();
        b[at as usize] ^= 1 << (rng.next() % 8);
        std::fs::write(&target, &b).unwrap();
        let ctx = format!("flip {n}: {} byte {at} (seed {seed})", target.display());
        let opened = std::panic::catch_unwind(|| Db::open(&copy, opts()));
        let db = match opened {
            Err(_) => panic!("{ctx}: opening panicked"),
            Ok(Err(_)) => {
                *outcome.entry("refused at open").or_default() += 1;
                continue;
            }
            Ok(Ok(db)) => db,
        };
        let torn = db.log_recovery().torn.is_some();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.verify(None)))
            .unwrap_or_else(|_| panic!("{ctx}: verify panicked"));
        db.close();
        match r {
            Err(_) => *outcome.entry("verify failed").or_default() += 1,
            Ok(r) if !r.ok => *outcome.entry("verify found it").or_default() += 1,
            Ok(_) => {
                assert!(
                    n % 2 == 0,
                    "{ctx}: a flip in the log's written bytes passed"
                );
                assert_eq!(rows(&copy), base_rows, "{ctx}: verified clean but changed");
                *outcome
                    .entry(if torn {
                        "harmless: cut as torn"
                    } else {
                        "harmless"
                    })
                    .or_default() += 1;
            }
        }
    }
    println!(
        "tamper: {flips} flips over {total} bytes (half in the {total_written} written bytes of the log): {outcome:?}"
    );
    let detected: u64 = ["refused at open", "verify failed", "verify found it"]
        .iter()
        .map(|k| outcome.get(k).copied().unwrap_or(0))
        .sum();
    assert!(detected >= flips / 2, "{outcome:?}");
}

/// A database with `n` enqueues in one segment, closed (its last
/// checkpoint covers all).
fn small_db(path: &Path, n: u64) {
    let one_segment = Options {
        segment_size: ordq_core::wal::DEFAULT_SEGMENT_SIZE,
        ..opts()
    };
    let db = Db::open(path, one_segment).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..n {
        db.enqueue(
            "q",
            &format!("k{}", i % 3),
            format!("p{i}").as_bytes(),
            EnqueueOptions::default(),
        )
        .unwrap();
    }
    db.close();
}

/// Every frame of a segment: (byte position, length).
fn frame_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let mut lsn = u64::from_le_bytes(b[16..24].try_into().unwrap());
    let mut pos = segment::HEADER as usize;
    let mut out = Vec::new();
    while let ordq_core::wal::frame::Decoded::Frame { len, .. } =
        ordq_core::wal::frame::decode(&b[pos..], segment::seed_of(b), lsn)
    {
        out.push((pos, len));
        pos += len;
        lsn += 1;
    }
    out
}

/// Whether the tampered copy at `path` is caught: refused at open, or
/// verify reports a problem.
fn caught(path: &Path) -> bool {
    match Db::open(path, opts()) {
        Err(_) => true,
        Ok(db) => {
            let r = db.verify(None);
            db.close();
            !matches!(r, Ok(r) if r.ok)
        }
    }
}

#[test]
fn truncation_at_every_frame_boundary_and_mid_frame_is_caught() {
    let tmp = TempDir::new("tamper-cut");
    let orig = tmp.join("orig.ordq");
    small_db(&orig, 40);
    let mut segs = files(&orig);
    assert_eq!(segs.len(), 2, "one segment");
    let seg = segs.pop().unwrap();
    let b = std::fs::read(&seg).unwrap();
    let spans = frame_spans(&b);
    assert!(spans.len() > 40);
    let copy = tmp.join("copy.ordq");
    let mut cuts = 0;
    for &(pos, len) in &spans {
        for at in [pos, pos + len / 2] {
            copy_db(&orig, &copy);
            let s = wal::dir_of(&copy).join(seg.file_name().unwrap());
            std::fs::write(&s, &b[..at]).unwrap();
            assert!(caught(&copy), "a log cut at byte {at} passed");
            cuts += 1;
        }
    }
    println!("tamper: {cuts} truncations, all caught");
}

#[test]
fn reordered_and_spliced_frames_are_caught() {
    let tmp = TempDir::new("tamper-splice");
    let (a, other) = (tmp.join("a.ordq"), tmp.join("other.ordq"));
    small_db(&a, 30);
    // Another database with the same shape of work but other payloads.
    {
        let db = Db::open(&other, opts()).unwrap();
        db.create_queue("q", QueueConfig::default()).unwrap();
        for i in 0..30 {
            db.enqueue(
                "q",
                &format!("k{}", i % 3),
                format!("x{i}").as_bytes(),
                EnqueueOptions::default(),
            )
            .unwrap();
        }
        db.close();
    }
    let seg_a = files(&a).pop().unwrap();
    let seg_o = files(&other).pop().unwrap();
    let (ba, bo) = (
        std::fs::read(&seg_a).unwrap(),
        std::fs::read(&seg_o).unwrap(),
    );
    let (sa, so) = (frame_spans(&ba), frame_spans(&bo));
    let copy = tmp.join("copy.ordq");
    let mut swapped = 0;
    // Two frames of one length swapped (reordered records).
    let pairs = (0..sa.len()).flat_map(|i| (i + 1..sa.len()).map(move |j| (i, j)));
    for (i, j) in pairs {
        let ((p1, l1), (p2, l2)) = (sa[i], sa[j]);
        if l1 != l2 || ba[p1..p1 + l1] == ba[p2..p2 + l2] || swapped >= 50 {
            continue;
        }
        copy_db(&a, &copy);
        let mut b = ba.clone();
        let first = b[p1..p1 + l1].to_vec();
        b.copy_within(p2..p2 + l2, p1);
        b[p2..p2 + l2].copy_from_slice(&first);
        std::fs::write(wal::dir_of(&copy).join(seg_a.file_name().unwrap()), &b).unwrap();
        assert!(caught(&copy), "frames at {p1} and {p2} swapped passed");
        swapped += 1;
    }
    // A frame of the other database spliced in at the same LSN (its CRC
    // is valid there: frames are bound to their LSN, not to the log).
    let mut spliced = 0;
    for (i, (&(pa, la), &(po, lo))) in sa.iter().zip(&so).enumerate() {
        if la != lo || ba[pa..pa + la] == bo[po..po + lo] {
            continue;
        }
        copy_db(&a, &copy);
        let mut b = ba.clone();
        b[pa..pa + la].copy_from_slice(&bo[po..po + lo]);
        std::fs::write(wal::dir_of(&copy).join(seg_a.file_name().unwrap()), &b).unwrap();
        assert!(
            caught(&copy),
            "frame {i} of the other database spliced in passed: {:?} vs {:?}",
            String::from_utf8_lossy(&ba[pa..pa + la]),
            String::from_utf8_lossy(&bo[po..po + lo])
        );
        spliced += 1;
    }
    assert!(
        swapped > 0 && spliced > 0,
        "{swapped} swaps, {spliced} splices"
    );
    println!("tamper: {swapped} swaps and {spliced} splices, all caught");
}
