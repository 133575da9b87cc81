//! Graceful shutdown of a [`Worker`] in a real process: SIGINT and SIGTERM
//! (with `StopHandle::on_signals`) stop claiming, let the running handlers
//! (3 s and 5 s) finish and report, and `run` returns with exact counters
//! and no task left leased. The child is this test binary, re-executed.

mod common;

use common::TempDir;
use ordq::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ORDQ_SIGNAL_CHILD";

/// The child: works the queue until a signal stops it.
#[test]
fn signal_child_entry() {
    let Ok(uri) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Db::open(&uri, &Options::new()).unwrap();
    let worker = Worker::new("jobs", "rs-signals")
        .concurrency(2)
        .poll(Duration::from_millis(100));
    worker.stop_handle().on_signals().unwrap();
    println!("ready");
    let report = worker
        .run(&db, |lease| {
            let secs: f64 = String::from_utf8_lossy(&lease.payload).parse().unwrap();
            std::thread::sleep(Duration::from_secs_f64(secs));
            Ok(b"ok".to_vec())
        })
        .unwrap();
    println!("completed {} lost {}", report.completed, report.lost);
    db.close().unwrap();
}

fn run_child(sig: i32) {
    let dir = TempDir::new(&format!("signals-{sig}"));
    let uri = dir.uri("t.ordq");
    {
        let db = Db::open(&uri, &Options::new()).unwrap();
        db.create_queue("jobs", &QueueConfig::new()).unwrap();
        db.enqueue("jobs", "a", b"3", &EnqueueOptions::default())
            .unwrap();
        db.enqueue("jobs", "b", b"5", &EnqueueOptions::default())
            .unwrap();
        db.close().unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "signal_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended before it was ready"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    // SAFETY: kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let st = child.wait().unwrap();
    let took = sent.elapsed();
    assert!(st.success(), "child ended with {st}: {rest}");
    assert!(rest.contains("completed 2 lost 0"), "{rest}");
    assert!(
        took >= Duration::from_secs(3),
        "run returned before the 5 s handler finished: {took:?}"
    );
    let db = Db::open(&uri, &Options::new()).unwrap();
    let s = db.stats("jobs").unwrap();
    assert_eq!((s.done, s.leased, s.ready), (2, 0, 0), "{s:?}");
}

#[test]
fn sigterm_lets_running_handlers_finish() {
    run_child(libc::SIGTERM);
}

#[test]
fn sigint_lets_running_handlers_finish() {
    run_child(libc::SIGINT);
}
