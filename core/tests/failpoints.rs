//! A batch that fails inside the writer (failpoint `writer-apply`, feature
//! `failpoints`) while earlier answered batches wait in the writer's open
//! transaction: its callers get the error, the earlier batches stay (the
//! state is rebuilt from the checkpoint and the log), and the engine goes
//! on. One test per process: the failpoint registry is global.
#![cfg(feature = "failpoints")]

mod common;

use common::TempDir;
use ordq_core::{Db, EnqueueOptions, ErrorCode, Options, QueueConfig};
use std::time::Duration;

#[test]
fn a_failed_batch_keeps_the_answered_ones_and_the_engine_goes_on() {
    let tmp = TempDir::new("fp-apply");
    let path = tmp.join("db.ordq");
    let opts = || Options {
        // No checkpoint before close: the answered batches live only in
        // the open transaction and the log when the failure comes.
        checkpoint_interval: Duration::from_secs(3600),
        ..Options::default()
    };
    let db = Db::open(&path, opts()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    let put = |i: u64| {
        db.enqueue(
            "q",
            "k",
            format!("p{i}").as_bytes(),
            EnqueueOptions::default(),
        )
    };
    for i in 0..5 {
        assert_eq!(put(i).unwrap().offset, i);
    }
    fail::cfg("writer-apply", "1*return->off").unwrap();
    let e = put(5).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    fail::remove("writer-apply");
    // The five answered tasks are there, the failed one is not.
    let s = db.stats("q").unwrap();
    assert_eq!((s.next_offset, s.ready), (5, 5), "{s:?}");
    for i in 0..5 {
        let t = db.get_task("q", i).unwrap();
        assert_eq!(t.payload.as_deref(), Some(format!("p{i}").as_bytes()));
    }
    assert_eq!(put(5).unwrap().offset, 5);
    db.close();
    let db = Db::open(&path, opts()).unwrap();
    let s = db.stats("q").unwrap();
    assert_eq!((s.next_offset, s.ready), (6, 6), "{s:?}");
    assert_eq!(
        db.get_task("q", 5).unwrap().payload.as_deref(),
        Some(b"p5".as_slice())
    );
}
