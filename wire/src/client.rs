//! [`Client`]: the broker's client, an [`ordq_core::Engine`] over the wire
//! protocol with pipelining, reconnects and deadlines.
//!
//! One `Client` holds one connection (`unix:///path` or `tcp://host:port`)
//! and may be called from any number of threads at once: every request
//! gets a unique id, callers that arrive while a frame is being written
//! queue theirs behind it (the writing thread sends them all in one
//! write), and one reader thread routes each response to its caller.
//!
//! **Deadlines.** Every call has one: [`ClientOptions::timeout`] (a claim
//! adds its `wait`). A call that cannot be answered by then fails with
//! [`Error::Unavailable`] instead of hanging.
//!
//! **Reconnects.** When the connection drops, the next call reconnects
//! with bounded exponential backoff (10 ms doubling to 1 s, shared by the
//! callers waiting at the time, one last attempt just before the deadline;
//! a call that gives up leaves a fresh sequence to the next). A request
//! that was never written is sent on the new connection. A request already written when the connection dropped is
//! sent again only when repeating it is harmless (reads, `ping`, `sync`,
//! `heartbeat`, `start`, `complete` — a repeated completion answers
//! `duplicate = true`); any other fails with `Unavailable` saying its
//! outcome is unknown. A request the broker answers with `Unavailable`
//! (the engine never does: the broker refused to run it) is tried again,
//! after a pause, until the deadline.
//!
//! **Leases belong to workers**, not connections: a dropped connection
//! releases nothing, so after reconnecting a worker heartbeats and
//! completes its leases with the same tokens (fencing still refuses stale
//! ones).

use crate::protocol::{
    self, Claim, Complete, CompleteItem, Completions, CreateQueue, DlqPurge, DlqRedrive, Enqueue,
    Expiry, Fail, Heartbeat, Hello, HelloOk, NoArgs, Purged, QueueRef, RawResponse, Receipts,
    Request, TaskList, TaskRef, TokenRef, WireDeadLetter, WireLease, PROTOCOL_VERSION,
};
use crate::stream::Stream;
use ordq_core::config::{ClaimOptions, EnqueueItem, QueueConfig, RedriveMode};
use ordq_core::engine::Engine;
use ordq_core::error::{Error, Result};
use ordq_core::types::{
    Completion, DeadLetter, FailOutcome, Fault, Lease, QueueInfo, QueueStats, Receipt, TaskInfo,
    Token,
};
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default per-call deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// First reconnect delay; doubles per failed attempt.
const BACKOFF_INITIAL: Duration = Duration::from_millis(10);
/// Largest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Largest `hello` answer read before the connection counts as broken.
const MAX_HELLO_ANSWER: u64 = 64 << 10;
/// Far-future stand-in for a deadline that would overflow `Instant`.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a [`Client`] connects and identifies itself.
#[derive(Clone)]
pub struct ClientOptions {
    /// Shared secret sent in `hello`; required by a broker that has one
    /// (always on TCP).
    pub token: Option<String>,
    /// Deadline of every call (default 30 s); a claim adds its `wait`.
    /// Also bounds [`Client::connect`].
    pub timeout: Duration,
    /// Client library name sent in `hello`, e.g. `ordq-go/0.2.0`.
    pub client: String,
    /// Runtime sent in `hello`, e.g. `go1.22.1`.
    pub runtime: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            timeout: DEFAULT_TIMEOUT,
            client: concat!("ordq-core/", env!("CARGO_PKG_VERSION")).to_string(),
            runtime: "rust".to_string(),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("client", &self.client)
            .field("runtime", &self.runtime)
            .finish()
    }
}

/// A broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// `host:port`, resolved at every connect.
    Tcp(String),
}

impl Addr {
    /// Parses `unix:///path` or `tcp://host:port`.
    fn parse(uri: &str) -> Result<Addr> {
        let bad = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "broker address {uri:?} {why}; use unix:///path/to/ordq.sock or tcp://host:port"
            )))
        };
        if let Some(path) = uri.strip_prefix("unix://") {
            if path.is_empty() {
                return bad("names no socket path");
            }
            if path.contains('\0') {
                return bad("contains a NUL byte");
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        if let Some(hp) = uri.strip_prefix("tcp://") {
            let Some((host, port)) = hp.rsplit_once(':') else {
                return bad("has no port");
            };
            if host.is_empty() {
                return bad("has no host");
            }
            if host.contains(['/', '?', '#', '@']) {
                return bad("has more than host:port");
            }
            if port.parse::<u16>().is_err() {
                return bad("has no valid port (0..=65535)");
            }
            return Ok(Addr::Tcp(hp.to_string()));
        }
        bad("is not a broker address")
    }

    /// Opens a socket, giving up at `deadline`.
    fn dial(&self, deadline: Instant) -> io::Result<Stream> {
        match self {
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Addr::Tcp(hp) => {
                let mut last = None;
                for sa in hp.to_socket_addrs()? {
                    let left = remaining(deadline).max(Duration::from_millis(1));
                    match TcpStream::connect_timeout(&sa, left) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "host resolved to no address")
                }))
            }
        }
    }
}

/// Time left until `deadline` (zero once passed).
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// its state consistent before anything that can panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What became of one request on one connection.
#[derive(Default)]
struct SlotState {
    /// `Some(true)` once the whole frame was written, `Some(false)` if it
    /// was not (then it never reached the broker).
    written: Option<bool>,
    /// The response frame, or why the connection ended without one.
    reply: Option<Reply>,
}

enum Reply {
    /// The response frame, without its newline.
    Frame(Vec<u8>),
    /// The connection ended before the answer; the reason.
    Lost(String),
}

/// Where a caller waits for its request's fate.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    /// A claim that may wait for work: closing does not wait for it.
    long_poll: bool,
}

/// The fate of one attempt, as the caller sees it.
enum Fate {
    /// The broker answered.
    Answer(Vec<u8>),
    /// The frame never reached the broker: safe to send again.
    NotSent,
    /// Written, then the connection ended without an answer.
    Lost(String),
    /// The deadline passed.
    TimedOut,
}

impl Slot {
    fn set_written(&self, ok: bool) {
        lock(&self.state).written = Some(ok);
        self.ready.notify_all();
    }

    fn set_reply(&self, r: Reply) {
        let mut g = lock(&self.state);
        if g.reply.is_none() {
            g.reply = Some(r);
        }
        drop(g);
        self.ready.notify_all();
    }

    /// Waits until the request's fate is known or `deadline` passes. A
    /// lost connection is only reported once the write's outcome is known,
    /// so a request is never resent unless it surely was not written.
    fn wait(&self, deadline: Instant) -> Fate {
        let mut g = lock(&self.state);
        loop {
            let written = g.written;
            match (&mut g.reply, written) {
                (Some(Reply::Frame(f)), _) => return Fate::Answer(std::mem::take(f)),
                (_, Some(false)) => return Fate::NotSent,
                (Some(Reply::Lost(why)), Some(true)) => return Fate::Lost(why.clone()),
                _ => {}
            }
            let left = remaining(deadline);
            if left.is_zero() {
                return Fate::TimedOut;
            }
            g = self
                .ready
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Requests registered on a connection and not yet answered.
struct Pending {
    /// False once the connection is dead: nothing may register.
    open: bool,
    /// Why the connection died.
    why: String,
    slots: HashMap<u64, Arc<Slot>>,
    /// Callers waiting for room (in-flight limit) or for the map to drain.
    waiters: usize,
}

/// Frames waiting to be written, and whether a caller is writing.
#[derive(Default)]
struct Outbox {
    busy: bool,
    jobs: Vec<(Arc<[u8]>, Arc<Slot>)>,
}

/// One live connection to the broker.
struct Conn {
    /// Write half; locked only by the caller currently writing.
    stream: Mutex<Stream>,
    /// A handle for shutting the socket down from any thread.
    ctl: Stream,
    outbox: Mutex<Outbox>,
    pending: Mutex<Pending>,
    changed: Condvar,
    /// Response frames received so far.
    rx: AtomicU64,
    /// The broker's frame limit, bytes.
    max_frame: usize,
    /// The broker's per-connection in-flight limit.
    max_inflight: usize,
    /// The reconnect backoff in effect when this connection was made: a
    /// connection that dies before answering anything continues it, so a
    /// broker that accepts and drops at once is not hammered.
    backoff: Duration,
}

impl Conn {
    fn alive(&self) -> bool {
        lock(&self.pending).open
    }

    /// Marks the connection dead, shuts the socket (the reader thread
    /// then ends), and fails every registered request with `why`.
    fn kill(&self, why: &str) {
        let slots = {
            let mut p = lock(&self.pending);
            if p.open {
                p.open = false;
                p.why = why.to_string();
            }
            std::mem::take(&mut p.slots)
        };
        self.ctl.shutdown(Shutdown::Both);
        self.changed.notify_all();
        for s in slots.values() {
            s.set_reply(Reply::Lost(why.to_string()));
        }
    }

    /// Registers request `id`, waiting (until `deadline`) for room under
    /// the broker's in-flight limit. `Ok(None)`: the connection is dead.
    fn register(&self, id: u64, long_poll: bool, deadline: Instant) -> Result<Option<Arc<Slot>>> {
        let mut p = lock(&self.pending);
        loop {
            if !p.open {
                return Ok(None);
            }
            if p.slots.len() < self.max_inflight {
                let slot = Arc::new(Slot {
                    long_poll,
                    ..Slot::default()
                });
                p.slots.insert(id, slot.clone());
                return Ok(Some(slot));
            }
            let left = remaining(deadline);
            if left.is_zero() {
                return Err(Error::Unavailable(format!(
                    "no room within the deadline: {} requests in flight, the broker's limit",
                    p.slots.len()
                )));
            }
            p = self.wait_changed(p, left);
        }
    }

    /// Waits (at most `left`) for a request to leave `pending`.
    fn wait_changed<'a>(
        &self,
        mut p: MutexGuard<'a, Pending>,
        left: Duration,
    ) -> MutexGuard<'a, Pending> {
        p.waiters += 1;
        let mut p = self
            .changed
            .wait_timeout(p, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        p.waiters -= 1;
        p
    }

    /// Removes request `id` (answered, timed out or not sent).
    fn unregister(&self, id: u64) -> Option<Arc<Slot>> {
        let mut p = lock(&self.pending);
        let s = p.slots.remove(&id);
        if p.waiters > 0 {
            self.changed.notify_all();
        }
        s
    }

    /// Waits until no request is in flight other than claims waiting for
    /// work, or `deadline`.
    fn drain(&self, deadline: Instant) {
        let mut p = lock(&self.pending);
        while p.open && p.slots.values().any(|s| !s.long_poll) {
            let left = remaining(deadline);
            if left.is_zero() {
                return;
            }
            p = self.wait_changed(p, left);
        }
    }

    /// Queues a frame; if no other caller is writing, writes every queued
    /// frame (its own and any that arrive meanwhile) before returning.
    /// Each job's slot learns whether its frame was written in full.
    fn send(&self, frame: Arc<[u8]>, slot: Arc<Slot>, deadline: Instant) {
        let mut ob = lock(&self.outbox);
        ob.jobs.push((frame, slot));
        if ob.busy {
            return;
        }
        ob.busy = true;
        loop {
            let jobs = std::mem::take(&mut ob.jobs);
            drop(ob);
            self.write_jobs(&jobs, deadline);
            ob = lock(&self.outbox);
            if ob.jobs.is_empty() {
                ob.busy = false;
                return;
            }
        }
    }

    fn write_jobs(&self, jobs: &[(Arc<[u8]>, Arc<Slot>)], deadline: Instant) {
        let mut buf;
        let bytes: &[u8] = if jobs.len() == 1 {
            &jobs[0].0
        } else {
            buf = Vec::with_capacity(jobs.iter().map(|(f, _)| f.len()).sum());
            for (f, _) in jobs {
                buf.extend_from_slice(f);
            }
            &buf
        };
        let mut done = 0;
        let mut failure = None;
        if self.alive() {
            let mut s = lock(&self.stream);
            let left = remaining(deadline).max(Duration::from_millis(1));
            if let Err(e) = s.set_write_timeout(Some(left)) {
                failure = Some(e);
            }
            while failure.is_none() && done < bytes.len() {
                match s.write(&bytes[done..]) {
                    Ok(0) => {
                        failure = Some(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the socket accepted no bytes",
                        ))
                    }
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => failure = Some(e),
                }
            }
        } else {
            failure = Some(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection was already closed",
            ));
        }
        // Frames that ended within the bytes the socket took were sent;
        // the rest never reached the broker as whole lines.
        let mut end = 0;
        for (f, slot) in jobs {
            end += f.len();
            slot.set_written(end <= done);
        }
        if let Some(e) = failure {
            self.kill(&format!("writing to the broker failed: {e}"));
        }
    }
}

/// Reads response frames and hands each to its caller until the
/// connection ends, then fails whatever is still waiting.
fn read_loop(conn: Arc<Conn>, mut r: BufReader<Stream>) {
    let mut line = Vec::with_capacity(4096);
    let why = loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break "the broker closed the connection".to_string(),
            Ok(_) if line.last() != Some(&b'\n') => {
                break "the broker closed the connection mid-frame".to_string()
            }
            Ok(_) => {
                line.pop();
                conn.rx.fetch_add(1, Ordering::Relaxed);
                let id = match RawResponse::parse(&line) {
                    Ok(RawResponse { id: Some(id), .. }) => id,
                    Ok(RawResponse {
                        id: None, error, ..
                    }) => {
                        break match error {
                            Some(e) => {
                                format!("the broker ended the connection: {}", e.into_error())
                            }
                            None => "the broker sent a response without an id".to_string(),
                        }
                    }
                    Err(e) => break e.to_string(),
                };
                if let Some(slot) = conn.unregister(id) {
                    slot.set_reply(Reply::Frame(std::mem::take(&mut line)));
                }
            }
            Err(e) => break format!("reading from the broker failed: {e}"),
        }
    };
    conn.kill(&why);
}

/// Why a connection attempt failed.
enum Dial {
    /// No socket, or no hello answer: worth retrying after a backoff.
    Failed(String),
    /// The broker answered the hello with an error (wrong token, other
    /// protocol version): retrying cannot help.
    Refused(Error),
}

/// `e` with `prefix` added to its message, keeping its code.
fn prefixed(e: Error, prefix: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{prefix}{m}")),
        Error::NotFound(m) => Error::NotFound(format!("{prefix}{m}")),
        Error::AlreadyExists(m) => Error::AlreadyExists(format!("{prefix}{m}")),
        Error::LeaseLost(m) => Error::LeaseLost(format!("{prefix}{m}")),
        Error::TooLarge(m) => Error::TooLarge(format!("{prefix}{m}")),
        Error::InvalidState(m) => Error::InvalidState(format!("{prefix}{m}")),
        Error::Corrupt(m) => Error::Corrupt(format!("{prefix}{m}")),
        Error::Io(m) => Error::Io(format!("{prefix}{m}")),
        Error::Unavailable(m) => Error::Unavailable(format!("{prefix}{m}")),
        other => other,
    }
}

/// The connection's state, shared by every caller.
enum Link {
    /// Connected (possibly dead; checked on use).
    Up(Arc<Conn>),
    /// A caller is connecting; others wait.
    Connecting,
    /// Not connected; the next attempt is due at `retry_at`.
    Down {
        retry_at: Instant,
        backoff: Duration,
        why: String,
    },
    /// [`Client::close`] was called.
    Closed,
}

struct Inner {
    uri: String,
    addr: Addr,
    opts: ClientOptions,
    next_id: AtomicU64,
    link: Mutex<Link>,
    link_changed: Condvar,
    closed: AtomicBool,
}

/// A connection to an ordq broker, usable as an [`Engine`] from any
/// number of threads. See the [module documentation](self).
pub struct Client {
    // Boxed: the state is large, and a `Client` is often one variant of
    // an enum beside a small one.
    inner: Box<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.inner.uri)
            .field("opts", &self.inner.opts)
            .finish()
    }
}

/// Whether sending a request again after an unknown outcome is harmless.
fn resend_safe(r: &Request) -> bool {
    matches!(
        r,
        Request::Ping(_)
            | Request::Sync(_)
            | Request::GetQueue(_)
            | Request::ListQueues(_)
            | Request::Heartbeat(_)
            | Request::Start(_)
            | Request::Complete(_)
            | Request::GetTask(_)
            | Request::Faults(_)
            | Request::Stats(_)
            | Request::Pending(_)
            | Request::DlqList(_)
            | Request::DlqGet(_)
    )
}

/// What to tell the caller of a request whose outcome is unknown.
fn unknown_outcome(r: &Request, why: &str) -> Error {
    let advice = match r {
        Request::Enqueue(_) => {
            "; it may or may not have been enqueued (enqueue with idempotency keys to make retries safe)"
        }
        Request::Claim(_) => {
            "; any leases it granted were not received and will expire (their tasks then return to the queue)"
        }
        _ => "; it may or may not have taken effect",
    };
    Error::Unavailable(format!(
        "connection to the broker lost while {} was in flight ({why}){advice}",
        r.op()
    ))
}

impl Client {
    /// Connects to the broker at `uri` (`unix:///path` or
    /// `tcp://host:port`) and says `hello`. Nothing listening (or no
    /// answer within `opts.timeout`) is `Unavailable`; a refused `hello`
    /// (wrong token, other protocol version) is the broker's error; a bad
    /// address is `InvalidArgument`.
    pub fn connect(uri: &str, opts: ClientOptions) -> Result<Client> {
        let addr = Addr::parse(uri)?;
        let inner = Inner {
            uri: uri.to_string(),
            addr,
            opts,
            next_id: AtomicU64::new(1),
            link: Mutex::new(Link::Connecting),
            link_changed: Condvar::new(),
            closed: AtomicBool::new(false),
        };
        let deadline = inner.deadline(Duration::ZERO);
        let conn = inner.dial(deadline, BACKOFF_INITIAL).map_err(|d| match d {
            Dial::Refused(e) => e,
            Dial::Failed(why) => {
                Error::Unavailable(format!("cannot reach the broker at {uri}: {why}"))
            }
        })?;
        *lock(&inner.link) = Link::Up(conn);
        Ok(Client {
            inner: Box::new(inner),
        })
    }

    /// The address this client connects to.
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// Checks that the broker answers (a `ping` round trip).
    pub fn ping(&self) -> Result<()> {
        self.inner
            .call::<IgnoredAny>(&Request::Ping(NoArgs {}), Duration::ZERO)
            .map(drop)
    }

    /// Waits (up to the timeout) for requests in flight to be answered,
    /// then closes the connection; a claim waiting for work is not waited
    /// for but fails with `Closed` at once, as with the local engine.
    /// Idempotent; every later call fails with `Closed`. Leases stay with
    /// the broker until they expire.
    pub fn close(&self) {
        self.inner.close();
    }

    fn call<T: DeserializeOwned>(&self, r: Request, extra: Duration) -> Result<T> {
        self.inner.call(&r, extra)
    }

    fn done(&self, r: Request) -> Result<()> {
        self.inner.call::<IgnoredAny>(&r, Duration::ZERO).map(drop)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl Inner {
    fn deadline(&self, extra: Duration) -> Instant {
        let now = Instant::now();
        let budget = self.opts.timeout.saturating_add(extra);
        now.checked_add(budget)
            .or_else(|| now.checked_add(FOREVER))
            .unwrap_or(now)
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let prev = std::mem::replace(&mut *lock(&self.link), Link::Closed);
        self.link_changed.notify_all();
        if let Link::Up(conn) = prev {
            conn.drain(self.deadline(Duration::ZERO));
            conn.kill("the client was closed");
        }
    }

    /// Connects, says hello and starts the reader thread.
    fn dial(&self, deadline: Instant, backoff: Duration) -> std::result::Result<Arc<Conn>, Dial> {
        let failed = |e: io::Error| Dial::Failed(e.to_string());
        let mut stream = self.addr.dial(deadline).map_err(failed)?;
        let hello = Request::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            client: self.opts.client.clone(),
            runtime: self.opts.runtime.clone(),
            token: self.opts.token.clone(),
        });
        let left = remaining(deadline).max(Duration::from_millis(1));
        stream.set_write_timeout(Some(left)).map_err(failed)?;
        stream.set_read_timeout(Some(left)).map_err(failed)?;
        stream.write_all(&hello.encode(0)).map_err(failed)?;
        let mut reader = BufReader::with_capacity(64 << 10, stream.try_clone().map_err(failed)?);
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_HELLO_ANSWER)
            .read_until(b'\n', &mut line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    Dial::Failed("no answer to hello".to_string())
                }
                _ => failed(e),
            })?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(Dial::Failed(
                "the broker closed the connection during hello".to_string(),
            ));
        }
        line.pop();
        let raw = RawResponse::parse(&line).map_err(|e| Dial::Failed(e.to_string()))?;
        let ok: HelloOk = raw.into_result().map_err(|e| match e {
            // E.g. the connection limit: worth another try later.
            Error::Unavailable(m) => Dial::Failed(m),
            e => Dial::Refused(prefixed(
                e,
                &format!("the broker at {} refused the connection: ", self.uri),
            )),
        })?;
        if ok.protocol != PROTOCOL_VERSION {
            return Err(Dial::Refused(Error::Unavailable(format!(
                "the broker at {} speaks protocol {}, this client {PROTOCOL_VERSION}",
                self.uri, ok.protocol
            ))));
        }
        stream.set_read_timeout(None).map_err(failed)?;
        let conn = Arc::new(Conn {
            ctl: stream.try_clone().map_err(failed)?,
            stream: Mutex::new(stream),
            outbox: Mutex::new(Outbox::default()),
            pending: Mutex::new(Pending {
                open: true,
                why: String::new(),
                slots: HashMap::new(),
                waiters: 0,
            }),
            changed: Condvar::new(),
            rx: AtomicU64::new(0),
            max_frame: if ok.max_frame == 0 {
                protocol::DEFAULT_MAX_FRAME
            } else {
                ok.max_frame
            },
            max_inflight: ok.max_inflight.max(1),
            backoff,
        });
        let c = conn.clone();
        std::thread::Builder::new()
            .name("ordq-client-reader".into())
            .spawn(move || read_loop(c, reader))
            .map_err(|e| {
                Dial::Refused(Error::Io(format!(
                    "cannot start the client's reader thread: {e}"
                )))
            })?;
        Ok(conn)
    }

    /// The live connection, reconnecting (with backoff) until `deadline`.
    fn conn(&self, deadline: Instant) -> Result<Arc<Conn>> {
        // Attempts follow the shared backoff, except that one last attempt
        // is made just before this call's deadline rather than none.
        let last_call = deadline
            .checked_sub(Duration::from_millis(1))
            .unwrap_or(deadline);
        let mut tried_last = false;
        let mut g = lock(&self.link);
        loop {
            let now = Instant::now();
            match &*g {
                Link::Closed => return Err(Error::Closed),
                Link::Up(c) if c.alive() => return Ok(c.clone()),
                Link::Up(c) => {
                    let why = lock(&c.pending).why.clone();
                    *g = if c.rx.load(Ordering::Relaxed) > 0 {
                        Link::Down {
                            retry_at: now,
                            backoff: BACKOFF_INITIAL,
                            why,
                        }
                    } else {
                        Link::Down {
                            retry_at: now + c.backoff,
                            backoff: (c.backoff * 2).min(BACKOFF_MAX),
                            why,
                        }
                    };
                }
                Link::Connecting => {
                    let left = remaining(deadline);
                    if left.is_zero() {
                        return Err(Error::Unavailable(format!(
                            "no connection to the broker at {} within {:?} (reconnecting)",
                            self.uri, self.opts.timeout
                        )));
                    }
                    g = self
                        .link_changed
                        .wait_timeout(g, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                Link::Down {
                    retry_at,
                    backoff,
                    why,
                } => {
                    let (due, backoff) = ((*retry_at).min(last_call), *backoff);
                    if now >= due && !tried_last && now < deadline {
                        tried_last = now >= last_call;
                        *g = Link::Connecting;
                        drop(g);
                        let r = self.dial(deadline, backoff);
                        g = lock(&self.link);
                        let closed = matches!(*g, Link::Closed);
                        self.link_changed.notify_all();
                        match r {
                            Ok(c) if closed => {
                                c.kill("the client was closed");
                                return Err(Error::Closed);
                            }
                            Ok(c) => {
                                *g = Link::Up(c.clone());
                                return Ok(c);
                            }
                            Err(_) if closed => return Err(Error::Closed),
                            Err(Dial::Refused(e)) => {
                                // The broker answered: retrying cannot help.
                                *g = Link::Down {
                                    retry_at: Instant::now(),
                                    backoff: BACKOFF_INITIAL,
                                    why: e.to_string(),
                                };
                                return Err(e);
                            }
                            Err(Dial::Failed(e)) => {
                                *g = Link::Down {
                                    retry_at: Instant::now() + backoff,
                                    backoff: (backoff * 2).min(BACKOFF_MAX),
                                    why: e.to_string(),
                                };
                            }
                        }
                        continue;
                    }
                    if tried_last || now >= deadline {
                        let e = Error::Unavailable(format!(
                            "cannot reach the broker at {} within {:?}: {why}",
                            self.uri, self.opts.timeout
                        ));
                        // The next call starts a fresh backoff sequence: it
                        // must not spend its budget waiting out this one's.
                        *g = Link::Down {
                            retry_at: now,
                            backoff: BACKOFF_INITIAL,
                            why: why.clone(),
                        };
                        return Err(e);
                    }
                    g = self
                        .link_changed
                        .wait_timeout(g, due.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// Sends `req` and decodes its answer, within the deadline.
    fn call<T: DeserializeOwned>(&self, req: &Request, extra: Duration) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let deadline = self.deadline(extra);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame: Arc<[u8]> = req.encode(id).into();
        let mut pause = BACKOFF_INITIAL;
        loop {
            let conn = self.conn(deadline)?;
            if frame.len() > conn.max_frame {
                return Err(Error::TooLarge(format!(
                    "{} request of {} bytes exceeds the broker's frame limit of {} bytes",
                    req.op(),
                    frame.len(),
                    conn.max_frame
                )));
            }
            let long_poll = matches!(req, Request::Claim(c) if c.wait_ms > 0);
            let Some(slot) = conn.register(id, long_poll, deadline)? else {
                continue;
            };
            let rx_before = conn.rx.load(Ordering::Relaxed);
            conn.send(frame.clone(), slot.clone(), deadline);
            match slot.wait(deadline) {
                Fate::Answer(bytes) => match RawResponse::parse(&bytes)?.into_result() {
                    // The engine never answers Unavailable: the broker
                    // refused to run the request. Try again, after a
                    // pause, until the deadline.
                    Err(Error::Unavailable(m)) => {
                        let left = remaining(deadline);
                        if left.is_zero() {
                            return Err(Error::Unavailable(format!(
                                "the broker at {} did not run {}: {m}",
                                self.uri,
                                req.op()
                            )));
                        }
                        std::thread::sleep(pause.min(left));
                        pause = (pause * 2).min(BACKOFF_MAX);
                    }
                    r => return r,
                },
                Fate::NotSent => {
                    conn.unregister(id);
                }
                Fate::Lost(_) if self.closed.load(Ordering::Acquire) => return Err(Error::Closed),
                Fate::Lost(_) if resend_safe(req) => {}
                Fate::Lost(why) => return Err(unknown_outcome(req, &why)),
                Fate::TimedOut => {
                    conn.unregister(id);
                    if conn.rx.load(Ordering::Relaxed) == rx_before {
                        // Nothing at all came back since this request was
                        // sent: treat the connection as dead, so the next
                        // call reconnects instead of waiting on it again.
                        conn.kill("no answer from the broker within the deadline");
                    }
                    return Err(Error::Unavailable(format!(
                        "{} got no answer from the broker at {} within {:?}{}",
                        req.op(),
                        self.uri,
                        self.opts.timeout.saturating_add(extra),
                        if resend_safe(req) {
                            ""
                        } else {
                            "; it may or may not have taken effect"
                        }
                    )));
                }
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
        }
    }
}

fn single<T>(mut v: Vec<T>, op: &str) -> Result<T> {
    if v.len() != 1 {
        return Err(Error::Unavailable(format!(
            "unexpected answer from broker: {op} answered {} items for 1",
            v.len()
        )));
    }
    Ok(v.remove(0))
}

impl Engine for Client {
    fn close(&self) -> Result<()> {
        Client::close(self);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.done(Request::Sync(NoArgs {}))
    }

    fn create_queue(&self, name: &str, cfg: QueueConfig) -> Result<QueueInfo> {
        self.call(
            Request::CreateQueue(CreateQueue {
                queue: name.to_string(),
                config: cfg,
            }),
            Duration::ZERO,
        )
    }

    fn queue(&self, name: &str) -> Result<QueueInfo> {
        self.call(Request::GetQueue(queue_ref(name)), Duration::ZERO)
    }

    fn list_queues(&self) -> Result<Vec<QueueInfo>> {
        self.call(Request::ListQueues(NoArgs {}), Duration::ZERO)
    }

    fn delete_queue(&self, name: &str) -> Result<()> {
        self.done(Request::DeleteQueue(queue_ref(name)))
    }

    fn enqueue_batch(&self, queue: &str, items: Vec<EnqueueItem>) -> Result<Vec<Receipt>> {
        let n = items.len();
        let r: Receipts = self.call(
            Request::Enqueue(Enqueue {
                queue: queue.to_string(),
                items: items.into_iter().map(Into::into).collect(),
            }),
            Duration::ZERO,
        )?;
        if r.len() != n {
            return Err(Error::Unavailable(format!(
                "unexpected answer from broker: enqueue answered {} receipts for {n} items",
                r.len()
            )));
        }
        Ok(r)
    }

    fn claim(&self, queue: &str, worker: &str, opts: ClaimOptions) -> Result<Vec<Lease>> {
        let wait = opts.wait;
        let v: Vec<WireLease> =
            self.call(Request::Claim(Claim::new(queue, worker, &opts)), wait)?;
        Ok(v.into_iter().map(Lease::from).collect())
    }

    fn heartbeat(&self, token: Token, lease: Option<Duration>) -> Result<u64> {
        let e: Expiry = self.call(
            Request::Heartbeat(Heartbeat {
                token,
                lease_ms: lease.map(ordq_core::clock::millis),
            }),
            Duration::ZERO,
        )?;
        Ok(e.expires_at)
    }

    fn start(&self, token: Token) -> Result<()> {
        self.done(Request::Start(TokenRef { token }))
    }

    fn complete(&self, token: Token, result: &[u8]) -> Result<Completion> {
        let v = self.complete_batch(vec![(token, result.to_vec())])?;
        single(v, "complete")?
    }

    fn complete_batch(&self, items: Vec<(Token, Vec<u8>)>) -> Result<Vec<Result<Completion>>> {
        let n = items.len();
        let v: Completions = self.call(
            Request::Complete(Complete {
                items: items
                    .into_iter()
                    .map(|(token, result)| CompleteItem { token, result })
                    .collect(),
            }),
            Duration::ZERO,
        )?;
        if v.len() != n {
            return Err(Error::Unavailable(format!(
                "unexpected answer from broker: complete answered {} outcomes for {n} items",
                v.len()
            )));
        }
        Ok(v.into_iter().map(|o| o.into_result()).collect())
    }

    fn fail(&self, token: Token, error: &str, retryable: bool) -> Result<FailOutcome> {
        self.call(
            Request::Fail(Fail {
                token,
                error: error.to_string(),
                retryable,
            }),
            Duration::ZERO,
        )
    }

    fn release(&self, token: Token) -> Result<()> {
        self.done(Request::Release(TokenRef { token }))
    }

    fn get_task(&self, queue: &str, offset: u64) -> Result<TaskInfo> {
        self.call(Request::GetTask(task_ref(queue, offset)), Duration::ZERO)
    }

    fn faults(&self, queue: &str, offset: u64) -> Result<Vec<Fault>> {
        self.call(Request::Faults(task_ref(queue, offset)), Duration::ZERO)
    }

    fn stats(&self, queue: &str) -> Result<QueueStats> {
        self.call(Request::Stats(queue_ref(queue)), Duration::ZERO)
    }

    fn pending(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        self.call(
            Request::Pending(task_list(queue, after, limit)),
            Duration::ZERO,
        )
    }

    fn dlq_list(&self, queue: &str, after: Option<u64>, limit: usize) -> Result<Vec<TaskInfo>> {
        self.call(
            Request::DlqList(task_list(queue, after, limit)),
            Duration::ZERO,
        )
    }

    fn dlq_get(&self, queue: &str, offset: u64) -> Result<DeadLetter> {
        let d: WireDeadLetter =
            self.call(Request::DlqGet(task_ref(queue, offset)), Duration::ZERO)?;
        Ok(DeadLetter {
            task: d.task,
            faults: d.faults,
        })
    }

    fn dlq_redrive(&self, queue: &str, offset: u64, mode: RedriveMode) -> Result<Receipt> {
        self.call(
            Request::DlqRedrive(DlqRedrive {
                queue: queue.to_string(),
                offset,
                mode,
            }),
            Duration::ZERO,
        )
    }

    fn dlq_purge(&self, queue: &str, offset: Option<u64>) -> Result<u64> {
        let p: Purged = self.call(
            Request::DlqPurge(DlqPurge {
                queue: queue.to_string(),
                offset,
            }),
            Duration::ZERO,
        )?;
        Ok(p.purged)
    }
}

fn queue_ref(name: &str) -> QueueRef {
    QueueRef {
        queue: name.to_string(),
    }
}

fn task_ref(queue: &str, offset: u64) -> TaskRef {
    TaskRef {
        queue: queue.to_string(),
        offset,
    }
}

fn task_list(queue: &str, after: Option<u64>, limit: usize) -> TaskList {
    TaskList {
        queue: queue.to_string(),
        after,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Addr::parse("unix:///run/ordq.sock").unwrap(),
            Addr::Unix("/run/ordq.sock".into())
        );
        assert_eq!(
            Addr::parse("tcp://127.0.0.1:7420").unwrap(),
            Addr::Tcp("127.0.0.1:7420".into())
        );
        assert_eq!(
            Addr::parse("tcp://[::1]:7420").unwrap(),
            Addr::Tcp("[::1]:7420".into())
        );
        assert_eq!(
            Addr::parse("tcp://localhost:1").unwrap(),
            Addr::Tcp("localhost:1".into())
        );
        for bad in [
            "unix://",
            "tcp://host",
            "tcp://:7420",
            "tcp://h:99999",
            "tcp://h:7420/x",
            "tcp://u@h:1",
            "http://h:1",
            "/tmp/x.sock",
        ] {
            let e = Addr::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn resend_rules() {
        let t = Token {
            queue_id: 1,
            offset: 2,
            fence: 3,
        };
        assert!(resend_safe(&Request::Start(TokenRef { token: t })));
        assert!(resend_safe(&Request::Complete(Complete { items: vec![] })));
        assert!(!resend_safe(&Request::Release(TokenRef { token: t })));
        let e = unknown_outcome(
            &Request::Enqueue(Enqueue {
                queue: "q".into(),
                items: vec![],
            }),
            "eof",
        );
        assert!(e.to_string().contains("idempotency keys"), "{e}");
    }

    #[test]
    fn options_debug_hides_the_token() {
        let o = ClientOptions {
            token: Some("s3cret".into()),
            ..ClientOptions::default()
        };
        let d = format!("{o:?}");
        assert!(!d.contains("s3cret") && d.contains("redacted"), "{d}");
    }
}
