//! The whole `ordq` API through the C ABI: queues, enqueue (single, batch,
//! every option), claim (every option), every lease operation, task info,
//! faults, stats, pending tasks and the dead-letter queue.

mod common;

use common::{broker_mode, close_to, fast, TestDb};
use ordq::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

const SEC: Duration = Duration::from_secs(1);

/// A queue config whose retries are immediate (no backoff, no jitter).
fn quick_retries(max_attempts: u32) -> QueueConfig {
    QueueConfig::new().max_attempts(max_attempts).backoff(
        Backoff::new()
            .initial(Duration::from_millis(1))
            .max(Duration::from_millis(1))
            .jitter(0.0),
    )
}

fn claim_one(db: &Db, queue: &str) -> Lease {
    let mut v = db
        .claim(
            queue,
            "w",
            &ClaimOptions::new().wait(Duration::from_secs(2)),
        )
        .unwrap();
    assert_eq!(v.len(), 1, "expected one lease");
    v.remove(0)
}

#[test]
fn versions_and_status_names_match_the_abi() {
    let (major, minor, _) = abi_version();
    assert_eq!((major, minor), (ABI_MAJOR, ABI_MINOR));
    // The ABI this crate was written for is the one of the header it links
    // (bumping ordq-ffi's version makes this fail until the crate is reviewed).
    assert_eq!(
        (ABI_MAJOR, ABI_MINOR),
        (
            ordq_ffi::ORDQ_ABI_VERSION_MAJOR,
            ordq_ffi::ORDQ_ABI_VERSION_MINOR
        )
    );
    assert!(!library_version().is_empty());
    assert!(library_version().starts_with(&format!("{major}.{minor}.")));
    let kinds = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::AlreadyOpen,
        ErrorKind::LeaseLost,
        ErrorKind::TooLarge,
        ErrorKind::InvalidState,
        ErrorKind::FormatTooNew,
        ErrorKind::Corrupt,
        ErrorKind::Io,
        ErrorKind::Closed,
        ErrorKind::Unavailable,
        ErrorKind::NullPointer,
        ErrorKind::Panic,
    ];
    let codes: Vec<i32> = kinds.iter().map(|k| k.code().unwrap()).collect();
    assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 101]);
    for k in kinds {
        let code = k.code().unwrap();
        assert_eq!(ErrorKind::from_code(code), k);
        // Our names are the library's names for the same values.
        assert_eq!(status_name(code), k.name());
    }
    assert_eq!(status_name(0), "OK");
    assert_eq!(status_name(13), "UNKNOWN");
    assert_eq!(ErrorKind::from_code(13), ErrorKind::Unknown(13));
    assert_eq!(ErrorKind::Unknown(13).code(), Some(13));
    assert_eq!(ErrorKind::Unknown(13).to_string(), "UNKNOWN(13)");
    assert_eq!(ErrorKind::AbiMismatch.code(), None);
}

#[test]
fn queues_create_get_list_delete() {
    let t = TestDb::new("queues");
    let cfg = QueueConfig::new()
        .shards(3)
        .ordering(Ordering::Shard)
        .max_attempts(4)
        .lease(Duration::from_millis(2500))
        .backoff(
            Backoff::new()
                .initial(Duration::from_millis(10))
                .max(Duration::from_secs(5))
                .multiplier(3.0)
                .jitter(0.5),
        )
        .dlq_policy(DlqPolicy::Block);
    let before = SystemTime::now();
    t.create_queue("zeta", &QueueConfig::new()).unwrap();
    t.create_queue("alpha.v1", &cfg).unwrap();

    let info = t.queue("alpha.v1").unwrap();
    assert_eq!(info.name, "alpha.v1");
    assert_eq!(info.config, cfg);
    assert!(close_to(info.created_at, before, 5 * SEC));
    assert_ne!(info.id, t.queue("zeta").unwrap().id);
    assert_eq!(t.queue("zeta").unwrap().config, QueueConfig::default());
    assert_eq!(t.queue_config("alpha.v1").unwrap(), cfg);
    assert_eq!(t.list_queues().unwrap(), ["alpha.v1", "zeta"]);

    let e = t.create_queue("zeta", &cfg).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    for bad in ["", "-lead", "sp ace", "nul\0", &"x".repeat(129)] {
        let e = t.create_queue(bad, &cfg).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
    }
    let e = t
        .create_queue("bad", &QueueConfig::new().shards(0))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t
        .create_queue("bad", &QueueConfig::new().lease(Duration::from_micros(300)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t
        .create_queue(
            "bad",
            &QueueConfig::new().backoff(Backoff::new().jitter(1.5)),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    t.delete_queue("zeta").unwrap();
    assert_eq!(t.list_queues().unwrap(), ["alpha.v1"]);
    assert_eq!(t.queue("zeta").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        t.queue_config("zeta").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        t.delete_queue("zeta").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(t.stats("zeta").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn enqueue_with_every_option_and_read_every_lease_field() {
    let t = TestDb::queue("enqueue", &QueueConfig::new().lease(Duration::from_secs(7)));
    let opts = EnqueueOptions::new()
        .priority(-3)
        .max_attempts(2)
        .idempotency_key("signup-42")
        .header("traceparent", "00-4bf9-01")
        .header("b-second", "2");
    let r = t.enqueue("q", "user-42", b"hello", &opts).unwrap();
    assert_eq!(r.offset, 0);
    assert!(!r.duplicate);
    assert_eq!(r.id.len(), 32);
    assert!(r
        .id
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert!(r.shard < 16);

    // The idempotency key returns the first receipt.
    let dup = t.enqueue("q", "user-42", b"other", &opts).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.offset, &dup.id), (r.offset, &r.id));

    let before = SystemTime::now();
    let l = claim_one(&t, "q");
    assert_eq!(l.queue, "q");
    assert_eq!(l.key, "user-42");
    assert_eq!(l.payload, b"hello");
    assert_eq!((l.offset, l.shard, &l.id), (r.offset, r.shard, &r.id));
    assert_eq!(l.token.offset(), r.offset);
    assert!(l.token.fence() > 0);
    assert_eq!(l.token(), Token::from(&l));
    assert_eq!((l.priority, l.attempt, l.max_attempts), (-3, 1, 2));
    let want: BTreeMap<String, String> = [("b-second", "2"), ("traceparent", "00-4bf9-01")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(l.headers, want);
    assert!(l.enqueued_at <= l.leased_at);
    assert!(close_to(l.leased_at, before, 5 * SEC));
    assert_eq!(l.duration(), Duration::from_secs(7));

    let task = t.get_task("q", r.offset).unwrap();
    assert_eq!(task.idempotency_key.as_deref(), Some("signup-42"));
    assert_eq!(task.headers, want);
    assert_eq!(task.state, TaskState::Leased);
    assert_eq!(task.worker.as_deref(), Some("w"));
    assert_eq!(task.fence, l.token.fence());
    assert_eq!(task.lease_expires_at, Some(l.expires_at));
    assert_eq!(task.payload.as_deref(), Some(&b"hello"[..]));
    assert_eq!(task.max_attempts, 2);
    assert_eq!(task.priority, -3);
    assert_eq!(
        t.stats("q").unwrap().totals.enqueued,
        1,
        "duplicates are not counted"
    );
}

#[test]
fn bytes_with_nul_and_keys_with_nul_roundtrip() {
    let t = TestDb::queue("bytes", &QueueConfig::new());
    let payload: Vec<u8> = (0..=255u8).chain([0, 0, 0]).collect();
    let key = "k\0ey\u{e9}";
    t.enqueue("q", key, &payload, &EnqueueOptions::new())
        .unwrap();
    t.enqueue("q", "empty", b"", &EnqueueOptions::new())
        .unwrap();
    let leases = t
        .claim("q", "w\0orker", &ClaimOptions::new().max(2))
        .unwrap();
    assert_eq!(leases.len(), 2);
    let l = leases.iter().find(|l| l.offset == 0).unwrap();
    assert_eq!(l.key, key);
    assert_eq!(l.payload, payload);
    let e = leases.iter().find(|l| l.offset == 1).unwrap();
    assert!(e.payload.is_empty());
    // A result with NUL bytes, read back through the JSON (base64) view.
    let result = b"\0r\0e\0s\xff";
    t.complete(l, result).unwrap();
    t.complete(e, b"").unwrap();
    let task = t.get_task("q", 0).unwrap();
    assert_eq!(task.key, key);
    assert_eq!(task.payload.as_deref(), Some(&payload[..]));
    assert_eq!(task.result.as_deref(), Some(&result[..]));
    assert_eq!(task.worker.as_deref(), Some("w\0orker"));
    let task = t.get_task("q", 1).unwrap();
    assert_eq!(task.payload.as_deref(), Some(&b""[..]));
    // The engine reports an empty result as absent (null in the JSON).
    assert_eq!(task.result, None);
}

#[test]
fn priority_delay_and_not_before() {
    let t = TestDb::queue("timing", &QueueConfig::new());
    t.enqueue("q", "a", b"low", &EnqueueOptions::new()).unwrap();
    t.enqueue("q", "b", b"high", &EnqueueOptions::new().priority(5))
        .unwrap();
    let now = SystemTime::now();
    let delayed = t
        .enqueue("q", "c", b"later", &EnqueueOptions::new().delay(3600 * SEC))
        .unwrap();
    let at = now + 7200 * SEC;
    let pinned = t
        .enqueue(
            "q",
            "d",
            b"pinned",
            &EnqueueOptions::new().delay(SEC).not_before(at),
        )
        .unwrap();
    let past = t
        .enqueue(
            "q",
            "e",
            b"past",
            &EnqueueOptions::new().not_before(now - 60 * SEC),
        )
        .unwrap();

    let first = t.claim("q", "w", &ClaimOptions::new()).unwrap();
    assert_eq!(first[0].payload, b"high", "higher priority first");
    let rest = t.claim("q", "w", &ClaimOptions::new().max(10)).unwrap();
    let mut got: Vec<u64> = rest.iter().map(|l| l.offset).collect();
    got.sort();
    assert_eq!(got, [0, past.offset], "delayed tasks are not claimable");

    let d = t.get_task("q", delayed.offset).unwrap();
    assert_eq!(d.state, TaskState::Ready);
    assert!(close_to(d.not_before, now + 3600 * SEC, 5 * SEC));
    let p = t.get_task("q", pinned.offset).unwrap();
    assert!(
        close_to(p.not_before, at, Duration::from_millis(1)),
        "not_before wins over delay"
    );
}

#[test]
fn enqueue_batch_is_in_order_and_all_or_nothing() {
    let t = TestDb::with("batch", &common::fast().max_payload(8));
    t.create_queue("q", &QueueConfig::new()).unwrap();
    let items = [
        EnqueueItem::new("a", b"1"),
        EnqueueItem::new("b", b"2\0").opts(
            EnqueueOptions::new()
                .priority(9)
                .header("h", "v")
                .idempotency_key("i-1"),
        ),
        EnqueueItem::new("a", b"3"),
    ];
    let rs = t.enqueue_batch("q", &items).unwrap();
    assert_eq!(rs.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(rs.iter().all(|r| !r.duplicate && r.id.len() == 32));
    let b = t.get_task("q", 1).unwrap();
    assert_eq!((b.priority, b.key.as_str()), (9, "b"));
    assert_eq!(b.headers.get("h").map(String::as_str), Some("v"));
    assert_eq!(b.payload.as_deref(), Some(&b"2\0"[..]));

    // One bad item fails the whole batch, and nothing is written.
    let bad = [
        EnqueueItem::new("c", b"ok"),
        EnqueueItem::new("d", b"much too long"),
    ];
    // (max_payload is a file option: a broker applies its own.)
    if !common::broker_mode() {
        let e = t.enqueue_batch("q", &bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }
    let bad = [
        EnqueueItem::new("c", b"ok"),
        EnqueueItem::new("d", b"x").opts(EnqueueOptions::new().header("", "v")),
    ];
    assert_eq!(
        t.enqueue_batch("q", &bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let bad = [EnqueueItem::new("c", b"ok").opts(EnqueueOptions::new().max_attempts(0))];
    assert_eq!(
        t.enqueue_batch("q", &bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(t.stats("q").unwrap().next_offset, 3);

    // An empty batch only checks the queue.
    assert!(t.enqueue_batch("q", &[]).unwrap().is_empty());
    assert_eq!(
        t.enqueue_batch("nope", &[]).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        t.enqueue_batch("nope", &items).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn claim_options_max_lease_wait_and_shards() {
    let t = TestDb::queue("claim", &QueueConfig::new().shards(4));
    let mut shard_of = BTreeMap::new();
    for i in 0..12 {
        let key = format!("k{i}");
        let r = t.enqueue("q", &key, b"x", &EnqueueOptions::new()).unwrap();
        shard_of.insert(r.offset, r.shard);
    }
    let target = shard_of[&0];
    let only = t
        .claim("q", "w", &ClaimOptions::new().max(100).shards([target]))
        .unwrap();
    assert!(!only.is_empty());
    assert!(only.iter().all(|l| l.shard == target));
    assert_eq!(
        only.len(),
        shard_of.values().filter(|&&s| s == target).count()
    );

    let some = t
        .claim(
            "q",
            "w",
            &ClaimOptions::new()
                .max(3)
                .lease(Duration::from_millis(1234)),
        )
        .unwrap();
    assert_eq!(some.len(), 3);
    assert!(some
        .iter()
        .all(|l| l.duration() == Duration::from_millis(1234)));

    // Drain, then an empty claim with a wait blocks for about the wait.
    t.claim("q", "w", &ClaimOptions::new().max(100)).unwrap();
    let start = Instant::now();
    let none = t
        .claim(
            "q",
            "w",
            &ClaimOptions::new().wait(Duration::from_millis(150)),
        )
        .unwrap();
    assert!(none.is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(120),
        "{:?}",
        start.elapsed()
    );

    for (opts, what) in [
        (ClaimOptions::new().max(0), "max 0"),
        (ClaimOptions::new().max(10_001), "max too big"),
        (ClaimOptions::new().shards([4]), "shard out of range"),
        (
            ClaimOptions::new().lease(Duration::from_micros(999)),
            "sub-ms lease",
        ),
    ] {
        let e = t.claim("q", "w", &opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{what}: {e}");
    }
    let e = t.claim("q", "", &ClaimOptions::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t
        .claim("q", &"w".repeat(257), &ClaimOptions::new())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = t.claim("nope", "w", &ClaimOptions::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn lease_operations_heartbeat_start_complete_release() {
    let t = TestDb::queue(
        "leaseops",
        &QueueConfig::new().lease(Duration::from_secs(5)),
    );
    t.enqueue("q", "k", b"one", &EnqueueOptions::new()).unwrap();
    t.enqueue("q", "k", b"two", &EnqueueOptions::new()).unwrap();

    let l = claim_one(&t, "q");
    assert_eq!(l.payload, b"one");
    let exp = t.heartbeat(&l, Some(60 * SEC)).unwrap();
    assert!(close_to(exp, SystemTime::now() + 60 * SEC, 5 * SEC));
    let exp2 = l.heartbeat(&t).unwrap();
    assert!(
        close_to(exp2, SystemTime::now() + 5 * SEC, 2 * SEC),
        "keeps its duration"
    );
    let exp3 = t.heartbeat(l.token, None).unwrap();
    assert!(
        close_to(exp3, SystemTime::now() + 5 * SEC, 2 * SEC),
        "queue default"
    );
    let e = t.heartbeat(&l, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(t.get_task("q", 0).unwrap().lease_expires_at, Some(exp3));

    assert_eq!(t.get_task("q", 0).unwrap().started_at, None);
    l.start(&t).unwrap();
    assert!(t.get_task("q", 0).unwrap().started_at.is_some());

    // Release: the attempt is not counted and the old token is stale.
    l.release(&t).unwrap();
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::Ready);
    for e in [
        t.heartbeat(&l, None).map(|_| ()).unwrap_err(),
        t.start(&l).unwrap_err(),
        t.complete(&l, b"").map(|_| ()).unwrap_err(),
        t.fail(&l, "x", true).map(|_| ()).unwrap_err(),
        t.release(&l).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::LeaseLost, "{e}");
        assert!(!e.message().is_empty());
    }

    let l2 = claim_one(&t, "q");
    assert_eq!((l2.offset, l2.attempt), (0, 1));
    assert!(l2.token.fence() > l.token.fence());
    // Only one task of a lane is in flight: "two" waits for "one".
    assert!(t.claim("q", "w", &ClaimOptions::new()).unwrap().is_empty());

    let c = l2.complete(&t, b"done-1").unwrap();
    assert_eq!(c.offset, 0);
    assert!(!c.duplicate);
    assert!(close_to(c.committed_at, SystemTime::now(), 5 * SEC));
    let again = t.complete(l2.token, b"ignored").unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (again.offset, again.committed_at),
        (c.offset, c.committed_at)
    );
    let done = t.get_task("q", 0).unwrap();
    assert_eq!(done.state, TaskState::Done);
    assert_eq!(done.result.as_deref(), Some(&b"done-1"[..]));
    assert_eq!(done.committed_at, Some(c.committed_at));
    assert_eq!(claim_one(&t, "q").payload, b"two");
    let s = t.stats("q").unwrap();
    assert_eq!((s.totals.completed, s.totals.released), (1, 1));
}

#[test]
fn complete_batch_has_per_item_outcomes() {
    let t = TestDb::with("cbatch", &common::fast().max_result(4));
    t.create_queue("q", &QueueConfig::new()).unwrap();
    for k in ["a", "b", "c"] {
        t.enqueue("q", k, k.as_bytes(), &EnqueueOptions::new())
            .unwrap();
    }
    let ls = t.claim("q", "w", &ClaimOptions::new().max(3)).unwrap();
    assert_eq!(ls.len(), 3);
    ls[1].release(&t).unwrap();

    // A result over the limit fails the whole call; nothing is completed.
    // (max_result is a file option: a broker applies its own.)
    if !common::broker_mode() {
        let e = t
            .complete_batch(&[(ls[0].token, b"ok"), (ls[2].token, b"too long")])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert_eq!(t.stats("q").unwrap().totals.completed, 0);
    }

    let out = t
        .complete_batch(&[
            (ls[0].token, b"r0"),
            (ls[1].token, b"r1"),
            (ls[2].token, b""),
        ])
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().unwrap().offset, ls[0].offset);
    let e = out[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    assert!(e.message().contains("LEASE_LOST"), "{e}");
    assert_eq!(out[2].as_ref().unwrap().offset, ls[2].offset);
    assert_eq!(
        t.get_task("q", ls[0].offset).unwrap().result.as_deref(),
        Some(&b"r0"[..])
    );
    assert!(t.complete_batch(&[]).unwrap().is_empty());
    assert_eq!(t.stats("q").unwrap().totals.completed, 2);
}

#[test]
fn fail_retries_with_backoff_then_dead_letters_with_faults() {
    let t = TestDb::queue("fail", &quick_retries(2));
    t.enqueue("q", "k", b"p", &EnqueueOptions::new()).unwrap();
    let l = claim_one(&t, "q");
    let before = SystemTime::now();
    let o = l.fail(&t, "smtp timeout", true).unwrap();
    assert!(!o.is_dead());
    assert_eq!(o.attempt(), 1);
    match o {
        FailOutcome::Retry {
            attempt,
            not_before,
        } => {
            assert_eq!(attempt, 1);
            assert!(close_to(not_before, before, 5 * SEC));
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::RetryWait);

    let l2 = claim_one(&t, "q");
    assert_eq!(l2.attempt, 2);
    let o = t.fail(&l2, "smtp timeout again", true).unwrap();
    assert_eq!(o, FailOutcome::Dead { attempt: 2 });

    let faults = t.faults("q", 0).unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0].attempt, 1);
    assert_eq!(faults[0].error, "smtp timeout");
    assert_eq!(faults[0].worker, "w");
    assert_eq!(faults[0].kind, FaultKind::Failed);
    assert!(faults[0].retryable);
    assert!(close_to(faults[0].at, before, 5 * SEC));
    assert_eq!(faults[1].error, "smtp timeout again");
    let task = t.get_task("q", 0).unwrap();
    assert_eq!((task.state, task.attempt), (TaskState::Dead, 2));

    // Not retryable: dead at once, whatever attempts remain.
    t.enqueue("q", "k2", b"p", &EnqueueOptions::new().max_attempts(9))
        .unwrap();
    let l3 = claim_one(&t, "q");
    let o = t.fail(&l3, "bad payload", false).unwrap();
    assert_eq!(o, FailOutcome::Dead { attempt: 1 });
    assert!(!t.faults("q", 1).unwrap()[0].retryable);
    let s = t.stats("q").unwrap();
    assert_eq!(s.dead, 2);
    assert_eq!(
        (s.totals.failed, s.totals.retried, s.totals.dead_lettered),
        (3, 1, 2)
    );
    assert_eq!(t.faults("q", 99).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn an_expired_lease_is_lost_and_counts_as_an_attempt() {
    let t = TestDb::queue("expiry", &QueueConfig::new());
    t.enqueue("q", "k", b"p", &EnqueueOptions::new()).unwrap();
    let l = t
        .claim(
            "q",
            "w",
            &ClaimOptions::new().lease(Duration::from_millis(30)),
        )
        .unwrap()
        .remove(0);
    std::thread::sleep(Duration::from_millis(80));
    t.sync().unwrap(); // runs due timers
    assert_eq!(
        t.complete(&l, b"late").unwrap_err().kind(),
        ErrorKind::LeaseLost
    );
    let f = t.faults("q", 0).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, FaultKind::Expired);
    let l2 = claim_one(&t, "q");
    assert_eq!(l2.attempt, 2);
    let totals = t.stats("q").unwrap().totals;
    assert_eq!(totals.lease_expired, 1);
    assert_eq!(totals.rollbacks, 1, "the refused complete is a rollback");
}

#[test]
fn pending_lists_unfinished_tasks_in_offset_order() {
    let cfg = QueueConfig::new()
        .ordering(Ordering::None)
        .max_attempts(3)
        .backoff(
            Backoff::new()
                .initial(Duration::from_secs(600))
                .max(Duration::from_secs(600))
                .jitter(0.0),
        );
    let t = TestDb::queue("pending", &cfg);
    assert!(t.pending("q", None, 100).unwrap().is_empty());
    for i in 0..4 {
        t.enqueue(
            "q",
            &format!("k{i}"),
            format!("p{i}").as_bytes(),
            &EnqueueOptions::new(),
        )
        .unwrap();
    }
    let mut ls = t.claim("q", "w", &ClaimOptions::new().max(4)).unwrap();
    ls.sort_by_key(|l| l.offset);
    assert_eq!(
        ls.iter().map(|l| l.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    // 0 done, 1 leased, 2 waiting for its retry, 3 dead; then 4 ready and
    // 5 delayed.
    ls[0].complete(&t, b"ok").unwrap();
    assert!(!ls[2].fail(&t, "again", true).unwrap().is_dead());
    assert!(ls[3].fail(&t, "never", false).unwrap().is_dead());
    t.enqueue("q", "k4", b"p4", &EnqueueOptions::new()).unwrap();
    t.enqueue("q", "k5", b"p5", &EnqueueOptions::new().delay(3600 * SEC))
        .unwrap();

    let offsets = |v: &[TaskInfo]| v.iter().map(|t| t.offset).collect::<Vec<_>>();
    let all = t.pending("q", None, 100).unwrap();
    assert_eq!(offsets(&all), [1, 2, 4, 5]);
    assert_eq!(
        all.iter().map(|t| t.state).collect::<Vec<_>>(),
        [
            TaskState::Leased,
            TaskState::RetryWait,
            TaskState::Ready,
            TaskState::Ready
        ]
    );
    assert_eq!(all[0].worker.as_deref(), Some("w"));
    assert_eq!(all[1].attempt, 1);
    assert_eq!(all[2].key, "k4");
    assert_eq!(all[2].payload.as_deref(), Some(&b"p4"[..]));
    assert!(
        all[3].not_before > SystemTime::now() + 3000 * SEC,
        "delayed"
    );

    // Paging.
    assert_eq!(offsets(&t.pending("q", Some(1), 2).unwrap()), [2, 4]);
    assert_eq!(offsets(&t.pending("q", None, 1).unwrap()), [1]);
    assert_eq!(offsets(&t.pending("q", Some(4), 100).unwrap()), [5]);
    assert!(t.pending("q", Some(5), 100).unwrap().is_empty());
    assert!(t.pending("q", None, 0).unwrap().is_empty());

    // Listing leased nothing: 4 is still the one claimable task.
    let l4 = t.claim("q", "w2", &ClaimOptions::new().max(10)).unwrap();
    assert_eq!(l4.iter().map(|l| l.offset).collect::<Vec<_>>(), [4]);
    let after = t.pending("q", None, 100).unwrap();
    assert_eq!(offsets(&after), [1, 2, 4, 5]);
    assert_eq!(after[2].state, TaskState::Leased);
    l4[0].complete(&t, b"").unwrap();
    ls[1].complete(&t, b"").unwrap();
    assert_eq!(offsets(&t.pending("q", None, 100).unwrap()), [2, 5]);

    assert_eq!(
        t.pending("nope", None, 10).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn dead_letters_list_get_redrive_and_purge() {
    let t = TestDb::queue("dlq", &quick_retries(1));
    for i in 0..4 {
        t.enqueue(
            "q",
            &format!("k{i}"),
            format!("p{i}").as_bytes(),
            &EnqueueOptions::new(),
        )
        .unwrap();
    }
    let ls = t.claim("q", "w", &ClaimOptions::new().max(4)).unwrap();
    assert_eq!(ls.len(), 4);
    for l in &ls[..3] {
        assert!(l
            .fail(&t, &format!("boom {}", l.offset), true)
            .unwrap()
            .is_dead());
    }
    ls[3].complete(&t, b"ok").unwrap();

    let all = t.dlq_list("q", None, 100).unwrap();
    assert_eq!(all.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(all.iter().all(|d| d.state == TaskState::Dead));
    assert_eq!(all[1].payload.as_deref(), Some(&b"p1"[..]));
    let after = t.dlq_list("q", Some(0), 100).unwrap();
    assert_eq!(after.iter().map(|d| d.offset).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(t.dlq_list("q", None, 1).unwrap().len(), 1);

    let d = t.dlq_get("q", 1).unwrap();
    assert_eq!(d.task.offset, 1);
    assert_eq!(d.task.key, "k1");
    assert_eq!(d.faults.len(), 1);
    assert_eq!(d.faults[0].error, "boom 1");
    assert_eq!(t.dlq_get("q", 3).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(t.dlq_get("q", 99).unwrap_err().kind(), ErrorKind::NotFound);

    // Head: back at its own offset, attempts reset.
    let r = t.dlq_redrive("q", 0, RedriveMode::Head).unwrap();
    assert_eq!(r.offset, 0);
    let task = t.get_task("q", 0).unwrap();
    assert_eq!((task.state, task.attempt), (TaskState::Ready, 0));
    let again = claim_one(&t, "q");
    assert_eq!((again.offset, again.attempt), (0, 1));
    again.complete(&t, b"").unwrap();

    // NewOffset: a new task at the tail, linked both ways.
    let r = t.dlq_redrive("q", 1, RedriveMode::NewOffset).unwrap();
    assert_eq!(r.offset, 4);
    assert_eq!(t.get_task("q", 1).unwrap().redriven_to, Some(4));
    let new = t.get_task("q", 4).unwrap();
    assert_eq!(new.redriven_from, Some(1));
    assert_eq!(new.payload.as_deref(), Some(&b"p1"[..]));

    assert_eq!(
        t.dlq_redrive("q", 3, RedriveMode::Head).unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(
        t.dlq_redrive("q", 99, RedriveMode::Head)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        t.dlq_purge("q", Some(3)).unwrap_err().kind(),
        ErrorKind::InvalidState
    );

    assert_eq!(t.dlq_purge("q", Some(2)).unwrap(), 1);
    assert!(t.dlq_list("q", None, 100).unwrap().is_empty());
    claim_one(&t, "q").complete(&t, b"").unwrap(); // the redriven task
                                                   // Make two more dead letters and purge them all.
    for k in ["x", "y"] {
        t.enqueue("q", k, b"", &EnqueueOptions::new()).unwrap();
    }
    for l in t.claim("q", "w", &ClaimOptions::new().max(10)).unwrap() {
        l.fail(&t, "no", false).unwrap();
    }
    assert_eq!(t.dlq_list("q", None, 100).unwrap().len(), 2);
    assert_eq!(t.dlq_purge("q", None).unwrap(), 2);
    let s = t.stats("q").unwrap();
    assert_eq!(s.dead, 0);
    assert_eq!((s.totals.purged, s.totals.redriven), (3, 2));
}

#[test]
fn dlq_block_policy_blocks_the_lane() {
    let t = TestDb::queue("block", &quick_retries(1).dlq_policy(DlqPolicy::Block));
    t.enqueue("q", "k", b"1", &EnqueueOptions::new()).unwrap();
    t.enqueue("q", "k", b"2", &EnqueueOptions::new()).unwrap();
    claim_one(&t, "q").fail(&t, "x", false).unwrap();
    assert!(t.claim("q", "w", &ClaimOptions::new()).unwrap().is_empty());
    t.dlq_purge("q", Some(0)).unwrap();
    assert_eq!(claim_one(&t, "q").payload, b"2");
}

#[test]
fn stats_count_states_shards_and_totals() {
    let t = TestDb::queue("stats", &QueueConfig::new().shards(5));
    for i in 0..6 {
        t.enqueue("q", &format!("k{i}"), b"", &EnqueueOptions::new())
            .unwrap();
    }
    t.enqueue("q", "later", b"", &EnqueueOptions::new().delay(3600 * SEC))
        .unwrap();
    let ls = t.claim("q", "w", &ClaimOptions::new().max(3)).unwrap();
    ls[0].complete(&t, b"").unwrap();
    ls[1].fail(&t, "e", true).unwrap();
    let s = t.stats("q").unwrap();
    assert_eq!(s.queue, "q");
    assert_eq!(s.shards.len(), 5);
    assert_eq!((s.done, s.leased, s.retry_wait, s.dead), (1, 1, 1, 0));
    assert_eq!(s.ready, 4);
    assert_eq!(s.next_offset, 7);
    assert_eq!(s.shards.iter().map(|x| x.in_flight).sum::<u64>(), 1);
    // Pending: ready, delayed or in retry wait (leased tasks are in flight).
    assert_eq!(s.shards.iter().map(|x| x.pending).sum::<u64>(), 5);
    assert!(s.oldest_pending_age < 3600 * SEC);
    assert_eq!(
        (
            s.totals.enqueued,
            s.totals.completed,
            s.totals.failed,
            s.totals.retried
        ),
        (7, 1, 1, 1)
    );
}

#[test]
fn retention_prunes_payloads_and_results() {
    if common::skip_in_broker_mode(
        "retention_prunes_payloads_and_results",
        "retain_done is a file option; a broker applies its own",
    ) {
        return;
    }
    let t = TestDb::with("retain", &common::fast().retain_done(Duration::ZERO));
    t.create_queue("q", &QueueConfig::new()).unwrap();
    t.enqueue(
        "q",
        "k",
        b"payload",
        &EnqueueOptions::new().idempotency_key("i"),
    )
    .unwrap();
    claim_one(&t, "q").complete(&t, b"result").unwrap();
    t.sync().unwrap();
    let task = t.get_task("q", 0).unwrap();
    assert_eq!(task.state, TaskState::Done);
    assert_eq!((task.payload, task.result), (None, None));
}

#[test]
fn durable_default_options_work_too() {
    let t = TestDb::with("durable", &Options::default());
    assert_eq!(t.uri(), t.uri);
    t.create_queue("q", &QueueConfig::default()).unwrap();
    t.enqueue("q", "k", b"x", &EnqueueOptions::default())
        .unwrap();
    claim_one(&t, "q").complete(&t, b"y").unwrap();
    assert_eq!(t.stats("q").unwrap().done, 1);
    drop(t.db);

    // Small engine batches and cache still commit a large enqueue_batch.
    let opts = Options::new()
        .max_batch(2)
        .cache_size(1 << 20)
        .max_headers(64);
    let db = Db::open(&t.uri, &opts).unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let items: Vec<EnqueueItem> = keys.iter().map(|k| EnqueueItem::new(k, b"")).collect();
    assert_eq!(db.enqueue_batch("q", &items).unwrap().len(), 50);
    assert_eq!(db.stats("q").unwrap().next_offset, 51);
}

#[test]
fn create_if_not_exists_and_must_exist() {
    let t = TestDb::new("ensure");
    let cfg = QueueConfig::new().shards(4);
    t.create_queue_if_not_exists("q", &cfg).unwrap();
    t.create_queue_if_not_exists("q", &cfg).unwrap();
    assert_eq!(t.queue_config("q").unwrap().shards, 4);
    let e = t
        .create_queue_if_not_exists("q", &cfg.clone().max_attempts(2))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.message().contains("max_attempts=2"), "{e}");
    assert_eq!(
        t.create_queue("q", &cfg).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(t.list_queues().unwrap(), vec!["q".to_string()]);
    // must_exist: a missing file is NotFound and nothing is created.
    let missing = t.dir.join("typo.ordq");
    let e = Db::open(missing.to_str().unwrap(), &fast().must_exist(true)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!missing.exists());
    let made = Db::open(missing.to_str().unwrap(), &fast()).unwrap();
    made.close().unwrap();
    Db::open(missing.to_str().unwrap(), &fast().must_exist(true))
        .unwrap()
        .close()
        .unwrap();
    // signing_key: a new database's checkpoints are signed.
    if broker_mode() {
        return;
    }
    let signed = t.dir.join("signed.ordq");
    let db = Db::open(signed.to_str().unwrap(), &fast().signing_key([1; 32])).unwrap();
    db.checkpoint().unwrap();
    let r = db.verify(None).unwrap();
    assert!(r["signed"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["unsigned"], 0, "{r}");
    db.close().unwrap();
}
