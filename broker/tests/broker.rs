//! The broker over raw sockets: hello and tokens, every operation over
//! Unix and TCP, framing errors, limits, pipelining, leases that outlive
//! connections, and graceful shutdown.

// The engine tests' helpers (temp dirs, manual clocks), shared, not copied.
#[path = "../../core/tests/common/mod.rs"]
mod common;

use common::TempDir;
use ordq_broker::{Broker, BrokerConfig, Listen};
use ordq_core::{Db, ErrorCode, Options, QueueConfig};
use ordq_wire::protocol::PROTOCOL_VERSION;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-token";

/// A raw protocol connection: frames in, JSON values out.
struct Raw {
    w: Box<dyn Write + Send>,
    r: BufReader<Box<dyn Read + Send>>,
    next_id: u64,
}

impl Raw {
    fn connect(uri: &str) -> Raw {
        let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) =
            if let Some(p) = uri.strip_prefix("unix://") {
                let s = UnixStream::connect(p).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                (Box::new(s.try_clone().unwrap()), Box::new(s))
            } else {
                let s = TcpStream::connect(uri.strip_prefix("tcp://").unwrap()).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.set_nodelay(true).unwrap();
                (Box::new(s.try_clone().unwrap()), Box::new(s))
            };
        Raw {
            w,
            r: BufReader::new(r),
            next_id: 1,
        }
    }

    /// Connects and says hello with `token`; asserts the answer.
    fn hello(uri: &str, token: Option<&str>) -> Raw {
        let mut c = Raw::connect(uri);
        let ok = c.call(
            "hello",
            json!({"protocol": PROTOCOL_VERSION, "client": "raw-test", "runtime": "rust", "token": token}),
        );
        assert_eq!(ok["ok"]["protocol"], PROTOCOL_VERSION, "{ok}");
        c
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).unwrap();
    }

    /// Writes raw bytes, returning the write error (a refused connection may
    /// be closed by the broker before the write).
    fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.write_all(bytes)?;
        self.w.flush()
    }

    /// Sends a request; returns its id.
    fn send(&mut self, op: &str, args: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut f = serde_json::to_vec(&json!({"id": id, "op": op, "args": args})).unwrap();
        f.push(b'\n');
        self.send_raw(&f);
        id
    }

    /// The next frame, or `None` at end of stream.
    fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.r.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Sends and waits for the answer with the same id.
    fn call(&mut self, op: &str, args: Value) -> Value {
        let id = self.send(op, args);
        let v = self.recv().expect("an answer");
        assert_eq!(v["id"], id, "{v}");
        v
    }

    /// Like `call`, asserting success; returns the `ok` value.
    fn ok(&mut self, op: &str, args: Value) -> Value {
        let v = self.call(op, args);
        assert!(v.get("error").is_none(), "{op}: {v}");
        v["ok"].clone()
    }

    /// Asserts the stream ends (the broker closed it).
    fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected {rest:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
}

fn code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

fn queue_config() -> Value {
    serde_json::to_value(QueueConfig::default()).unwrap()
}

struct Env {
    dir: TempDir,
    db: Db,
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = TempDir::new(tag);
        let db = Db::open(dir.join("db.ordq"), Options::default()).unwrap();
        Env { dir, db }
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("s.sock")
    }

    fn unix(&self) -> Listen {
        Listen::Unix(self.sock())
    }

    fn start(&self, cfg: BrokerConfig) -> Broker {
        Broker::start(self.db.clone(), cfg).unwrap()
    }

    /// A broker on a Unix socket and loopback TCP, with the token.
    fn both(&self) -> Broker {
        self.start(BrokerConfig {
            listen: vec![self.unix(), Listen::parse("tcp://127.0.0.1:0").unwrap()],
            token: Some(TOKEN.into()),
            ..BrokerConfig::default()
        })
    }

    /// A broker on the Unix socket only, without a token.
    fn unix_only(&self, f: impl FnOnce(&mut BrokerConfig)) -> Broker {
        let mut cfg = BrokerConfig {
            listen: vec![self.unix()],
            ..BrokerConfig::default()
        };
        f(&mut cfg);
        self.start(cfg)
    }
}

/// Runs every operation once on `c`, checking the shape of each answer.
fn every_op(c: &mut Raw, q: &str) {
    assert_eq!(c.ok("ping", json!({})), json!({}));
    let info = c.ok(
        "create_queue",
        json!({"queue": q, "config": queue_config()}),
    );
    assert_eq!(info["name"], q);
    assert_eq!(c.ok("get_queue", json!({"queue": q}))["name"], q);
    assert!(c
        .ok("list_queues", json!({}))
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == q));
    let r = c.ok(
        "enqueue",
        json!({"queue": q, "items": [
            {"key": "a", "payload": "aGVsbG8="},
            {"key": "b", "payload": "", "headers": {"h": "v"}},
            {"key": "c", "payload": "eA=="}
        ]}),
    );
    assert_eq!(r.as_array().unwrap().len(), 3);
    assert_eq!(r[0]["offset"], 0);
    assert_eq!(c.ok("sync", json!({})), json!({}));
    let leases = c.ok("claim", json!({"queue": q, "worker": "w1", "max": 3}));
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.len(), 3);
    assert_eq!(leases[0]["payload"], "aGVsbG8=");
    let (t0, t1, t2) = (
        leases[0]["token"].clone(),
        leases[1]["token"].clone(),
        leases[2]["token"].clone(),
    );
    let hb = c.ok("heartbeat", json!({"token": t0, "lease_ms": 60000}));
    assert!(hb["expires_at"].as_u64().unwrap() > 0);
    assert_eq!(c.ok("start", json!({"token": t0})), json!({}));
    let done = c.ok(
        "complete",
        json!({"items": [{"token": t0, "result": "b2s="}]}),
    );
    assert_eq!(done[0]["ok"]["offset"], 0);
    let again = c.ok(
        "complete",
        json!({"items": [{"token": t0}, {"token": {"queue_id": 999, "offset": 0, "fence": 1}}]}),
    );
    assert_eq!(again[0]["ok"]["duplicate"], true);
    assert!(again[1]["error"]["code"].is_i64(), "{again}");
    let f = c.ok(
        "fail",
        json!({"token": t1, "error": "boom", "retryable": false}),
    );
    assert_eq!(f["outcome"], "dead");
    assert_eq!(c.ok("release", json!({"token": t2})), json!({}));
    let task = c.ok("get_task", json!({"queue": q, "offset": 0}));
    assert_eq!(task["state"], "done");
    assert_eq!(task["result"], "b2s=");
    let faults = c.ok("faults", json!({"queue": q, "offset": 1}));
    assert_eq!(faults[0]["error"], "boom");
    let st = c.ok("stats", json!({"queue": q}));
    assert_eq!(st["dead"], 1);
    assert_eq!(st["ready"], 1);
    let p = c.ok("pending", json!({"queue": q}));
    assert_eq!(p.as_array().unwrap().len(), 1, "{p}");
    assert_eq!(
        (&p[0]["offset"], &p[0]["state"]),
        (&json!(2), &json!("ready"))
    );
    assert_eq!(p[0]["payload"], "eA==");
    assert_eq!(c.ok("pending", json!({"queue": q, "after": 2})), json!([]));
    let dl = c.ok("dlq_list", json!({"queue": q}));
    assert_eq!(dl[0]["offset"], 1);
    let d = c.ok("dlq_get", json!({"queue": q, "offset": 1}));
    assert_eq!(d["task"]["offset"], 1);
    assert_eq!(d["faults"][0]["error"], "boom");
    let rr = c.ok(
        "dlq_redrive",
        json!({"queue": q, "offset": 1, "mode": "new_offset"}),
    );
    assert_eq!(rr["offset"], 3);
    // Dead-letter the redriven copy, then purge it.
    let l = c.ok("claim", json!({"queue": q, "worker": "w1", "max": 5}));
    let t = l
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["offset"] == 3)
        .unwrap()["token"]
        .clone();
    c.ok(
        "fail",
        json!({"token": t, "error": "again", "retryable": false}),
    );
    assert_eq!(c.ok("dlq_purge", json!({"queue": q}))["purged"], 1);
    assert_eq!(c.ok("delete_queue", json!({"queue": q})), json!({}));
    let gone = c.call("get_queue", json!({"queue": q}));
    assert_eq!(code(&gone), ErrorCode::NotFound.as_i32() as i64);
    assert_eq!(gone["error"]["name"], "NOT_FOUND");
}

#[test]
fn every_op_over_unix_and_tcp() {
    let env = Env::new("broker-ops");
    let b = env.both();
    let addrs = b.addrs();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0], format!("unix://{}", env.sock().display()));
    assert!(addrs[1].starts_with("tcp://127.0.0.1:") && !addrs[1].ends_with(":0"));
    for (i, a) in addrs.iter().enumerate() {
        let mut c = Raw::hello(a, Some(TOKEN));
        every_op(&mut c, &format!("q{i}"));
    }
    b.shutdown().unwrap();
    assert!(
        !env.sock().exists(),
        "the socket file is removed on shutdown"
    );
}

#[test]
fn a_request_before_hello_gets_an_error_and_the_connection_closes() {
    let env = Env::new("broker-nohello");
    let b = env.unix_only(|_| {});
    let uri = &b.addrs()[0];
    let mut c = Raw::connect(uri);
    c.send("ping", json!({}));
    let v = c.recv().unwrap();
    assert!(v.get("id").is_none(), "{v}");
    assert_eq!(code(&v), ErrorCode::InvalidArgument.as_i32() as i64);
    assert!(v["error"]["message"].as_str().unwrap().contains("hello"));
    c.assert_closed();
    b.shutdown().unwrap();
}

#[test]
fn a_bad_or_missing_token_closes_within_a_second() {
    let env = Env::new("broker-token");
    let b = env.both();
    for uri in b.addrs() {
        for token in [
            None,
            Some("wrong"),
            Some("s3cret-token-but-longer"),
            Some(""),
        ] {
            let t0 = Instant::now();
            let mut c = Raw::connect(&uri);
            c.send(
                "hello",
                json!({"protocol": PROTOCOL_VERSION, "client": "t", "runtime": "r", "token": token}),
            );
            let v = c.recv().unwrap();
            assert!(v.get("id").is_none(), "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("token"),
                "{v}"
            );
            c.assert_closed();
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        }
        // The right token still works.
        let mut c = Raw::hello(&uri, Some(TOKEN));
        c.ok("ping", json!({}));
    }
    b.shutdown().unwrap();
}

#[test]
fn the_socket_is_private() {
    let env = Env::new("broker-mode");
    let b = env.unix_only(|_| {});
    let mode = std::fs::metadata(env.sock()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    b.shutdown().unwrap();
}

#[test]
fn a_wrong_protocol_version_is_refused_and_closed() {
    let env = Env::new("broker-proto");
    let b = env.unix_only(|_| {});
    let mut c = Raw::connect(&b.addrs()[0]);
    c.send(
        "hello",
        json!({"protocol": PROTOCOL_VERSION + 1, "client": "future"}),
    );
    let v = c.recv().unwrap();
    assert_eq!(code(&v), ErrorCode::InvalidArgument.as_i32() as i64);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("protocol version"),
        "{v}"
    );
    c.assert_closed();
    b.shutdown().unwrap();
}

#[test]
fn hello_must_come_in_time_and_only_once() {
    let env = Env::new("broker-hellotime");
    let b = env.unix_only(|c| c.hello_timeout = Duration::from_millis(300));
    let t0 = Instant::now();
    let mut c = Raw::connect(&b.addrs()[0]);
    let v = c.recv().unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("no hello"),
        "{v}"
    );
    c.assert_closed();
    assert!(t0.elapsed() >= Duration::from_millis(250) && t0.elapsed() < Duration::from_secs(3));
    // A second hello is an ordinary error; the connection stays.
    let mut c = Raw::hello(&b.addrs()[0], None);
    let v = c.call("hello", json!({"protocol": PROTOCOL_VERSION}));
    assert_eq!(code(&v), ErrorCode::InvalidArgument.as_i32() as i64);
    c.ok("ping", json!({}));
    b.shutdown().unwrap();
}

#[test]
fn tcp_needs_a_token_and_loopback_unless_allowed() {
    let env = Env::new("broker-tcp");
    let tcp = |a: &str| Listen::parse(a).unwrap();
    let e = Broker::start(
        env.db.clone(),
        BrokerConfig {
            listen: vec![tcp("tcp://127.0.0.1:0")],
            ..BrokerConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("without a token"), "{e}");
    let remote = BrokerConfig {
        listen: vec![tcp("tcp://0.0.0.0:0")],
        token: Some(TOKEN.into()),
        ..BrokerConfig::default()
    };
    let e = Broker::start(env.db.clone(), remote.clone()).unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    let e = Broker::start(
        env.db.clone(),
        BrokerConfig {
            listen: vec![env.unix()],
            http: Some("0.0.0.0:0".parse().unwrap()),
            ..BrokerConfig::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    // Nothing was left behind by the refused starts.
    assert!(!env.sock().exists());
    let b = Broker::start(
        env.db.clone(),
        BrokerConfig {
            allow_remote: true,
            ..remote
        },
    )
    .unwrap();
    let port = b.addrs()[0].rsplit(':').next().unwrap().to_string();
    let mut c = Raw::hello(&format!("tcp://127.0.0.1:{port}"), Some(TOKEN));
    c.ok("ping", json!({}));
    b.shutdown().unwrap();
}

#[test]
fn listen_addresses_parse_strictly() {
    assert_eq!(
        Listen::parse("unix:///run/ordq/ordq.sock").unwrap(),
        Listen::Unix("/run/ordq/ordq.sock".into())
    );
    assert_eq!(
        Listen::parse("tcp://127.0.0.1:7420").unwrap(),
        Listen::Tcp("127.0.0.1:7420".parse().unwrap())
    );
    assert_eq!(
        Listen::parse("tcp://127.0.0.1:7420").unwrap().to_string(),
        "tcp://127.0.0.1:7420"
    );
    let long = format!("unix:///{}", "x".repeat(200));
    for bad in [
        "unix://relative.sock",
        "unix://@abstract",
        "unix:///dir/",
        "unix:///a\0b",
        long.as_str(),
        "tcp://127.0.0.1",
        "tcp://:x",
        "http://127.0.0.1:80",
        "/plain/path",
        "",
    ] {
        let e = Listen::parse(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad:?}");
    }
}

#[test]
fn an_unsafe_socket_directory_is_refused() {
    let env = Env::new("broker-dir");
    let open = env.dir.join("open");
    std::fs::create_dir(&open).unwrap();
    for mode in [0o777, 0o775, 0o1777] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Broker::start(
            env.db.clone(),
            BrokerConfig {
                listen: vec![Listen::Unix(open.join("s.sock"))],
                ..BrokerConfig::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("group- or world-writable"), "{e}");
        assert!(!open.join("s.sock").exists());
    }
    let e = Broker::start(
        env.db.clone(),
        BrokerConfig {
            listen: vec![Listen::Unix(env.dir.join("missing/s.sock"))],
            ..BrokerConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
}

#[test]
fn a_live_socket_is_never_taken_over_but_a_stale_one_is_replaced() {
    let env = Env::new("broker-steal");
    // A stale socket file (its listener is gone) is replaced.
    drop(std::os::unix::net::UnixListener::bind(env.sock()).unwrap());
    assert!(env.sock().exists());
    let b = env.unix_only(|_| {});
    let mut c = Raw::hello(&b.addrs()[0], None);
    // A second broker on the same path is refused; the first keeps serving.
    let other = Db::open(env.dir.join("other.ordq"), Options::default()).unwrap();
    let e = Broker::start(
        other.clone(),
        BrokerConfig {
            listen: vec![env.unix()],
            ..BrokerConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists, "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
    c.ok("ping", json!({}));
    let mut c2 = Raw::hello(&b.addrs()[0], None);
    c2.ok("ping", json!({}));
    b.shutdown().unwrap();
    // A regular file at the path is never removed.
    std::fs::write(env.sock(), b"keep me").unwrap();
    let e = Broker::start(
        other,
        BrokerConfig {
            listen: vec![env.unix()],
            ..BrokerConfig::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read(env.sock()).unwrap(), b"keep me");
}

#[test]
fn bad_requests_get_errors_and_the_connection_keeps_working() {
    let env = Env::new("broker-bad");
    let b = env.unix_only(|_| {});
    let mut c = Raw::hello(&b.addrs()[0], None);
    c.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    // Not JSON: an error without id.
    c.send_raw(b"{this is not json\n");
    let v = c.recv().unwrap();
    assert!(v.get("id").is_none(), "{v}");
    assert_eq!(code(&v), ErrorCode::InvalidArgument.as_i32() as i64);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{v}"
    );
    // JSON with an id but no op: the error carries the id.
    c.send_raw(b"{\"id\": 77, \"args\": {}}\n");
    assert_eq!(c.recv().unwrap()["id"], 77);
    // Not UTF-8.
    c.send_raw(b"\xff\xfe\xfd\n");
    assert!(c.recv().unwrap()["error"].is_object());
    // Blank lines are ignored.
    c.send_raw(b"\n  \r\n");
    // Unknown op.
    let v = c.call("frobnicate", json!({}));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown op"),
        "{v}"
    );
    // Wrong argument types.
    for (op, args) in [
        ("claim", json!({"queue": 5, "worker": "w"})),
        (
            "enqueue",
            json!({"queue": "q", "items": [{"key": "k", "payload": "@@not base64"}]}),
        ),
        ("enqueue", json!({"queue": "q", "items": "nope"})),
        ("heartbeat", json!({"token": "abc"})),
        (
            "complete",
            json!({"items": [{"token": {"queue_id": -1, "offset": 0, "fence": 0}}]}),
        ),
        ("get_task", json!({"queue": "q", "offset": "0"})),
        (
            "dlq_redrive",
            json!({"queue": "q", "offset": 0, "mode": "sideways"}),
        ),
        ("ping", json!([1, 2])),
    ] {
        let v = c.call(op, args);
        assert_eq!(
            code(&v),
            ErrorCode::InvalidArgument.as_i32() as i64,
            "{op}: {v}"
        );
    }
    // Engine-level errors come back with their codes.
    let v = c.call("claim", json!({"queue": "q", "worker": "", "max": 1}));
    assert_eq!(code(&v), ErrorCode::InvalidArgument.as_i32() as i64);
    let v = c.call("stats", json!({"queue": "nope"}));
    assert_eq!(v["error"]["name"], "NOT_FOUND");
    let v = c.call(
        "complete",
        json!({"items": [{"token": {"queue_id": 1, "offset": 0, "fence": 1}}]}),
    );
    assert_eq!(v["ok"][0]["error"]["name"], "LEASE_LOST", "{v}");
    // Still alive.
    c.ok(
        "enqueue",
        json!({"queue": "q", "items": [{"key": "k", "payload": ""}]}),
    );
    b.shutdown().unwrap();
}

#[test]
fn an_oversized_frame_closes_only_its_own_connection() {
    let env = Env::new("broker-big");
    let b = env.unix_only(|c| c.max_frame = 4096);
    let uri = b.addrs()[0].clone();
    let mut other = Raw::hello(&uri, None);
    other.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    // A frame of `len` bytes, newline included.
    let frame = |len: usize| {
        let head = "{\"id\":9,\"op\":\"ping\",\"args\":{},\"p\":\"";
        let tail = "\"}\n";
        format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
    };
    // A frame just over the limit is refused and its connection closed...
    let mut c = Raw::hello(&uri, None);
    c.send_raw(frame(4097).as_bytes());
    let v = c.recv().unwrap();
    assert!(v.get("id").is_none(), "{v}");
    assert_eq!(v["error"]["name"], "TOO_LARGE");
    c.assert_closed();
    // Before hello, a frame may be 64 KiB at most, whatever the limit.
    let big = Env::new("broker-big-hello");
    let b2 = big.unix_only(|_| {});
    let mut c = Raw::connect(&b2.addrs()[0]);
    c.send_raw(&vec![b' '; 65 << 10]);
    let v = c.recv().unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("65536"),
        "{v}"
    );
    c.assert_closed();
    b2.shutdown().unwrap();
    // ...and one exactly at the limit is served.
    let mut c = Raw::hello(&uri, None);
    c.send_raw(frame(4096).as_bytes());
    assert_eq!(c.recv().unwrap()["id"], 9);
    // An endless line is cut off while reading (never buffered whole).
    let mut c = Raw::hello(&uri, None);
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0;
    while sent < (64 << 20) {
        if c.w.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(
        sent < (64 << 20),
        "the broker kept reading an endless frame"
    );
    assert_eq!(c.recv().unwrap()["error"]["name"], "TOO_LARGE");
    // The other client never noticed.
    other.ok(
        "enqueue",
        json!({"queue": "q", "items": [{"key": "k", "payload": ""}]}),
    );
    other.ok("ping", json!({}));
    b.shutdown().unwrap();
}

#[test]
fn pipelined_requests_are_all_answered_with_their_ids() {
    let env = Env::new("broker-pipe");
    let b = env.unix_only(|_| {});
    let mut c = Raw::hello(&b.addrs()[0], None);
    c.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    let mut all = Vec::new();
    let first = c.next_id;
    for i in 0..200u64 {
        let f = json!({"id": first + i, "op": "enqueue",
            "args": {"queue": "q", "items": [{"key": format!("k{}", i % 7), "payload": "eA=="}]}});
        all.extend_from_slice(serde_json::to_string(&f).unwrap().as_bytes());
        all.push(b'\n');
    }
    c.send_raw(&all);
    let mut seen = std::collections::BTreeSet::new();
    let mut offsets = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let v = c.recv().unwrap();
        assert!(v.get("error").is_none(), "{v}");
        seen.insert(v["id"].as_u64().unwrap());
        offsets.insert(v["ok"][0]["offset"].as_u64().unwrap());
    }
    assert_eq!(seen, (first..first + 200).collect());
    assert_eq!(offsets, (0..200).collect());
    c.next_id = first + 200;
    assert_eq!(c.ok("stats", json!({"queue": "q"}))["ready"], 200);
    b.shutdown().unwrap();
}

#[test]
fn a_waiting_claim_blocks_nobody_else() {
    let env = Env::new("broker-wait");
    let b = env.unix_only(|_| {});
    let uri = b.addrs()[0].clone();
    let mut a = Raw::hello(&uri, None);
    a.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    // Ten long claims on one connection...
    for _ in 0..10 {
        a.send(
            "claim",
            json!({"queue": "q", "worker": "a", "wait_ms": 20000}),
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    // ...while other connections (and this one) are served at once.
    let t0 = Instant::now();
    let mut other = Raw::hello(&uri, None);
    other.ok("ping", json!({}));
    other.ok(
        "enqueue",
        json!({"queue": "q", "items": [{"key": "k", "payload": ""}]}),
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The enqueue wakes exactly one waiting claim.
    let v = a.recv().unwrap();
    assert_eq!(v["ok"].as_array().unwrap().len(), 1, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Shutdown ends the other nine waits within about a second.
    let t1 = Instant::now();
    b.shutdown().unwrap();
    for _ in 0..9 {
        assert_eq!(a.recv().unwrap()["ok"], json!([]));
    }
    a.assert_closed();
    assert!(t1.elapsed() < Duration::from_secs(5), "{:?}", t1.elapsed());
}

#[test]
fn the_in_flight_limit_only_slows_its_own_connection() {
    let env = Env::new("broker-inflight");
    let b = env.unix_only(|c| c.max_inflight = 2);
    let uri = b.addrs()[0].clone();
    let mut a = Raw::hello(&uri, None);
    assert_eq!(a.call("ping", json!({}))["id"], 2);
    a.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    let t0 = Instant::now();
    a.send(
        "claim",
        json!({"queue": "q", "worker": "a", "wait_ms": 800}),
    );
    a.send(
        "claim",
        json!({"queue": "q", "worker": "a", "wait_ms": 800}),
    );
    let ping = a.send("ping", json!({}));
    // Another connection is not held up...
    let mut other = Raw::hello(&uri, None);
    other.ok("ping", json!({}));
    assert!(t0.elapsed() < Duration::from_millis(500));
    // ...but this one's ping waits for a free slot: it is read only once
    // a claim has been answered.
    let mut order = Vec::new();
    let mut ping_at = None;
    for _ in 0..3 {
        let id = a.recv().unwrap()["id"].as_u64().unwrap();
        if id == ping {
            ping_at = Some(t0.elapsed());
        }
        order.push(id);
    }
    assert_ne!(order[0], ping, "{order:?}");
    let ping_at = ping_at.unwrap();
    assert!(ping_at >= Duration::from_millis(700), "{ping_at:?}");
    b.shutdown().unwrap();
}

#[test]
fn the_connection_limit_refuses_extra_clients() {
    let env = Env::new("broker-limit");
    let b = env.unix_only(|c| c.max_connections = 2);
    let uri = b.addrs()[0].clone();
    let mut c1 = Raw::hello(&uri, None);
    let _c2 = Raw::hello(&uri, None);
    let mut c3 = Raw::connect(&uri);
    let v = c3.recv().unwrap();
    assert_eq!(v["error"]["name"], "UNAVAILABLE");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("too many connections"));
    c3.assert_closed();
    c1.ok("ping", json!({}));
    drop(c1);
    // A freed place is usable again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Raw::connect(&uri);
        let hello = json!({"id": 1, "op": "hello",
            "args": {"protocol": PROTOCOL_VERSION, "client": "t"}});
        let mut frame = serde_json::to_vec(&hello).unwrap();
        frame.push(b'\n');
        // Until the broker has seen c1 go, it refuses: the refusal frame may
        // arrive (and the socket close) before our hello is written.
        let sent = c.try_send_raw(&frame);
        let v = c
            .recv()
            .expect("the broker answers or refuses, never just closes");
        if v.get("ok").is_some() {
            assert!(sent.is_ok());
            break;
        }
        assert_eq!(v["error"]["name"], "UNAVAILABLE", "{v}");
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(b
        .metrics()
        .contains("ordq_broker_connections_rejected_total{reason=\"limit\"} "));
    b.shutdown().unwrap();
}

#[test]
fn leases_outlive_their_connection() {
    let env = Env::new("broker-lease");
    let b = env.unix_only(|_| {});
    let uri = b.addrs()[0].clone();
    let mut a = Raw::hello(&uri, None);
    a.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    a.ok(
        "enqueue",
        json!({"queue": "q", "items": [{"key": "k1", "payload": ""}, {"key": "k2", "payload": ""}]}),
    );
    let l = a.ok(
        "claim",
        json!({"queue": "q", "worker": "w", "max": 2, "lease_ms": 60000}),
    );
    let (t1, t2) = (l[0]["token"].clone(), l[1]["token"].clone());
    drop(a);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Raw::hello(&uri, None);
    // Still leased: nothing to claim, and the worker can go on.
    assert_eq!(
        c.ok("claim", json!({"queue": "q", "worker": "x"})),
        json!([])
    );
    assert_eq!(c.ok("stats", json!({"queue": "q"}))["leased"], 2);
    c.ok("heartbeat", json!({"token": t1}));
    let done = c.ok("complete", json!({"items": [{"token": t1}]}));
    assert_eq!(done[0]["ok"]["duplicate"], false);
    // A superseded token is still fenced off.
    c.ok("release", json!({"token": t2}));
    let l = c.ok("claim", json!({"queue": "q", "worker": "x"}));
    assert_eq!(l[0]["offset"], 1);
    let stale = c.call("complete", json!({"items": [{"token": t2}]}));
    assert_eq!(stale["ok"][0]["error"]["name"], "LEASE_LOST", "{stale}");
    let stale = c.call("heartbeat", json!({"token": t2}));
    assert_eq!(stale["error"]["name"], "LEASE_LOST", "{stale}");
    b.shutdown().unwrap();
}

#[test]
fn shutdown_answers_in_flight_requests_then_closes() {
    let env = Env::new("broker-stop");
    let b = env.unix_only(|_| {});
    let uri = b.addrs()[0].clone();
    let mut c = Raw::hello(&uri, None);
    c.ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    c.ok(
        "create_queue",
        json!({"queue": "idle", "config": queue_config()}),
    );
    let claim = c.send(
        "claim",
        json!({"queue": "idle", "worker": "w", "wait_ms": 60000}),
    );
    for i in 0..50 {
        c.send(
            "enqueue",
            json!({"queue": "q", "items": [{"key": format!("k{i}"), "payload": ""}]}),
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    b.shutdown().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Every request read before the stop is answered, successfully; the
    // waiting claim (sent first) among them.
    let mut claim_answered = false;
    let mut enqueued = 0;
    while let Some(v) = c.recv() {
        assert!(v.get("error").is_none(), "{v}");
        if v["id"] == claim {
            assert_eq!(v["ok"], json!([]));
            claim_answered = true;
        } else {
            enqueued += 1;
        }
    }
    assert!(claim_answered);
    assert!(enqueued > 0);
    // New connections are refused, and the socket is gone.
    assert!(UnixStream::connect(env.sock()).is_err());
    // Everything answered is durable and the database still works.
    env.db.sync().unwrap();
    assert_eq!(env.db.stats("q").unwrap().totals.enqueued, enqueued);
}

#[test]
fn many_clients_share_group_commits() {
    let env = Env::new("broker-group");
    let b = env.unix_only(|_| {});
    let uri = b.addrs()[0].clone();
    Raw::hello(&uri, None).ok(
        "create_queue",
        json!({"queue": "q", "config": queue_config()}),
    );
    let (c0, o0) = env.db.writer_counters();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let uri = uri.clone();
            std::thread::spawn(move || {
                let mut c = Raw::hello(&uri, None);
                for i in 0..25 {
                    c.ok(
                        "enqueue",
                        json!({"queue": "q", "items": [{"key": format!("t{t}-{i}"), "payload": ""}]}),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (c1, o1) = env.db.writer_counters();
    let (commits, ops) = (c1 - c0, o1 - o0);
    assert!(ops >= 400, "{ops}");
    // 400 durable enqueues from 16 connections: far fewer commits.
    assert!(commits * 2 <= ops, "{commits} commits for {ops} operations");
    b.shutdown().unwrap();
}

#[test]
fn metrics_over_http() {
    let env = Env::new("broker-http");
    let b = env.unix_only(|c| c.http = Some("127.0.0.1:0".parse().unwrap()));
    let http = b.http_addr().unwrap();
    let mut c = Raw::hello(&b.addrs()[0], None);
    c.ok(
        "create_queue",
        json!({"queue": "jobs", "config": queue_config()}),
    );
    c.ok(
        "enqueue",
        json!({"queue": "jobs", "items": [{"key": "k", "payload": ""}]}),
    );
    c.call("stats", json!({"queue": "missing"}));
    // A stale complete is refused by fencing and counted as a rollback.
    let l = c.ok("claim", json!({"queue": "jobs", "worker": "w1"}));
    let mut stale = l[0]["token"].clone();
    stale["fence"] = json!(stale["fence"].as_u64().unwrap() + 1000);
    let r = c.ok("complete", json!({"items": [{"token": stale}]}));
    assert_eq!(r[0]["error"]["name"], "LEASE_LOST", "{r}");
    let get = |req: &[u8]| {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let m = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
    assert!(m.contains("text/plain; version=0.0.4"));
    for needle in [
        "ordq_broker_connections 1\n",
        "ordq_broker_connections_total 1\n",
        "ordq_broker_requests_total{op=\"enqueue\"} 1\n",
        "ordq_broker_requests_total{op=\"hello\"} 1\n",
        "ordq_broker_errors_total{code=\"NOT_FOUND\"} 1\n",
        "ordq_broker_request_seconds_count 6\n",
        "ordq_queue_leased{queue=\"jobs\"} 1\n",
        "ordq_queue_rollbacks_total{queue=\"jobs\"} 1\n",
        "ordq_queue_enqueued_total{queue=\"jobs\"} 1\n",
        "ordq_engine_commits_total ",
        "ordq_log_segments 1\n",
        "ordq_log_uncheckpointed_records ",
    ] {
        assert!(m.contains(needle), "{needle:?} missing in\n{m}");
    }
    // The log's size is the size of its one segment file.
    let log_bytes: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("ordq_log_bytes "))
        .expect("ordq_log_bytes")
        .parse()
        .unwrap();
    assert!(log_bytes >= 1 << 20, "{log_bytes}");
    // Every sample line is `name{labels} value` with a numeric value.
    let body = m.split("\r\n\r\n").nth(1).unwrap();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let v = line.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "{line}");
    }
    assert!(get(b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9000));
    assert!(get(&huge).starts_with("HTTP/1.1 431"));
    b.shutdown().unwrap();
    assert!(TcpStream::connect(http).is_err());
}
