//! Verifiable history through the crate: an on-demand checkpoint, the
//! `verify` and `audit` reports and their errors, on a file and (in broker
//! mode) through a broker while it serves.

mod common;

use common::TestDb;
use ordq::*;

fn work(t: &TestDb) {
    for i in 0..20 {
        t.enqueue(
            "q",
            &format!("k{}", i % 3),
            format!("p{i}").as_bytes(),
            &EnqueueOptions::default(),
        )
        .unwrap();
    }
    loop {
        let ls = t.claim("q", "w", &ClaimOptions::new().max(10)).unwrap();
        if ls.is_empty() {
            break;
        }
        for l in ls {
            t.complete(&l, b"ok").unwrap();
        }
    }
}

#[test]
fn checkpoint_verify_and_audit() {
    let t = TestDb::queue("history", &QueueConfig::default());
    work(&t);
    let info = t.checkpoint().unwrap();
    assert_eq!(info["checkpoint_lsn"], info["next_lsn"]);
    let r = t.verify(None).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["state_checked"], true);
    assert!(r["checkpoints"].as_u64().unwrap() >= 1);
    assert_eq!(r["queues"][0]["log_records"], 20);
    // With a public key, the unsigned checkpoints are problems.
    let r = t.verify(Some(&[0x11; 32])).unwrap();
    assert_eq!(r["ok"], false, "{r}");
    let a = t.audit("q", None).unwrap();
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(a["lane_count"], 3);
    let one = t.audit("q", Some("k2")).unwrap();
    assert_eq!(one["lane_count"], 1, "{one}");
    assert_eq!(
        t.audit("nope", None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
