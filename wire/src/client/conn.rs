//! One live connection: the requests in flight on it (their slots),
//! the frames queued behind a write in progress, and the reader thread
//! that routes each response to its caller.

use super::{lock, remaining};
use crate::protocol::RawResponse;
use crate::stream::Stream;
use ordq_core::error::{Error, Result};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What became of one request on one connection.
#[derive(Default)]
pub(super) struct SlotState {
    /// `Some(true)` once the whole frame was written, `Some(false)` if it
    /// was not (then it never reached the broker).
    pub(super) written: Option<bool>,
    /// The response frame, or why the connection ended without one.
    pub(super) reply: Option<Reply>,
}

pub(super) enum Reply {
    /// The response frame, without its newline.
    Frame(Vec<u8>),
    /// The connection ended before the answer; the reason.
    Lost(String),
}

/// Where a caller waits for its request's fate.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) state: Mutex<SlotState>,
    pub(super) ready: Condvar,
    /// A claim that may wait for work: closing does not wait for it.
    pub(super) long_poll: bool,
}

/// The fate of one attempt, as the caller sees it.
pub(super) enum Fate {
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
    pub(super) fn set_written(&self, ok: bool) {
        lock(&self.state).written = Some(ok);
        self.ready.notify_all();
    }

    pub(super) fn set_reply(&self, r: Reply) {
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
    pub(super) fn wait(&self, deadline: Instant) -> Fate {
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
pub(super) struct Pending {
    /// False once the connection is dead: nothing may register.
    pub(super) open: bool,
    /// Why the connection died.
    pub(super) why: String,
    pub(super) slots: HashMap<u64, Arc<Slot>>,
    /// Callers waiting for room (in-flight limit) or for the map to drain.
    pub(super) waiters: usize,
}

/// Frames waiting to be written, and whether a caller is writing.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) busy: bool,
    pub(super) jobs: Vec<(Arc<[u8]>, Arc<Slot>)>,
}

/// One live connection to the broker.
pub(super) struct Conn {
    /// Write half; locked only by the caller currently writing.
    pub(super) stream: Mutex<Stream>,
    /// A handle for shutting the socket down from any thread.
    pub(super) ctl: Stream,
    pub(super) outbox: Mutex<Outbox>,
    pub(super) pending: Mutex<Pending>,
    pub(super) changed: Condvar,
    /// Response frames received so far.
    pub(super) rx: AtomicU64,
    /// The broker's frame limit, bytes.
    pub(super) max_frame: usize,
    /// The broker's per-connection in-flight limit.
    pub(super) max_inflight: usize,
    /// The reconnect backoff in effect when this connection was made: a
    /// connection that dies before answering anything continues it, so a
    /// broker that accepts and drops at once is not hammered.
    pub(super) backoff: Duration,
}

impl Conn {
    pub(super) fn alive(&self) -> bool {
        lock(&self.pending).open
    }

    /// Marks the connection dead, shuts the socket (the reader thread
    /// then ends), and fails every registered request with `why`.
    pub(super) fn kill(&self, why: &str) {
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
    pub(super) fn register(
        &self,
        id: u64,
        long_poll: bool,
        deadline: Instant,
    ) -> Result<Option<Arc<Slot>>> {
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
    pub(super) fn wait_changed<'a>(
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
    pub(super) fn unregister(&self, id: u64) -> Option<Arc<Slot>> {
        let mut p = lock(&self.pending);
        let s = p.slots.remove(&id);
        if p.waiters > 0 {
            self.changed.notify_all();
        }
        s
    }

    /// Waits until no request is in flight other than claims waiting for
    /// work, or `deadline`.
    pub(super) fn drain(&self, deadline: Instant) {
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
    pub(super) fn send(&self, frame: Arc<[u8]>, slot: Arc<Slot>, deadline: Instant) {
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

    pub(super) fn write_jobs(&self, jobs: &[(Arc<[u8]>, Arc<Slot>)], deadline: Instant) {
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
pub(super) fn read_loop(conn: Arc<Conn>, mut r: BufReader<Stream>) {
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
