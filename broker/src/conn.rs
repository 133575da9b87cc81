//! One client connection: a reader thread that frames requests, checks
//! `hello` and hands requests to the pool, and a writer thread that sends
//! answers in the order they finish. A connection holds at most
//! `max_inflight` requests: past that its reader stops reading until an
//! answer has been written, so a slow or greedy client only ever slows
//! itself down.

use super::dispatch::{dispatch, Answer};
use super::listen::Stream;
use super::metrics::Reject;
use super::Shared;
use crossbeam_channel::{Receiver, Sender};
use ordq_core::error::Error;
use ordq_wire::protocol::{HelloOk, RawRequest, Request, PROTOCOL_VERSION};
use serde::Deserialize;
use std::io::{self, BufWriter, Read, Write};
use std::net::Shutdown;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client that reads nothing for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `hello` frame: before authentication a client may not make the
/// broker buffer a whole `max_frame`.
const MAX_HELLO: usize = 64 << 10;
/// Read buffer of a connection.
const READ_BUF: usize = 64 << 10;
/// Write buffer of a connection.
const WRITE_BUF: usize = 64 << 10;
/// After an error that closes the connection, how long unread input is
/// drained so the client receives the error instead of a reset.
const LINGER: Duration = Duration::from_millis(250);
/// Most input drained that way.
const LINGER_BYTES: usize = 1 << 20;

/// What reading the next frame gave.
enum Next {
    /// A frame, without its newline.
    Frame(Vec<u8>),
    /// The peer closed (or the broker shut down reading).
    Eof,
    /// A frame longer than the limit (its bytes were not kept).
    TooLong,
    /// The deadline passed.
    TimedOut,
    /// The socket failed.
    Failed,
}

/// Splits a byte stream into newline-terminated frames of bounded size;
/// the limit holds while reading, so a huge frame is never buffered.
struct FrameReader {
    stream: Stream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    max: usize,
}

impl FrameReader {
    fn new(stream: Stream, max: usize) -> FrameReader {
        FrameReader {
            stream,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            max,
        }
    }

    /// The next frame; `deadline` bounds the whole wait. Once `stopping`
    /// is set, frames already buffered are still returned but the socket
    /// is not read again (the broker stops reading requests).
    fn next(&mut self, deadline: Option<Instant>, stopping: &AtomicBool) -> Next {
        let mut frame = Vec::new();
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                self.start += i + 1;
                if frame.len() + i + 1 > self.max {
                    return Next::TooLong;
                }
                frame.extend_from_slice(&avail[..i]);
                return Next::Frame(frame);
            }
            // Without a newline here, the frame is at least this long
            // plus the newline still to come.
            if frame.len() + avail.len() + 1 > self.max {
                self.start = self.end;
                return Next::TooLong;
            }
            frame.extend_from_slice(avail);
            self.start = 0;
            self.end = 0;
            if stopping.load(Ordering::Acquire) {
                return Next::Eof;
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                    return Next::TimedOut;
                }
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Next::Eof,
                Ok(n) => self.end = n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if deadline.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    return Next::TimedOut
                }
                Err(_) => return Next::Failed,
            }
        }
    }
}

/// Whether a frame holds only whitespace (blank lines are skipped).
fn blank(frame: &[u8]) -> bool {
    frame.iter().all(u8::is_ascii_whitespace)
}

/// The id of a frame that is JSON but not a valid request, if it has one.
fn lenient_id(frame: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<u64>,
    }
    serde_json::from_slice::<IdOnly>(frame)
        .ok()
        .and_then(|f| f.id)
}

/// The reader's side of a connection.
struct Conn {
    shared: Arc<Shared>,
    reader: FrameReader,
    /// Frames for the writer.
    out: Sender<Vec<u8>>,
    /// One unit per request in flight; bounded by `max_inflight`.
    slots: Sender<()>,
}

/// How a connection ended.
#[derive(PartialEq)]
enum End {
    /// The peer closed or the broker stopped reading.
    Quiet,
    /// The broker closed it after a connection error.
    Error,
}

impl Conn {
    /// Waits for a free in-flight slot (this is where a connection with
    /// `max_inflight` requests outstanding stops reading).
    fn acquire(&self) -> bool {
        self.slots.send(()).is_ok()
    }

    /// Sends an answer; its slot was acquired by the caller.
    fn answer(&self, a: Answer) {
        if let Some(c) = a.error {
            self.shared.metrics.error(c);
        }
        let _ = self.out.send(a.frame);
    }

    /// Sends an error about the connection itself (no id); the caller
    /// then closes it.
    fn fatal(&self, why: Reject, e: Error) -> End {
        self.shared.metrics.rejected(why);
        if self.acquire() {
            self.answer(Answer::err(None, &e));
        }
        End::Error
    }

    /// Reads and checks `hello`; an `Err` says how the connection ends.
    fn hello(&mut self) -> Result<(), End> {
        let cfg = &self.shared.cfg;
        let deadline = Instant::now() + cfg.hello_timeout;
        self.reader.max = cfg.max_frame.min(MAX_HELLO);
        let frame = loop {
            match self.reader.next(Some(deadline), &self.shared.stopping) {
                Next::Frame(f) if blank(&f) => {}
                Next::Frame(f) => break f,
                Next::TimedOut => {
                    return Err(self.fatal(
                        Reject::Hello,
                        Error::InvalidArgument(format!(
                            "no hello within {} ms",
                            cfg.hello_timeout.as_millis()
                        )),
                    ))
                }
                Next::TooLong => return Err(self.oversized(self.reader.max)),
                Next::Eof | Next::Failed => return Err(End::Quiet),
            }
        };
        self.reader.max = cfg.max_frame;
        if self.reader.stream.set_read_timeout(None).is_err() {
            return Err(End::Quiet);
        }
        self.shared.metrics.bytes_in(frame.len() + 1);
        let t0 = Instant::now();
        let raw = match RawRequest::parse(&frame) {
            Ok(r) => r,
            Err(e) => return Err(self.fatal(Reject::Hello, e)),
        };
        let hello = match raw.request() {
            Ok(Request::Hello(h)) => h,
            Ok(other) => {
                return Err(self.fatal(
                    Reject::Hello,
                    Error::InvalidArgument(format!(
                        "the first request on a connection must be hello, not {}",
                        other.op()
                    )),
                ))
            }
            Err(e) => return Err(self.fatal(Reject::Hello, e)),
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Err(self.fatal(
                Reject::Hello,
                Error::InvalidArgument(format!(
                    "protocol version {} is not supported: this broker speaks version {PROTOCOL_VERSION}",
                    hello.protocol
                )),
            ));
        }
        if let Some(want) = &self.shared.token {
            // blake3::Hash compares in constant time; hashing first also
            // hides the token's length.
            let ok = hello
                .token
                .as_deref()
                .is_some_and(|t| blake3::hash(t.as_bytes()) == *want);
            if !ok {
                return Err(self.fatal(
                    Reject::Auth,
                    Error::InvalidArgument("authentication failed: bad or missing token".into()),
                ));
            }
        }
        if !self.acquire() {
            return Err(End::Quiet);
        }
        self.shared.metrics.start();
        let ok = HelloOk {
            protocol: PROTOCOL_VERSION,
            server: format!("ordq-broker/{}", env!("CARGO_PKG_VERSION")),
            max_frame: cfg.max_frame,
            max_inflight: cfg.max_inflight,
        };
        let _ = self.out.send(ordq_wire::protocol::encode_ok(raw.id, &ok));
        self.shared.metrics.finish("hello", t0.elapsed());
        Ok(())
    }

    fn oversized(&self, limit: usize) -> End {
        self.fatal(
            Reject::Oversized,
            Error::TooLarge(format!(
                "frame exceeds the limit of {limit} bytes; closing the connection"
            )),
        )
    }

    /// Reads requests until the peer closes, the broker stops or a
    /// framing error.
    fn run(&mut self) -> End {
        if let Err(end) = self.hello() {
            return end;
        }
        loop {
            let frame = match self.reader.next(None, &self.shared.stopping) {
                Next::Frame(f) if blank(&f) => continue,
                Next::Frame(f) => f,
                Next::TooLong => return self.oversized(self.reader.max),
                Next::Eof | Next::Failed | Next::TimedOut => return End::Quiet,
            };
            self.shared.metrics.bytes_in(frame.len() + 1);
            if !self.acquire() {
                return End::Quiet;
            }
            self.handle(&frame);
        }
    }

    /// Decodes one frame and runs it on the pool (or answers its error).
    fn handle(&self, frame: &[u8]) {
        let raw = match RawRequest::parse(frame) {
            Ok(r) => r,
            Err(e) => {
                self.shared.metrics.bad_frame();
                return self.answer(Answer::err(lenient_id(frame), &e));
            }
        };
        let id = raw.id;
        let req = match raw.request() {
            Ok(r) => r,
            Err(e) => {
                self.shared.metrics.bad_frame();
                return self.answer(Answer::err(Some(id), &e));
            }
        };
        let shared = self.shared.clone();
        let out = self.out.clone();
        let t0 = Instant::now();
        shared.metrics.start();
        let job = Box::new(move || {
            let op = req.op();
            let a = catch_unwind(AssertUnwindSafe(|| {
                dispatch(&shared.db, id, req, &shared.stopping)
            }))
            .unwrap_or_else(|_| {
                Answer::err(
                    Some(id),
                    &Error::Io("internal error: the broker's request handler panicked".into()),
                )
            });
            shared.metrics.finish(op, t0.elapsed());
            if let Some(c) = a.error {
                shared.metrics.error(c);
            }
            let _ = out.send(a.frame);
        });
        if let Err(job) = self.shared.pool.submit(job) {
            // The pool is closed or out of threads: run it here.
            job();
        }
    }
}

/// Sends frames as they come, batching whatever is queued into one write,
/// and frees one in-flight slot per frame. After a write error it keeps
/// draining (discarding) so no producer ever blocks on a dead client.
fn write_loop(stream: Stream, rx: Receiver<Vec<u8>>, slots: Receiver<()>, shared: Arc<Shared>) {
    let mut w = BufWriter::with_capacity(WRITE_BUF, stream);
    let mut ok = true;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(frame) = next {
            if ok {
                if w.write_all(&frame).is_ok() {
                    shared.metrics.bytes_out(frame.len());
                } else {
                    ok = false;
                    w.get_ref().shutdown(Shutdown::Both);
                }
            }
            let _ = slots.try_recv();
            next = rx.try_recv().ok();
        }
        if ok && w.flush().is_err() {
            ok = false;
            w.get_ref().shutdown(Shutdown::Both);
        }
    }
}

/// Serves one accepted connection to its end; the caller deregisters it.
pub(crate) fn serve(shared: Arc<Shared>, stream: Stream) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let _ = write_half.set_write_timeout(Some(WRITE_TIMEOUT));
    let (out, rx) = crossbeam_channel::unbounded();
    let (slots, free) = crossbeam_channel::bounded(shared.cfg.max_inflight);
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ordq-broker-write".into())
            .stack_size(super::CONN_STACK)
            .spawn(move || write_loop(write_half, rx, free, shared))
    };
    let Ok(writer) = writer else {
        return;
    };
    let max_frame = shared.cfg.max_frame;
    let mut conn = Conn {
        shared,
        reader: FrameReader::new(stream, max_frame),
        out,
        slots,
    };
    let end = conn.run();
    let Conn {
        reader, out, slots, ..
    } = conn;
    drop((out, slots));
    // The writer ends once in-flight requests have been answered and
    // their senders dropped.
    let _ = writer.join();
    let mut stream = reader.stream;
    if end == End::Error {
        // Send FIN after the error, then drain briefly: closing with
        // unread input would reset the connection and could destroy the
        // error frame before the client reads it.
        stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match stream.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}
