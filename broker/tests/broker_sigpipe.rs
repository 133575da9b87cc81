//! The broker never raises SIGPIPE: answers written to a client that went
//! away are errors, even in a process with the default SIGPIPE action (an
//! embedding program may not ignore it). Its own test binary, since the
//! action is process-wide.

// The engine tests' helpers (temp dirs, manual clocks), shared, not copied.
#[path = "../../core/tests/common/mod.rs"]
mod common;

use common::TempDir;
use ordq_broker::{Broker, BrokerConfig, Listen};
use ordq_core::{Db, Options};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn hello(path: &std::path::Path) -> (UnixStream, BufReader<UnixStream>) {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"{\"id\":1,\"op\":\"hello\",\"args\":{\"protocol\":1}}\n")
        .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\""), "{line}");
    (s, r)
}

#[test]
fn answers_to_a_vanished_client_do_not_kill_the_process() {
    // SAFETY: restores the default action (terminate) for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let dir = TempDir::new("broker-sigpipe");
    let db = Db::open(dir.join("db.ordq"), Options::default()).unwrap();
    let sock = dir.join("s.sock");
    let b = Broker::start(
        db.clone(),
        BrokerConfig {
            listen: vec![Listen::Unix(sock.clone())],
            ..BrokerConfig::default()
        },
    )
    .unwrap();
    let cfg = serde_json::to_string(&ordq_core::QueueConfig::default()).unwrap();
    let (mut s, mut r) = hello(&sock);
    s.write_all(
        format!(
            "{{\"id\":2,\"op\":\"create_queue\",\"args\":{{\"queue\":\"q\",\"config\":{cfg}}}}}\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    // Claims that answer after their client has gone.
    for id in 3..10 {
        s.write_all(
            format!("{{\"id\":{id},\"op\":\"claim\",\"args\":{{\"queue\":\"q\",\"worker\":\"w\",\"wait_ms\":300}}}}\n")
                .as_bytes(),
        )
        .unwrap();
    }
    drop((s, r));
    std::thread::sleep(Duration::from_millis(600));
    // Still alive and serving.
    let (mut s, mut r) = hello(&sock);
    s.write_all(b"{\"id\":2,\"op\":\"ping\"}\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "{\"id\":2,\"ok\":{}}");
    b.shutdown().unwrap();
}
