//! The broker client against an in-process broker (Unix and TCP) and
//! against scripted fake brokers: the whole API round trip (the same
//! transcript as the local engine), error codes across the wire, many
//! threads on one client, deadlines, reconnects, resend rules, leases
//! across reconnects and tokens.

// The engine tests' helpers (temp dirs, manual clocks), shared, not copied.
#[path = "../../core/tests/common/mod.rs"]
mod common;

use common::{manual_options, TempDir, T0};
use ordq_broker::{Broker, BrokerConfig, Listen};
use ordq_core::{
    Backoff, ClaimOptions, Db, Durability, Engine, EnqueueItem, EnqueueOptions, Error, ErrorCode,
    FailOutcome, ManualClock, Options, QueueConfig, RedriveMode, TaskState, Token,
};
use ordq_wire::client::{Client, ClientOptions};
use ordq_wire::protocol::{encode_err, encode_ok, HelloOk, RawRequest, PROTOCOL_VERSION};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOKEN: &str = "client-test-token";

/// A broker on a fresh database (manual clock, no fsync) listening on a
/// Unix socket and on loopback TCP, with [`TOKEN`].
struct Served {
    broker: Option<Broker>,
    db: Db,
    clock: Arc<ManualClock>,
    sock: PathBuf,
    _dir: TempDir,
}

impl Served {
    fn new() -> Served {
        Served::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut Options)) -> Served {
        let dir = TempDir::new("client");
        let (mut opts, clock) = manual_options();
        opts.durability = Durability::None;
        tune(&mut opts);
        let db = Db::open(dir.join("broker.ordq"), opts).unwrap();
        let sock = dir.join("ordq.sock");
        let mut s = Served {
            broker: None,
            db,
            clock,
            sock,
            _dir: dir,
        };
        s.start();
        s
    }

    /// Starts (again) a broker on the same database and socket path.
    fn start(&mut self) {
        let cfg = BrokerConfig {
            listen: vec![
                Listen::Unix(self.sock.clone()),
                Listen::parse("tcp://127.0.0.1:0").unwrap(),
            ],
            token: Some(TOKEN.into()),
            ..BrokerConfig::default()
        };
        self.broker = Some(Broker::start(self.db.clone(), cfg).unwrap());
    }

    fn stop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().unwrap();
        }
    }

    fn unix(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn tcp(&self) -> String {
        let addrs = self.broker.as_ref().unwrap().addrs();
        addrs.into_iter().find(|a| a.starts_with("tcp://")).unwrap()
    }

    fn client(&self, uri: &str) -> Client {
        Client::connect(uri, opts(Duration::from_secs(20))).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

fn opts(timeout: Duration) -> ClientOptions {
    ClientOptions {
        token: Some(TOKEN.into()),
        timeout,
        client: "client-test".into(),
        runtime: "rust".into(),
    }
}

fn item(key: &str, payload: &[u8], opts: EnqueueOptions) -> EnqueueItem {
    EnqueueItem {
        key: key.into(),
        payload: payload.to_vec(),
        opts,
    }
}

fn claim_n(max: usize) -> ClaimOptions {
    ClaimOptions {
        max,
        ..ClaimOptions::default()
    }
}

/// Every operation of the API once, with checks along the way; returns
/// the transcript of every answer (Debug-formatted) so that the local
/// engine and a client can be compared answer by answer.
fn scenario(e: &dyn Engine, clock: &ManualClock) -> Vec<String> {
    let mut t: Vec<String> = Vec::new();
    macro_rules! rec {
        ($v:expr) => {{
            let v = $v;
            t.push(format!("{:?}", v));
            v
        }};
    }
    let cfg = QueueConfig {
        shards: 4,
        max_attempts: 2,
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
            multiplier: 1.0,
            jitter: 0.0,
        },
        lease: Duration::from_secs(10),
        ..QueueConfig::default()
    };
    rec!(e.create_queue("jobs", cfg.clone())).unwrap();
    rec!(e.create_queue("other", QueueConfig::default())).unwrap();
    assert_eq!(rec!(e.queue("jobs")).unwrap().config, cfg);
    assert_eq!(rec!(e.list_queues()).unwrap().len(), 2);

    // Enqueue a batch with every option, then an idempotent repeat.
    let headers: BTreeMap<String, String> =
        [("traceparent".to_string(), "00-abc-01".to_string())].into();
    let binary: Vec<u8> = (0..=255u8).collect();
    let r = rec!(e.enqueue_batch(
        "jobs",
        vec![
            item(
                "k1",
                b"first",
                EnqueueOptions {
                    headers: headers.clone(),
                    priority: 5,
                    ..EnqueueOptions::default()
                }
            ),
            item(
                "k2",
                &binary,
                EnqueueOptions {
                    idempotency_key: Some("idem-1".into()),
                    max_attempts: Some(1),
                    ..EnqueueOptions::default()
                }
            ),
            item(
                "k1",
                b"second",
                EnqueueOptions {
                    delay: Some(Duration::from_secs(5)),
                    ..EnqueueOptions::default()
                }
            ),
        ]
    ))
    .unwrap();
    assert_eq!(
        r.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let dup = rec!(e.enqueue_batch(
        "jobs",
        vec![item(
            "k2",
            b"ignored",
            EnqueueOptions {
                idempotency_key: Some("idem-1".into()),
                ..EnqueueOptions::default()
            }
        )]
    ))
    .unwrap();
    assert!(dup[0].duplicate && dup[0].offset == 1);

    // Claim: both lane heads; k1's second task waits for its lane (and delay).
    let leases = rec!(e.claim("jobs", "w1", claim_n(10))).unwrap();
    assert_eq!(leases.len(), 2);
    let (l0, l1) = (&leases[0], &leases[1]);
    assert_eq!((l0.offset, l0.priority), (0, 5), "priority first");
    assert_eq!(l0.headers, headers);
    assert_eq!(l1.payload, binary, "bytes survive base64 both ways");
    assert_eq!(
        rec!(e.heartbeat(l0.token, Some(Duration::from_secs(20)))),
        Ok(T0 + 20_000)
    );
    rec!(e.start(l0.token)).unwrap();

    // A batch completion with one stale item: per-item outcomes.
    let stale = Token {
        fence: l0.token.fence + 1000,
        ..l0.token
    };
    let out =
        rec!(e.complete_batch(vec![(l0.token, b"r0".to_vec()), (stale, b"x".to_vec())])).unwrap();
    assert!(!out[0].as_ref().unwrap().duplicate);
    assert_eq!(out[1].as_ref().unwrap_err().code(), ErrorCode::LeaseLost);
    assert!(rec!(e.complete(l0.token, b"r0")).unwrap().duplicate);

    // k2 allows one attempt: a retryable failure dead-letters it.
    assert_eq!(
        rec!(e.fail(l1.token, "boom", true)),
        Ok(FailOutcome::Dead { attempt: 1 })
    );

    // k1's second task: due after 5 s; fail -> retry after 1 s; release; complete.
    assert!(rec!(e.claim("jobs", "w1", claim_n(1))).unwrap().is_empty());
    clock.advance(Duration::from_secs(5));
    rec!(e.sync()).unwrap();
    let l2 = rec!(e.claim("jobs", "w2", claim_n(1))).unwrap().remove(0);
    assert_eq!(l2.offset, 2);
    let f = rec!(e.fail(l2.token, "transient", true)).unwrap();
    assert!(matches!(f, FailOutcome::Retry { attempt: 1, .. }), "{f:?}");
    clock.advance(Duration::from_secs(1));
    rec!(e.sync()).unwrap();
    let l3 = rec!(e.claim("jobs", "w3", claim_n(1))).unwrap().remove(0);
    assert_eq!(l3.attempt, 2);
    rec!(e.release(l3.token)).unwrap();
    assert_eq!(
        rec!(e.release(l3.token)).unwrap_err().code(),
        ErrorCode::LeaseLost
    );
    let l4 = rec!(e.claim("jobs", "w3", claim_n(1))).unwrap().remove(0);
    assert_eq!((l4.offset, l4.attempt), (2, 2), "a release does not count");
    let p = rec!(e.pending("jobs", None, 10)).unwrap();
    assert_eq!(
        p.iter().map(|t| (t.offset, t.state)).collect::<Vec<_>>(),
        [(2, TaskState::Leased)]
    );
    assert!(rec!(e.pending("jobs", Some(2), 10)).unwrap().is_empty());
    rec!(e.complete(l4.token, b"done")).unwrap();

    let task = rec!(e.get_task("jobs", 2)).unwrap();
    assert_eq!(task.state, TaskState::Done);
    assert_eq!(task.result.as_deref(), Some(&b"done"[..]));
    assert_eq!(rec!(e.faults("jobs", 2)).unwrap().len(), 1);
    let st = rec!(e.stats("jobs")).unwrap();
    assert_eq!((st.done, st.dead, st.next_offset), (2, 1, 3));

    // Dead letters: list, get, redrive at a new offset, die again, purge.
    let dl = rec!(e.dlq_list("jobs", None, 10)).unwrap();
    assert_eq!(dl.iter().map(|t| t.offset).collect::<Vec<_>>(), vec![1]);
    assert_eq!(rec!(e.dlq_get("jobs", 1)).unwrap().faults.len(), 1);
    let rd = rec!(e.dlq_redrive("jobs", 1, RedriveMode::NewOffset)).unwrap();
    assert_eq!(rd.offset, 3);
    let l5 = rec!(e.claim("jobs", "w1", claim_n(1))).unwrap().remove(0);
    assert_eq!((l5.offset, l5.payload.clone()), (3, binary));
    rec!(e.fail(l5.token, "fatal", false)).unwrap();
    assert_eq!(rec!(e.dlq_purge("jobs", None)), Ok(1));
    assert!(rec!(e.dlq_list("jobs", None, 10)).unwrap().is_empty());

    rec!(e.delete_queue("other")).unwrap();
    assert_eq!(rec!(e.list_queues()).unwrap().len(), 1);
    assert_eq!(
        rec!(e.queue("other")).unwrap_err().code(),
        ErrorCode::NotFound
    );
    t
}

#[test]
fn whole_api_round_trip_matches_the_local_engine_over_unix_and_tcp() {
    let local_dir = TempDir::new("client-local");
    let (mut lo, lclock) = manual_options();
    lo.durability = Durability::None;
    let local = Db::open(local_dir.join("local.ordq"), lo).unwrap();
    let want = scenario(&local, &lclock);

    for tcp in [false, true] {
        let s = Served::new();
        let uri = if tcp { s.tcp() } else { s.unix() };
        let c = s.client(&uri);
        let got = scenario(&c, &s.clock);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "answer {i} differs over {uri}");
        }
        Engine::close(&c).unwrap();
    }
}

#[test]
fn errors_keep_their_codes_across_the_wire() {
    let s = Served::with(|o| o.max_payload = 1024);
    let c = s.client(&s.unix());
    let code = |r: Result<(), Error>| r.unwrap_err().code();

    assert_eq!(code(c.queue("missing").map(drop)), ErrorCode::NotFound);
    assert_eq!(
        code(c.create_queue("-bad", QueueConfig::default()).map(drop)),
        ErrorCode::InvalidArgument
    );
    c.create_queue("q", QueueConfig::default()).unwrap();
    assert_eq!(
        code(c.create_queue("q", QueueConfig::default()).map(drop)),
        ErrorCode::AlreadyExists
    );
    let big = item("k", &[7u8; 2048], EnqueueOptions::default());
    let e = c.enqueue_batch("q", vec![big]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert!(e.to_string().contains("1024"), "{e}");
    // Over the broker's frame limit: refused before sending, connection kept.
    let huge = item("k", &vec![0u8; 5 << 20], EnqueueOptions::default());
    let e = c.enqueue_batch("q", vec![huge]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert!(e.to_string().contains("frame limit"), "{e}");

    c.enqueue_batch("q", vec![item("k", b"x", EnqueueOptions::default())])
        .unwrap();
    let l = c.claim("q", "w", claim_n(1)).unwrap().remove(0);
    let stale = Token {
        fence: l.token.fence + 1,
        ..l.token
    };
    assert_eq!(code(c.start(stale)), ErrorCode::LeaseLost);
    assert_eq!(
        code(c.heartbeat(stale, None).map(drop)),
        ErrorCode::LeaseLost
    );
    assert_eq!(code(c.complete(stale, b"").map(drop)), ErrorCode::LeaseLost);
    assert_eq!(
        code(c.dlq_redrive("q", 0, RedriveMode::Head).map(drop)),
        ErrorCode::InvalidState
    );
    assert_eq!(
        code(c.claim("q", "", claim_n(1)).map(drop)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(code(c.get_task("q", 99).map(drop)), ErrorCode::NotFound);
    // The connection survived every error.
    c.complete(l.token, b"ok").unwrap();
    c.ping().unwrap();
}

#[test]
fn many_threads_share_one_client() {
    const THREADS: usize = 8;
    const EACH: usize = 500;
    let s = Served::new();
    let c = s.client(&s.unix());
    c.create_queue("q", QueueConfig::default()).unwrap();
    let offsets: Vec<Vec<(u64, String)>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = &c;
                sc.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let key = format!("t{t}-{i}");
                            let r = c
                                .enqueue_batch(
                                    "q",
                                    vec![item(&key, key.as_bytes(), EnqueueOptions::default())],
                                )
                                .unwrap();
                            (r[0].offset, key)
                        })
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<(u64, String)> = offsets.into_iter().flatten().collect();
    let distinct: HashSet<u64> = all.iter().map(|(o, _)| *o).collect();
    assert_eq!(distinct.len(), THREADS * EACH);
    assert_eq!(distinct.iter().max(), Some(&((THREADS * EACH) as u64 - 1)));
    // Every receipt was routed to the caller whose task it is: read each
    // back, again from many threads at once.
    std::thread::scope(|sc| {
        for chunk in all.chunks(all.len() / THREADS) {
            let c = &c;
            sc.spawn(move || {
                for (off, key) in chunk {
                    let t = c.get_task("q", *off).unwrap();
                    assert_eq!(&t.key, key);
                    assert_eq!(t.payload.as_deref(), Some(key.as_bytes()));
                }
            });
        }
    });
    assert_eq!(c.stats("q").unwrap().ready, (THREADS * EACH) as u64);
}

#[test]
fn claim_waits_for_work_beyond_the_call_timeout() {
    let s = Served::new();
    let worker = Client::connect(&s.unix(), opts(Duration::from_millis(500))).unwrap();
    let producer = s.client(&s.tcp());
    producer.create_queue("q", QueueConfig::default()).unwrap();
    let wait = ClaimOptions {
        wait: Duration::from_secs(3),
        ..ClaimOptions::default()
    };
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let t0 = Instant::now();
            let l = worker.claim("q", "w", wait.clone()).unwrap();
            (l, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(800));
        producer
            .enqueue_batch("q", vec![item("k", b"late", EnqueueOptions::default())])
            .unwrap();
        let (l, took) = h.join().unwrap();
        assert_eq!(l.len(), 1, "woken by the enqueue");
        assert_eq!(l[0].payload, b"late");
        assert!(took >= Duration::from_millis(700), "{took:?}");
    });
    // Nothing arrives: the claim's wait (1 s) outlasts the 500 ms timeout
    // without an error, because a claim's deadline adds its wait.
    let t0 = Instant::now();
    let none = worker
        .claim(
            "q",
            "w",
            ClaimOptions {
                wait: Duration::from_secs(1),
                ..ClaimOptions::default()
            },
        )
        .unwrap();
    assert!(none.is_empty());
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

/// What a scripted fake broker does on one connection.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// Reads everything, answers nothing (not even hello).
    Mute,
    /// Answers hello, then reads everything and answers nothing.
    Silent,
    /// Answers hello, reads one request, closes without answering.
    DropAfterOne,
    /// Answers hello, reads one request, sends a connection error (id
    /// null) and closes.
    ConnError,
    /// Answers hello, then `ping` with `{}` and `list_queues` with `[]`.
    Serve,
}

/// A fake broker on a Unix socket: connection `i` follows `scripts[i]`
/// (the last script repeats). Stops when dropped.
struct Fake {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    uri: String,
    _dir: TempDir,
}

impl Fake {
    fn new(scripts: Vec<Script>) -> Fake {
        let dir = TempDir::new("client-fake");
        let path = dir.join("fake.sock");
        let l = UnixListener::bind(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            let mut conns = Vec::new();
            while !st.load(Ordering::Acquire) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let script = scripts[n.min(scripts.len() - 1)];
                        n += 1;
                        let st = st.clone();
                        conns.push(std::thread::spawn(move || fake_conn(s, script, &st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Fake {
            stop,
            thread: Some(thread),
            uri: format!("unix://{}", path.display()),
            _dir: dir,
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fake_conn(s: UnixStream, script: Script, stop: &AtomicBool) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = Vec::new();
    // Reads one frame; None at EOF or when the fake stops.
    let mut next = |line: &mut Vec<u8>| -> Option<()> {
        line.clear();
        loop {
            if stop.load(Ordering::Acquire) {
                return None;
            }
            match r.read_until(b'\n', line) {
                Ok(0) => return None,
                Ok(_) if line.ends_with(b"\n") => return Some(()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    };
    if next(&mut line).is_none() {
        return;
    }
    if matches!(script, Script::Mute) {
        while next(&mut line).is_some() {}
        return;
    }
    let ok = HelloOk {
        protocol: PROTOCOL_VERSION,
        server: "fake".into(),
        max_frame: 1 << 20,
        max_inflight: 64,
    };
    w.write_all(&encode_ok(0, &ok)).unwrap();
    while next(&mut line).is_some() {
        let req = RawRequest::parse(&line[..line.len() - 1]).unwrap();
        match script {
            Script::Mute | Script::Silent => {}
            Script::DropAfterOne => return,
            Script::ConnError => {
                let e = Error::InvalidArgument("malformed request frame".into());
                let _ = w.write_all(&encode_err(None, &e));
                return;
            }
            Script::Serve => {
                let answer = match &*req.op {
                    "list_queues" => encode_ok(req.id, &json!([])),
                    _ => encode_ok(req.id, &json!({})),
                };
                w.write_all(&answer).unwrap();
            }
        }
    }
}

/// Asserts `r` failed with `Unavailable` within `limit`, returning the message.
fn unavailable<T: std::fmt::Debug>(r: Result<T, Error>, t0: Instant, limit: Duration) -> String {
    let took = t0.elapsed();
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    assert!(took < limit, "took {took:?}: {e}");
    e.to_string()
}

#[test]
fn a_broker_that_never_answers_gives_unavailable_by_the_deadline() {
    let timeout = Duration::from_millis(400);
    let limit = Duration::from_secs(5);
    // No answer to hello: connect itself gives up.
    let mute = Fake::new(vec![Script::Mute]);
    let t0 = Instant::now();
    let m = unavailable(Client::connect(&mute.uri, opts(timeout)), t0, limit);
    assert!(m.contains("no answer to hello"), "{m}");
    assert!(t0.elapsed() >= timeout - Duration::from_millis(50));

    // Hello answered, requests never: every call returns by its deadline.
    let silent = Fake::new(vec![Script::Silent]);
    let c = Client::connect(&silent.uri, opts(timeout)).unwrap();
    let t0 = Instant::now();
    let m = unavailable(c.list_queues(), t0, limit);
    assert!(m.contains("no answer"), "{m}");
    assert!(t0.elapsed() >= timeout - Duration::from_millis(50));
    // Several callers at once, an unsafe op among them.
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let c = &c;
                sc.spawn(move || {
                    let t0 = Instant::now();
                    if i == 0 {
                        let m = unavailable(
                            c.enqueue_batch("q", vec![item("k", b"", EnqueueOptions::default())]),
                            t0,
                            limit,
                        );
                        assert!(m.contains("may or may not"), "{m}");
                    } else {
                        unavailable(c.stats("q"), t0, limit);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn connecting_to_nothing_is_unavailable() {
    let dir = TempDir::new("client-nothing");
    let t0 = Instant::now();
    let m = unavailable(
        Client::connect(
            &format!("unix://{}", dir.join("none.sock").display()),
            opts(Duration::from_secs(30)),
        ),
        t0,
        Duration::from_secs(5),
    );
    assert!(m.contains("cannot reach the broker"), "{m}");
    // A closed TCP port (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t0 = Instant::now();
    unavailable(
        Client::connect(
            &format!("tcp://127.0.0.1:{port}"),
            opts(Duration::from_secs(30)),
        ),
        t0,
        Duration::from_secs(5),
    );
    for bad in ["unix://", "tcp://127.0.0.1", "udp://x:1", "/tmp/x.sock"] {
        let e = Client::connect(bad, ClientOptions::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}: {e}");
    }
}

#[test]
fn resends_only_what_is_safe_after_a_dropped_connection() {
    // Connection 1 drops after reading the request; 2 sends a connection
    // error; 3 serves. A read is resent until it is answered.
    let f = Fake::new(vec![Script::DropAfterOne, Script::ConnError, Script::Serve]);
    let c = Client::connect(&f.uri, opts(Duration::from_secs(10))).unwrap();
    assert_eq!(c.list_queues().unwrap(), vec![]);

    // An enqueue in flight when the connection drops: outcome unknown.
    let f = Fake::new(vec![Script::DropAfterOne, Script::Serve]);
    let c = Client::connect(&f.uri, opts(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let m = unavailable(
        c.enqueue_batch("q", vec![item("k", b"x", EnqueueOptions::default())]),
        t0,
        Duration::from_secs(5),
    );
    assert!(m.contains("idempotency keys"), "{m}");
    // The client reconnects for the next call.
    c.ping().unwrap();

    // A claim in flight: leases it may have granted expire.
    let f = Fake::new(vec![Script::DropAfterOne, Script::Serve]);
    let c = Client::connect(&f.uri, opts(Duration::from_secs(10))).unwrap();
    let m = unavailable(
        c.claim("q", "w", claim_n(1)),
        Instant::now(),
        Duration::from_secs(5),
    );
    assert!(m.contains("expire"), "{m}");
}

#[test]
fn reconnects_to_a_restarted_broker() {
    let mut s = Served::new();
    let c = Client::connect(&s.unix(), opts(Duration::from_millis(800))).unwrap();
    c.create_queue("q", QueueConfig::default()).unwrap();
    s.stop();
    // While it is down, calls fail by their deadline instead of hanging.
    let t0 = Instant::now();
    let m = unavailable(c.list_queues(), t0, Duration::from_secs(5));
    assert!(m.contains("cannot reach the broker"), "{m}");
    s.start();
    assert_eq!(c.list_queues().unwrap().len(), 1);
    // A restart while the client idles: the first call after it succeeds.
    s.stop();
    s.start();
    c.enqueue_batch("q", vec![item("k", b"x", EnqueueOptions::default())])
        .unwrap();
    assert_eq!(c.stats("q").unwrap().ready, 1);
}

#[test]
fn concurrent_calls_ride_out_broker_restarts() {
    const THREADS: usize = 4;
    let mut s = Served::new();
    let c = Client::connect(&s.unix(), opts(Duration::from_secs(10))).unwrap();
    c.create_queue("q", QueueConfig::default()).unwrap();
    let stop = AtomicBool::new(false);
    let (unknown, per_thread) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let (c, stop) = (&c, &stop);
                sc.spawn(move || {
                    let (mut unknown, mut done) = (0, Vec::new());
                    let mut i = 0;
                    while !stop.load(Ordering::Acquire) {
                        let key = format!("t{t}-{i}");
                        let it = item(
                            &key,
                            key.as_bytes(),
                            EnqueueOptions {
                                idempotency_key: Some(key.clone()),
                                ..EnqueueOptions::default()
                            },
                        );
                        // An unknown outcome is retried with the same
                        // idempotency key until it is known.
                        let r = loop {
                            match c.enqueue_batch("q", vec![it.clone()]) {
                                Ok(r) => break r,
                                Err(e) => {
                                    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
                                    unknown += 1;
                                }
                            }
                        };
                        // Reads are resent by the client itself: never an error.
                        c.stats("q").unwrap();
                        done.push((r[0].offset, key));
                        i += 1;
                    }
                    (unknown, done)
                })
            })
            .collect();
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(300));
            s.stop();
            std::thread::sleep(Duration::from_millis(100));
            s.start();
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Release);
        let mut unknown = 0;
        let mut all = Vec::new();
        for h in hs {
            let (u, d) = h.join().unwrap();
            unknown += u;
            all.extend(d);
        }
        (unknown, all)
    });
    // Every task exists exactly once, at the offset its caller was told.
    let st = c.stats("q").unwrap();
    assert_eq!(
        st.totals.enqueued,
        per_thread.len() as u64,
        "{unknown} unknown outcomes"
    );
    for (off, key) in &per_thread {
        assert_eq!(&c.get_task("q", *off).unwrap().key, key);
    }
}

#[test]
fn leases_outlive_connections_and_fencing_still_holds() {
    let mut s = Served::new();
    let c = s.client(&s.unix());
    let cfg = QueueConfig {
        lease: Duration::from_secs(5),
        ..QueueConfig::default()
    };
    c.create_queue("q", cfg).unwrap();
    c.enqueue_batch(
        "q",
        vec![
            item("a", b"1", EnqueueOptions::default()),
            item("b", b"2", EnqueueOptions::default()),
        ],
    )
    .unwrap();
    // Lease a, let it expire, lease it again: the first token is stale.
    let old = c.claim("q", "w1", claim_n(1)).unwrap().remove(0);
    assert_eq!(old.key, "a");
    s.clock.advance(Duration::from_secs(6));
    c.sync().unwrap();
    let mut held = c.claim("q", "w2", claim_n(2)).unwrap();
    held.sort_by_key(|l| l.offset);
    assert_eq!(held.len(), 2);
    assert_eq!(held[0].offset, old.offset);

    // The broker restarts (same database); the client reconnects by itself.
    s.stop();
    s.start();
    let exp = c.heartbeat(held[0].token, None).unwrap();
    assert_eq!(exp, T0 + 6_000 + 5_000);
    c.start(held[1].token).unwrap();
    assert_eq!(
        c.complete(old.token, b"zombie").unwrap_err().code(),
        ErrorCode::LeaseLost
    );
    c.complete(held[0].token, b"ok").unwrap();
    // Another client (another connection) completes the second lease.
    let other = s.client(&s.tcp());
    other.complete(held[1].token, b"ok").unwrap();
    let st = other.stats("q").unwrap();
    assert_eq!((st.done, st.leased), (2, 0));
    assert_eq!(
        other.get_task("q", old.offset).unwrap().result.as_deref(),
        Some(&b"ok"[..])
    );
}

#[test]
fn a_wrong_or_missing_token_is_a_clear_error() {
    let s = Served::new();
    for (uri, token) in [
        (s.unix(), Some("wrong")),
        (s.tcp(), Some("wrong")),
        (s.tcp(), None),
    ] {
        let t0 = Instant::now();
        let o = ClientOptions {
            token: token.map(str::to_string),
            ..opts(Duration::from_secs(20))
        };
        let e = Client::connect(&uri, o).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
        let m = e.to_string();
        assert!(
            m.contains("refused the connection") && m.contains("token"),
            "{m}"
        );
    }
}

#[test]
fn close_finishes_and_later_calls_are_closed() {
    let s = Served::new();
    let c = s.client(&s.unix());
    c.create_queue("q", QueueConfig::default()).unwrap();
    Engine::close(&c).unwrap();
    Engine::close(&c).unwrap();
    assert_eq!(c.list_queues().unwrap_err(), Error::Closed);
    assert_eq!(c.ping().unwrap_err(), Error::Closed);
    // Closing from one thread while another waits in a claim: as with the
    // local engine, the waiting claim is woken with Closed at once, and
    // close does not wait for it.
    let c = s.client(&s.unix());
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let t0 = Instant::now();
            let r = c.claim(
                "q",
                "w",
                ClaimOptions {
                    wait: Duration::from_secs(10),
                    ..ClaimOptions::default()
                },
            );
            (r, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        c.close();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let (r, took) = h.join().unwrap();
        assert_eq!(r, Err(Error::Closed));
        assert!(took < Duration::from_secs(3), "{took:?}");
    });
    assert_eq!(c.stats("q").unwrap_err(), Error::Closed);
}
