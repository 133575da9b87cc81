//! A producer and a `Worker` on one queue, through the `ordq` crate (the
//! safe Rust API over the C ABI, the same functions Go and Python call).
//!
//! The producer thread enqueues keyed tasks, some in batches, some one by
//! one; every 10th task fails once (retried after a short backoff) and
//! "poison" tasks are dead-lettered at once. A `Worker` with two handler
//! threads processes them with automatic heartbeats; when every task is
//! done or dead, it is stopped gracefully. The program then checks per-key
//! order and prints the report and a dead letter.
//!
//! `cargo run -p ordq-examples --bin abi_worker`

use ordq::{Backoff, Db, EnqueueItem, EnqueueOptions, HandlerError, Options, QueueConfig, Worker};
use std::collections::HashMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const QUEUE: &str = "orders";
const TASKS: usize = 500;
const KEYS: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ordq-abi-worker-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("orders.ordq");
    let (major, minor, patch) = ordq::abi_version();
    println!(
        "ordq library {} (ABI {major}.{minor}.{patch})",
        ordq::library_version()
    );

    let db = Db::open(path.to_str().ok_or("non-UTF-8 temp path")?, &Options::new())?;
    let backoff = Backoff::new()
        .initial(Duration::from_millis(20))
        .jitter(0.0);
    db.create_queue(QUEUE, &QueueConfig::new().max_attempts(3).backoff(backoff))?;

    let worker = Worker::new(QUEUE, "abi-worker")
        .concurrency(2)
        .batch(16)
        .poll(Duration::from_millis(50));
    let stop = worker.stop_handle();
    let seen: Mutex<HashMap<String, Vec<u64>>> = Mutex::new(HashMap::new());
    let start = Instant::now();

    let report = thread::scope(|s| -> Result<_, ordq::Error> {
        // Producer: batches of 25 for the first half, single calls after.
        let produce = || -> Result<(), ordq::Error> {
            let payloads: Vec<(String, String)> = (0..TASKS)
                .map(|i| {
                    let kind = if i % 97 == 13 { "poison" } else { "order" };
                    (format!("customer-{}", i % KEYS), format!("{kind} #{i}"))
                })
                .collect();
            for chunk in payloads[..TASKS / 2].chunks(25) {
                let items: Vec<EnqueueItem> = chunk
                    .iter()
                    .map(|(k, p)| EnqueueItem::new(k, p.as_bytes()))
                    .collect();
                db.enqueue_batch(QUEUE, &items)?;
            }
            for (k, p) in &payloads[TASKS / 2..] {
                let opts = EnqueueOptions::new().header("source", "abi_worker");
                db.enqueue(QUEUE, k, p.as_bytes(), &opts)?;
            }
            Ok(())
        };
        let producer_stop = stop.clone();
        let producer = s.spawn(move || {
            let r = produce();
            if r.is_err() {
                producer_stop.stop(); // don't wait for tasks that never came
            }
            r
        });
        // Stopper: waits until every task is done or dead.
        s.spawn(|| {
            while start.elapsed() < Duration::from_secs(60) {
                match db.stats(QUEUE) {
                    Ok(st) if st.done + st.dead == TASKS as u64 => break,
                    Err(_) => break,
                    _ => thread::sleep(Duration::from_millis(10)),
                }
            }
            stop.stop();
        });
        let report = worker.run(&db, |lease| {
            let text = std::str::from_utf8(&lease.payload)?;
            if text.starts_with("poison") {
                return Err(HandlerError::fatal(format!("cannot process {text:?}")));
            }
            if lease.offset % 10 == 0 && lease.attempt == 1 {
                return Err(HandlerError::retryable("payment gateway timed out"));
            }
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(lease.key.clone())
                .or_default()
                .push(lease.offset);
            Ok(format!("shipped {text}").into_bytes())
        })?;
        producer.join().expect("producer thread panicked")?;
        Ok(report)
    })?;

    let stats = db.stats(QUEUE)?;
    println!(
        "{} tasks in {:.2}s: {} completed, {} retried, {} dead, {} heartbeats",
        TASKS,
        start.elapsed().as_secs_f64(),
        report.completed,
        report.retried,
        report.dead,
        report.heartbeats
    );
    let in_order = seen
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .all(|offs| offs.windows(2).all(|w| w[0] < w[1]));
    println!("per-key order kept: {in_order}");
    if let Some(d) = db.dlq_list(QUEUE, None, 1)?.first() {
        let dl = db.dlq_get(QUEUE, d.offset)?;
        println!(
            "dead letter #{} ({}): {:?}",
            d.offset, d.key, dl.faults[0].error
        );
    }
    db.close()?;
    drop(db);
    std::fs::remove_dir_all(&dir).ok();
    let ok = in_order
        && stats.done + stats.dead == TASKS as u64
        && report.completed == stats.done
        && report.dead == stats.dead;
    if !ok {
        return Err("checks failed".into());
    }
    Ok(())
}
