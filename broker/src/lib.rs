//! The broker: serves one [`ordq_core::Db`] to many processes over the wire
//! protocol ([`ordq_wire::protocol`]) on Unix sockets and TCP.
//!
//! ```no_run
//! use ordq_broker::{Broker, BrokerConfig, Listen};
//! use ordq_core::{Db, Options};
//! let db = Db::open("jobs.ordq", Options::default())?;
//! let cfg = BrokerConfig {
//!     listen: vec![Listen::parse("unix:///run/ordq/ordq.sock")?],
//!     ..BrokerConfig::default()
//! };
//! let broker = Broker::start(db, cfg)?;
//! println!("serving on {:?}", broker.addrs());
//! // ... later, e.g. on SIGTERM:
//! broker.shutdown()?;
//! # Ok::<(), ordq_core::Error>(())
//! ```
//!
//! Threads: one accept thread per listener, a reader and a writer thread
//! per connection, and an elastic pool that runs the engine calls, so
//! requests from every connection reach the engine's writer together and
//! share its group commits. Leases belong to workers, not connections: a
//! connection that drops releases nothing.

#![warn(missing_docs)]

mod conn;
mod dispatch;
mod http;
mod listen;
mod metrics;
mod pool;

pub use listen::Listen;

use listen::{is_loopback, Listener, Stream};
use metrics::{Metrics, Reject};
use ordq_core::error::{Error, Result};
use ordq_core::Db;
use ordq_wire::protocol::DEFAULT_MAX_FRAME;
use pool::Pool;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stack size of connection threads (they only frame and copy bytes).
const CONN_STACK: usize = 256 << 10;
/// How long a graceful shutdown waits for in-flight requests before it
/// closes the remaining connections.
const DRAIN: Duration = Duration::from_secs(10);
/// Smallest accepted `max_frame`: room for any request without payload.
const MIN_FRAME: usize = 1024;

/// How the broker serves: where, with which secret, within which limits.
#[derive(Clone)]
pub struct BrokerConfig {
    /// Addresses to listen on (at least one).
    pub listen: Vec<Listen>,
    /// Shared secret every `hello` must carry; required for TCP.
    pub token: Option<String>,
    /// Largest request frame, bytes, newline included.
    pub max_frame: usize,
    /// Most connections open at once; more are refused.
    pub max_connections: usize,
    /// Most requests one connection may have in flight; past that the
    /// broker stops reading from it until answers are written.
    pub max_inflight: usize,
    /// How long a new connection has to send `hello`.
    pub hello_timeout: Duration,
    /// Address of the HTTP endpoint serving `GET /metrics`.
    pub http: Option<SocketAddr>,
    /// Allows TCP and HTTP addresses other than loopback.
    pub allow_remote: bool,
}

impl Default for BrokerConfig {
    /// No listeners, no token, 4 MiB frames, 1024 connections, 256
    /// requests in flight per connection, a 5 s hello timeout, no HTTP,
    /// loopback only.
    fn default() -> Self {
        BrokerConfig {
            listen: Vec::new(),
            token: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_inflight: 256,
            hello_timeout: Duration::from_secs(5),
            http: None,
            allow_remote: false,
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_frame", &self.max_frame)
            .field("max_connections", &self.max_connections)
            .field("max_inflight", &self.max_inflight)
            .field("hello_timeout", &self.hello_timeout)
            .field("http", &self.http)
            .field("allow_remote", &self.allow_remote)
            .finish()
    }
}

impl BrokerConfig {
    /// Checks limits and the security rules: TCP needs a token, and
    /// addresses beyond loopback need `allow_remote`.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.listen.is_empty() {
            return bad("the broker needs at least one listen address".into());
        }
        if let Some(t) = &self.token {
            if t.is_empty() {
                return bad("the token is empty".into());
            }
        }
        if !(MIN_FRAME..=1 << 30).contains(&self.max_frame) {
            return bad(format!(
                "max_frame must be {MIN_FRAME}..={} bytes",
                1u64 << 30
            ));
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1".into());
        }
        if !(1..=65_536).contains(&self.max_inflight) {
            return bad("max_inflight must be 1..=65536".into());
        }
        if self.hello_timeout.is_zero() {
            return bad("hello_timeout must be positive".into());
        }
        for l in &self.listen {
            if let Listen::Tcp(a) = l {
                if self.token.is_none() {
                    return bad(format!(
                        "refusing to listen on {l} without a token: TCP clients must authenticate (give a token, e.g. --token-file)"
                    ));
                }
                if !is_loopback(a) && !self.allow_remote {
                    return bad(format!(
                        "refusing to listen on {l}: not a loopback address (allow it explicitly with --allow-remote)"
                    ));
                }
            }
        }
        if let Some(a) = &self.http {
            if !is_loopback(a) && !self.allow_remote {
                return bad(format!(
                    "refusing to serve metrics on {a}: not a loopback address (allow it explicitly with --allow-remote)"
                ));
            }
        }
        Ok(())
    }
}

/// Open connections, for shutdown and the connection limit.
struct Conns {
    next: u64,
    open: HashMap<u64, Stream>,
}

/// State shared by every broker thread.
struct Shared {
    db: Db,
    cfg: BrokerConfig,
    /// Hash of the token, compared in constant time.
    token: Option<blake3::Hash>,
    metrics: Metrics,
    pool: Pool,
    stopping: AtomicBool,
    conns: Mutex<Conns>,
    closed: Condvar,
}

impl Shared {
    /// Registers and serves a new connection, or refuses it at the limit.
    fn admit(self: &Arc<Self>, stream: Stream) {
        let Ok(handle) = stream.try_clone() else {
            return;
        };
        let id = {
            let Ok(mut c) = self.conns.lock() else {
                return;
            };
            if c.open.len() >= self.cfg.max_connections {
                drop(c);
                self.metrics.rejected(Reject::Limit);
                refuse(
                    stream,
                    &Error::Unavailable(format!(
                        "too many connections (the limit is {})",
                        self.cfg.max_connections
                    )),
                );
                return;
            }
            let id = c.next;
            c.next += 1;
            c.open.insert(id, handle);
            id
        };
        self.metrics.conn_opened();
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ordq-broker-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                // A bug in framing must cost only this connection.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    conn::serve(shared.clone(), stream)
                }));
                shared.forget(id);
            });
        if spawned.is_err() {
            self.forget(id);
        }
    }

    /// Deregisters a finished connection (closing the registry's handle).
    fn forget(&self, id: u64) {
        if let Ok(mut c) = self.conns.lock() {
            if c.open.remove(&id).is_some() {
                self.metrics.conn_closed();
            }
        }
        self.closed.notify_all();
    }

    /// Waits until no connection is open, or `until`.
    fn wait_closed(&self, until: Instant) -> bool {
        let Ok(mut c) = self.conns.lock() else {
            return false;
        };
        while !c.open.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            c = match self.closed.wait_timeout(c, left) {
                Ok((c, _)) => c,
                Err(_) => return false,
            };
        }
        true
    }

    /// Shuts one direction of every open connection.
    fn shutdown_all(&self, how: Shutdown) {
        if let Ok(c) = self.conns.lock() {
            for s in c.open.values() {
                s.shutdown(how);
            }
        }
    }
}

/// Tells a refused client why, without waiting on it.
fn refuse(mut stream: Stream, e: &Error) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&ordq_wire::protocol::encode_err(None, e));
    stream.shutdown(Shutdown::Write);
}

/// Waits until `fd` is readable or the broker is woken to stop; false
/// when stopping.
fn wait_readable(fd: RawFd, wake: RawFd, stopping: &AtomicBool) -> bool {
    loop {
        if stopping.load(Ordering::Acquire) {
            return false;
        }
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // poll itself failed: back off rather than spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if fds[1].revents != 0 || stopping.load(Ordering::Acquire) {
            return false;
        }
        if fds[0].revents != 0 {
            return true;
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: Arc<Listener>, wake: RawFd) {
    while wait_readable(listener.as_raw_fd(), wake, &shared.stopping) {
        loop {
            match listener.accept() {
                Ok(s) => shared.admit(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Out of descriptors or memory, or an aborted
                    // handshake: pause so a full table cannot spin us.
                    std::thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
        }
    }
}

/// A pipe whose read end becomes readable when the broker stops.
fn wake_pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(Error::Io(format!(
            "cannot create the broker's wake pipe: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: both descriptors are fresh and owned from here on.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A running broker. [`Broker::shutdown`] stops it gracefully; dropping
/// it does the same.
pub struct Broker {
    shared: Arc<Shared>,
    listeners: Vec<Arc<Listener>>,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<String>,
    http_addr: Option<SocketAddr>,
    wake: (OwnedFd, OwnedFd),
    stopped: bool,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addrs", &self.addrs)
            .field("http", &self.http_addr)
            .finish()
    }
}

impl Broker {
    /// Binds every listen address (and the HTTP endpoint), starts serving
    /// `db` and returns. Fails with `InvalidArgument` for a bad
    /// configuration (TCP without a token, a non-loopback address without
    /// `allow_remote`, an unsafe socket directory) and `AlreadyExists`
    /// when an address is in use (a live socket is never taken over).
    pub fn start(db: Db, cfg: BrokerConfig) -> Result<Broker> {
        cfg.validate()?;
        let mut listeners = Vec::new();
        for l in &cfg.listen {
            match Listener::bind(l) {
                Ok(b) => listeners.push(Arc::new(b)),
                Err(e) => {
                    listeners
                        .iter()
                        .for_each(|b: &Arc<Listener>| b.remove_file());
                    return Err(e);
                }
            }
        }
        let cleanup = |ls: &[Arc<Listener>]| ls.iter().for_each(|b| b.remove_file());
        let http = match cfg.http.map(http::bind).transpose() {
            Ok(h) => h,
            Err(e) => {
                cleanup(&listeners);
                return Err(e);
            }
        };
        let wake = match wake_pipe() {
            Ok(w) => w,
            Err(e) => {
                cleanup(&listeners);
                return Err(e);
            }
        };
        let pool_max = (cfg.max_connections + 64).clamp(64, 4096);
        let shared = Arc::new(Shared {
            db,
            token: cfg.token.as_deref().map(|t| blake3::hash(t.as_bytes())),
            cfg,
            metrics: Metrics::new(),
            pool: Pool::new(pool_max),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Conns {
                next: 0,
                open: HashMap::new(),
            }),
            closed: Condvar::new(),
        });
        let addrs = listeners.iter().map(|l| l.uri()).collect();
        let http_addr = http.as_ref().and_then(|h| h.local_addr().ok());
        let mut broker = Broker {
            shared,
            listeners,
            threads: Vec::new(),
            addrs,
            http_addr,
            wake,
            stopped: false,
        };
        let wake_fd = broker.wake.0.as_raw_fd();
        for l in broker.listeners.clone() {
            let shared = broker.shared.clone();
            let t = std::thread::Builder::new()
                .name("ordq-broker-accept".into())
                .spawn(move || accept_loop(shared, l, wake_fd));
            match t {
                Ok(t) => broker.threads.push(t),
                Err(e) => {
                    let _ = broker.stop();
                    return Err(Error::Io(format!("cannot start the broker: {e}")));
                }
            }
        }
        if let Some(h) = http {
            let shared = broker.shared.clone();
            let t = std::thread::Builder::new()
                .name("ordq-broker-http".into())
                .spawn(move || http::serve(shared, h, wake_fd));
            match t {
                Ok(t) => broker.threads.push(t),
                Err(e) => {
                    let _ = broker.stop();
                    return Err(Error::Io(format!("cannot start the broker: {e}")));
                }
            }
        }
        Ok(broker)
    }

    /// The bound addresses as URIs, e.g. `unix:///run/ordq/ordq.sock`,
    /// `tcp://127.0.0.1:40123` (port 0 resolved), in `listen` order.
    pub fn addrs(&self) -> Vec<String> {
        self.addrs.clone()
    }

    /// The bound HTTP metrics address, if one was configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The metrics in Prometheus text format (what `GET /metrics` serves).
    pub fn metrics(&self) -> String {
        self.shared
            .metrics
            .render(&self.shared.db, self.shared.pool.threads())
    }

    /// Stops gracefully: stops accepting and reading, lets requests in
    /// flight finish and answers them (waiting at most 10 s; a claim's
    /// wait ends within a second), closes every connection, removes the
    /// socket files and makes everything durable (`Db::sync`). Leases
    /// stay with their workers. The database stays open.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::Release);
        // SAFETY: writing one byte from a valid buffer to our own pipe.
        unsafe {
            libc::write(self.wake.1.as_raw_fd(), [1u8].as_ptr().cast(), 1);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for l in self.listeners.drain(..) {
            l.remove_file();
        }
        // Readers see end of input; what is in flight still gets answered.
        shared.shutdown_all(Shutdown::Read);
        if !shared.wait_closed(Instant::now() + DRAIN) {
            shared.shutdown_all(Shutdown::Both);
            shared.wait_closed(Instant::now() + Duration::from_secs(2));
        }
        shared.pool.close();
        shared.db.sync()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
