//! Unit tests of every engine operation and option through the public API,
//! driven by a manual clock (only the claim-wait tests use real time).

mod common;

use common::{manual_options, TempDir, TestDb, T0};
use ordq_core::hash::{shard_of, unit_from};
use ordq_core::tables::{FORMAT_VERSION, META, META_FORMAT};
use ordq_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn eo() -> EnqueueOptions {
    EnqueueOptions::default()
}

/// Enqueues `payload` under `key` with default options.
fn put(db: &Db, q: &str, key: &str, payload: &[u8]) -> Receipt {
    db.enqueue(q, key, payload, eo()).unwrap()
}

/// Claims up to `max` leases as worker "w" with default options.
fn take(db: &Db, q: &str, max: usize) -> Vec<Lease> {
    db.claim(
        q,
        "w",
        ClaimOptions {
            max,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Claims exactly one lease as `worker`.
fn take_one(db: &Db, q: &str, worker: &str) -> Lease {
    let mut l = db.claim(q, worker, ClaimOptions::default()).unwrap();
    assert_eq!(l.len(), 1, "expected exactly one lease, got {l:?}");
    l.remove(0)
}

fn offsets(ls: &[Lease]) -> Vec<u64> {
    ls.iter().map(|l| l.offset).collect()
}

fn by_offset(ls: &[Lease], offset: u64) -> Lease {
    ls.iter()
        .find(|l| l.offset == offset)
        .cloned()
        .unwrap_or_else(|| panic!("no lease for offset {offset} in {:?}", offsets(ls)))
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

/// The `n`-th key ("k0", "k1", …) that falls into `shard` of `shards`.
fn key_in_shard(shard: u32, shards: u32, n: usize) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| shard_of(k, shards) == shard)
        .nth(n)
        .unwrap()
}

fn backoff(initial_ms: u64, max_ms: u64, multiplier: f64, jitter: f64) -> Backoff {
    Backoff {
        initial: ms(initial_ms),
        max: ms(max_ms),
        multiplier,
        jitter,
    }
}

/// Overwrites one meta value of a closed database with redb directly.
fn write_meta(path: &Path, key: &str, value: &[u8]) {
    let rdb = redb::Database::open(path).unwrap();
    let w = rdb.begin_write().unwrap();
    {
        let mut t = w.open_table(META).unwrap();
        t.insert(key, value).unwrap();
    }
    w.commit().unwrap();
}

// ---------------------------------------------------------------- open

#[test]
fn open_creates_a_new_file_and_reopen_keeps_data() {
    let dir = TempDir::new("open");
    let path = dir.join("new.ordq");
    assert!(!path.exists());
    let (opts, _clock) = manual_options();
    let db = Db::open(&path, opts.clone()).unwrap();
    assert!(path.exists());
    assert_eq!(db.path(), path.as_path());
    assert_eq!(db.options().max_payload, opts.max_payload);
    assert!(db.list_queues().unwrap().is_empty());
    db.create_queue("q", QueueConfig::default()).unwrap();
    let r = put(&db, "q", "k", b"payload");
    db.close();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["new.ordq".to_string(), "new.ordq.log".to_string()],
        "the file and its segment log, no temp file left"
    );

    let db = Db::open(&path, opts).unwrap();
    assert_eq!(db.list_queues().unwrap().len(), 1);
    let t = db.get_task("q", r.offset).unwrap();
    assert_eq!(t.payload.as_deref(), Some(&b"payload"[..]));
    assert_eq!(t.id, r.id);
    assert_eq!(t.enqueued_at, T0);
    assert_eq!(t.state, TaskState::Ready);
}

#[test]
fn open_second_handle_of_same_path_is_already_open() {
    let t = TestDb::new();
    let e = Db::open(&t.path, t.opts.clone()).unwrap_err();
    assert_eq!(e, Error::AlreadyOpen(t.path.clone()));
    assert_eq!(e.code(), ErrorCode::AlreadyOpen);
    assert!(
        e.to_string().contains(&t.path.display().to_string()),
        "message names the path: {e}"
    );
    // The first handle is unaffected, and a clone is not a second open.
    let clone = t.db.clone();
    assert!(clone.list_queues().unwrap().is_empty());
    // Dropping one clone keeps the engine; closing releases the file.
    drop(clone);
    assert_eq!(
        code(Db::open(&t.path, t.opts.clone())),
        ErrorCode::AlreadyOpen
    );
    t.db.close();
    let db2 = Db::open(&t.path, t.opts.clone()).unwrap();
    drop(db2);
    // Dropping the last handle releases the file as well.
    Db::open(&t.path, t.opts.clone()).unwrap();
}

#[test]
fn open_redb_file_without_ordq_meta_is_corrupt() {
    let dir = TempDir::new("corrupt");
    let (opts, _) = manual_options();

    // A redb database with an unrelated table and no meta table.
    let other = dir.join("other.redb");
    {
        let rdb = redb::Database::create(&other).unwrap();
        let w = rdb.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("other");
            let mut t = w.open_table(def).unwrap();
            t.insert("x", b"y".as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    let e = Db::open(&other, opts.clone()).unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt(m) if m.contains(&other.display().to_string())),
        "{e:?}"
    );

    // An empty redb database.
    let empty = dir.join("empty.redb");
    drop(redb::Database::create(&empty).unwrap());
    assert_eq!(code(Db::open(&empty, opts.clone())), ErrorCode::Corrupt);

    // A meta table without a format value.
    let nofmt = dir.join("nofmt.redb");
    {
        let rdb = redb::Database::create(&nofmt).unwrap();
        let w = rdb.begin_write().unwrap();
        {
            let mut t = w.open_table(META).unwrap();
            t.insert("something", b"else".as_slice()).unwrap();
        }
        w.commit().unwrap();
    }
    assert_eq!(code(Db::open(&nofmt, opts.clone())), ErrorCode::Corrupt);

    // A format value of the wrong width.
    let bad = dir.join("bad.ordq");
    Db::open(&bad, opts.clone()).unwrap().close();
    write_meta(&bad, META_FORMAT, &[1, 0, 0]);
    assert_eq!(code(Db::open(&bad, opts)), ErrorCode::Corrupt);
}

#[test]
fn open_file_that_is_not_a_database_fails_and_leaves_it_alone() {
    let dir = TempDir::new("garbage");
    let path = dir.join("notes.txt");
    let text = b"these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let (opts, _) = manual_options();
    let c = code(Db::open(&path, opts));
    assert!(
        matches!(c, ErrorCode::Corrupt | ErrorCode::Io),
        "unexpected code {c:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), text, "file was modified");
}

#[test]
fn open_newer_format_is_refused() {
    let dir = TempDir::new("fmt");
    let path = dir.join("f.ordq");
    let (opts, _) = manual_options();
    let db = Db::open(&path, opts.clone()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    put(&db, "q", "k", b"x");
    db.close();

    write_meta(&path, META_FORMAT, &(FORMAT_VERSION + 1).to_le_bytes());
    let want = Error::FormatTooNew {
        found: FORMAT_VERSION + 1,
        supported: FORMAT_VERSION,
    };
    let e = Db::open(&path, opts.clone()).unwrap_err();
    assert_eq!(e, want);
    assert_eq!(e.code(), ErrorCode::FormatTooNew);
    let msg = e.to_string();
    assert!(msg.contains(&(FORMAT_VERSION + 1).to_string()), "{msg}");
    assert!(msg.contains(&FORMAT_VERSION.to_string()), "{msg}");
    // The refused open changed nothing: still refused, and fine once the
    // format is back to the supported one.
    assert_eq!(Db::open(&path, opts.clone()).unwrap_err(), want);
    write_meta(&path, META_FORMAT, &FORMAT_VERSION.to_le_bytes());
    let db = Db::open(&path, opts).unwrap();
    assert_eq!(db.get_task("q", 0).unwrap().payload.unwrap(), b"x");
}

#[test]
fn open_in_missing_directory_is_io() {
    let dir = TempDir::new("missing");
    let (opts, _) = manual_options();
    let path = dir.join("no/such/dir/x.ordq");
    assert_eq!(code(Db::open(&path, opts)), ErrorCode::Io);
    assert!(!path.exists());
}

#[test]
fn open_sweeps_stale_creation_temps_of_dead_pids() {
    let dir = TempDir::new("sweep");
    let path = dir.join("s.ordq");
    let dead_pid = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let me = std::process::id();
    let plant = |name: String| {
        let p = dir.join(&name);
        std::fs::write(&p, b"half-created").unwrap();
        p
    };
    let stale = plant(format!(".s.ordq.creating.{dead_pid}.123"));
    let live = plant(format!(".s.ordq.creating.{me}.456"));
    let foreign = plant(format!(".x.ordq.creating.{dead_pid}.1"));
    let (opts, _) = manual_options();
    let db = Db::open(&path, opts.clone()).unwrap();
    assert!(
        !stale.exists(),
        "stale temp of a dead pid is swept on create"
    );
    assert!(live.exists(), "temp of a live process is kept");
    assert!(foreign.exists(), "temps of other databases are not touched");
    db.close();

    // Reopening an existing file sweeps too.
    let stale2 = plant(format!(".s.ordq.creating.{dead_pid}.789"));
    let db = Db::open(&path, opts).unwrap();
    assert!(!stale2.exists(), "stale temp swept on reopen");
    assert!(live.exists());
    db.close();
}

// ---------------------------------------------------------------- options

#[test]
fn defaults_match_the_documented_values() {
    let c = QueueConfig::default();
    assert_eq!(c.shards, 16);
    assert_eq!(c.ordering, Ordering::Key);
    assert_eq!(c.max_attempts, 10);
    assert_eq!(c.backoff, backoff(1_000, 600_000, 2.0, 0.2));
    assert_eq!(c.lease, Duration::from_secs(30));
    assert_eq!(c.dlq_policy, DlqPolicy::Skip);
    assert!(c.validate().is_ok());

    let o = Options::default();
    assert_eq!(o.durability, Durability::Immediate);
    assert_eq!(o.max_payload, 1 << 20);
    assert_eq!(o.max_result, 1 << 20);
    assert_eq!(o.max_key, 1024);
    assert_eq!(o.max_headers, 64 << 10);
    assert_eq!(o.retain_done, Duration::from_secs(24 * 3600));
    assert_eq!(o.max_batch, 8192);
    assert_eq!(o.cache_size, 64 << 20);

    let co = ClaimOptions::default();
    assert_eq!(co.max, 1);
    assert_eq!(co.lease, None);
    assert_eq!(co.wait, Duration::ZERO);
    assert_eq!(co.shards, None);

    let e = EnqueueOptions::default();
    assert_eq!(e.priority, 0);
    assert_eq!(e.not_before, None);
    assert_eq!(e.delay, None);
    assert_eq!(e.max_attempts, None);
    assert_eq!(e.idempotency_key, None);
    assert!(e.headers.is_empty());
}

#[test]
fn backoff_delay_formula() {
    let b = backoff(1_000, 10_000, 2.0, 0.0);
    assert_eq!(b.delay(1, 0.0), ms(1_000));
    assert_eq!(b.delay(2, 0.0), ms(2_000));
    assert_eq!(b.delay(3, 0.0), ms(4_000));
    assert_eq!(b.delay(4, 0.0), ms(8_000));
    assert_eq!(b.delay(5, 0.0), ms(10_000), "capped at max");
    assert_eq!(b.delay(u32::MAX, 0.0), ms(10_000), "no overflow");
    let j = backoff(1_000, 10_000, 2.0, 0.5);
    assert_eq!(j.delay(1, 0.5), ms(750), "jitter takes jitter*u off");
    assert_eq!(j.delay(5, 0.5), ms(7_500), "jitter applies after the cap");
    let flat = backoff(300, 300, 1.0, 0.0);
    assert_eq!(flat.delay(7, 0.9), ms(300));
}

#[test]
fn max_batch_and_cache_size_options_work() {
    for (max_batch, cache) in [(1usize, 1usize << 20), (3, 4 << 20)] {
        let t = TestDb::with(|o| {
            o.max_batch = max_batch;
            o.cache_size = cache;
        });
        t.create_queue("q", QueueConfig::default()).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let db = t.db.clone();
                thread::spawn(move || {
                    (0..25)
                        .map(|j| put(&db, "q", &format!("t{i}"), format!("{j}").as_bytes()).offset)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(t.stats("q").unwrap().totals.enqueued, 100);
    }
}

// ---------------------------------------------------------------- queues

#[test]
fn queue_create_get_list_delete() {
    let mut t = TestDb::new();
    let cfg = QueueConfig {
        shards: 3,
        ordering: Ordering::Shard,
        max_attempts: 4,
        backoff: backoff(250, 9_000, 1.5, 0.1),
        lease: Duration::from_secs(5),
        dlq_policy: DlqPolicy::Block,
    };
    let beta = t.create_queue("beta", cfg.clone()).unwrap();
    assert_eq!(beta.name, "beta");
    assert_eq!(beta.config, cfg);
    assert_eq!(beta.created_at, T0);
    t.clock.advance(ms(1_000));
    let alpha = t.create_queue("alpha", QueueConfig::default()).unwrap();
    assert_eq!(alpha.created_at, T0 + 1_000);
    assert_ne!(alpha.id, beta.id);
    assert_eq!(t.queue("beta").unwrap(), beta);
    assert_eq!(t.queue("alpha").unwrap(), alpha);
    let names: Vec<String> = t
        .list_queues()
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"], "listed by name");

    t.reopen();
    assert_eq!(t.queue("beta").unwrap(), beta, "config survives reopen");
    assert_eq!(t.list_queues().unwrap(), vec![alpha.clone(), beta.clone()]);

    t.delete_queue("beta").unwrap();
    assert_eq!(code(t.queue("beta")), ErrorCode::NotFound);
    assert_eq!(code(t.delete_queue("beta")), ErrorCode::NotFound);
    assert_eq!(t.list_queues().unwrap(), vec![alpha.clone()]);
    t.reopen();
    assert_eq!(t.list_queues().unwrap(), vec![alpha]);
}

#[test]
fn queue_invalid_config_fields_are_rejected() {
    let base = QueueConfig::default();
    let with_backoff = |b: Backoff| QueueConfig {
        backoff: b,
        ..base.clone()
    };
    let b = base.backoff;
    let cases: Vec<(&str, QueueConfig)> = vec![
        (
            "shards",
            QueueConfig {
                shards: 0,
                ..base.clone()
            },
        ),
        (
            "shards",
            QueueConfig {
                shards: 4097,
                ..base.clone()
            },
        ),
        (
            "max_attempts",
            QueueConfig {
                max_attempts: 0,
                ..base.clone()
            },
        ),
        (
            "lease",
            QueueConfig {
                lease: Duration::ZERO,
                ..base.clone()
            },
        ),
        (
            "multiplier",
            with_backoff(Backoff {
                multiplier: 0.5,
                ..b
            }),
        ),
        (
            "multiplier",
            with_backoff(Backoff {
                multiplier: f64::NAN,
                ..b
            }),
        ),
        (
            "multiplier",
            with_backoff(Backoff {
                multiplier: f64::INFINITY,
                ..b
            }),
        ),
        ("jitter", with_backoff(Backoff { jitter: -0.1, ..b })),
        ("jitter", with_backoff(Backoff { jitter: 1.01, ..b })),
        (
            "jitter",
            with_backoff(Backoff {
                jitter: f64::NAN,
                ..b
            }),
        ),
        (
            "initial",
            with_backoff(Backoff {
                initial: ms(10_000),
                max: ms(5_000),
                ..b
            }),
        ),
    ];
    let t = TestDb::new();
    for (field, cfg) in cases {
        assert!(cfg.validate().is_err(), "{field}: {cfg:?}");
        match t.create_queue("q", cfg.clone()) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(field), "{field}: {m}"),
            other => panic!("{field}: {cfg:?} gave {other:?}"),
        }
    }
    assert!(t.list_queues().unwrap().is_empty(), "nothing was created");

    // The edges of every range are accepted.
    let edges = [
        QueueConfig {
            shards: 1,
            max_attempts: 1,
            lease: ms(1),
            ..base.clone()
        },
        QueueConfig {
            shards: 4096,
            ..base.clone()
        },
        with_backoff(Backoff {
            multiplier: 1.0,
            jitter: 0.0,
            ..b
        }),
        with_backoff(Backoff { jitter: 1.0, ..b }),
        with_backoff(Backoff {
            initial: ms(5_000),
            max: ms(5_000),
            ..b
        }),
    ];
    for (i, cfg) in edges.into_iter().enumerate() {
        let name = format!("edge{i}");
        assert_eq!(t.create_queue(&name, cfg.clone()).unwrap().config, cfg);
    }
}

#[test]
fn queue_names_are_validated() {
    let t = TestDb::new();
    let long_ok = "a".repeat(128);
    let valid = [
        long_ok.as_str(),
        "a",
        "0",
        "Z",
        "a.b_c-D9",
        "9-._",
        "emails.v2",
    ];
    for name in valid {
        let info = t.create_queue(name, QueueConfig::default()).unwrap();
        assert_eq!(info.name, name);
        assert_eq!(t.queue(name).unwrap(), info);
        put(&t, name, "k", b"x");
        assert_eq!(t.stats(name).unwrap().next_offset, 1);
    }
    let long_bad = "a".repeat(129);
    let invalid = [
        "",
        long_bad.as_str(),
        ".hidden",
        "-dash",
        "_under",
        "with space",
        " lead",
        "trail ",
        "tab\there",
        "slash/x",
        "colon:x",
        "star*",
        "ключ",
        "caf\u{e9}",
        "a\n",
        "🦀",
    ];
    for name in invalid {
        match t.create_queue(name, QueueConfig::default()) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("[A-Za-z0-9]"), "{m}"),
            other => panic!("{name:?} gave {other:?}"),
        }
    }
    assert_eq!(t.list_queues().unwrap().len(), valid.len());

    // Every operation that takes a queue name checks it.
    for name in ["", ".x", "a b", long_bad.as_str()] {
        let ia = ErrorCode::InvalidArgument;
        assert_eq!(code(t.queue(name)), ia, "{name:?}");
        assert_eq!(code(t.delete_queue(name)), ia);
        assert_eq!(code(t.enqueue(name, "k", b"x", eo())), ia);
        assert_eq!(code(t.enqueue_batch(name, vec![])), ia);
        assert_eq!(code(t.claim(name, "w", ClaimOptions::default())), ia);
        assert_eq!(code(t.get_task(name, 0)), ia);
        assert_eq!(code(t.faults(name, 0)), ia);
        assert_eq!(code(t.stats(name)), ia);
        assert_eq!(code(t.dlq_list(name, None, 10)), ia);
        assert_eq!(code(t.dlq_get(name, 0)), ia);
        assert_eq!(code(t.dlq_redrive(name, 0, RedriveMode::Head)), ia);
        assert_eq!(code(t.dlq_purge(name, None)), ia);
    }
}

#[test]
fn queue_create_twice_is_already_exists() {
    let t = TestDb::new();
    let first = t.create_queue("q", QueueConfig::default()).unwrap();
    let other = QueueConfig {
        shards: 2,
        ..Default::default()
    };
    match t.create_queue("q", other) {
        Err(Error::AlreadyExists(m)) => assert!(m.contains('q'), "{m}"),
        r => panic!("{r:?}"),
    }
    assert_eq!(t.queue("q").unwrap(), first, "original config kept");
    assert_eq!(t.list_queues().unwrap().len(), 1);
}

#[test]
fn create_if_not_exists_answers_the_same_config_and_names_a_different_one() {
    let t = TestDb::new();
    let cfg = QueueConfig {
        shards: 4,
        ..Default::default()
    };
    let first = t.create_queue_if_not_exists("q", cfg.clone()).unwrap();
    assert_eq!(first.config, cfg);
    let again = t.create_queue_if_not_exists("q", cfg.clone()).unwrap();
    assert_eq!(again, first, "the existing queue, not a new one");
    let other = QueueConfig {
        max_attempts: 3,
        backoff: Backoff {
            multiplier: 3.0,
            ..cfg.backoff
        },
        ..cfg.clone()
    };
    match t.create_queue_if_not_exists("q", other) {
        Err(Error::AlreadyExists(m)) => {
            assert!(m.contains("max_attempts=3 (exists with 10)"), "{m}");
            assert!(
                m.contains("backoff.multiplier=3.0 (exists with 2.0)"),
                "{m}"
            );
            assert!(!m.contains("shards"), "{m}");
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        t.create_queue("q", cfg.clone()),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(t.list_queues().unwrap().len(), 1);
    // Racing callers: one creates, every one gets the same queue.
    let infos: Vec<QueueInfo> = thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| t.create_queue_if_not_exists("race", cfg.clone()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(infos.iter().all(|i| i == &infos[0]), "{infos:?}");
    assert_eq!(t.list_queues().unwrap().len(), 2);
}

#[test]
fn must_exist_refuses_a_missing_file_and_a_missing_directory_is_named() {
    let dir = TempDir::new("must-exist");
    let path = dir.join("typo.ordq");
    let opts = Options {
        must_exist: true,
        ..Options::default()
    };
    match Db::open(&path, opts.clone()) {
        Err(Error::NotFound(m)) => assert!(m.contains("typo.ordq"), "{m}"),
        r => panic!("{:?}", r.map(|_| ())),
    }
    assert!(!path.exists(), "nothing created");
    assert!(!dir.join("typo.ordq.log").exists(), "no log created");
    Db::open(&path, Options::default()).unwrap().close();
    Db::open(&path, opts).unwrap().close();
    let nested = dir.join("no/such/dir/x.ordq");
    match Db::open(&nested, Options::default()) {
        Err(Error::Io(m)) => {
            assert!(m.contains("no/such/dir"), "{m}");
            assert!(
                !m.contains(".tmp"),
                "names the path given, not a temp file: {m}"
            );
        }
        r => panic!("{:?}", r.map(|_| ())),
    }
}

#[test]
fn queue_delete_removes_its_tasks_and_recreate_starts_at_offset_zero() {
    let mut t = TestDb::new();
    let old = t
        .create_queue(
            "q",
            QueueConfig {
                max_attempts: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let idem = EnqueueOptions {
        idempotency_key: Some("ik".into()),
        ..eo()
    };
    t.enqueue("q", "a", b"old-0", idem.clone()).unwrap();
    put(&t, "q", "b", b"old-1");
    put(&t, "q", "c", b"old-2");
    let ls = take(&t, "q", 3);
    t.fail(by_offset(&ls, 1).token, "x", false).unwrap();
    let held = by_offset(&ls, 0).token;
    assert_eq!(t.dlq_list("q", None, 10).unwrap().len(), 1);

    t.delete_queue("q").unwrap();
    assert_eq!(code(t.get_task("q", 0)), ErrorCode::NotFound);
    let new = t.create_queue("q", QueueConfig::default()).unwrap();
    assert_ne!(new.id, old.id, "queue ids are never reused");
    let s = t.stats("q").unwrap();
    assert_eq!(s.next_offset, 0);
    assert_eq!(s.totals, Totals::default());
    assert_eq!((s.ready, s.leased, s.dead, s.done), (0, 0, 0, 0));
    assert_eq!(code(t.get_task("q", 0)), ErrorCode::NotFound);
    assert!(t.dlq_list("q", None, 10).unwrap().is_empty());

    let r = t.enqueue("q", "z", b"new-0", idem).unwrap();
    assert_eq!(r.offset, 0);
    assert!(!r.duplicate, "idempotency keys went with the old queue");
    assert_eq!(t.get_task("q", 0).unwrap().payload.unwrap(), b"new-0");
    assert_eq!(code(t.get_task("q", 1)), ErrorCode::NotFound);
    assert!(t.faults("q", 0).unwrap().is_empty());
    assert_eq!(code(t.complete(held, b"")), ErrorCode::LeaseLost);

    t.reopen();
    let again = t.create_queue("other", QueueConfig::default()).unwrap();
    assert!(again.id > new.id, "ids keep growing across reopen");
    assert_eq!(t.stats("q").unwrap().next_offset, 1);
}

#[test]
fn operations_on_unknown_queue_are_not_found() {
    let t = TestDb::new();
    t.create_queue("known", QueueConfig::default()).unwrap();
    let nf = ErrorCode::NotFound;
    match t.queue("nope") {
        Err(Error::NotFound(m)) => assert!(m.contains("nope"), "{m}"),
        r => panic!("{r:?}"),
    }
    assert_eq!(code(t.delete_queue("nope")), nf);
    assert_eq!(code(t.enqueue("nope", "k", b"x", eo())), nf);
    let item = EnqueueItem {
        key: "k".into(),
        payload: b"x".to_vec(),
        opts: eo(),
    };
    assert_eq!(code(t.enqueue_batch("nope", vec![item])), nf);
    assert_eq!(code(t.claim("nope", "w", ClaimOptions::default())), nf);
    let started = Instant::now();
    let waiting = ClaimOptions {
        wait: Duration::from_secs(5),
        ..Default::default()
    };
    assert_eq!(code(t.claim("nope", "w", waiting)), nf);
    assert!(started.elapsed() < Duration::from_secs(2), "did not park");
    assert_eq!(code(t.get_task("nope", 0)), nf);
    assert_eq!(code(t.faults("nope", 0)), nf);
    assert_eq!(code(t.stats("nope")), nf);
    assert_eq!(code(t.dlq_list("nope", None, 10)), nf);
    assert_eq!(code(t.dlq_get("nope", 0)), nf);
    assert_eq!(code(t.dlq_redrive("nope", 0, RedriveMode::Head)), nf);
    assert_eq!(code(t.dlq_redrive("nope", 0, RedriveMode::NewOffset)), nf);
    assert_eq!(code(t.dlq_purge("nope", Some(0))), nf);
    assert_eq!(code(t.dlq_purge("nope", None)), nf);
    // Unknown offsets of a known queue.
    assert_eq!(code(t.get_task("known", 0)), nf);
    assert_eq!(code(t.faults("known", 7)), nf);
}

// ---------------------------------------------------------------- enqueue

#[test]
fn enqueue_offsets_are_monotonic_and_shards_follow_the_key_hash() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    t.create_queue(
        "seven",
        QueueConfig {
            shards: 7,
            ..Default::default()
        },
    )
    .unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..20u64 {
        let key = format!("key-{i}");
        let r = put(&t, "q", &key, format!("p{i}").as_bytes());
        assert_eq!(r.offset, i);
        assert_eq!(r.shard, shard_of(&key, 16));
        assert!(!r.duplicate);
        assert_eq!(r.id.len(), 32);
        assert!(r.id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(ids.insert(r.id.clone()), "ids are unique");
        let ti = t.get_task("q", i).unwrap();
        assert_eq!((ti.id, ti.key, ti.shard), (r.id, key.clone(), r.shard));
        assert_eq!(ti.queue, "q");
        assert_eq!(ti.offset, i);

        let r7 = put(&t, "seven", &key, b"");
        assert_eq!(r7.offset, i, "each queue has its own offsets");
        assert_eq!(r7.shard, shard_of(&key, 7));
    }
    // The documented vectors (docs/FORMAT.md).
    assert_eq!(put(&t, "q", "user-1", b"").shard, 13);
    assert_eq!(put(&t, "q", "order:42", b"").shard, 10);
    assert_eq!(put(&t, "q", "", b"").shard, 15);
    assert_eq!(t.stats("q").unwrap().next_offset, 23);
}

#[test]
fn enqueue_priority_orders_lane_heads_but_never_passes_its_lane() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let with = |p: i32| EnqueueOptions {
        priority: p,
        ..eo()
    };
    let pr = [
        ("a", 0),
        ("b", 5),
        ("c", -3),
        ("d", 5),
        ("e", 0),
        ("f", i32::MAX),
        ("g", i32::MIN),
        ("a", 100),
    ];
    for (k, p) in pr {
        t.enqueue("q", k, k.as_bytes(), with(p)).unwrap();
    }
    let ls = take(&t, "q", 100);
    assert_eq!(
        offsets(&ls),
        vec![5, 1, 3, 0, 4, 2, 6],
        "priority, then offset"
    );
    assert_eq!(ls[0].priority, i32::MAX);
    assert_eq!(ls[6].priority, i32::MIN);
    t.complete(by_offset(&ls, 0).token, b"").unwrap();
    let l = take(&t, "q", 100);
    assert_eq!(offsets(&l), vec![7]);
    assert_eq!(l[0].priority, 100);

    // One at a time, the highest eligible head wins each claim.
    t.create_queue("one", QueueConfig::default()).unwrap();
    t.enqueue("one", "x", b"", with(1)).unwrap();
    t.enqueue("one", "y", b"", with(2)).unwrap();
    t.enqueue("one", "z", b"", with(2)).unwrap();
    assert_eq!(take_one(&t, "one", "w").offset, 1);
    assert_eq!(take_one(&t, "one", "w").offset, 2);
    assert_eq!(take_one(&t, "one", "w").offset, 0);
}

#[test]
fn enqueue_not_before_and_delay_hold_tasks_until_the_clock_passes() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let r_delay = t
        .enqueue(
            "q",
            "a",
            b"",
            EnqueueOptions {
                delay: Some(ms(5_000)),
                ..eo()
            },
        )
        .unwrap();
    let r_nb = t
        .enqueue(
            "q",
            "b",
            b"",
            EnqueueOptions {
                not_before: Some(T0 + 3_000),
                ..eo()
            },
        )
        .unwrap();
    let r_both = t
        .enqueue(
            "q",
            "c",
            b"",
            EnqueueOptions {
                not_before: Some(T0 + 1_000),
                delay: Some(ms(10_000)),
                ..eo()
            },
        )
        .unwrap();
    // A later task of a delayed lane waits behind its head.
    let r_behind = put(&t, "q", "a", b"");
    let r_past = t
        .enqueue(
            "q",
            "p",
            b"",
            EnqueueOptions {
                not_before: Some(T0 - 60_000),
                ..eo()
            },
        )
        .unwrap();
    assert_eq!(
        t.get_task("q", r_delay.offset).unwrap().not_before,
        T0 + 5_000
    );
    assert_eq!(t.get_task("q", r_nb.offset).unwrap().not_before, T0 + 3_000);
    assert_eq!(
        t.get_task("q", r_both.offset).unwrap().not_before,
        T0 + 1_000,
        "not_before wins over delay"
    );
    assert_eq!(t.get_task("q", r_behind.offset).unwrap().not_before, T0);

    assert_eq!(offsets(&take(&t, "q", 10)), vec![r_past.offset]);
    let s = t.stats("q").unwrap();
    assert_eq!(s.ready, 4, "delayed tasks count as ready");
    assert_eq!(s.shards.iter().map(|x| x.eligible).sum::<u64>(), 0);

    t.clock.advance(ms(999));
    assert!(take(&t, "q", 10).is_empty());
    t.clock.advance(ms(1));
    assert_eq!(offsets(&take(&t, "q", 10)), vec![r_both.offset]);
    t.clock.set(T0 + 2_999);
    assert!(take(&t, "q", 10).is_empty());
    t.clock.set(T0 + 3_000);
    assert_eq!(offsets(&take(&t, "q", 10)), vec![r_nb.offset]);
    t.clock.set(T0 + 4_999);
    assert!(take(&t, "q", 10).is_empty());
    t.clock.set(T0 + 5_000);
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![r_delay.offset], "lane a: head only");
    t.complete(l[0].token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![r_behind.offset]);
}

#[test]
fn enqueue_max_attempts_override() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            backoff: backoff(1, 1, 1.0, 0.0),
            ..Default::default()
        },
    )
    .unwrap();
    let two = EnqueueOptions {
        max_attempts: Some(2),
        ..eo()
    };
    let r = t.enqueue("q", "a", b"", two).unwrap();
    let d = put(&t, "q", "b", b"");
    assert_eq!(t.get_task("q", r.offset).unwrap().max_attempts, 2);
    assert_eq!(t.get_task("q", d.offset).unwrap().max_attempts, 10);
    let ls = take(&t, "q", 10);
    assert_eq!(by_offset(&ls, r.offset).max_attempts, 2);
    assert_eq!(by_offset(&ls, d.offset).max_attempts, 10);
    let out = t.fail(by_offset(&ls, r.offset).token, "e1", true).unwrap();
    assert!(
        matches!(out, FailOutcome::Retry { attempt: 1, .. }),
        "{out:?}"
    );
    t.clock.advance(ms(1));
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![r.offset]);
    assert_eq!(
        t.fail(l[0].token, "e2", true).unwrap(),
        FailOutcome::Dead { attempt: 2 }
    );
    let zero = EnqueueOptions {
        max_attempts: Some(0),
        ..eo()
    };
    assert_eq!(
        code(t.enqueue("q", "a", b"", zero)),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn enqueue_idempotency_key_returns_the_first_receipt() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    t.create_queue("other", QueueConfig::default()).unwrap();
    let ik = |k: &str| EnqueueOptions {
        idempotency_key: Some(k.to_string()),
        ..eo()
    };
    let first = t.enqueue("q", "k", b"one", ik("order-1")).unwrap();
    assert!(!first.duplicate);
    let dup = t.enqueue("q", "zzz", b"two", ik("order-1")).unwrap();
    assert_eq!(
        dup,
        Receipt {
            duplicate: true,
            ..first.clone()
        }
    );
    let second = t.enqueue("q", "k", b"three", ik("order-2")).unwrap();
    assert_eq!(second.offset, 1, "distinct keys, distinct tasks");
    assert!(!second.duplicate);
    let plain = put(&t, "q", "k", b"four");
    assert_eq!(plain.offset, 2);
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.payload.unwrap(), b"one", "the duplicate wrote nothing");
    assert_eq!(ti.idempotency_key.as_deref(), Some("order-1"));
    let s = t.stats("q").unwrap();
    assert_eq!((s.next_offset, s.totals.enqueued), (3, 3));

    // Another queue has its own keys.
    assert!(
        !t.enqueue("other", "k", b"", ik("order-1"))
            .unwrap()
            .duplicate
    );

    // Within one batch, the second use of a key is a duplicate of the first.
    let item = |k: &str, p: &[u8]| EnqueueItem {
        key: "b".into(),
        payload: p.to_vec(),
        opts: ik(k),
    };
    let rs = t
        .enqueue_batch(
            "q",
            vec![item("x", b"1"), item("x", b"2"), item("order-2", b"3")],
        )
        .unwrap();
    assert_eq!(rs[0].offset, 3);
    assert!(!rs[0].duplicate);
    assert_eq!(
        rs[1],
        Receipt {
            duplicate: true,
            ..rs[0].clone()
        }
    );
    assert_eq!(
        rs[2],
        Receipt {
            duplicate: true,
            ..second.clone()
        }
    );

    // Duplicates hold while the task is leased, done (within retention)
    // and dead, and across a reopen.
    let ls = take(&t, "q", 10);
    t.complete(by_offset(&ls, 0).token, b"").unwrap();
    t.fail(by_offset(&ls, 3).token, "no", false).unwrap();
    t.reopen();
    let again = t.enqueue("q", "k", b"", ik("order-1")).unwrap();
    assert_eq!(again, dup);
    assert!(t.enqueue("q", "b", b"", ik("x")).unwrap().duplicate);
    assert!(t.enqueue("q", "b", b"", ik("order-2")).unwrap().duplicate);
    assert_eq!(t.stats("q").unwrap().next_offset, 4);

    // Key limits.
    let max = "i".repeat(t.options().max_key);
    assert!(!t.enqueue("q", "k", b"", ik(&max)).unwrap().duplicate);
    let over = "i".repeat(t.options().max_key + 1);
    assert_eq!(
        code(t.enqueue("q", "k", b"", ik(&over))),
        ErrorCode::TooLarge
    );
    assert_eq!(
        code(t.enqueue("q", "k", b"", ik(""))),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn enqueue_headers_round_trip_into_lease_and_task_info() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let headers: BTreeMap<String, String> = [
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("empty", ""),
        ("ünï", "valué ✓"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let r = t
        .enqueue(
            "q",
            "k",
            b"p",
            EnqueueOptions {
                headers: headers.clone(),
                ..eo()
            },
        )
        .unwrap();
    assert_eq!(t.get_task("q", r.offset).unwrap().headers, headers);
    let l = take_one(&t, "q", "w");
    assert_eq!(l.headers, headers);
    assert!(t
        .get_task("q", put(&t, "q", "k", b"").offset)
        .unwrap()
        .headers
        .is_empty());

    let bad: BTreeMap<String, String> = [(String::new(), "v".to_string())].into();
    assert_eq!(
        code(t.enqueue(
            "q",
            "k",
            b"",
            EnqueueOptions {
                headers: bad,
                ..eo()
            }
        )),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn enqueue_batch_returns_receipts_in_order_all_or_nothing() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "first", b"");
    let items: Vec<EnqueueItem> = (0..6)
        .map(|i| EnqueueItem {
            key: format!("b{}", i % 3),
            payload: format!("payload-{i}").into_bytes(),
            opts: EnqueueOptions {
                priority: i,
                ..eo()
            },
        })
        .collect();
    let rs = t.enqueue_batch("q", items.clone()).unwrap();
    assert_eq!(rs.len(), 6);
    for (i, (r, it)) in rs.iter().zip(&items).enumerate() {
        assert_eq!(r.offset, 1 + i as u64);
        assert_eq!(r.shard, shard_of(&it.key, 16));
        assert!(!r.duplicate);
        let ti = t.get_task("q", r.offset).unwrap();
        assert_eq!(ti.payload.as_ref(), Some(&it.payload));
        assert_eq!(ti.key, it.key);
        assert_eq!(ti.priority, it.opts.priority);
        assert_eq!(ti.id, r.id);
    }
    assert_eq!(t.enqueue_batch("q", vec![]).unwrap(), vec![]);

    // One invalid item fails the whole batch: nothing is appended.
    let big = EnqueueItem {
        key: "k".into(),
        payload: vec![0; t.options().max_payload + 1],
        opts: eo(),
    };
    let zero_attempts = EnqueueItem {
        key: "k".into(),
        payload: vec![],
        opts: EnqueueOptions {
            max_attempts: Some(0),
            ..eo()
        },
    };
    let good = items[0].clone();
    assert_eq!(
        code(t.enqueue_batch("q", vec![good.clone(), big])),
        ErrorCode::TooLarge
    );
    assert_eq!(
        code(t.enqueue_batch("q", vec![good.clone(), zero_attempts])),
        ErrorCode::InvalidArgument
    );
    let s = t.stats("q").unwrap();
    assert_eq!((s.next_offset, s.totals.enqueued), (7, 7));
    assert_eq!(t.enqueue_batch("q", vec![good]).unwrap()[0].offset, 7);
}

#[test]
fn enqueue_size_limits_are_exact() {
    let t = TestDb::with(|o| {
        o.max_payload = 16;
        o.max_key = 8;
        o.max_headers = 12;
        o.max_result = 4;
    });
    t.create_queue("q", QueueConfig::default()).unwrap();
    let too_large = |r: Result<Receipt>, limit: &str| match r {
        Err(Error::TooLarge(m)) => assert!(m.contains(limit), "{m}"),
        other => panic!("{other:?}"),
    };
    put(&t, "q", "k", &[7; 16]);
    too_large(t.enqueue("q", "k", &[7; 17], eo()), "16");
    put(&t, "q", "12345678", b"");
    too_large(t.enqueue("q", "123456789", b"", eo()), "8");
    put(&t, "q", "éééé", b""); // 8 bytes
    too_large(t.enqueue("q", "ééééé", b"", eo()), "8"); // 10 bytes, 5 chars
    let hdr = |k: &str, v: &str| EnqueueOptions {
        headers: [(k.to_string(), v.to_string())].into(),
        ..eo()
    };
    t.enqueue("q", "k", b"", hdr("abcde", "1234567")).unwrap();
    too_large(t.enqueue("q", "k", b"", hdr("abcde", "12345678")), "12");
    let two = EnqueueOptions {
        headers: [("ab".into(), "cd".into()), ("ef".into(), "ghijklm".into())].into(),
        ..eo()
    };
    too_large(t.enqueue("q", "k", b"", two), "12"); // 13 bytes in total
    assert_eq!(t.stats("q").unwrap().next_offset, 4);

    // Results.
    let l = take_one(&t, "q", "w");
    match t.complete(l.token, b"12345") {
        Err(Error::TooLarge(m)) => assert!(m.contains('4'), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        code(t.complete_batch(vec![(l.token, b"12345".to_vec())])),
        ErrorCode::TooLarge
    );
    assert_eq!(t.get_task("q", l.offset).unwrap().state, TaskState::Leased);
    t.complete(l.token, b"1234").unwrap();
    assert_eq!(t.get_task("q", l.offset).unwrap().result.unwrap(), b"1234");
}

#[test]
fn enqueue_default_limits_are_exact() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let mib = 1 << 20;
    let r = put(&t, "q", "k", &vec![1; mib]);
    assert_eq!(
        code(t.enqueue("q", "k", &vec![1; mib + 1], eo())),
        ErrorCode::TooLarge
    );
    put(&t, "q", &"k".repeat(1024), b"");
    assert_eq!(
        code(t.enqueue("q", &"k".repeat(1025), b"", eo())),
        ErrorCode::TooLarge
    );
    let h = |n: usize| EnqueueOptions {
        headers: [("h".to_string(), "v".repeat(n - 1))].into(),
        ..eo()
    };
    t.enqueue("q", "k", b"", h(64 << 10)).unwrap();
    assert_eq!(
        code(t.enqueue("q", "k", b"", h((64 << 10) + 1))),
        ErrorCode::TooLarge
    );
    let l = take_one(&t, "q", "w");
    assert_eq!(l.offset, r.offset);
    assert_eq!(l.payload.len(), mib);
    assert_eq!(
        code(t.complete(l.token, &vec![2; mib + 1])),
        ErrorCode::TooLarge
    );
    t.complete(l.token, &vec![2; mib]).unwrap();
    assert_eq!(
        t.get_task("q", r.offset).unwrap().result.unwrap().len(),
        mib
    );
}

#[test]
fn enqueue_empty_payload_and_empty_key() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let r = put(&t, "q", "", b"");
    assert_eq!(r.shard, 15);
    assert_eq!(t.get_task("q", r.offset).unwrap().payload, Some(vec![]));
    let l = take_one(&t, "q", "w");
    assert!(l.payload.is_empty());
    assert_eq!(l.key, "");
    t.complete(l.token, b"").unwrap();
    let ti = t.get_task("q", r.offset).unwrap();
    assert_eq!(ti.state, TaskState::Done);
    assert!(ti.result.unwrap_or_default().is_empty());
}

// ---------------------------------------------------------------- claim

#[test]
fn claim_max_and_argument_checks() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..5 {
        put(&t, "q", &format!("k{i}"), b"");
    }
    assert_eq!(offsets(&take(&t, "q", 3)), vec![0, 1, 2]);
    assert_eq!(offsets(&take(&t, "q", 10)), vec![3, 4]);
    assert!(take(&t, "q", 10).is_empty());
    assert!(take(&t, "q", MAX_CLAIM).is_empty());

    let ia = ErrorCode::InvalidArgument;
    let max = |m: usize| ClaimOptions {
        max: m,
        ..Default::default()
    };
    assert_eq!(code(t.claim("q", "w", max(0))), ia);
    assert_eq!(code(t.claim("q", "w", max(MAX_CLAIM + 1))), ia);
    assert_eq!(code(t.claim("q", "", max(1))), ia);
    assert_eq!(
        code(t.claim("q", &"w".repeat(MAX_WORKER_ID + 1), max(1))),
        ia
    );
    let zero_lease = ClaimOptions {
        lease: Some(Duration::ZERO),
        ..Default::default()
    };
    assert_eq!(code(t.claim("q", "w", zero_lease)), ia);

    let long = "w".repeat(MAX_WORKER_ID);
    put(&t, "q", "x", b"");
    let l = take_one(&t, "q", &long);
    assert_eq!(t.get_task("q", l.offset).unwrap().worker, Some(long));
}

#[test]
fn claim_lease_fields_and_default_vs_explicit_lease() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            lease: Duration::from_secs(7),
            max_attempts: 3,
            ..Default::default()
        },
    )
    .unwrap();
    t.create_queue("d", QueueConfig::default()).unwrap();
    let r = t
        .enqueue(
            "q",
            "key-1",
            b"body",
            EnqueueOptions {
                priority: 4,
                ..eo()
            },
        )
        .unwrap();
    put(&t, "q", "key-2", b"");
    put(&t, "d", "key-3", b"");
    t.clock.advance(ms(500));
    let l = take_one(&t, "q", "worker-a");
    assert_eq!(l.queue, "q");
    assert_eq!(l.id, r.id);
    assert_eq!(l.offset, r.offset);
    assert_eq!(l.token.offset, r.offset);
    assert_eq!(l.key, "key-1");
    assert_eq!(l.shard, r.shard);
    assert_eq!(l.priority, 4);
    assert_eq!(l.attempt, 1);
    assert_eq!(l.max_attempts, 3);
    assert_eq!(l.payload, b"body");
    assert_eq!(l.enqueued_at, T0);
    assert_eq!(l.leased_at, T0 + 500);
    assert_eq!(l.expires_at, T0 + 500 + 7_000, "queue default lease");
    let ti = t.get_task("q", l.offset).unwrap();
    assert_eq!(ti.state, TaskState::Leased);
    assert_eq!(ti.attempt, 1);
    assert_eq!(ti.fence, l.token.fence);
    assert_eq!(ti.worker.as_deref(), Some("worker-a"));
    assert_eq!(ti.leased_at, T0 + 500);
    assert_eq!(ti.lease_expires_at, l.expires_at);
    assert_eq!(ti.started_at, 0);

    let explicit = t
        .claim(
            "q",
            "w",
            ClaimOptions {
                lease: Some(Duration::from_secs(2)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(explicit[0].expires_at, T0 + 500 + 2_000);
    let dflt = take_one(&t, "d", "w");
    assert_eq!(dflt.expires_at, T0 + 500 + 30_000, "30 s default");
}

#[test]
fn claim_key_ordering_one_lease_per_key() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    put(&t, "q", "b", b"b0");
    let ls = take(&t, "q", 10);
    assert_eq!(offsets(&ls), vec![0, 2]);
    t.clock.advance(ms(10_000));
    assert!(take(&t, "q", 10).is_empty(), "a1 waits for a0");
    t.complete(by_offset(&ls, 0).token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![1]);
}

#[test]
fn claim_shard_ordering_one_lease_per_shard() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            shards: 4,
            ordering: Ordering::Shard,
            ..Default::default()
        },
    )
    .unwrap();
    let (k1, k2) = (key_in_shard(1, 4, 0), key_in_shard(1, 4, 1));
    let k3 = key_in_shard(2, 4, 0);
    put(&t, "q", &k1, b"");
    put(&t, "q", &k2, b"");
    put(&t, "q", &k3, b"");
    let ls = take(&t, "q", 10);
    assert_eq!(
        offsets(&ls),
        vec![0, 2],
        "two keys of one shard share a lane"
    );
    t.complete(by_offset(&ls, 0).token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![1]);
}

#[test]
fn claim_global_ordering_one_lease_at_a_time() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            ordering: Ordering::Global,
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"");
    put(&t, "q", "b", b"");
    t.enqueue(
        "q",
        "c",
        b"",
        EnqueueOptions {
            priority: 99,
            ..eo()
        },
    )
    .unwrap();
    for want in 0..3 {
        let ls = take(&t, "q", 10);
        assert_eq!(offsets(&ls), vec![want], "one lane for the whole queue");
        t.complete(ls[0].token, b"").unwrap();
    }
    assert!(take(&t, "q", 10).is_empty());
}

#[test]
fn claim_no_ordering_runs_everything_in_parallel() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            ordering: Ordering::None,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        put(&t, "q", "same", b"");
    }
    assert_eq!(offsets(&take(&t, "q", 10)), vec![0, 1, 2]);
}

#[test]
fn claim_shard_filter() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            shards: 4,
            ..Default::default()
        },
    )
    .unwrap();
    for s in 0..4 {
        put(&t, "q", &key_in_shard(s, 4, 0), b"");
        put(&t, "q", &key_in_shard(s, 4, 1), b"");
    }
    let only = |shards: Vec<u32>| ClaimOptions {
        max: 100,
        shards: Some(shards),
        ..Default::default()
    };
    let ls = t.claim("q", "w", only(vec![2])).unwrap();
    assert_eq!(ls.len(), 2);
    assert!(ls.iter().all(|l| l.shard == 2));
    let ls = t.claim("q", "w", only(vec![3, 0])).unwrap();
    assert_eq!(ls.len(), 4);
    assert!(ls.iter().all(|l| l.shard == 3 || l.shard == 0));
    assert!(t.claim("q", "w", only(vec![2])).unwrap().is_empty());
    assert!(t.claim("q", "w", only(vec![])).unwrap().is_empty());
    match t.claim("q", "w", only(vec![1, 4])) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains('4'), "{m}"),
        r => panic!("{r:?}"),
    }
    let ls = take(&t, "q", 100);
    assert_eq!(ls.len(), 2);
    assert!(ls.iter().all(|l| l.shard == 1));
}

#[test]
fn claim_shard_filter_with_repeated_shard_leases_each_task_once() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            shards: 4,
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", &key_in_shard(1, 4, 0), b"");
    put(&t, "q", &key_in_shard(1, 4, 1), b"");
    let r = t.claim(
        "q",
        "w",
        ClaimOptions {
            max: 10,
            shards: Some(vec![1, 1]),
            ..Default::default()
        },
    );
    match r {
        // Refusing the repeated shard would be fine too.
        Err(Error::InvalidArgument(_)) => {}
        Ok(ls) => {
            assert_eq!(offsets(&ls), vec![0, 1], "each task leased once");
            assert!(ls.iter().all(|l| l.attempt == 1), "{ls:?}");
            for l in &ls {
                t.complete(l.token, b"").unwrap();
            }
        }
        Err(e) => panic!("{e:?}"),
    }
    let s = t.stats("q").unwrap();
    assert_eq!(s.leased + s.done + s.ready, 2);
}

#[test]
fn claim_wait_is_woken_by_an_enqueue_from_another_thread() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let db = t.db.clone();
    let begun = Instant::now();
    let h = thread::spawn(move || {
        db.claim(
            "q",
            "waiter",
            ClaimOptions {
                wait: Duration::from_secs(10),
                ..Default::default()
            },
        )
    });
    thread::sleep(ms(150));
    let r = put(&t, "q", "k", b"wake");
    let ls = h.join().unwrap().unwrap();
    let took = begun.elapsed();
    assert_eq!(offsets(&ls), vec![r.offset]);
    assert_eq!(ls[0].payload, b"wake");
    assert!(took >= ms(140), "returned before the enqueue: {took:?}");
    assert!(took < Duration::from_secs(5), "not woken: {took:?}");
    assert_eq!(
        t.get_task("q", r.offset).unwrap().worker.as_deref(),
        Some("waiter")
    );
}

#[test]
fn claim_wait_times_out_with_an_empty_vec() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let begun = Instant::now();
    let ls = t
        .claim(
            "q",
            "w",
            ClaimOptions {
                wait: ms(200),
                ..Default::default()
            },
        )
        .unwrap();
    let took = begun.elapsed();
    assert!(ls.is_empty());
    assert!(took >= ms(200), "returned early: {took:?}");
    assert!(took < Duration::from_secs(3), "overslept: {took:?}");
    // The writer still works afterwards.
    put(&t, "q", "k", b"");
    assert_eq!(take(&t, "q", 1).len(), 1);
}

#[test]
fn claim_wait_with_shard_filter_ignores_other_shards() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            shards: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let db = t.db.clone();
    let begun = Instant::now();
    let h = thread::spawn(move || {
        db.claim(
            "q",
            "w",
            ClaimOptions {
                wait: ms(300),
                shards: Some(vec![0]),
                ..Default::default()
            },
        )
    });
    thread::sleep(ms(50));
    let r = put(&t, "q", &key_in_shard(3, 4, 0), b"");
    assert!(h.join().unwrap().unwrap().is_empty());
    assert!(begun.elapsed() >= ms(300));
    assert_eq!(offsets(&take(&t, "q", 5)), vec![r.offset]);
}

#[test]
fn claim_wait_is_woken_when_a_lane_frees_or_a_timer_fires() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"");
    put(&t, "q", "a", b"");
    let held = take_one(&t, "q", "w");
    let wait = |db: Db| {
        thread::spawn(move || {
            let begun = Instant::now();
            let r = db.claim(
                "q",
                "w2",
                ClaimOptions {
                    wait: Duration::from_secs(10),
                    ..Default::default()
                },
            );
            (r, begun.elapsed())
        })
    };
    let h = wait(t.db.clone());
    thread::sleep(ms(100));
    t.complete(held.token, b"").unwrap();
    let (r, took) = h.join().unwrap();
    let got = r.unwrap();
    assert_eq!(offsets(&got), vec![1]);
    assert!(took < Duration::from_secs(5), "{took:?}");
    t.complete(got[0].token, b"").unwrap();

    // A delayed task becoming eligible (manual clock + sync) wakes a waiter.
    t.enqueue(
        "q",
        "b",
        b"",
        EnqueueOptions {
            delay: Some(Duration::from_secs(60)),
            ..eo()
        },
    )
    .unwrap();
    let h = wait(t.db.clone());
    thread::sleep(ms(100));
    t.clock.advance(Duration::from_secs(60));
    t.sync().unwrap();
    let (r, took) = h.join().unwrap();
    assert_eq!(offsets(&r.unwrap()), vec![2]);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn claim_wait_on_deleted_queue_is_not_found() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let db = t.db.clone();
    let h = thread::spawn(move || {
        db.claim(
            "q",
            "w",
            ClaimOptions {
                wait: Duration::from_secs(10),
                ..Default::default()
            },
        )
    });
    thread::sleep(ms(100));
    t.delete_queue("q").unwrap();
    assert_eq!(code(h.join().unwrap()), ErrorCode::NotFound);
}

// ---------------------------------------------------------------- leases

#[test]
fn heartbeat_extends_the_lease_past_its_original_expiry() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            lease: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "k", b"");
    let l = take_one(&t, "q", "w");
    assert_eq!(l.expires_at, T0 + 10_000);
    t.clock.advance(ms(8_000));
    let exp = t.heartbeat(l.token, None).unwrap();
    assert_eq!(exp, T0 + 18_000, "queue default lease from now");
    assert_eq!(t.get_task("q", 0).unwrap().lease_expires_at, exp);
    t.clock.advance(ms(5_000)); // T0 + 13 s: past the original expiry
    t.sync().unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.state, TaskState::Leased);
    assert_eq!((ti.attempt, ti.fence), (1, l.token.fence));
    assert!(t.faults("q", 0).unwrap().is_empty());
    let exp = t.heartbeat(l.token, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(exp, T0 + 13_000 + 60_000, "explicit lease from now");
    t.clock.advance(ms(59_000));
    t.sync().unwrap();
    assert_eq!(
        code(t.heartbeat(l.token, Some(Duration::ZERO))),
        ErrorCode::InvalidArgument
    );
    t.complete(l.token, b"ok").unwrap();
    assert_eq!(t.stats("q").unwrap().totals.lease_expired, 0);
}

#[test]
fn heartbeat_after_expiry_is_refused_even_before_a_sync() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            lease: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "k", b"");
    let l = take_one(&t, "q", "w");
    t.clock.advance(ms(1_001));
    assert_eq!(code(t.heartbeat(l.token, None)), ErrorCode::LeaseLost);
    assert_eq!(code(t.complete(l.token, b"")), ErrorCode::LeaseLost);
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::Ready);
}

#[test]
fn start_records_started_at() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "k", b"");
    let l = take_one(&t, "q", "w");
    t.clock.advance(ms(2_000));
    t.start(l.token).unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!((ti.leased_at, ti.started_at), (T0, T0 + 2_000));
    assert_eq!(ti.state, TaskState::Leased);
    // A new lease starts unstarted.
    t.release(l.token).unwrap();
    let l2 = take_one(&t, "q", "w");
    assert_eq!(t.get_task("q", 0).unwrap().started_at, 0);
    t.clock.advance(ms(1_000));
    t.start(l2.token).unwrap();
    t.complete(l2.token, b"").unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.started_at, T0 + 3_000);
    assert_eq!(ti.committed_at, T0 + 3_000);
}

#[test]
fn complete_stores_the_result_and_a_repeat_is_a_duplicate() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "k", b"p");
    put(&t, "q", "k", b"p2");
    t.clock.advance(ms(100));
    let l = take_one(&t, "q", "w-1");
    t.clock.advance(ms(400));
    let c = t.complete(l.token, b"result").unwrap();
    assert_eq!(
        c,
        Completion {
            offset: 0,
            committed_at: T0 + 500,
            duplicate: false
        }
    );
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.state, TaskState::Done);
    assert_eq!(ti.result.as_deref(), Some(&b"result"[..]));
    assert_eq!(ti.payload.as_deref(), Some(&b"p"[..]));
    assert_eq!(ti.committed_at, T0 + 500);
    assert_eq!(ti.leased_at, T0 + 100);
    assert_eq!(ti.worker.as_deref(), Some("w-1"));
    assert_eq!(ti.attempt, 1);
    assert_eq!(ti.lease_expires_at, 0);

    t.clock.advance(ms(5_000));
    let again = t.complete(l.token, b"different").unwrap();
    assert_eq!(
        again,
        Completion {
            duplicate: true,
            ..c
        }
    );
    assert_eq!(
        t.get_task("q", 0).unwrap().result.as_deref(),
        Some(&b"result"[..]),
        "the repeat changed nothing"
    );
    t.reopen();
    assert_eq!(
        t.complete(l.token, b"").unwrap(),
        again,
        "across reopen too"
    );
    let s = t.stats("q").unwrap();
    assert_eq!((s.done, s.totals.completed), (1, 1));
    // The lane moved on.
    assert_eq!(take_one(&t, "q", "w").offset, 1);
}

#[test]
fn complete_batch_gives_each_item_its_own_outcome() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for k in ["a", "b", "c", "d"] {
        put(&t, "q", k, k.as_bytes());
    }
    let ls = take(&t, "q", 4);
    let tok = |o: u64| by_offset(&ls, o).token;
    t.release(tok(1)).unwrap();
    t.complete(tok(3), b"early").unwrap();
    t.clock.advance(ms(10));
    let out = t
        .complete_batch(vec![
            (tok(0), b"r0".to_vec()),
            (tok(1), b"stale".to_vec()),
            (tok(2), b"r2".to_vec()),
            (tok(0), b"again".to_vec()),
            (tok(3), b"dup".to_vec()),
        ])
        .unwrap();
    assert_eq!(out.len(), 5);
    let now = T0 + 10;
    assert_eq!(
        out[0],
        Ok(Completion {
            offset: 0,
            committed_at: now,
            duplicate: false
        })
    );
    assert_eq!(out[1].as_ref().unwrap_err().code(), ErrorCode::LeaseLost);
    assert_eq!(
        out[2],
        Ok(Completion {
            offset: 2,
            committed_at: now,
            duplicate: false
        })
    );
    assert_eq!(
        out[3],
        Ok(Completion {
            offset: 0,
            committed_at: now,
            duplicate: true
        })
    );
    assert_eq!(
        out[4],
        Ok(Completion {
            offset: 3,
            committed_at: T0,
            duplicate: true
        })
    );
    assert_eq!(t.get_task("q", 0).unwrap().result.unwrap(), b"r0");
    assert_eq!(t.get_task("q", 2).unwrap().result.unwrap(), b"r2");
    assert_eq!(t.get_task("q", 3).unwrap().result.unwrap(), b"early");
    assert_eq!(t.get_task("q", 1).unwrap().state, TaskState::Ready);
    assert_eq!(t.stats("q").unwrap().totals.completed, 3);
    assert_eq!(t.complete_batch(vec![]).unwrap(), vec![]);
}

#[test]
fn release_gives_the_task_back_without_counting_an_attempt() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"");
    put(&t, "q", "a", b"");
    let l = take_one(&t, "q", "w1");
    assert_eq!(l.attempt, 1);
    t.release(l.token).unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!((ti.state, ti.attempt), (TaskState::Ready, 0));
    assert!(t.faults("q", 0).unwrap().is_empty());
    let l2 = take_one(&t, "q", "w2");
    assert_eq!(
        (l2.offset, l2.attempt),
        (0, 1),
        "same task, same attempt, no backoff"
    );
    assert!(l2.token.fence > l.token.fence);
    let s = t.stats("q").unwrap();
    assert_eq!(s.totals.released, 1);
    assert_eq!(s.totals.failed, 0);
    assert_eq!(code(t.release(l.token)), ErrorCode::LeaseLost);
    assert_eq!(code(t.complete(l.token, b"")), ErrorCode::LeaseLost);
}

#[test]
fn fence_tokens_strictly_increase_across_reopen_and_leases_survive_it() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..8 {
        put(&t, "q", &format!("k{i}"), b"");
    }
    let ls = take(&t, "q", 3);
    let fences: Vec<u64> = ls.iter().map(|l| l.token.fence).collect();
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    let one = take_one(&t, "q", "w");
    assert!(one.token.fence > fences[2]);
    t.complete(ls[0].token, b"").unwrap();
    t.reopen();

    // A lease held across the restart is still valid.
    let exp = t.heartbeat(ls[1].token, None).unwrap();
    assert_eq!(exp, T0 + 30_000);
    t.complete(ls[1].token, b"after reopen").unwrap();
    assert!(t.complete(ls[0].token, b"").unwrap().duplicate);

    let after = take(&t, "q", 2);
    assert!(after.iter().all(|l| l.token.fence > one.token.fence));
    let top = after.iter().map(|l| l.token.fence).max().unwrap();
    t.reopen();
    t.reopen();
    let last = take_one(&t, "q", "w");
    assert!(last.token.fence > top, "{} <= {top}", last.token.fence);
}

#[test]
fn lease_expiry_counts_an_attempt_and_records_an_expired_fault() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            lease: Duration::from_secs(10),
            max_attempts: 2,
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"x");
    put(&t, "q", "a", b"y");
    let l1 = take_one(&t, "q", "w1");
    t.clock.advance(ms(9_999));
    t.sync().unwrap();
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::Leased);
    t.clock.advance(ms(2));
    t.sync().unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.state, TaskState::Ready);
    assert_eq!(ti.attempt, 1);
    assert_eq!(ti.lease_expires_at, 0);
    let f = t.faults("q", 0).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].attempt, 1);
    assert_eq!(f[0].worker, "w1");
    assert_eq!(f[0].at, T0 + 10_001);
    assert_eq!(f[0].kind, FaultKind::Expired);
    assert!(f[0].retryable);
    assert!(!f[0].error.is_empty());
    let s = t.stats("q").unwrap();
    assert_eq!((s.totals.lease_expired, s.totals.failed), (1, 0));

    // Eligible again at once, still at the head of its lane.
    let l2 = take_one(&t, "q", "w2");
    assert_eq!((l2.offset, l2.attempt), (0, 2));
    assert!(l2.token.fence > l1.token.fence);

    // Expiry of the last attempt dead-letters the task.
    t.clock.advance(ms(10_001));
    t.sync().unwrap();
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::Dead);
    let dl = t.dlq_get("q", 0).unwrap();
    assert_eq!(dl.faults.len(), 2);
    assert!(dl.faults.iter().all(|f| f.kind == FaultKind::Expired));
    assert_eq!(dl.faults[1].worker, "w2");
    let s = t.stats("q").unwrap();
    assert_eq!(
        (s.totals.lease_expired, s.totals.dead_lettered, s.dead),
        (2, 1, 1)
    );
    assert_eq!(take_one(&t, "q", "w").offset, 1, "skip: the lane moves on");
}

#[test]
fn stale_token_is_lease_lost_for_every_lease_operation() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            lease: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"");
    let old = take_one(&t, "q", "w1");
    t.clock.advance(ms(6_000));
    // No sync: the claim's own batch expires the old lease first.
    let new = take_one(&t, "q", "w2");
    assert_eq!((new.offset, new.attempt), (0, 2));
    let check_lost = |tok: Token| {
        let ll = ErrorCode::LeaseLost;
        assert_eq!(code(t.heartbeat(tok, None)), ll);
        assert_eq!(code(t.heartbeat(tok, Some(ms(1)))), ll);
        assert_eq!(code(t.start(tok)), ll);
        assert_eq!(code(t.complete(tok, b"zombie")), ll);
        assert_eq!(code(t.fail(tok, "zombie", true)), ll);
        assert_eq!(code(t.fail(tok, "zombie", false)), ll);
        assert_eq!(code(t.release(tok)), ll);
        let b = t.complete_batch(vec![(tok, b"z".to_vec())]).unwrap();
        assert_eq!(b[0].as_ref().unwrap_err().code(), ll);
    };
    check_lost(old.token);
    // Forged tokens.
    check_lost(Token {
        fence: new.token.fence + 1,
        ..new.token
    });
    check_lost(Token {
        offset: 99,
        ..new.token
    });
    check_lost(Token {
        queue_id: new.token.queue_id + 100,
        ..new.token
    });
    // The zombie changed nothing.
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.state, TaskState::Leased);
    assert_eq!((ti.attempt, ti.fence), (2, new.token.fence));
    assert_eq!(ti.worker.as_deref(), Some("w2"));
    assert_eq!(t.faults("q", 0).unwrap().len(), 1, "only the expiry");
    t.complete(new.token, b"ok").unwrap();
    assert_eq!(t.get_task("q", 0).unwrap().result.unwrap(), b"ok");

    // After completion the token may only complete again (duplicate).
    let ll = ErrorCode::LeaseLost;
    assert_eq!(code(t.heartbeat(new.token, None)), ll);
    assert_eq!(code(t.start(new.token)), ll);
    assert_eq!(code(t.fail(new.token, "late", true)), ll);
    assert_eq!(code(t.release(new.token)), ll);
    assert!(t.complete(new.token, b"").unwrap().duplicate);
}

#[test]
fn token_of_one_queue_is_refused_by_another() {
    let t = TestDb::new();
    t.create_queue("a", QueueConfig::default()).unwrap();
    t.create_queue("b", QueueConfig::default()).unwrap();
    put(&t, "a", "k", b"");
    put(&t, "b", "k", b"");
    let la = take_one(&t, "a", "w");
    let lb = take_one(&t, "b", "w");
    let crossed = Token {
        queue_id: lb.token.queue_id,
        ..la.token
    };
    assert_eq!(code(t.complete(crossed, b"")), ErrorCode::LeaseLost);
    assert_eq!(t.get_task("b", 0).unwrap().state, TaskState::Leased);
    t.complete(la.token, b"").unwrap();
    t.complete(lb.token, b"").unwrap();
}

#[test]
fn token_after_fail_or_queue_delete_is_lease_lost() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"");
    put(&t, "q", "b", b"");
    let ls = take(&t, "q", 2);
    t.fail(ls[0].token, "x", true).unwrap();
    assert_eq!(code(t.complete(ls[0].token, b"")), ErrorCode::LeaseLost);
    assert_eq!(code(t.fail(ls[0].token, "x", true)), ErrorCode::LeaseLost);
    t.delete_queue("q").unwrap();
    assert_eq!(code(t.complete(ls[1].token, b"")), ErrorCode::LeaseLost);
    assert_eq!(code(t.heartbeat(ls[1].token, None)), ErrorCode::LeaseLost);
}

// ---------------------------------------------------------------- retries

#[test]
fn fail_retries_after_exact_backoff_capped_at_max() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            max_attempts: 10,
            backoff: backoff(1_000, 5_000, 2.0, 0.0),
            lease: Duration::from_secs(600),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"x");
    put(&t, "q", "a", b"y");
    let mut fails_at = Vec::new();
    for (i, d) in [1_000u64, 2_000, 4_000, 5_000, 5_000]
        .into_iter()
        .enumerate()
    {
        let attempt = i as u32 + 1;
        let l = take(&t, "q", 10);
        assert_eq!(offsets(&l), vec![0], "attempt {attempt}");
        assert_eq!(l[0].attempt, attempt);
        let now = t.clock.now_ms();
        fails_at.push(now);
        let out = t
            .fail(l[0].token, &format!("boom {attempt}"), true)
            .unwrap();
        assert_eq!(
            out,
            FailOutcome::Retry {
                attempt,
                not_before: now + d
            }
        );
        let ti = t.get_task("q", 0).unwrap();
        assert_eq!(ti.state, TaskState::RetryWait);
        assert_eq!((ti.not_before, ti.attempt), (now + d, attempt));
        assert_eq!(t.stats("q").unwrap().retry_wait, 1);
        t.clock.advance(ms(d - 1));
        assert!(
            take(&t, "q", 10).is_empty(),
            "attempt {attempt}: claimable before its retry time (and its lane waits)"
        );
        t.clock.advance(ms(1));
    }
    let l = take(&t, "q", 10);
    assert_eq!((l[0].offset, l[0].attempt), (0, 6));
    let s = t.stats("q").unwrap();
    assert_eq!((s.totals.failed, s.totals.retried), (5, 5));
    let f = t.faults("q", 0).unwrap();
    assert_eq!(f.len(), 5);
    for (i, f) in f.iter().enumerate() {
        assert_eq!(f.attempt, i as u32 + 1);
        assert_eq!(f.error, format!("boom {}", i + 1));
        assert_eq!(f.kind, FaultKind::Failed);
        assert_eq!(f.worker, "w");
        assert_eq!(f.at, fails_at[i]);
        assert!(f.retryable);
    }
}

#[test]
fn fail_backoff_jitter_is_derived_from_the_fence() {
    let t = TestDb::new();
    let b = backoff(10_000, 100_000, 3.0, 0.5);
    t.create_queue(
        "q",
        QueueConfig {
            backoff: b,
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"");
    for (attempt, lo, hi) in [(1u32, 5_000u64, 10_000u64), (2, 15_000, 30_000)] {
        let l = take_one(&t, "q", "w");
        let now = t.clock.now_ms();
        let want = b.delay(attempt, unit_from(l.token.fence)).as_millis() as u64;
        assert!((lo..=hi).contains(&want), "{want}");
        let out = t.fail(l.token, "e", true).unwrap();
        assert_eq!(
            out,
            FailOutcome::Retry {
                attempt,
                not_before: now + want
            }
        );
        t.clock.set(now + want - 1);
        assert!(take(&t, "q", 1).is_empty());
        t.clock.set(now + want);
    }
    assert_eq!(take_one(&t, "q", "w").attempt, 3);
}

#[test]
fn fail_non_retryable_is_dead_at_once() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"payload");
    put(&t, "q", "a", b"next");
    let l = take_one(&t, "q", "w");
    t.clock.advance(ms(7));
    assert_eq!(
        t.fail(l.token, "bad input", false).unwrap(),
        FailOutcome::Dead { attempt: 1 }
    );
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.state, TaskState::Dead);
    assert_eq!(ti.committed_at, T0 + 7);
    assert_eq!(ti.payload.unwrap(), b"payload");
    let f = t.faults("q", 0).unwrap();
    assert_eq!(f.len(), 1);
    assert!(!f[0].retryable);
    assert_eq!(f[0].error, "bad input");
    assert_eq!(f[0].kind, FaultKind::Failed);
    let s = t.stats("q").unwrap();
    assert_eq!(
        (
            s.dead,
            s.totals.failed,
            s.totals.retried,
            s.totals.dead_lettered
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(take_one(&t, "q", "w").offset, 1);
}

#[test]
fn fail_exhausting_max_attempts_is_dead() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            max_attempts: 3,
            backoff: backoff(100, 100, 1.0, 0.0),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"");
    for attempt in 1..=3u32 {
        let l = take_one(&t, "q", "w");
        assert_eq!(l.attempt, attempt);
        let out = t.fail(l.token, "e", true).unwrap();
        if attempt < 3 {
            assert_eq!(
                out,
                FailOutcome::Retry {
                    attempt,
                    not_before: t.clock.now_ms() + 100
                }
            );
        } else {
            assert_eq!(out, FailOutcome::Dead { attempt: 3 });
        }
        t.clock.advance(ms(100));
    }
    assert!(take(&t, "q", 1).is_empty());
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!((ti.state, ti.attempt), (TaskState::Dead, 3));
    let f = t.faults("q", 0).unwrap();
    assert_eq!(
        f.iter().map(|f| f.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn fail_error_text_is_truncated_at_a_char_boundary() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"");
    let l = take_one(&t, "q", "w");
    let long = format!("a{}", "é".repeat(10_000)); // 20 001 bytes
    t.fail(l.token, &long, false).unwrap();
    let f = t.faults("q", 0).unwrap();
    assert_eq!(f[0].error.len(), 16_383, "16 KiB, cut back to a boundary");
    assert!(long.starts_with(&f[0].error));
}

// ---------------------------------------------------------------- dead letters

#[test]
fn pending_lists_unfinished_tasks_by_offset_and_leases_nothing() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..5 {
        put(&t, "q", &format!("k{i}"), format!("p{i}").as_bytes());
    }
    // A second task on key k1 waits behind offset 1's lease.
    put(&t, "q", "k1", b"p5");
    let ls = take(&t, "q", 4);
    t.complete(by_offset(&ls, 0).token, b"").unwrap();
    t.fail(by_offset(&ls, 2).token, "later", true).unwrap();
    t.fail(by_offset(&ls, 3).token, "never", false).unwrap();
    let list = |t: &TestDb, after: Option<u64>, limit: usize| -> Vec<(u64, TaskState)> {
        t.pending("q", after, limit)
            .unwrap()
            .iter()
            .map(|ti| (ti.offset, ti.state))
            .collect()
    };
    use TaskState::*;
    let all = [(1, Leased), (2, RetryWait), (4, Ready), (5, Ready)];
    assert_eq!(list(&t, None, 100), all);
    assert_eq!(
        t.pending("q", None, 1).unwrap()[0].payload.as_deref(),
        Some(&b"p1"[..])
    );
    assert_eq!(list(&t, None, 2), all[..2]);
    assert_eq!(list(&t, Some(2), 1), [(4, Ready)]);
    assert_eq!(list(&t, Some(0), 100), all);
    assert_eq!(list(&t, Some(5), 100), []);
    assert_eq!(list(&t, Some(u64::MAX), 100), []);
    assert_eq!(list(&t, None, 0), []);
    // Reading leased nothing.
    let s = t.stats("q").unwrap();
    assert_eq!((s.leased, s.ready, s.retry_wait), (1, 2, 1));
    // The scheduler is rebuilt on open: the same list.
    t.reopen();
    assert_eq!(list(&t, None, 100), all);
    assert_eq!(code(t.pending("nope", None, 10)), ErrorCode::NotFound);
    assert_eq!(
        code(t.pending("bad name", None, 10)),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn dlq_list_pages_by_offset() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..7 {
        put(&t, "q", &format!("k{i}"), format!("p{i}").as_bytes());
    }
    let ls = take(&t, "q", 7);
    for o in [0, 2, 3, 5, 6] {
        t.fail(by_offset(&ls, o).token, "no", false).unwrap();
    }
    for o in [1, 4] {
        t.complete(by_offset(&ls, o).token, b"").unwrap();
    }
    let list = |after: Option<u64>, limit: usize| -> Vec<u64> {
        t.dlq_list("q", after, limit)
            .unwrap()
            .iter()
            .map(|ti| ti.offset)
            .collect()
    };
    let all = t.dlq_list("q", None, 100).unwrap();
    assert_eq!(
        all.iter().map(|x| x.offset).collect::<Vec<_>>(),
        [0, 2, 3, 5, 6]
    );
    assert!(all.iter().all(|x| x.state == TaskState::Dead));
    assert_eq!(all[1].payload.as_deref(), Some(&b"p2"[..]));
    assert_eq!(list(None, 2), [0, 2]);
    assert_eq!(list(Some(2), 2), [3, 5]);
    assert_eq!(list(Some(5), 2), [6]);
    assert_eq!(list(Some(6), 10), Vec::<u64>::new());
    assert_eq!(list(Some(0), 1), [2]);
    assert_eq!(list(Some(1), 1), [2]);
    assert_eq!(list(None, 0), Vec::<u64>::new());
    assert_eq!(list(Some(u64::MAX), 10), Vec::<u64>::new());
}

#[test]
fn dlq_get_returns_the_task_with_its_fault_history_in_order() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            max_attempts: 5,
            lease: Duration::from_secs(10),
            backoff: backoff(1_000, 1_000, 1.0, 0.0),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"the payload");
    let l1 = take_one(&t, "q", "w1");
    t.fail(l1.token, "e1", true).unwrap();
    t.clock.advance(ms(1_000));
    let _l2 = take_one(&t, "q", "w2");
    t.clock.advance(ms(10_000));
    t.sync().unwrap();
    let l3 = take_one(&t, "q", "w3");
    t.clock.advance(ms(5));
    t.fail(l3.token, "e3", false).unwrap();

    let dl = t.dlq_get("q", 0).unwrap();
    assert_eq!(dl.task.state, TaskState::Dead);
    assert_eq!(dl.task.attempt, 3);
    assert_eq!(dl.task.payload.as_deref(), Some(&b"the payload"[..]));
    assert_eq!(dl.task.committed_at, T0 + 11_005);
    let summary: Vec<(u32, &str, FaultKind, bool, u64)> = dl
        .faults
        .iter()
        .map(|f| (f.attempt, f.worker.as_str(), f.kind, f.retryable, f.at))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "w1", FaultKind::Failed, true, T0),
            (2, "w2", FaultKind::Expired, true, T0 + 11_000),
            (3, "w3", FaultKind::Failed, false, T0 + 11_005),
        ]
    );
    assert_eq!(dl.faults[0].error, "e1");
    assert_eq!(dl.faults[2].error, "e3");
    assert_eq!(t.faults("q", 0).unwrap(), dl.faults);
    assert_eq!(t.dlq_list("q", None, 10).unwrap(), vec![dl.task.clone()]);

    // Not a dead letter, or no such task: NotFound.
    put(&t, "q", "b", b"");
    assert_eq!(code(t.dlq_get("q", 1)), ErrorCode::NotFound);
    assert_eq!(code(t.dlq_get("q", 42)), ErrorCode::NotFound);
}

#[test]
fn dlq_redrive_head_keeps_the_original_offset_and_lane_order() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let r0 = put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    put(&t, "q", "a", b"a2");
    let l = take_one(&t, "q", "w");
    t.fail(l.token, "x", false).unwrap();
    assert_eq!(t.get_task("q", 1).unwrap().state, TaskState::Ready);

    let rr = t.dlq_redrive("q", 0, RedriveMode::Head).unwrap();
    assert_eq!(
        rr,
        Receipt {
            duplicate: false,
            ..r0
        }
    );
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!((ti.state, ti.attempt), (TaskState::Ready, 0));
    assert_eq!(ti.redriven_to, None);
    assert!(t.dlq_list("q", None, 10).unwrap().is_empty());
    assert_eq!(code(t.dlq_get("q", 0)), ErrorCode::NotFound);
    let s = t.stats("q").unwrap();
    assert_eq!((s.dead, s.totals.redriven, s.ready), (0, 1, 3));

    let ls = take(&t, "q", 10);
    assert_eq!(
        offsets(&ls),
        vec![0],
        "back at the head; a1 waits behind it"
    );
    assert_eq!(ls[0].attempt, 1, "attempts reset");
    assert_eq!(ls[0].payload, b"a0");
    t.complete(ls[0].token, b"").unwrap();
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![1]);
    t.complete(l[0].token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![2]);
    // Fault history from before the redrive is kept.
    assert_eq!(t.faults("q", 0).unwrap().len(), 1);
}

#[test]
fn dlq_redrive_head_waits_for_a_later_task_in_flight() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    put(&t, "q", "a", b"a2");
    let l0 = take_one(&t, "q", "w");
    t.fail(l0.token, "x", false).unwrap();
    let l1 = take_one(&t, "q", "w");
    assert_eq!(l1.offset, 1);
    t.dlq_redrive("q", 0, RedriveMode::Head).unwrap();
    assert!(take(&t, "q", 10).is_empty(), "a1 is in flight");
    t.complete(l1.token, b"").unwrap();
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![0], "the redriven task before a2");
    t.complete(l[0].token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![2]);
}

#[test]
fn dlq_redrive_head_behind_a_released_or_failed_task_runs_first() {
    for finish in ["release", "fail"] {
        let t = TestDb::new();
        t.create_queue(
            "q",
            QueueConfig {
                backoff: backoff(1, 1, 1.0, 0.0),
                ..Default::default()
            },
        )
        .unwrap();
        put(&t, "q", "a", b"a0");
        put(&t, "q", "a", b"a1");
        let l0 = take_one(&t, "q", "w");
        t.fail(l0.token, "x", false).unwrap();
        let l1 = take_one(&t, "q", "w");
        t.dlq_redrive("q", 0, RedriveMode::Head).unwrap();
        match finish {
            "release" => t.release(l1.token).unwrap(),
            _ => drop(t.fail(l1.token, "retry", true).unwrap()),
        }
        t.clock.advance(ms(10));
        let l = take(&t, "q", 10);
        assert_eq!(offsets(&l), vec![0], "{finish}: lowest offset first");
        t.complete(l[0].token, b"").unwrap();
        let l = take(&t, "q", 10);
        assert_eq!(offsets(&l), vec![1], "{finish}");
        t.complete(l[0].token, b"").unwrap();
        let s = t.stats("q").unwrap();
        assert_eq!(
            (s.ready, s.leased, s.retry_wait, s.done),
            (0, 0, 0, 2),
            "{finish}"
        );
    }
}

#[test]
fn dlq_redrive_head_survives_reopen() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    put(&t, "q", "a", b"a2");
    let l = take_one(&t, "q", "w");
    t.fail(l.token, "x", false).unwrap();
    let l = take_one(&t, "q", "w");
    t.complete(l.token, b"").unwrap();
    t.dlq_redrive("q", 0, RedriveMode::Head).unwrap();
    t.reopen();
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![0], "redriven task reloaded ahead of a2");
    t.complete(l[0].token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![2]);
}

#[test]
fn dlq_redrive_new_offset_reenqueues_a_copy_at_the_tail() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let headers: BTreeMap<String, String> = [("h".to_string(), "v".to_string())].into();
    let r0 = t
        .enqueue(
            "q",
            "a",
            b"p",
            EnqueueOptions {
                priority: 3,
                max_attempts: Some(4),
                headers: headers.clone(),
                ..eo()
            },
        )
        .unwrap();
    put(&t, "q", "a", b"a1");
    let l = take_one(&t, "q", "w");
    t.fail(l.token, "x", false).unwrap();
    t.clock.advance(ms(50));
    let rr = t.dlq_redrive("q", 0, RedriveMode::NewOffset).unwrap();
    assert_eq!(rr.offset, 2);
    assert_eq!(rr.shard, r0.shard);
    assert_ne!(rr.id, r0.id);
    assert!(!rr.duplicate);

    let copy = t.get_task("q", 2).unwrap();
    assert_eq!(copy.redriven_from, Some(0));
    assert_eq!(copy.payload.as_deref(), Some(&b"p"[..]));
    assert_eq!(copy.headers, headers);
    assert_eq!((copy.priority, copy.max_attempts), (3, 4));
    assert_eq!((copy.key.as_str(), copy.attempt), ("a", 0));
    assert_eq!(copy.state, TaskState::Ready);
    assert_eq!(copy.enqueued_at, T0 + 50);
    let old = t.get_task("q", 0).unwrap();
    assert_eq!(old.redriven_to, Some(2));
    assert_eq!(old.state, TaskState::Dead);
    assert!(t.dlq_list("q", None, 10).unwrap().is_empty());
    assert_eq!(code(t.dlq_get("q", 0)), ErrorCode::NotFound);
    assert_eq!(
        code(t.dlq_redrive("q", 0, RedriveMode::NewOffset)),
        ErrorCode::InvalidState
    );
    assert_eq!(code(t.dlq_purge("q", Some(0))), ErrorCode::InvalidState);
    let s = t.stats("q").unwrap();
    assert_eq!(
        (s.dead, s.next_offset, s.totals.redriven, s.totals.enqueued),
        (0, 3, 1, 3)
    );

    // The copy sits at the tail of its lane, behind a1.
    t.reopen();
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![1]);
    t.complete(l[0].token, b"").unwrap();
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![2]);
    assert_eq!((l[0].attempt, l[0].headers.clone()), (1, headers));
}

#[test]
fn dlq_purge_one_and_all() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for i in 0..4 {
        put(&t, "q", &format!("k{i}"), b"payload");
    }
    let ls = take(&t, "q", 4);
    for o in 0..3 {
        t.fail(by_offset(&ls, o).token, "x", false).unwrap();
    }
    assert_eq!(t.dlq_purge("q", Some(1)).unwrap(), 1);
    let off: Vec<u64> = t
        .dlq_list("q", None, 10)
        .unwrap()
        .iter()
        .map(|x| x.offset)
        .collect();
    assert_eq!(off, [0, 2]);
    let gone = t.get_task("q", 1).unwrap();
    assert_eq!(gone.state, TaskState::Dead);
    assert_eq!(gone.payload, None, "purged payload");
    assert!(t.faults("q", 1).unwrap().is_empty(), "purged faults");
    assert_eq!(code(t.dlq_get("q", 1)), ErrorCode::NotFound);
    assert_eq!(code(t.dlq_purge("q", Some(1))), ErrorCode::InvalidState);
    assert_eq!(
        code(t.dlq_redrive("q", 1, RedriveMode::Head)),
        ErrorCode::InvalidState
    );
    let s = t.stats("q").unwrap();
    assert_eq!((s.dead, s.totals.purged, s.totals.dead_lettered), (2, 1, 3));

    t.reopen();
    assert_eq!(t.dlq_purge("q", None).unwrap(), 2);
    assert!(t.dlq_list("q", None, 10).unwrap().is_empty());
    assert_eq!(t.dlq_purge("q", None).unwrap(), 0);
    let s = t.stats("q").unwrap();
    assert_eq!((s.dead, s.totals.purged), (0, 3));
    // The leased task was not touched.
    t.complete(by_offset(&ls, 3).token, b"").unwrap();
}

#[test]
fn dlq_block_policy_blocks_the_lane_until_purge() {
    let mut t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            dlq_policy: DlqPolicy::Block,
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    put(&t, "q", "b", b"b0");
    let ls = take(&t, "q", 10);
    assert_eq!(offsets(&ls), vec![0, 2]);
    t.fail(by_offset(&ls, 0).token, "x", false).unwrap();
    t.complete(by_offset(&ls, 2).token, b"").unwrap();
    assert!(take(&t, "q", 10).is_empty(), "lane a is blocked");
    put(&t, "q", "c", b"c0");
    assert_eq!(offsets(&take(&t, "q", 10)), vec![3], "other lanes run");
    let s = t.stats("q").unwrap();
    assert_eq!(s.shards.iter().map(|x| x.eligible).sum::<u64>(), 0);
    t.reopen();
    assert!(take(&t, "q", 10).is_empty(), "still blocked after reopen");
    assert_eq!(t.dlq_purge("q", Some(0)).unwrap(), 1);
    assert_eq!(offsets(&take(&t, "q", 10)), vec![1]);
}

#[test]
fn dlq_block_policy_unblocks_on_redrive() {
    for mode in [RedriveMode::Head, RedriveMode::NewOffset] {
        let t = TestDb::new();
        t.create_queue(
            "q",
            QueueConfig {
                dlq_policy: DlqPolicy::Block,
                ..Default::default()
            },
        )
        .unwrap();
        put(&t, "q", "a", b"a0");
        put(&t, "q", "a", b"a1");
        let l = take_one(&t, "q", "w");
        t.fail(l.token, "x", false).unwrap();
        assert!(take(&t, "q", 10).is_empty(), "{mode:?}");
        let r = t.dlq_redrive("q", 0, mode).unwrap();
        let order = match mode {
            RedriveMode::Head => vec![0, 1],
            RedriveMode::NewOffset => vec![1, r.offset],
        };
        for want in order {
            let l = take(&t, "q", 10);
            assert_eq!(offsets(&l), vec![want], "{mode:?}");
            t.complete(l[0].token, b"").unwrap();
        }
        assert!(take(&t, "q", 10).is_empty());
    }
}

#[test]
fn dlq_skip_policy_lets_the_lane_move_on() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    let l = take_one(&t, "q", "w");
    t.fail(l.token, "x", false).unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![1]);
}

#[test]
fn dlq_redrive_and_purge_of_a_live_task_is_invalid_state() {
    let t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            backoff: backoff(60_000, 60_000, 1.0, 0.0),
            ..Default::default()
        },
    )
    .unwrap();
    for k in ["ready", "leased", "done", "retry"] {
        put(&t, "q", k, b"");
    }
    let ls = take(&t, "q", 4);
    t.release(by_offset(&ls, 0).token).unwrap();
    t.complete(by_offset(&ls, 2).token, b"").unwrap();
    t.fail(by_offset(&ls, 3).token, "later", true).unwrap();
    for o in 0..4 {
        for mode in [RedriveMode::Head, RedriveMode::NewOffset] {
            match t.dlq_redrive("q", o, mode) {
                Err(Error::InvalidState(m)) => assert!(m.contains(&o.to_string()), "{m}"),
                r => panic!("{o} {mode:?}: {r:?}"),
            }
        }
        assert_eq!(code(t.dlq_purge("q", Some(o))), ErrorCode::InvalidState);
    }
    assert_eq!(
        code(t.dlq_redrive("q", 99, RedriveMode::Head)),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(t.dlq_redrive("q", 99, RedriveMode::NewOffset)),
        ErrorCode::NotFound
    );
    assert_eq!(code(t.dlq_purge("q", Some(99))), ErrorCode::NotFound);
    let s = t.stats("q").unwrap();
    assert_eq!(
        (s.totals.redriven, s.totals.purged, s.next_offset),
        (0, 0, 4)
    );
    t.complete(by_offset(&ls, 1).token, b"").unwrap();
}

// ---------------------------------------------------------------- stats

#[test]
fn stats_counts_per_state_and_shard_and_survive_reopen() {
    let mut t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            shards: 4,
            backoff: backoff(5_000, 5_000, 1.0, 0.0),
            lease: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .unwrap();
    let empty = t.stats("q").unwrap();
    assert_eq!(empty.queue, "q");
    assert_eq!(empty.shards, vec![ShardStats::default(); 4]);
    assert_eq!(empty.oldest_pending_age_ms, 0);

    let keys = ["kA", "kB", "kC", "kD", "kA", "kE", "kF"];
    for (i, k) in keys.iter().enumerate() {
        let opts = EnqueueOptions {
            delay: (i == 5).then(|| Duration::from_secs(60)),
            ..eo()
        };
        t.enqueue("q", k, b"", opts).unwrap();
    }
    let ls = take(&t, "q", 4);
    assert_eq!(offsets(&ls), vec![0, 1, 2, 3]);
    t.complete(ls[1].token, b"").unwrap();
    t.fail(ls[2].token, "retry", true).unwrap();
    t.fail(ls[3].token, "dead", false).unwrap();
    t.clock.advance(ms(2_000));

    let s = t.stats("q").unwrap();
    assert_eq!(
        (s.ready, s.leased, s.retry_wait, s.done, s.dead),
        (3, 1, 1, 1, 1)
    );
    assert_eq!(s.next_offset, 7);
    assert_eq!(s.oldest_pending_age_ms, 2_000);
    let mut want = vec![ShardStats::default(); 4];
    let sh = |o: usize| shard_of(keys[o], 4) as usize;
    for o in [2, 4, 5, 6] {
        want[sh(o)].pending += 1;
    }
    want[sh(0)].in_flight += 1;
    want[sh(6)].eligible += 1;
    assert_eq!(s.shards, want);
    assert_eq!(
        s.totals,
        Totals {
            enqueued: 7,
            completed: 1,
            failed: 2,
            retried: 1,
            dead_lettered: 1,
            ..Totals::default()
        }
    );

    t.reopen();
    assert_eq!(t.stats("q").unwrap(), s, "stats survive reopen");

    // Once the retry time has come the task counts as ready and eligible.
    t.clock.advance(ms(3_000));
    let s2 = t.stats("q").unwrap();
    assert_eq!((s2.ready, s2.retry_wait), (4, 0));
    want[sh(2)].eligible += 1;
    assert_eq!(s2.shards, want);
    assert_eq!(s2.oldest_pending_age_ms, 5_000);

    // Finishing the oldest task moves the oldest age to the next one.
    t.complete(ls[0].token, b"").unwrap();
    t.clock.advance(ms(1_000));
    t.enqueue("q", "late", b"", eo()).unwrap();
    let s3 = t.stats("q").unwrap();
    assert_eq!(s3.oldest_pending_age_ms, 6_000, "offset 2, enqueued at T0");
}

#[test]
fn stats_totals_of_release_expiry_redrive_purge() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    for k in ["a", "b", "c", "d", "e"] {
        put(&t, "q", k, b"");
    }
    let ls = t
        .claim(
            "q",
            "w",
            ClaimOptions {
                max: 5,
                lease: Some(Duration::from_secs(10)),
                ..Default::default()
            },
        )
        .unwrap();
    t.release(ls[0].token).unwrap();
    t.fail(ls[1].token, "x", false).unwrap();
    t.fail(ls[2].token, "x", false).unwrap();
    t.complete(ls[3].token, b"").unwrap();
    t.clock.advance(ms(10_001));
    t.sync().unwrap();
    // Outcomes refused by fencing are rollbacks; other refusals and a
    // repeated completion are not.
    assert_eq!(code(t.complete(ls[4].token, b"late")), ErrorCode::LeaseLost);
    assert_eq!(
        code(t.fail(ls[1].token, "again", true)),
        ErrorCode::LeaseLost
    );
    let batch = t
        .complete_batch(vec![
            (ls[4].token, b"x".to_vec()),
            (ls[0].token, b"y".to_vec()),
        ])
        .unwrap();
    assert!(batch.iter().all(|r| r.is_err()));
    assert_eq!(code(t.heartbeat(ls[4].token, None)), ErrorCode::LeaseLost);
    assert_eq!(code(t.release(ls[4].token)), ErrorCode::LeaseLost);
    assert!(t.complete(ls[3].token, b"").unwrap().duplicate);
    t.dlq_redrive("q", 1, RedriveMode::Head).unwrap();
    t.dlq_purge("q", Some(2)).unwrap();
    let s = t.stats("q").unwrap();
    let want = Totals {
        enqueued: 5,
        completed: 1,
        failed: 2,
        retried: 0,
        dead_lettered: 2,
        lease_expired: 1,
        released: 1,
        redriven: 1,
        purged: 1,
        rollbacks: 4,
    };
    assert_eq!(s.totals, want);
    assert_eq!(
        (s.ready, s.leased, s.retry_wait, s.done, s.dead),
        (3, 0, 0, 1, 0)
    );
    t.reopen();
    assert_eq!(t.stats("q").unwrap().totals, want);
}

// ---------------------------------------------------------------- retention

#[test]
fn retention_prunes_done_payloads_results_and_idempotency_keys() {
    let mut t = TestDb::with(|o| o.retain_done = Duration::from_secs(1));
    t.create_queue("q", QueueConfig::default()).unwrap();
    let ik = EnqueueOptions {
        idempotency_key: Some("idem-0".into()),
        ..eo()
    };
    let r0 = t.enqueue("q", "a", b"p0", ik.clone()).unwrap();
    put(&t, "q", "b", b"p1");
    let ls = take(&t, "q", 2);
    t.complete(by_offset(&ls, 0).token, b"res0").unwrap();
    t.fail(by_offset(&ls, 1).token, "x", false).unwrap();

    t.clock.advance(ms(999));
    t.sync().unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.payload.as_deref(), Some(&b"p0"[..]), "kept until due");
    assert_eq!(ti.result.as_deref(), Some(&b"res0"[..]));
    assert!(t.enqueue("q", "a", b"", ik.clone()).unwrap().duplicate);

    t.clock.advance(ms(1));
    t.sync().unwrap();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!(ti.state, TaskState::Done);
    assert_eq!(ti.payload, None);
    assert_eq!(ti.result, None);
    assert_eq!(ti.id, r0.id, "the log record stays");
    assert_eq!(ti.committed_at, T0);
    let dl = t.dlq_get("q", 1).unwrap();
    assert_eq!(
        dl.task.payload.as_deref(),
        Some(&b"p1"[..]),
        "dead keeps payload"
    );
    assert_eq!(dl.faults.len(), 1);

    let again = t.enqueue("q", "a", b"p2", ik.clone()).unwrap();
    assert!(!again.duplicate, "pruned key can be reused");
    assert_eq!(again.offset, 2);
    t.reopen();
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!((ti.payload, ti.result), (None, None));
    assert_eq!(t.enqueue("q", "a", b"", ik).unwrap().offset, 2);
    assert_eq!(t.stats("q").unwrap().done, 1);
}

#[test]
fn retention_covers_more_than_one_writer_budget() {
    let t = TestDb::with(|o| {
        o.retain_done = Duration::from_secs(1);
        o.durability = Durability::None;
    });
    t.create_queue(
        "q",
        QueueConfig {
            ordering: Ordering::None,
            ..Default::default()
        },
    )
    .unwrap();
    let n = 1_300u64;
    let items = (0..n)
        .map(|i| EnqueueItem {
            key: "k".into(),
            payload: i.to_le_bytes().to_vec(),
            opts: eo(),
        })
        .collect();
    t.enqueue_batch("q", items).unwrap();
    let ls = take(&t, "q", n as usize);
    assert_eq!(ls.len(), n as usize);
    let done = t
        .complete_batch(ls.iter().map(|l| (l.token, b"r".to_vec())).collect())
        .unwrap();
    assert!(done.iter().all(|c| c.is_ok()));
    t.clock.advance(ms(1_000));
    let pruned = |t: &TestDb| {
        (0..n)
            .filter(|&o| t.get_task("q", o).unwrap().payload.is_none())
            .count() as u64
    };
    let mut syncs = 0;
    while pruned(&t) < n && syncs < 10 {
        t.sync().unwrap();
        syncs += 1;
    }
    assert_eq!(pruned(&t), n, "after {syncs} syncs");
    assert!((0..n).all(|o| t.get_task("q", o).unwrap().result.is_none()));
}

// ---------------------------------------------------------------- durability

#[test]
fn durability_none_data_is_there_after_close_and_reopen() {
    for close in [true, false] {
        let dir = TempDir::new("dur-none");
        let path = dir.join("n.ordq");
        let (mut opts, _clock) = manual_options();
        opts.durability = Durability::None;
        let db = Db::open(&path, opts.clone()).unwrap();
        db.create_queue("q", QueueConfig::default()).unwrap();
        let items = (0..10)
            .map(|i| EnqueueItem {
                key: format!("k{i}"),
                payload: format!("p{i}").into_bytes(),
                opts: eo(),
            })
            .collect();
        db.enqueue_batch("q", items).unwrap();
        let ls = take(&db, "q", 3);
        db.complete(ls[0].token, b"r").unwrap();
        if close {
            db.close();
        } else {
            drop(db);
        }
        let durable = Options {
            durability: Durability::Immediate,
            ..opts.clone()
        };
        let db = Db::open(&path, durable).unwrap();
        let s = db.stats("q").unwrap();
        assert_eq!((s.next_offset, s.done, s.leased, s.ready), (10, 1, 2, 7));
        for i in 0..10u64 {
            let ti = db.get_task("q", i).unwrap();
            assert_eq!(ti.payload.unwrap(), format!("p{i}").into_bytes());
        }
        assert_eq!(db.get_task("q", 0).unwrap().result.unwrap(), b"r");
        db.complete(ls[1].token, b"").unwrap();
    }
}

// ---------------------------------------------------------------- edge cases

#[test]
fn dead_letters_are_per_queue() {
    let t = TestDb::new();
    for q in ["a", "b"] {
        t.create_queue(q, QueueConfig::default()).unwrap();
        for k in ["x", "y"] {
            put(&t, q, k, q.as_bytes());
        }
        for l in take(&t, q, 2) {
            t.fail(l.token, "x", false).unwrap();
        }
    }
    assert_eq!(t.dlq_purge("a", Some(0)).unwrap(), 1);
    assert_eq!(t.dlq_list("a", None, 10).unwrap().len(), 1);
    assert_eq!(t.dlq_list("b", None, 10).unwrap().len(), 2);
    assert_eq!(t.dlq_purge("a", None).unwrap(), 1);
    let b = t.dlq_list("b", None, 10).unwrap();
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|x| x.payload.as_deref() == Some(&b"b"[..])));
    assert_eq!(t.stats("b").unwrap().dead, 2);
}

#[test]
fn redrive_head_behind_an_in_flight_task_survives_reopen() {
    let mut t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    put(&t, "q", "a", b"a0");
    put(&t, "q", "a", b"a1");
    put(&t, "q", "a", b"a2");
    let l0 = take_one(&t, "q", "w");
    t.fail(l0.token, "x", false).unwrap();
    let l1 = take_one(&t, "q", "w");
    let r = t.dlq_redrive("q", 0, RedriveMode::Head).unwrap();
    assert_eq!(r.offset, 0);
    let ti = t.get_task("q", 0).unwrap();
    assert_eq!((ti.committed_at, ti.started_at, ti.attempt), (0, 0, 0));
    t.reopen();
    assert!(take(&t, "q", 10).is_empty(), "a1 is still in flight");
    t.complete(l1.token, b"").unwrap();
    let l = take(&t, "q", 10);
    assert_eq!(offsets(&l), vec![0]);
    t.complete(l[0].token, b"").unwrap();
    assert_eq!(offsets(&take(&t, "q", 10)), vec![2]);
}

#[test]
fn heartbeat_extension_survives_reopen() {
    let mut t = TestDb::new();
    t.create_queue(
        "q",
        QueueConfig {
            lease: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .unwrap();
    put(&t, "q", "k", b"");
    let l = take_one(&t, "q", "w");
    t.heartbeat(l.token, Some(Duration::from_secs(100)))
        .unwrap();
    t.reopen();
    t.clock.advance(Duration::from_secs(50));
    t.sync().unwrap();
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::Leased);
    t.clock.advance(Duration::from_secs(51));
    t.sync().unwrap();
    assert_eq!(t.get_task("q", 0).unwrap().state, TaskState::Ready);
    assert_eq!(code(t.complete(l.token, b"")), ErrorCode::LeaseLost);
}

#[test]
fn queue_lease_below_one_ms_is_refused_or_round_trips() {
    let t = TestDb::new();
    let cfg = QueueConfig {
        lease: Duration::from_micros(500),
        ..Default::default()
    };
    match t.create_queue("q", cfg) {
        Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument),
        Ok(info) => {
            assert_eq!(
                t.queue("q").unwrap().config,
                info.config,
                "stored config differs from the one accepted"
            );
            put(&t, "q", "k", b"");
            let l = take_one(&t, "q", "w");
            assert!(l.expires_at > l.leased_at, "zero-length lease: {l:?}");
        }
    }
}

#[test]
fn claim_lease_below_one_ms_is_refused_or_positive() {
    let t = TestDb::new();
    t.create_queue("p", QueueConfig::default()).unwrap();
    put(&t, "p", "k", b"");
    let short = ClaimOptions {
        lease: Some(Duration::from_micros(500)),
        ..Default::default()
    };
    match t.claim("p", "w", short) {
        Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument),
        Ok(l) => assert!(l[0].expires_at > l[0].leased_at, "zero-length lease: {l:?}"),
    }
}

#[test]
fn heartbeat_lease_below_one_ms_is_refused_or_positive() {
    let t = TestDb::new();
    t.create_queue("p", QueueConfig::default()).unwrap();
    put(&t, "p", "k", b"");
    let l = take_one(&t, "p", "w");
    match t.heartbeat(l.token, Some(Duration::from_micros(500))) {
        Err(e) => assert_eq!(e.code(), ErrorCode::InvalidArgument),
        Ok(exp) => assert!(exp > t.clock.now_ms(), "zero-length lease"),
    }
}

#[test]
fn huge_delay_saturates_instead_of_wrapping() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    // 18_446_744_073_709_552 s = 2^64 + 384 ms.
    let huge = Duration::from_secs(18_446_744_073_709_552);
    let r = t
        .enqueue(
            "q",
            "k",
            b"",
            EnqueueOptions {
                delay: Some(huge),
                ..eo()
            },
        )
        .unwrap();
    let nb = t.get_task("q", r.offset).unwrap().not_before;
    assert!(
        nb > T0 + 1_000_000_000,
        "a practically infinite delay became {} ms",
        nb - T0
    );
}

#[test]
fn huge_lease_saturates_instead_of_wrapping() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let huge = Duration::from_secs(18_446_744_073_709_552);
    put(&t, "q", "k", b"");
    let l = t
        .claim(
            "q",
            "w",
            ClaimOptions {
                lease: Some(huge),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        l[0].expires_at > T0 + 1_000_000_000,
        "a practically infinite lease became {} ms",
        l[0].expires_at - T0
    );
}

#[test]
fn huge_heartbeat_saturates_instead_of_wrapping() {
    let t = TestDb::new();
    t.create_queue("q", QueueConfig::default()).unwrap();
    let huge = Duration::from_secs(18_446_744_073_709_552);
    put(&t, "q", "k", b"");
    let l = take_one(&t, "q", "w");
    let exp = t.heartbeat(l.token, Some(huge)).unwrap();
    assert!(
        exp > T0 + 1_000_000_000,
        "a practically infinite heartbeat became {} ms",
        exp - T0
    );
}

/// A claim with `wait: Duration::MAX` must neither panic the writer
/// (`Instant` overflow) nor make the handle unusable: the wait is capped,
/// the claim is answered when work arrives.
#[test]
fn huge_claim_wait_does_not_kill_the_writer() {
    let dir = std::env::temp_dir().join(format!("ordq-hugewait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::open(dir.join("w.ordq"), Options::default()).unwrap();
    db.create_queue("q", QueueConfig::default()).unwrap();
    let d2 = db.clone();
    let waiter = std::thread::spawn(move || {
        d2.claim(
            "q",
            "w",
            ClaimOptions {
                wait: Duration::MAX,
                ..Default::default()
            },
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    db.enqueue("q", "k", b"x", EnqueueOptions::default())
        .unwrap();
    let got = waiter.join().unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(db.stats("q").unwrap().leased, 1);
    db.close();
    std::fs::remove_dir_all(&dir).ok();
}
