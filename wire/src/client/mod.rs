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

mod addr;
mod conn;
mod engine;
mod link;

use addr::Addr;
use link::{Dial, Inner, Link};

use crate::protocol::{NoArgs, Request};
use ordq_core::error::{Error, Result};
use serde::de::{DeserializeOwned, IgnoredAny};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Condvar, Mutex, MutexGuard};
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

/// Time left until `deadline` (zero once passed).
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// its state consistent before anything that can panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection to an ordq broker, usable as an [`ordq_core::Engine`] from any
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

#[cfg(test)]
mod tests {
    use super::*;

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
