//! The connection state every caller shares: dialling with `hello`,
//! reconnecting with backoff, deadlines, and the call path with its
//! resend rules (which requests may be sent again after an unknown
//! outcome).

use super::addr::Addr;
use super::conn::{read_loop, Conn, Fate, Outbox, Pending};
use super::{
    lock, remaining, ClientOptions, BACKOFF_INITIAL, BACKOFF_MAX, FOREVER, MAX_HELLO_ANSWER,
};
use crate::protocol::{self, Hello, HelloOk, RawResponse, Request, PROTOCOL_VERSION};
use ordq_core::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why a connection attempt failed.
pub(super) enum Dial {
    /// No socket, or no hello answer: worth retrying after a backoff.
    Failed(String),
    /// The broker answered the hello with an error (wrong token, other
    /// protocol version): retrying cannot help.
    Refused(Error),
}

/// `e` with `prefix` added to its message, keeping its code.
pub(super) fn prefixed(e: Error, prefix: &str) -> Error {
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
pub(super) enum Link {
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

pub(super) struct Inner {
    pub(super) uri: String,
    pub(super) addr: Addr,
    pub(super) opts: ClientOptions,
    pub(super) next_id: AtomicU64,
    pub(super) link: Mutex<Link>,
    pub(super) link_changed: Condvar,
    pub(super) closed: AtomicBool,
}

/// Whether sending a request again after an unknown outcome is harmless.
pub(super) fn resend_safe(r: &Request) -> bool {
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
            | Request::Checkpoint(_)
            | Request::Verify(_)
            | Request::Audit(_)
    )
}

/// What to tell the caller of a request whose outcome is unknown.
pub(super) fn unknown_outcome(r: &Request, why: &str) -> Error {
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

impl Inner {
    pub(super) fn deadline(&self, extra: Duration) -> Instant {
        let now = Instant::now();
        let budget = self.opts.timeout.saturating_add(extra);
        now.checked_add(budget)
            .or_else(|| now.checked_add(FOREVER))
            .unwrap_or(now)
    }

    pub(super) fn close(&self) {
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
    pub(super) fn dial(
        &self,
        deadline: Instant,
        backoff: Duration,
    ) -> std::result::Result<Arc<Conn>, Dial> {
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
    pub(super) fn conn(&self, deadline: Instant) -> Result<Arc<Conn>> {
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
    pub(super) fn call<T: DeserializeOwned>(&self, req: &Request, extra: Duration) -> Result<T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Complete, Enqueue, TokenRef};
    use ordq_core::types::Token;

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
}
