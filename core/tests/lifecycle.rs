//! End-to-end life cycle through the public API with a manual clock.

use ordq_core::*;
use std::sync::Arc;
use std::time::Duration;

fn open(dir: &std::path::Path) -> (Db, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let opts = Options {
        clock: clock.clone(),
        ..Options::default()
    };
    (Db::open(dir.join("t.ordq"), opts).unwrap(), clock)
}

fn tmp() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ordq-life-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn enqueue_claim_complete_fail_expire() {
    let d = tmp();
    let (db, clock) = open(&d);
    let cfg = QueueConfig {
        max_attempts: 2,
        ..Default::default()
    };
    db.create_queue("q", cfg).unwrap();
    let r0 = db
        .enqueue("q", "a", b"p0", EnqueueOptions::default())
        .unwrap();
    let r1 = db
        .enqueue("q", "a", b"p1", EnqueueOptions::default())
        .unwrap();
    assert_eq!((r0.offset, r1.offset), (0, 1));
    let l = db
        .claim(
            "q",
            "w",
            ClaimOptions {
                max: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(l.len(), 1, "one lane, one lease");
    assert_eq!(l[0].payload, b"p0");
    let c = db.complete(l[0].token, b"ok").unwrap();
    assert!(!c.duplicate);
    assert!(db.complete(l[0].token, b"ok").unwrap().duplicate);
    let l = db.claim("q", "w", ClaimOptions::default()).unwrap();
    assert_eq!(l[0].offset, 1);
    match db.fail(l[0].token, "boom", true).unwrap() {
        FailOutcome::Retry { attempt: 1, .. } => {}
        o => panic!("{o:?}"),
    }
    assert!(db
        .claim("q", "w", ClaimOptions::default())
        .unwrap()
        .is_empty());
    clock.advance(Duration::from_secs(3600));
    let l = db.claim("q", "w", ClaimOptions::default()).unwrap();
    assert_eq!(l[0].attempt, 2);
    clock.advance(Duration::from_secs(60));
    db.sync().unwrap();
    assert!(matches!(
        db.complete(l[0].token, b""),
        Err(Error::LeaseLost(_))
    ));
    let t = db.get_task("q", 1).unwrap();
    assert_eq!(t.state, TaskState::Dead);
    let dl = db.dlq_get("q", 1).unwrap();
    assert_eq!(dl.faults.len(), 2);
    let s = db.stats("q").unwrap();
    assert_eq!((s.done, s.dead), (1, 1));
    db.close();
    let (db, _) = open(&d);
    let s = db.stats("q").unwrap();
    assert_eq!((s.done, s.dead, s.next_offset), (1, 1, 2));
    let r = db.dlq_redrive("q", 1, RedriveMode::Head).unwrap();
    assert_eq!(r.offset, 1);
    let l = db.claim("q", "w", ClaimOptions::default()).unwrap();
    assert_eq!((l[0].offset, l[0].attempt), (1, 1));
    assert!(l[0].token.fence > 3, "fences grow across reopen");
}
