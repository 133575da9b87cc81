//! `ordq serve` as a process: it serves, refuses unsafe configurations
//! with a clear one-line error, and on SIGTERM answers what is in flight,
//! exits 0 and leaves the data durable.

use ordq_core::{Db, Options};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static N: AtomicU32 = AtomicU32::new(0);

/// A private temp dir (mode 0755 from the default umask), removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d = std::env::temp_dir().join(format!(
            "ordq-serve-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            nanos % 1_000_000_000
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ordq(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ordq"));
    c.args(args).env_remove("ORDQ_DB");
    c
}

/// Starts `ordq serve` and waits for its "serving" line.
fn serve(db: &str, listen: &str) -> Child {
    let mut child = ordq(&["serve", "--db", db, "--listen", listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("ordq: serving ") && line.trim_end().ends_with(listen),
        "{line:?}"
    );
    child
}

fn send(s: &mut UnixStream, id: u64, op: &str, args: Value) {
    let mut f = serde_json::to_vec(&json!({"id": id, "op": op, "args": args})).unwrap();
    f.push(b'\n');
    s.write_all(&f).unwrap();
}

fn recv(r: &mut BufReader<UnixStream>) -> Option<Value> {
    let mut line = String::new();
    match r.read_line(&mut line).unwrap() {
        0 => None,
        _ => Some(serde_json::from_str(&line).unwrap()),
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let until = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().expect("exited normally");
        }
        assert!(Instant::now() < until, "ordq serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_answers_in_flight_requests_exits_0_and_the_data_is_durable() {
    let dir = Dir::new();
    let db = dir.0.join("db.ordq");
    let sock = dir.0.join("s.sock");
    let uri = format!("unix://{}", sock.display());
    let mut child = serve(db.to_str().unwrap(), &uri);

    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    send(
        &mut s,
        1,
        "hello",
        json!({"protocol": 1, "client": "t", "runtime": "r"}),
    );
    assert!(recv(&mut r).unwrap()["ok"].is_object());
    let cfg = serde_json::to_value(ordq_core::QueueConfig::default()).unwrap();
    send(
        &mut s,
        2,
        "create_queue",
        json!({"queue": "q", "config": cfg}),
    );
    assert!(recv(&mut r).unwrap()["ok"].is_object());
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"key": format!("k{i}"), "payload": "eA=="}))
        .collect();
    send(&mut s, 3, "enqueue", json!({"queue": "q", "items": items}));
    assert_eq!(recv(&mut r).unwrap()["ok"].as_array().unwrap().len(), 100);
    // A claim on another queue waits for work when SIGTERM comes.
    send(
        &mut s,
        4,
        "create_queue",
        json!({"queue": "empty", "config": cfg}),
    );
    assert!(recv(&mut r).unwrap()["ok"].is_object());
    send(
        &mut s,
        5,
        "claim",
        json!({"queue": "empty", "worker": "w", "wait_ms": 30000}),
    );
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    // The waiting claim is answered (empty), then the connection closes.
    let v = recv(&mut r).expect("the in-flight claim is answered");
    assert_eq!(v["id"], 5);
    assert_eq!(v["ok"], json!([]));
    assert!(recv(&mut r).is_none());
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), 0);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(!sock.exists(), "socket removed");

    let db = Db::open(&db, Options::default()).unwrap();
    assert_eq!(db.stats("q").unwrap().ready, 100);
}

#[test]
fn unsafe_configurations_are_refused_with_one_clear_line() {
    let dir = Dir::new();
    let db = dir.0.join("db.ordq");
    let db = db.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--listen", "tcp://127.0.0.1:0"], "without a token"),
        (&["--listen", "unix://relative.sock"], "absolute"),
        (&["--listen", "http://x"], "unsupported listen address"),
    ];
    for (args, needle) in cases {
        let out = ordq(&["serve", "--db", db]).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // A non-loopback address needs --allow-remote (and a token).
    let token = dir.0.join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let out = ordq(&["serve", "--db", db, "--listen", "tcp://0.0.0.0:0"])
        .arg("--token-file")
        .arg(&token)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{err}");
    assert!(err.contains("--allow-remote"), "{err}");
    // Missing --listen is a usage error.
    assert_eq!(
        ordq(&["serve", "--db", db]).output().unwrap().status.code(),
        Some(2)
    );
    assert!(
        !std::path::Path::new(db).exists(),
        "a refused serve leaves no database behind"
    );
    // --must-exist: a missing database is NOT_FOUND (exit 12), none made.
    let sock = dir.0.join("s.sock");
    let listen = format!("unix://{}", sock.display());
    let out = ordq(&["serve", "--db", db, "--listen", &listen, "--must-exist"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(12), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!std::path::Path::new(db).exists());
}

#[test]
fn token_file_tcp_and_metrics_flags_work() {
    let dir = Dir::new();
    let db = dir.0.join("db.ordq");
    let token = dir.0.join("token");
    std::fs::write(&token, "t0ken-from-file\n").unwrap();
    let mut child = ordq(&["serve", "--db", db.to_str().unwrap()])
        .args(["--listen", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--token-file")
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = [String::new(), String::new()];
    for l in &mut lines {
        out.read_line(l).unwrap();
    }
    let tcp = lines[0].trim().rsplit("tcp://").next().unwrap().to_string();
    let http = lines[1]
        .trim()
        .strip_prefix("ordq: metrics on http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_string();
    let hello = |token: &str| {
        let s = std::net::TcpStream::connect(&tcp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let f = json!({"id": 1, "op": "hello", "args": {"protocol": 1, "token": token}});
        w.write_all(format!("{f}\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    };
    // The trailing newline of the file is not part of the token.
    assert!(hello("t0ken-from-file")["ok"].is_object());
    assert_eq!(hello("t0ken-from-file\n")["error"]["code"], 1);
    assert_eq!(hello("wrong")["error"]["code"], 1);
    let mut s = std::net::TcpStream::connect(&http).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut m = String::new();
    std::io::Read::read_to_string(&mut s, &mut m).unwrap();
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.contains("ordq_broker_connections_rejected_total{reason=\"auth\"} 2"),
        "{m}"
    );
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), 0);
}
