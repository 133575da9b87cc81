//! [`Worker`]: a loop of claim → handler → complete/fail, with automatic
//! heartbeats and graceful shutdown.

use crate::db::Db;
use crate::error::{Error, ErrorKind, Result};
use crate::options::ClaimOptions;
use crate::types::{FailOutcome, Lease, Token};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Why a handler did not produce a result: the task is failed with
/// [`HandlerError::message`], and retried (after backoff, while attempts
/// remain) if it is retryable, else dead-lettered at once.
///
/// Any `std::error::Error` converts into a retryable `HandlerError`, so
/// `?` works inside a handler.
pub struct HandlerError {
    message: String,
    retryable: bool,
}

impl HandlerError {
    /// A failure worth retrying (e.g. a timeout).
    pub fn retryable(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that retrying cannot fix (e.g. a malformed payload): the
    /// task is dead-lettered at once.
    pub fn fatal(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            retryable: false,
        }
    }

    /// The error text recorded in the task's fault history.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the task should be retried.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(e: E) -> HandlerError {
        HandlerError::retryable(e.to_string())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("message", &self.message)
            .field("retryable", &self.retryable)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable { "retryable" } else { "fatal" };
        write!(f, "{} ({kind})", self.message)
    }
}

/// Stops a running [`Worker`] from any thread: no new tasks are claimed or
/// started, handlers already running finish and their outcomes are
/// committed, leases claimed but not started are released, then
/// [`Worker::run`] returns. Stopping is permanent for that worker.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the worker to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Stops the worker on SIGINT (Ctrl-C) or SIGTERM (systemd, Docker,
    /// Kubernetes), gracefully: running handlers finish and report, then
    /// [`Worker::run`] returns. A second SIGINT or SIGTERM once stopping
    /// ends the process at once (exit 1). The handlers stay installed for
    /// the life of the process.
    pub fn on_signals(&self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let fail = |e: std::io::Error| {
            Error::new(ErrorKind::Io, format!("installing signal handlers: {e}"))
        };
        for sig in [SIGINT, SIGTERM] {
            flag::register_conditional_shutdown(sig, 1, self.0.clone()).map_err(fail)?;
            flag::register(sig, self.0.clone()).map_err(fail)?;
        }
        Ok(())
    }
}

/// What a [`Worker::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Tasks completed with the handler's result.
    pub completed: u64,
    /// Tasks failed and scheduled for a retry.
    pub retried: u64,
    /// Tasks failed and dead-lettered.
    pub dead: u64,
    /// Handler panics (each also counted in `retried` or `dead`).
    pub panicked: u64,
    /// Outcomes refused because the lease was lost meanwhile (the task
    /// runs again elsewhere).
    pub lost: u64,
    /// Leases given back unstarted at shutdown.
    pub released: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    panicked: AtomicU64,
    lost: AtomicU64,
    released: AtomicU64,
    heartbeats: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self) -> WorkerReport {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerReport {
            completed: g(&self.completed),
            retried: g(&self.retried),
            dead: g(&self.dead),
            panicked: g(&self.panicked),
            lost: g(&self.lost),
            released: g(&self.released),
            heartbeats: g(&self.heartbeats),
        }
    }
}

/// One in-flight lease the heartbeat ticker keeps alive.
struct Beat {
    lease: Duration,
    every: Duration,
    next: Instant,
}

#[derive(Default)]
struct BeatState {
    leases: HashMap<Token, Beat>,
    shutdown: bool,
}

/// The shared heartbeat ticker: one thread for all in-flight leases of a
/// run, sleeping until the next one is due.
#[derive(Default)]
struct Beats {
    state: Mutex<BeatState>,
    wake: Condvar,
}

impl Beats {
    fn lock(&self) -> MutexGuard<'_, BeatState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, leases: &[Lease], every: Option<Duration>) {
        let now = Instant::now();
        let mut g = self.lock();
        for l in leases {
            let lease = l.duration().max(Duration::from_millis(1));
            let every = every.unwrap_or(lease / 3).max(Duration::from_millis(1));
            g.leases.insert(
                l.token,
                Beat {
                    lease,
                    every,
                    next: now + every,
                },
            );
        }
        drop(g);
        self.wake.notify_all();
    }

    fn remove(&self, t: Token) {
        self.lock().leases.remove(&t);
    }

    fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }

    /// The ticker thread's body: heartbeats every due lease with its own
    /// duration until [`Beats::shutdown`].
    fn run(&self, db: &Db, counters: &Counters) {
        let mut g = self.lock();
        loop {
            if g.shutdown {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            let mut next: Option<Instant> = None;
            for (t, b) in g.leases.iter_mut() {
                if b.next <= now {
                    due.push((*t, b.lease));
                    b.next = now + b.every;
                }
                next = Some(next.map_or(b.next, |n| n.min(b.next)));
            }
            if due.is_empty() {
                g = match next {
                    Some(n) => {
                        self.wake
                            .wait_timeout(g, n.saturating_duration_since(now))
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => self.wake.wait(g).unwrap_or_else(PoisonError::into_inner),
                };
                continue;
            }
            drop(g);
            for (t, lease) in due {
                match db.heartbeat(t, Some(lease)) {
                    Ok(_) => Counters::add(&counters.heartbeats),
                    // Lost (expired, or committed meanwhile): stop beating.
                    // The handler's commit will report it.
                    Err(e) if e.kind() == ErrorKind::LeaseLost => self.remove(t),
                    // Anything else (e.g. closed) surfaces at the next claim
                    // or commit; keep trying until then.
                    Err(_) => {}
                }
            }
            g = self.lock();
        }
    }
}

/// The text of a panic payload.
fn panic_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Processes tasks of one queue with a handler function.
///
/// [`Worker::run`] starts `concurrency` threads (default 1). Each claims
/// up to `batch` leases (default 1), waiting up to `poll` (default 250 ms)
/// for work, and runs the handler on each lease in turn:
///
/// - `Ok(result)`: the task is completed with `result` (the leases of one
///   claim are completed together, with one `complete_batch`, when the
///   last of them is handled);
/// - `Err(HandlerError)`: the task is failed, retryable or not;
/// - a panic: caught, and the task is failed (retryable) with
///   `"handler panicked: <message>"`.
///
/// While a lease is in flight, one shared ticker thread heartbeats it every
/// third of its duration (or every `heartbeat_every`), extending it by its
/// original duration, so handlers may run longer than the lease.
///
/// [`Worker::stop_handle`] stops it gracefully (see [`StopHandle`]);
/// `worker.stop_handle().on_signals()` makes SIGINT and SIGTERM do so. A
/// claim or commit error other than a lost lease (e.g. the database was
/// closed) stops every thread the same way, and `run` returns that error.
///
/// ```no_run
/// # use ordq::{Db, HandlerError, Options, Worker};
/// # fn main() -> ordq::Result<()> {
/// let db = Db::open("jobs.ordq", &Options::new())?;
/// let worker = Worker::new("emails", "mailer-1").concurrency(4);
/// let stop = worker.stop_handle();
/// # stop.stop();
/// let report = worker.run(&db, |lease| {
///     if lease.payload.is_empty() {
///         return Err(HandlerError::fatal("empty payload"));
///     }
///     Ok(b"sent".to_vec())
/// })?;
/// println!("{} completed", report.completed);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    queue: String,
    name: String,
    concurrency: usize,
    batch: u32,
    lease: Option<Duration>,
    poll: Duration,
    heartbeat_every: Option<Duration>,
    drain: bool,
    stop: StopHandle,
}

impl Worker {
    /// A worker for `queue`, claiming as `name` (1..=256 bytes; recorded in
    /// leases and faults).
    pub fn new(queue: impl Into<String>, name: impl Into<String>) -> Worker {
        Worker {
            queue: queue.into(),
            name: name.into(),
            concurrency: 1,
            batch: 1,
            lease: None,
            poll: Duration::from_millis(250),
            heartbeat_every: None,
            drain: false,
            stop: StopHandle::default(),
        }
    }

    /// Handler threads (at least 1; default 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Leases claimed per call by each thread (at least 1; default 1).
    pub fn batch(mut self, n: u32) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Lease duration of claims (default: the queue's).
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = Some(d);
        self
    }

    /// How long an idle claim waits for work (default 250 ms); also bounds
    /// how long an idle worker takes to notice a stop.
    pub fn poll(mut self, d: Duration) -> Self {
        self.poll = d;
        self
    }

    /// Heartbeat interval (default: a third of each lease's duration).
    pub fn heartbeat_every(mut self, d: Duration) -> Self {
        self.heartbeat_every = Some(d);
        self
    }

    /// Drain and exit (RQ's `--burst`): [`Worker::run`] returns once a
    /// claim finds nothing and the queue has no unfinished task (none
    /// ready, leased — by any worker — or waiting for a retry). So it
    /// waits for retries in backoff and for tasks other workers hold
    /// (they come back if those workers die); a lane blocked by
    /// `DlqPolicy::Block` keeps it waiting. Default `false`: run until
    /// stopped.
    pub fn drain(mut self, yes: bool) -> Self {
        self.drain = yes;
        self
    }

    /// A handle that stops this worker from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs until stopped (or a fatal error), then returns what was done.
    pub fn run<F>(&self, db: &Db, handler: F) -> Result<WorkerReport>
    where
        F: Fn(&Lease) -> Result<Vec<u8>, HandlerError> + Sync,
    {
        let mut claim = ClaimOptions::new().max(self.batch).wait(self.poll);
        claim.lease = self.lease;
        let run = Run {
            worker: self,
            db,
            handler: &handler,
            claim,
            beats: Beats::default(),
            counters: Counters::default(),
            abort: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            error: Mutex::new(None),
        };
        std::thread::scope(|s| {
            let ticker = s.spawn(|| run.beats.run(db, &run.counters));
            let threads: Vec<_> = (0..self.concurrency)
                .map(|_| s.spawn(|| run.thread()))
                .collect();
            for t in threads {
                if t.join().is_err() {
                    run.fatal(Error::new(ErrorKind::Panic, "a worker thread panicked"));
                }
            }
            run.beats.shutdown();
            let _ = ticker.join();
        });
        let Run {
            counters, error, ..
        } = run;
        match error.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e),
            None => Ok(counters.report()),
        }
    }
}

/// The shared state of one [`Worker::run`].
struct Run<'a, F> {
    worker: &'a Worker,
    db: &'a Db,
    handler: &'a F,
    claim: ClaimOptions,
    beats: Beats,
    counters: Counters,
    abort: AtomicBool,
    /// Set by the thread that found the queue drained (drain mode).
    drained: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl<F> Run<'_, F>
where
    F: Fn(&Lease) -> Result<Vec<u8>, HandlerError> + Sync,
{
    fn stopping(&self) -> bool {
        self.worker.stop.is_stopped()
            || self.abort.load(Ordering::SeqCst)
            || self.drained.load(Ordering::SeqCst)
    }

    /// Drain mode, after a claim found nothing: whether the queue has no
    /// unfinished task (then every thread stops).
    fn drained(&self) -> bool {
        match self.db.stats(&self.worker.queue) {
            Ok(s) if s.unfinished == 0 => {
                self.drained.store(true, Ordering::SeqCst);
                true
            }
            Ok(_) => false,
            Err(e) => {
                self.fatal(e);
                true
            }
        }
    }

    /// Records the first fatal error and stops every thread.
    fn fatal(&self, e: Error) {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Handles the outcome of a commit: a lost lease is counted, anything
    /// else is fatal.
    fn committed<T>(&self, r: Result<T>, ok: impl FnOnce(T)) {
        match r {
            Ok(v) => ok(v),
            Err(e) if e.kind() == ErrorKind::LeaseLost => Counters::add(&self.counters.lost),
            Err(e) => self.fatal(e),
        }
    }

    /// One handler thread: claim, handle, commit, until stopped.
    fn thread(&self) {
        let w = self.worker;
        while !self.stopping() {
            let leases = match self.db.claim(&w.queue, &w.name, &self.claim) {
                Ok(l) => l,
                Err(e) => {
                    self.fatal(e);
                    break;
                }
            };
            if leases.is_empty() {
                if w.drain && self.drained() {
                    break;
                }
                continue;
            }
            self.beats.add(&leases, w.heartbeat_every);
            let mut results: Vec<(Token, Vec<u8>)> = Vec::with_capacity(leases.len());
            for (i, lease) in leases.iter().enumerate() {
                if self.stopping() {
                    self.release(&leases[i..]);
                    break;
                }
                match catch_unwind(AssertUnwindSafe(|| (self.handler)(lease))) {
                    Ok(Ok(result)) => results.push((lease.token, result)),
                    Ok(Err(e)) => self.fail(lease, &e.message, e.retryable),
                    Err(p) => {
                        Counters::add(&self.counters.panicked);
                        let text = format!("handler panicked: {}", panic_text(p.as_ref()));
                        self.fail(lease, &text, true);
                    }
                }
            }
            self.complete(&results);
        }
    }

    fn fail(&self, lease: &Lease, error: &str, retryable: bool) {
        let r = self.db.fail(lease, error, retryable);
        self.beats.remove(lease.token);
        self.committed(r, |o| match o {
            FailOutcome::Dead { .. } => Counters::add(&self.counters.dead),
            _ => Counters::add(&self.counters.retried),
        });
    }

    fn complete(&self, results: &[(Token, Vec<u8>)]) {
        match results {
            [] => {}
            [(t, r)] => {
                let c = self.db.complete(*t, r);
                self.beats.remove(*t);
                self.committed(c, |_| Counters::add(&self.counters.completed));
            }
            many => {
                let items: Vec<(Token, &[u8])> =
                    many.iter().map(|(t, r)| (*t, r.as_slice())).collect();
                let outcome = self.db.complete_batch(&items);
                for (t, _) in many {
                    self.beats.remove(*t);
                }
                match outcome {
                    Ok(each) => {
                        for c in each {
                            self.committed(c, |_| Counters::add(&self.counters.completed));
                        }
                    }
                    Err(e) => self.fatal(e),
                }
            }
        }
    }

    fn release(&self, leases: &[Lease]) {
        for l in leases {
            let r = self.db.release(l);
            self.beats.remove(l.token);
            self.committed(r, |_| Counters::add(&self.counters.released));
        }
    }
}
