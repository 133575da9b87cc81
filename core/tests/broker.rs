//! The broker over raw sockets: hello and tokens, every operation over
//! Unix and TCP, framing errors, limits, pipelining, leases that outlive
//! connections, and graceful shutdown.

mod common;

use common::TempDir;
use ordq_core::broker::{Broker, BrokerConfig, Listen};
use ordq_core::protocol::PROTOCOL_VERSION;
use ordq_core::{Db, ErrorCode, Options, QueueConfig};
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
        self.w.write_all(bytes).unwrap();
        self.w.flush().unwrap();
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
