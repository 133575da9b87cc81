//! One `Db` shared by threads (borrowed and through `Arc`), a close
//! racing with calls, and handles freed on drop.

mod common;

use common::{fast, TempDir, TestDb};
use ordq::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn threads_share_one_db_and_keep_key_order() {
    const PRODUCERS: usize = 4;
    const PER: usize = 150;
    let t = TestDb::queue("share", &QueueConfig::new());
    let done = AtomicU64::new(0);
    let order = Mutex::new(BTreeMap::<String, Vec<u64>>::new());
    thread::scope(|s| {
        for p in 0..PRODUCERS {
            let t = &t;
            s.spawn(move || {
                for i in 0..PER {
                    let key = format!("p{p}-k{}", i % 3);
                    let seq = (i as u64).to_le_bytes();
                    if i % 10 == 0 {
                        let items = [EnqueueItem::new(&key, &seq)];
                        t.enqueue_batch("q", &items).unwrap();
                    } else {
                        t.enqueue("q", &key, &seq, &EnqueueOptions::new()).unwrap();
                    }
                }
            });
        }
        for c in 0..4 {
            let (t, done, order) = (&t, &done, &order);
            s.spawn(move || {
                let name = format!("c{c}");
                let opts = ClaimOptions::new().max(8).wait(Duration::from_millis(20));
                let start = Instant::now();
                while done.load(AtomicOrdering::SeqCst) < (PRODUCERS * PER) as u64 {
                    assert!(start.elapsed() < Duration::from_secs(20), "stuck");
                    let leases = t.claim("q", &name, &opts).unwrap();
                    {
                        let mut o = order.lock().unwrap();
                        for l in &leases {
                            let seq = u64::from_le_bytes(l.payload[..8].try_into().unwrap());
                            o.entry(l.key.clone()).or_default().push(seq);
                        }
                    }
                    let items: Vec<(Token, &[u8])> =
                        leases.iter().map(|l| (l.token, &b"ok"[..])).collect();
                    for r in t.complete_batch(&items).unwrap() {
                        r.unwrap();
                    }
                    done.fetch_add(leases.len() as u64, AtomicOrdering::SeqCst);
                }
            });
        }
    });
    let s = t.stats("q").unwrap();
    assert_eq!(s.totals.enqueued, (PRODUCERS * PER) as u64);
    assert_eq!(s.totals.completed, (PRODUCERS * PER) as u64);
    let order = order.into_inner().unwrap();
    assert_eq!(order.len(), PRODUCERS * 3);
    for (key, seqs) in order {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
}

#[test]
fn an_arc_db_moves_into_spawned_threads() {
    let dir = TempDir::new("arc");
    let db = Arc::new(Db::open(&dir.uri("a.ordq"), &fast()).unwrap());
    db.create_queue("q", &QueueConfig::new()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let db = Arc::clone(&db);
            thread::spawn(move || {
                for j in 0..25 {
                    db.enqueue("q", &format!("{i}-{j}"), b"", &EnqueueOptions::new())
                        .unwrap();
                }
                db.stats("q").unwrap().next_offset
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() >= 25);
    }
    assert_eq!(db.stats("q").unwrap().totals.enqueued, 100);
    // The last Arc dropping frees the handle and releases the file.
    drop(db);
    Db::open(&dir.uri("a.ordq"), &fast()).unwrap();
}

#[test]
fn close_wakes_a_claim_waiting_for_work() {
    let t = TestDb::queue("wake", &QueueConfig::new());
    thread::scope(|s| {
        let h = s.spawn(|| {
            let t0 = Instant::now();
            let r = t.claim("q", "w", &ClaimOptions::new().wait(Duration::from_secs(10)));
            (r.map(|l| l.len()), t0.elapsed())
        });
        thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        t.close().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let (r, took) = h.join().unwrap();
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Closed);
        assert!(took < Duration::from_secs(3), "{took:?}");
    });
}

#[test]
fn close_racing_with_calls_gives_closed_not_a_crash() {
    let t = TestDb::queue("race", &QueueConfig::new());
    let ok = AtomicU64::new(0);
    thread::scope(|s| {
        for i in 0..4 {
            let (t, ok) = (&t, &ok);
            s.spawn(move || loop {
                match t.enqueue("q", &format!("k{i}"), b"x", &EnqueueOptions::new()) {
                    Ok(_) => {
                        ok.fetch_add(1, AtomicOrdering::SeqCst);
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
                        break;
                    }
                }
            });
        }
        while ok.load(AtomicOrdering::SeqCst) < 50 {
            thread::sleep(Duration::from_millis(1));
        }
        t.close().unwrap();
    });
    // Everything acknowledged before the close is there.
    let n = ok.into_inner();
    drop(t.db);
    let db = Db::open(&t.uri, &fast()).unwrap();
    assert_eq!(db.stats("q").unwrap().totals.enqueued, n);
}

#[test]
fn dropping_handles_frees_them() {
    let dir = TempDir::new("drop");
    let uri = dir.uri("d.ordq");
    // Each open would be AlreadyOpen if the previous handle were not freed
    // (and closed) by Drop.
    for i in 0..30u64 {
        let db = Db::open(&uri, &fast()).unwrap();
        if i == 0 {
            db.create_queue("q", &QueueConfig::new()).unwrap();
        }
        db.enqueue("q", "k", &i.to_le_bytes(), &EnqueueOptions::new())
            .unwrap();
        // Leases own their data: they outlive the claim's C list, and even
        // the handle.
        let leases = db.claim("q", "w", &ClaimOptions::new().max(5)).unwrap();
        drop(db);
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].payload, i.to_le_bytes());
        let db = Db::open(&uri, &fast()).unwrap();
        // The lease was not completed: release it through the new handle.
        db.release(&leases[0]).unwrap();
        let l = db.claim("q", "w", &ClaimOptions::new()).unwrap().remove(0);
        db.complete(&l, b"").unwrap();
    }
    let db = Db::open(&uri, &fast()).unwrap();
    assert_eq!(db.stats("q").unwrap().totals.completed, 30);
}
