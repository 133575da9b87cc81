//! The committed fixture databases (tests/fixtures/, see its README) open
//! with this build and answer exactly what their manifest recorded when
//! they were written: every task, fault and dead letter by offset, the
//! stats, the receipts of idempotent enqueues, and fences that only grow.
//! Format 1 is migrated on open: a copy of the file is kept aside, the
//! segment log is created, and nothing changes in what the database
//! answers, then or after a reopen.

mod common;

use common::TempDir;
use ordq_core::{
    ClaimOptions, Db, EnqueueOptions, ManualClock, Options, QueueConfig, QueueInfo, Receipt,
};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn fixture(name: &str) -> (Value, std::path::PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let expect = std::fs::read(dir.join(format!("{name}.expect.json"))).expect("manifest");
    (
        serde_json::from_slice(&expect).expect("manifest is JSON"),
        dir.join(format!("{name}.ordq")),
    )
}

/// Opens a private copy of the fixture with the clock where it stopped.
fn open_copy(src: &Path, tmp: &TempDir, m: &Value) -> Db {
    let copy = tmp.join("copy.ordq");
    std::fs::copy(src, &copy).expect("copy fixture");
    let clock = Arc::new(ManualClock::new(m["clock_ms"].as_u64().unwrap()));
    Db::open(
        &copy,
        Options {
            clock,
            ..Options::default()
        },
    )
    .expect("fixture opens")
}

fn format_of(path: &Path) -> u32 {
    use redb::ReadableDatabase;
    let raw = redb::Database::open(path).unwrap();
    let rtx = raw.begin_read().unwrap();
    let meta = rtx.open_table(ordq_core::tables::META).unwrap();
    let v = meta.get(ordq_core::tables::META_FORMAT).unwrap().unwrap();
    u32::from_le_bytes(v.value().try_into().unwrap())
}

#[test]
fn format1_fixture_migrates_and_answers_its_manifest() {
    let (m, src) = fixture("format1");
    assert_eq!(m["format"], 1);
    let tmp = TempDir::new("fixture1");
    // Read from a copy: opening a file with redb writes to it, and the
    // committed fixture must never change.
    std::fs::copy(&src, tmp.join("peek.ordq")).unwrap();
    assert_eq!(format_of(&tmp.join("peek.ordq")), 1);
    let db = open_copy(&src, &tmp, &m);
    let copy = tmp.join("copy.ordq");
    let bak = tmp.join("copy.ordq.v1.bak");
    assert!(ordq_core::wal::dir_of(&copy).is_dir());
    check_manifest(&db, &m);
    // The migration logged the format-1 state as the log's first group:
    // the log alone rebuilds the state.
    let r = db.verify(None).unwrap();
    assert!(r.ok && r.state_checked, "{r:?}");
    for q in db.list_queues().unwrap() {
        let a = db.audit(&q.name, None).unwrap();
        assert!(a.ok, "{a:?}");
    }
    db.close();
    // The format-1 file is kept aside, and migrates to the same answers.
    assert_eq!(format_of(&bak), 1, "the copy kept aside is format 1");
    {
        let again = TempDir::new("fixture1-bak");
        let db = open_copy(&bak, &again, &m);
        check_manifest(&db, &m);
    }
    assert_eq!(format_of(&copy), ordq_core::tables::FORMAT_VERSION);
    // Reopened as format 2: no second migration, the same answers.
    let before = std::fs::metadata(&bak).unwrap().modified().unwrap();
    let clock = Arc::new(ManualClock::new(m["clock_ms"].as_u64().unwrap()));
    let db = Db::open(
        &copy,
        Options {
            clock,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&bak).unwrap().modified().unwrap(), before);
    check_manifest(&db, &m);
    check_receipts_and_fences(&db, &m);
    let r = db.verify(None).unwrap();
    assert!(r.ok && r.state_checked, "{r:?}");
}

fn check_manifest(db: &Db, m: &Value) {
    let queues = m["queues"].as_array().unwrap();
    assert_eq!(db.list_queues().unwrap().len(), queues.len());
    let mut states = std::collections::BTreeSet::new();
    for q in queues {
        let info: QueueInfo = serde_json::from_value(q["info"].clone()).unwrap();
        assert_eq!(db.queue(&info.name).unwrap(), info);
        let name = info.name.as_str();
        assert_eq!(
            serde_json::to_value(db.stats(name).unwrap()).unwrap(),
            q["stats"],
            "stats of {name}"
        );
        let tasks = q["tasks"].as_array().unwrap();
        for (offset, entry) in tasks.iter().enumerate() {
            let got = db.get_task(name, offset as u64).unwrap();
            states.insert(format!("{:?}", got.state));
            assert_eq!(
                serde_json::to_value(&got).unwrap(),
                entry["task"],
                "{name}@{offset}"
            );
            assert_eq!(
                serde_json::to_value(db.faults(name, offset as u64).unwrap()).unwrap(),
                entry["faults"],
                "faults of {name}@{offset}"
            );
        }
        assert!(
            db.get_task(name, tasks.len() as u64).is_err(),
            "no extra task in {name}"
        );
        let dlq: Vec<u64> = db
            .dlq_list(name, None, 1000)
            .unwrap()
            .iter()
            .map(|t| t.offset)
            .collect();
        assert_eq!(
            serde_json::to_value(dlq).unwrap(),
            q["dlq"],
            "dlq of {name}"
        );
    }
    // The fixture covers every lifecycle state.
    for s in ["Ready", "Leased", "RetryWait", "Done", "Dead"] {
        assert!(states.contains(s), "fixture has no {s} task: {states:?}");
    }
}

fn check_receipts_and_fences(db: &Db, m: &Value) {
    // An idempotency key answers its first receipt, marked duplicate.
    for e in m["idempotency"].as_array().unwrap() {
        let first: Receipt = serde_json::from_value(e["receipt"].clone()).unwrap();
        let again = db
            .enqueue(
                e["queue"].as_str().unwrap(),
                e["key"].as_str().unwrap(),
                b"again",
                EnqueueOptions {
                    idempotency_key: Some(e["idempotency_key"].as_str().unwrap().into()),
                    ..EnqueueOptions::default()
                },
            )
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(
            (again.offset, again.shard, &again.id),
            (first.offset, first.shard, &first.id)
        );
    }
    // Fences keep growing past every one granted before the copy.
    db.create_queue("fresh", QueueConfig::default()).unwrap();
    db.enqueue("fresh", "k", b"x", EnqueueOptions::default())
        .unwrap();
    let l = db.claim("fresh", "w", ClaimOptions::default()).unwrap();
    assert!(l[0].token.fence > m["max_fence"].as_u64().unwrap());
}
