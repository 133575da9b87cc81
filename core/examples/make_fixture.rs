//! Writes a small database that exercises every kind of stored state, and a
//! manifest of what it holds, for the format-migration tests:
//!
//! ```text
//! cargo run -p ordq-core --example make_fixture -- tests/fixtures/format1.ordq
//! ```
//!
//! writes `format1.ordq` and `format1.expect.json`. The clock is manual and
//! every backoff is jitter-free, so a run at a given commit always gives the
//! same logical content. The manifest is read back through the public API
//! (every task by offset, faults, dead letters, stats, the receipts of the
//! idempotency keys and the highest fence granted): a migrated file must
//! answer the same. tests/fixtures/README.md records which format each
//! committed fixture has and the commit that wrote it.

use ordq_core::{
    Backoff, ClaimOptions, Db, DlqPolicy, Durability, EnqueueOptions, FailOutcome, ManualClock,
    Options, Ordering, QueueConfig, RedriveMode,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Where the manual clock starts (2023-11-14, the tests' T0).
const T0: u64 = 1_700_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: make_fixture OUT.ordq (writes OUT.expect.json beside it)")?;
    let out = std::path::PathBuf::from(out);
    if out.exists() {
        return Err(format!("{} exists; remove it first", out.display()).into());
    }
    let clock = Arc::new(ManualClock::new(T0));
    let opts = Options {
        durability: Durability::Immediate,
        clock: clock.clone(),
        ..Options::default()
    };
    let db = Db::open(&out, opts)?;
    let no_jitter = Backoff {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(600),
        multiplier: 2.0,
        jitter: 0.0,
    };
    db.create_queue(
        "orders",
        QueueConfig {
            shards: 4,
            max_attempts: 3,
            backoff: no_jitter,
            ..QueueConfig::default()
        },
    )?;
    db.create_queue(
        "audit",
        QueueConfig {
            shards: 1,
            ordering: Ordering::Global,
            max_attempts: 1,
            dlq_policy: DlqPolicy::Block,
            backoff: no_jitter,
            ..QueueConfig::default()
        },
    )?;

    // orders: 12 tasks over 4 keys; some with idempotency keys, headers,
    // priorities and a delay.
    let mut idem = Vec::new();
    for i in 0..12u32 {
        let key = format!("customer-{}", i % 4);
        let mut o = EnqueueOptions {
            priority: (i % 3) as i32,
            ..EnqueueOptions::default()
        };
        if i % 5 == 0 {
            o.idempotency_key = Some(format!("order-{i}"));
        }
        if i == 7 {
            o.headers.insert(
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            );
        }
        if i == 11 {
            o.delay = Some(Duration::from_secs(24 * 3600));
        }
        let r = db.enqueue("orders", &key, format!("order #{i}").as_bytes(), o.clone())?;
        if let Some(k) = o.idempotency_key {
            idem.push(json!({"queue": "orders", "key": key, "idempotency_key": k, "receipt": r}));
        }
        clock.advance(Duration::from_millis(5));
    }
    // Done: the head of each key, with results.
    for l in db.claim("orders", "w-rust", claim(4))? {
        db.start(l.token)?;
        clock.advance(Duration::from_millis(20));
        db.complete(l.token, format!("done {}", l.offset).as_bytes())?;
    }
    // Two fail retryably (attempt 1 of 3); an hour later one of them fails
    // for good (dead letter with two faults, skip policy: its lane moves
    // on) and the other retryably again (retry_wait, attempt 2); the rest
    // of that claim is released.
    let first = db.claim("orders", "w-go", claim(2))?;
    for l in &first {
        match db.fail(l.token, "timeout talking to the bank", true)? {
            FailOutcome::Retry { .. } => {}
            o => return Err(format!("expected a retry, got {o:?}").into()),
        }
    }
    clock.advance(Duration::from_secs(3600));
    for l in db.claim("orders", "w-go", claim(4))? {
        if l.offset == first[0].offset {
            db.fail(l.token, "card declined", false)?;
        } else if l.offset == first[1].offset {
            db.fail(l.token, "timeout talking to the bank again", true)?;
        } else {
            db.release(l.token)?;
        }
    }
    // Leased: one task held by a worker at the time of the copy.
    let held = db.claim("orders", "w-python", claim(1))?;
    if held.is_empty() {
        return Err("nothing left to lease".into());
    }
    db.heartbeat(held[0].token, Some(Duration::from_secs(60)))?;

    // audit (global, block policy): a dead letter blocks the lane; one
    // more dead letter redriven back as a new offset.
    for i in 0..4 {
        db.enqueue(
            "audit",
            "all",
            format!("event {i}").as_bytes(),
            EnqueueOptions::default(),
        )?;
    }
    let l = db.claim("audit", "w-rust", claim(1))?.remove(0);
    db.fail(l.token, "schema mismatch", false)?;
    db.dlq_redrive("audit", l.offset, RedriveMode::NewOffset)?;
    let l = db.claim("audit", "w-rust", claim(1))?.remove(0);
    db.fail(l.token, "schema mismatch (blocks the lane)", false)?;
    db.sync()?;

    let manifest = manifest(&db, idem)?;
    db.close();
    let path = out.with_extension("expect.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")?;
    println!("wrote {} and {}", out.display(), path.display());
    Ok(())
}

fn claim(max: usize) -> ClaimOptions {
    ClaimOptions {
        max,
        ..ClaimOptions::default()
    }
}

/// Everything the database answers, per queue, through the public API.
fn manifest(db: &Db, idem: Vec<Value>) -> Result<Value, Box<dyn std::error::Error>> {
    let mut queues = Vec::new();
    let mut max_fence = 0;
    for q in db.list_queues()? {
        let stats = db.stats(&q.name)?;
        let mut tasks = Vec::new();
        let mut offset = 0;
        while let Ok(t) = db.get_task(&q.name, offset) {
            max_fence = max_fence.max(t.fence);
            let faults = db.faults(&q.name, offset)?;
            tasks.push(json!({"task": t, "faults": faults}));
            offset += 1;
        }
        let dlq: Vec<u64> = db
            .dlq_list(&q.name, None, 1000)?
            .iter()
            .map(|t| t.offset)
            .collect();
        queues.push(json!({"info": q, "stats": stats, "tasks": tasks, "dlq": dlq}));
    }
    Ok(json!({
        "format": 1,
        "clock_ms": db.options().clock.now_ms(),
        "max_fence": max_fence,
        "idempotency": idem,
        "queues": queues,
    }))
}
