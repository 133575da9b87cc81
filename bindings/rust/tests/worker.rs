//! The `Worker` helper: completes, retries, dead-letters, records
//! panics, keeps long handlers' leases alive with heartbeats, and stops
//! gracefully.

mod common;

use common::TestDb;
use ordq::*;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn quick_retries(max_attempts: u32) -> QueueConfig {
    QueueConfig::new().max_attempts(max_attempts).backoff(
        Backoff::new()
            .initial(Duration::from_millis(1))
            .max(Duration::from_millis(1))
            .jitter(0.0),
    )
}

/// Runs `worker` on a thread until `done(stats)` holds (or 10 s pass),
/// then stops it and returns its report.
fn run_until<F>(
    db: &Db,
    worker: Worker,
    handler: F,
    done: impl Fn(&QueueStats) -> bool,
) -> WorkerReport
where
    F: Fn(&Lease) -> Result<Vec<u8>, HandlerError> + Sync + Send,
{
    let stop = worker.stop_handle();
    thread::scope(|s| {
        let h = s.spawn(|| worker.run(db, handler));
        let start = Instant::now();
        while !done(&db.stats("q").unwrap()) {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            thread::sleep(Duration::from_millis(5));
        }
        stop.stop();
        h.join().unwrap().unwrap()
    })
}

fn poll() -> Duration {
    Duration::from_millis(20)
}

#[test]
fn completes_every_task_with_its_result_in_key_order() {
    let t = TestDb::queue("w-complete", &QueueConfig::new());
    let items: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("k{}", i % 5), format!("p{i}").into_bytes()))
        .collect();
    let batch: Vec<EnqueueItem> = items.iter().map(|(k, p)| EnqueueItem::new(k, p)).collect();
    t.enqueue_batch("q", &batch).unwrap();
    let seen = Mutex::new(Vec::new());
    let worker = Worker::new("q", "w-1").concurrency(3).batch(4).poll(poll());
    let report = run_until(
        &t,
        worker,
        |l| {
            seen.lock().unwrap().push((l.key.clone(), l.offset));
            let mut r = b"done:".to_vec();
            r.extend_from_slice(&l.payload);
            Ok(r)
        },
        |s| s.done == 40,
    );
    assert_eq!(report.completed, 40);
    assert_eq!((report.retried, report.dead, report.lost), (0, 0, 0));
    for off in 0..40 {
        let task = t.get_task("q", off).unwrap();
        assert_eq!(task.state, TaskState::Done);
        assert_eq!(task.worker.as_deref(), Some("w-1"));
        let mut want = b"done:".to_vec();
        want.extend_from_slice(&items[off as usize].1);
        assert_eq!(task.result, Some(want));
    }
    // Per key, handlers ran in offset order (one task of a lane at a time).
    let seen = seen.into_inner().unwrap();
    for k in 0..5 {
        let key = format!("k{k}");
        let offs: Vec<u64> = seen
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|x| x.1)
            .collect();
        assert_eq!(offs.len(), 8);
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "{key}: {offs:?}");
    }
}

#[test]
fn a_retryable_error_is_retried_then_completes() {
    let t = TestDb::queue("w-retry", &quick_retries(5));
    t.enqueue("q", "k", b"flaky", &EnqueueOptions::new())
        .unwrap();
    let report = run_until(
        &t,
        Worker::new("q", "w").poll(poll()),
        |l| {
            if l.attempt < 3 {
                Err(HandlerError::retryable(format!("try {} failed", l.attempt)))
            } else {
                Ok(format!("ok on {}", l.attempt).into_bytes())
            }
        },
        |s| s.done == 1,
    );
    assert_eq!((report.retried, report.completed, report.dead), (2, 1, 0));
    let task = t.get_task("q", 0).unwrap();
    assert_eq!(task.attempt, 3);
    assert_eq!(task.result.as_deref(), Some(&b"ok on 3"[..]));
    let f = t.faults("q", 0).unwrap();
    assert_eq!(
        f.iter().map(|f| f.error.as_str()).collect::<Vec<_>>(),
        ["try 1 failed", "try 2 failed"]
    );
    assert!(f.iter().all(|f| f.retryable && f.kind == FaultKind::Failed));
}

#[test]
fn a_fatal_error_dead_letters_at_once_and_std_errors_convert() {
    let t = TestDb::queue("w-fatal", &quick_retries(5));
    t.enqueue("q", "a", b"not a number", &EnqueueOptions::new())
        .unwrap();
    t.enqueue("q", "b", b"bad", &EnqueueOptions::new()).unwrap();
    let report = run_until(
        &t,
        Worker::new("q", "w").poll(poll()),
        |l| {
            if l.key == "a" {
                // `?` turns any std error into a retryable HandlerError.
                let n: u32 = std::str::from_utf8(&l.payload)?.parse()?;
                return Ok(n.to_string().into_bytes());
            }
            Err(HandlerError::fatal("malformed payload"))
        },
        |s| s.dead == 2,
    );
    assert_eq!(report.dead, 2);
    assert_eq!(report.retried, 4, "the parse error was retried until spent");
    let d = t.dlq_get("q", 1).unwrap();
    assert_eq!(d.task.attempt, 1);
    assert_eq!(d.faults.len(), 1);
    assert_eq!(d.faults[0].error, "malformed payload");
    assert!(!d.faults[0].retryable);
    let d = t.dlq_get("q", 0).unwrap();
    assert_eq!(d.faults.len(), 5);
    assert!(
        d.faults[0].error.contains("invalid digit"),
        "{:?}",
        d.faults[0]
    );
    let e = HandlerError::fatal("x");
    assert!(!e.is_retryable());
    assert_eq!(e.message(), "x");
    assert_eq!(e.to_string(), "x (fatal)");
}

#[test]
fn a_panic_is_caught_and_recorded_as_a_failure() {
    let t = TestDb::queue("w-panic", &quick_retries(2));
    t.enqueue("q", "k", b"", &EnqueueOptions::new()).unwrap();
    t.enqueue("q", "other", b"fine", &EnqueueOptions::new())
        .unwrap();
    let report = run_until(
        &t,
        Worker::new("q", "w").poll(poll()),
        |l| {
            if l.key == "k" {
                panic!("boom on attempt {}", l.attempt);
            }
            Ok(l.payload.clone())
        },
        |s| s.dead == 1 && s.done == 1,
    );
    assert_eq!(report.panicked, 2);
    assert_eq!((report.retried, report.dead, report.completed), (1, 1, 1));
    let f = t.faults("q", 0).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].error, "handler panicked: boom on attempt 1");
    assert_eq!(f[1].error, "handler panicked: boom on attempt 2");
    assert!(f[0].retryable);
}

#[test]
fn heartbeats_keep_a_short_lease_alive_past_its_expiry() {
    let lease = Duration::from_millis(300);
    let t = TestDb::queue("w-heartbeat", &QueueConfig::new().lease(lease));
    t.enqueue("q", "k", b"slow", &EnqueueOptions::new())
        .unwrap();
    let started = Mutex::new(None);
    let report = run_until(
        &t,
        Worker::new("q", "w").poll(poll()),
        |l| {
            *started.lock().unwrap() = Some((Instant::now(), l.expires_at, l.token));
            thread::sleep(Duration::from_millis(900));
            Ok(b"finished".to_vec())
        },
        |s| s.done == 1,
    );
    let (at, expires_at, token) = started.into_inner().unwrap().unwrap();
    assert!(at.elapsed() >= Duration::from_millis(900));
    assert!(
        std::time::SystemTime::now() > expires_at + Duration::from_millis(300),
        "the handler outlived the original lease"
    );
    assert_eq!(report.completed, 1);
    assert_eq!(report.lost, 0);
    assert!(report.heartbeats >= 3, "{report:?}");
    let task = t.get_task("q", 0).unwrap();
    assert_eq!((task.state, task.attempt), (TaskState::Done, 1));
    assert_eq!(task.fence, token.fence(), "never re-leased");
    assert_eq!(task.result.as_deref(), Some(&b"finished"[..]));
    assert!(t.faults("q", 0).unwrap().is_empty());
    assert_eq!(t.stats("q").unwrap().totals.lease_expired, 0);
}

#[test]
fn worker_lease_and_heartbeat_interval_are_used() {
    let t = TestDb::queue("w-lease", &QueueConfig::new());
    t.enqueue("q", "k", b"", &EnqueueOptions::new()).unwrap();
    let leased_for = Mutex::new(Duration::ZERO);
    let worker = Worker::new("q", "w")
        .lease(Duration::from_millis(200))
        .heartbeat_every(Duration::from_millis(40))
        .poll(poll());
    let report = run_until(
        &t,
        worker,
        |l| {
            *leased_for.lock().unwrap() = l.duration();
            thread::sleep(Duration::from_millis(500));
            Ok(Vec::new())
        },
        |s| s.done == 1,
    );
    assert_eq!(*leased_for.lock().unwrap(), Duration::from_millis(200));
    assert!(report.heartbeats >= 8, "{report:?}");
    assert_eq!((report.completed, report.lost), (1, 0));
    assert_eq!(t.get_task("q", 0).unwrap().attempt, 1);
}

#[test]
fn without_heartbeats_the_same_handler_loses_its_lease() {
    // The control for the test above: a lease that is not heartbeated
    // expires while the handler sleeps, and its commit is refused.
    let t = TestDb::queue("w-no-heartbeat", &QueueConfig::new());
    t.enqueue("q", "k", b"slow", &EnqueueOptions::new())
        .unwrap();
    let l = t
        .claim(
            "q",
            "w",
            &ClaimOptions::new().lease(Duration::from_millis(300)),
        )
        .unwrap()
        .remove(0);
    thread::sleep(Duration::from_millis(900));
    t.sync().unwrap();
    assert_eq!(
        t.complete(&l, b"").unwrap_err().kind(),
        ErrorKind::LeaseLost
    );
}

#[test]
fn stop_lets_in_flight_handlers_finish_and_commit() {
    let t = TestDb::queue("w-stop", &QueueConfig::new());
    for k in ["a", "b", "c"] {
        t.enqueue("q", k, k.as_bytes(), &EnqueueOptions::new())
            .unwrap();
    }
    let worker = Worker::new("q", "w").batch(3).poll(poll());
    let stop = worker.stop_handle();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let report = thread::scope(|s| {
        let h = s.spawn(|| {
            worker.run(&t, |l| {
                calls.fetch_add(1, AtomicOrdering::SeqCst);
                tx.lock().unwrap().send(l.offset).unwrap();
                thread::sleep(Duration::from_millis(400));
                Ok(b"committed".to_vec())
            })
        });
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        stop.stop();
        assert!(stop.is_stopped());
        (h.join().unwrap().unwrap(), first)
    });
    let (report, first) = report;
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        calls.load(AtomicOrdering::SeqCst),
        1,
        "no new handler after stop"
    );
    assert_eq!((report.completed, report.released), (1, 2));
    let task = t.get_task("q", first).unwrap();
    assert_eq!(task.state, TaskState::Done);
    assert_eq!(task.result.as_deref(), Some(&b"committed"[..]));
    for off in (0..3).filter(|&o| o != first) {
        let task = t.get_task("q", off).unwrap();
        assert_eq!(task.state, TaskState::Ready, "released, not left leased");
    }
    assert_eq!(t.stats("q").unwrap().totals.released, 2);

    // Stopping is permanent: another run returns at once.
    let again = worker.run(&t, |_| Ok(Vec::new())).unwrap();
    assert_eq!(again, WorkerReport::default());
    // And the released tasks are claimable right away, at attempt 1.
    let l = t.claim("q", "w2", &ClaimOptions::new()).unwrap().remove(0);
    assert_eq!(l.attempt, 1);
}

#[test]
fn a_fatal_error_ends_run_with_the_error() {
    let t = TestDb::new("w-error");
    let start = Instant::now();
    let e = Worker::new("missing", "w")
        .concurrency(2)
        .run(&t, |_| Ok(Vec::new()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(start.elapsed() < Duration::from_secs(5));

    // Closing the database under a running worker stops it with Closed.
    t.create_queue("q", &QueueConfig::new()).unwrap();
    let e = thread::scope(|s| {
        let h = s.spawn(|| {
            Worker::new("q", "w")
                .poll(poll())
                .run(&t, |_| Ok(Vec::new()))
        });
        thread::sleep(Duration::from_millis(50));
        t.close().unwrap();
        h.join().unwrap().unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Closed);
}

#[test]
fn drain_returns_once_the_queue_is_finished_retries_included() {
    let cfg = QueueConfig::new().max_attempts(3).backoff(
        Backoff::new()
            .initial(Duration::from_millis(300))
            .max(Duration::from_millis(300))
            .jitter(0.0),
    );
    let t = TestDb::queue("w-drain", &cfg);
    for i in 0..10 {
        t.enqueue(
            "q",
            &format!("k{i}"),
            format!("p{i}").as_bytes(),
            &EnqueueOptions::new(),
        )
        .unwrap();
    }
    let first_try = AtomicU32::new(0);
    let start = Instant::now();
    let report = Worker::new("q", "w-drain")
        .concurrency(2)
        .poll(poll())
        .drain(true)
        .run(&t, |lease| {
            // p3 fails once: its retry waits 300 ms in backoff, which the
            // drain must wait for rather than exit on an empty claim.
            if lease.payload == b"p3" && first_try.fetch_add(1, AtomicOrdering::SeqCst) == 0 {
                return Err(HandlerError::retryable("once"));
            }
            Ok(Vec::new())
        })
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "waited for the retry"
    );
    assert_eq!((report.completed, report.retried), (10, 1), "{report:?}");
    let s = t.stats("q").unwrap();
    assert_eq!((s.unfinished, s.done, s.leased), (0, 10, 0), "{s:?}");

    // An empty queue: returns after one idle claim.
    let start = Instant::now();
    let report = Worker::new("q", "w-drain")
        .poll(poll())
        .drain(true)
        .run(&t, |_| Ok(Vec::new()))
        .unwrap();
    assert_eq!(report.completed, 0);
    assert!(start.elapsed() < Duration::from_secs(2));
}
