//! A minimal HTTP/1.1 responder for `GET /metrics` (Prometheus text).
//! One request per connection, an 8 KiB request limit, 2 s timeouts, and
//! at most a few connections served at once; anything else is 404/405.

use super::{wait_readable, Shared};
use ordq_core::error::{Error, Result};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request head read.
const MAX_REQUEST: usize = 8 << 10;
/// Read and write deadline of one exchange.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Exchanges served at once; more get 503 at once.
const MAX_ACTIVE: usize = 8;

/// Binds the HTTP listener.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let l = TcpListener::bind(addr).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            Error::AlreadyExists(format!("http://{addr} is in use"))
        } else {
            Error::Io(format!("cannot listen on http://{addr}: {e}"))
        }
    })?;
    l.set_nonblocking(true)
        .map_err(|e| Error::Io(format!("http://{addr}: {e}")))?;
    Ok(l)
}

/// Accepts and answers until the broker stops.
pub(crate) fn serve(shared: Arc<Shared>, listener: TcpListener, wake: RawFd) {
    let active = Arc::new(AtomicUsize::new(0));
    while wait_readable(listener.as_raw_fd(), wake, &shared.stopping) {
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    if active.fetch_add(1, Ordering::AcqRel) >= MAX_ACTIVE {
                        active.fetch_sub(1, Ordering::AcqRel);
                        let _ = s.set_nonblocking(true);
                        respond(&s, "503 Service Unavailable", "too busy\n", false);
                        continue;
                    }
                    let (shared, active2) = (shared.clone(), active.clone());
                    let spawned = std::thread::Builder::new()
                        .name("ordq-broker-http".into())
                        .stack_size(super::CONN_STACK)
                        .spawn(move || {
                            exchange(&shared, s);
                            active2.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
        }
    }
}

/// Reads the request head: `Ok(None)` when it is too large.
fn read_head(s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let until = Instant::now() + TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_REQUEST {
            return Ok(None);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    Ok(Some(head))
}

fn respond(mut s: &TcpStream, status: &str, body: &str, head_only: bool) {
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if status.starts_with("200") {
            "text/plain; version=0.0.4; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        },
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    if !head_only {
        let _ = s.write_all(body.as_bytes());
    }
    let _ = s.flush();
}

fn exchange(shared: &Shared, mut s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let head = match read_head(&mut s) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return respond(
                &s,
                "431 Request Header Fields Too Large",
                "request too large\n",
                false,
            )
        }
        Err(_) => return,
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&s, "405 Method Not Allowed", "only GET\n", false);
    }
    if path != "/metrics" {
        return respond(&s, "404 Not Found", "not found; try /metrics\n", head_only);
    }
    let body = shared.metrics.render(&shared.db, shared.pool.threads());
    respond(&s, "200 OK", &body, head_only);
}
