//! The client never raises SIGPIPE: writing to a broker connection whose
//! other end has gone is an error, even in a process with the default
//! SIGPIPE action (a C or Go program embedding libordq may not ignore it).
//! Its own test binary, since the action is process-wide.

// The engine tests' helpers (temp dirs, manual clocks), shared, not copied.
#[path = "../../core/tests/common/mod.rs"]
mod common;

use common::TempDir;
use ordq_core::{Engine, ErrorCode};
use ordq_wire::client::{Client, ClientOptions};
use ordq_wire::protocol::{encode_ok, HelloOk, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

#[test]
fn writes_to_a_vanished_broker_do_not_kill_the_process() {
    // SAFETY: restores the default action (terminate) for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let dir = TempDir::new("client-sigpipe");
    let path = dir.join("s.sock");
    let l = UnixListener::bind(&path).unwrap();
    // A "broker" that answers hello, then closes every connection at once.
    let server = std::thread::spawn(move || {
        let mut served = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let mut line = String::new();
            if BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap_or(0)
                == 0
            {
                break; // the test's shutdown knock
            }
            let ok = HelloOk {
                protocol: PROTOCOL_VERSION,
                server: "vanishing".into(),
                max_frame: 1 << 20,
                max_inflight: 16,
            };
            // A client that gave up on its hello is gone already.
            if s.write_all(&encode_ok(0, &ok)).is_ok() {
                served += 1;
            }
        }
        served
    });
    let o = ClientOptions {
        timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let c = Client::connect(&format!("unix://{}", path.display()), o).unwrap();
    let t0 = Instant::now();
    for _ in 0..3 {
        let e = c.list_queues().unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    Engine::close(&c).unwrap();
    // Knock once without hello so the server thread ends.
    drop(std::os::unix::net::UnixStream::connect(&path).unwrap());
    assert!(server.join().unwrap() >= 2, "the client reconnected");
}
