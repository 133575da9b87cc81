//! `Db::audit`: a queue worked by many workers, with retries, dead letters
//! and redrives, audits clean (whole queue and one key); a log forged to
//! complete a task under another fence, or out of lane order, does not.

mod common;

use common::TempDir;
use ordq_core::redo::KIND_PUT;
use ordq_core::tables::ID_EVENTS;
use ordq_core::wal::{self, frame, segment};
use ordq_core::{ClaimOptions, Db, EnqueueOptions, Options, QueueConfig, RedriveMode};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn opts() -> Options {
    Options {
        checkpoint_interval: Duration::from_millis(5),
        ..Options::default()
    }
}

/// 60 tasks over 3 keys, worked by 3 threads in batches, some failing
/// (retried, then dead), one dead letter redriven to its lane's head and
/// one to a new offset.
fn work(db: &Db) {
    let cfg = QueueConfig {
        max_attempts: 2,
        backoff: ordq_core::Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
            multiplier: 1.0,
            jitter: 0.0,
        },
        ..QueueConfig::default()
    };
    db.create_queue("q", cfg).unwrap();
    for i in 0..60 {
        db.enqueue("q", &format!("k{}", i % 3), b"p", EnqueueOptions::default())
            .unwrap();
    }
    let threads: Vec<_> = (0..3)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || loop {
                let ls = db
                    .claim(
                        "q",
                        &format!("w{w}"),
                        ClaimOptions {
                            max: 5,
                            wait: Duration::from_millis(50),
                            ..ClaimOptions::default()
                        },
                    )
                    .unwrap();
                if ls.is_empty() {
                    let s = db.stats("q").unwrap();
                    if s.ready + s.leased + s.retry_wait == 0 {
                        return;
                    }
                    continue;
                }
                for l in ls {
                    if l.offset % 13 == 0 {
                        db.fail(l.token, "no", true).unwrap();
                    } else {
                        db.complete(l.token, b"ok").unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let dead = db.dlq_list("q", None, 100).unwrap();
    assert!(dead.len() >= 2, "{}", dead.len());
    db.dlq_redrive("q", dead[0].offset, RedriveMode::Head)
        .unwrap();
    db.dlq_redrive("q", dead[1].offset, RedriveMode::NewOffset)
        .unwrap();
    loop {
        let ls = db
            .claim(
                "q",
                "w9",
                ClaimOptions {
                    max: 10,
                    ..ClaimOptions::default()
                },
            )
            .unwrap();
        if ls.is_empty() {
            break;
        }
        for l in ls {
            db.complete(l.token, b"ok").unwrap();
        }
    }
}

#[test]
fn a_worked_queue_audits_clean() {
    let tmp = TempDir::new("audit-clean");
    let db = Db::open(tmp.join("db.ordq"), opts()).unwrap();
    work(&db);
    let s = db.stats("q").unwrap();
    let r = db.audit("q", None).unwrap();
    assert!(r.ok, "{:#?}", r.violations);
    assert_eq!(r.lane_count, 3);
    let done: u64 = r.lanes.iter().map(|l| l.done).sum();
    let dead: u64 = r.lanes.iter().map(|l| l.dead).sum();
    assert_eq!(done, s.totals.completed);
    assert_eq!(dead, s.totals.dead_lettered);
    assert!(r.leases >= s.totals.completed, "{r:?}");
    let one = db.audit("q", Some("k1")).unwrap();
    assert!(one.ok && one.lane_count == 1, "{one:?}");
    assert!(db.audit("nope", None).is_err());
}

/// A done-event put of the log: (segment, byte, lsn, key, value).
type Put = (std::path::PathBuf, usize, u64, Vec<u8>, Vec<u8>);

/// Every done-event put of the log.
fn done_events(path: &Path) -> Vec<Put> {
    let mut out = Vec::new();
    let mut segs: Vec<_> = std::fs::read_dir(wal::dir_of(path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    for seg in segs {
        let b = std::fs::read(&seg).unwrap();
        let mut lsn = u64::from_le_bytes(b[16..24].try_into().unwrap());
        let mut pos = segment::HEADER as usize;
        while let frame::Decoded::Frame { kind, body, len } =
            frame::decode(&b[pos..], segment::seed_of(&b), lsn)
        {
            if kind == KIND_PUT && body[0] == ID_EVENTS {
                let n = u32::from_le_bytes(body[1..5].try_into().unwrap()) as usize;
                let (k, v) = (body[5..5 + n].to_vec(), body[5 + n..].to_vec());
                if event(&v)["kind"] == "done" {
                    out.push((seg.clone(), pos, lsn, k, v));
                }
            }
            pos += len;
            lsn += 1;
        }
    }
    out
}

fn event(v: &[u8]) -> Value {
    let n = u32::from_le_bytes(v[32..36].try_into().unwrap()) as usize;
    serde_json::from_slice(&v[36..36 + n]).unwrap()
}

/// The event value with its JSON rewritten by `edit` (same length).
fn edited(v: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let n = u32::from_le_bytes(v[32..36].try_into().unwrap()) as usize;
    let mut e = event(v);
    edit(&mut e);
    let json = serde_json::to_vec(&e).unwrap();
    assert_eq!(json.len(), n, "the edit must keep the length");
    let mut out = v.to_vec();
    out[36..36 + n].copy_from_slice(&json);
    out
}

/// Rewrites the put at `pos` of `seg` with `value`, CRC fixed up.
fn forge(seg: &Path, pos: usize, lsn: u64, key: &[u8], value: &[u8]) {
    let mut body = vec![ID_EVENTS];
    body.extend_from_slice(&(key.len() as u32).to_le_bytes());
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    let mut b = std::fs::read(seg).unwrap();
    let mut f = Vec::new();
    frame::encode(&mut f, segment::seed_of(&b), lsn, KIND_PUT, &body);
    b[pos..pos + f.len()].copy_from_slice(&f);
    std::fs::write(seg, b).unwrap();
}

#[test]
fn a_forged_log_fails_the_audit() {
    let tmp = TempDir::new("audit-forged");
    let path = tmp.join("db.ordq");
    let db = Db::open(&path, opts()).unwrap();
    work(&db);
    db.close();
    let events = done_events(&path);
    // 1. A completion under another fence (same number of digits).
    let (seg, pos, lsn, k, v) = &events[5];
    let forged = edited(v, |e| {
        let f = e["fence"].as_u64().unwrap();
        e["fence"] = Value::from(f ^ 1);
    });
    forge(seg, *pos, *lsn, k, &forged);
    let db = Db::open(&path, opts()).unwrap();
    let r = db.audit("q", None).unwrap();
    assert!(!r.ok, "{r:?}");
    assert!(
        r.violations.iter().any(|v| v.kind == "fence"),
        "{:?}",
        r.violations
    );
    db.close();
    forge(seg, *pos, *lsn, k, v);
    let db = Db::open(&path, opts()).unwrap();
    assert!(db.audit("q", None).unwrap().ok, "restored");
    db.close();
    // 2. Two completions of one lane swapped: out of offset order.
    let lane = |v: &[u8]| event(v)["lane"].as_u64().unwrap();
    let off = |v: &[u8]| event(v)["offset"].as_u64().unwrap();
    let (i, j) = (0..events.len())
        .flat_map(|i| (i + 1..events.len()).map(move |j| (i, j)))
        .find(|&(i, j)| {
            let (a, b) = (&events[i].4, &events[j].4);
            lane(a) == lane(b) && off(a) < off(b) && off(a) >= 10 && off(b) < 100
        })
        .expect("two done events of one lane");
    let (a, b) = (&events[i], &events[j]);
    let (oa, ob) = (off(&a.4), off(&b.4));
    forge(
        &a.0,
        a.1,
        a.2,
        &a.3,
        &edited(&a.4, |e| e["offset"] = Value::from(ob)),
    );
    forge(
        &b.0,
        b.1,
        b.2,
        &b.3,
        &edited(&b.4, |e| e["offset"] = Value::from(oa)),
    );
    let db = Db::open(&path, opts()).unwrap();
    let r = db.audit("q", None).unwrap();
    assert!(
        r.violations
            .iter()
            .any(|v| v.kind == "order" && v.offset == oa),
        "{:?}",
        r.violations
    );
    // verify sees the forgery too.
    assert!(!db.verify(None).unwrap().ok);
}
