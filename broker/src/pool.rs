//! An elastic thread pool for engine calls. Engine calls block (a commit,
//! or a claim waiting for work), so each request runs on a pool thread:
//! a request finds an idle thread or gets a new one (up to a cap), and
//! threads idle for a while exit. Many requests from many connections
//! thus reach the engine's writer at once and share its group commits,
//! and one connection's long claim wait never holds up another.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A unit of work.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads kept even when idle.
const MIN_THREADS: usize = 4;
/// How long a thread above the minimum stays idle before exiting.
const IDLE_EXIT: Duration = Duration::from_secs(10);
/// Stack size of pool threads: engine calls are shallow.
const STACK: usize = 256 << 10;

struct State {
    /// Threads waiting for a job nobody has reserved.
    idle: usize,
    /// Threads alive.
    threads: usize,
    /// Jobs queued beyond the cap, not reserved by any idle thread.
    backlog: usize,
    /// Closed pools refuse jobs.
    tx: Option<Sender<Job>>,
}

struct Inner {
    state: Mutex<State>,
    rx: Receiver<Job>,
    max: usize,
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool of at most `max` threads.
    pub(crate) fn new(max: usize) -> Pool {
        let (tx, rx) = crossbeam_channel::unbounded();
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    idle: 0,
                    threads: 0,
                    backlog: 0,
                    tx: Some(tx),
                }),
                rx,
                max: max.max(MIN_THREADS),
            }),
        }
    }

    /// Threads alive now.
    pub(crate) fn threads(&self) -> usize {
        self.inner.state.lock().map(|s| s.threads).unwrap_or(0)
    }

    /// Runs `job` on a pool thread; gives it back if the pool is closed or
    /// no thread can be started.
    pub(crate) fn submit(&self, job: Job) -> std::result::Result<(), Job> {
        let mut s = match self.inner.state.lock() {
            Ok(s) => s,
            Err(_) => return Err(job),
        };
        let Some(tx) = s.tx.clone() else {
            return Err(job);
        };
        if s.idle > 0 {
            s.idle -= 1;
            drop(s);
            return tx.send(job).map_err(|e| e.0);
        }
        if s.threads < self.inner.max {
            let inner = self.inner.clone();
            // The job travels in a slot so a failed spawn can hand it back.
            let slot = Arc::new(Mutex::new(Some(job)));
            let theirs = slot.clone();
            let spawned = std::thread::Builder::new()
                .name("ordq-broker-pool".into())
                .stack_size(STACK)
                .spawn(move || {
                    let first = theirs.lock().ok().and_then(|mut j| j.take());
                    if let Some(job) = first {
                        job();
                    }
                    work(&inner);
                });
            if spawned.is_ok() {
                s.threads += 1;
                return Ok(());
            }
            let job = slot.lock().ok().and_then(|mut j| j.take());
            // No thread could be started: queue it for a busy one, if any.
            return match job {
                Some(job) if s.threads > 0 => {
                    s.backlog += 1;
                    drop(s);
                    tx.send(job).map_err(|e| e.0)
                }
                Some(job) => Err(job),
                None => Ok(()),
            };
        }
        s.backlog += 1;
        drop(s);
        tx.send(job).map_err(|e| e.0)
    }

    /// Refuses further jobs; idle threads exit once the queue is empty.
    pub(crate) fn close(&self) {
        if let Ok(mut s) = self.inner.state.lock() {
            s.tx = None;
        }
    }
}

/// A pool thread's loop after its first job.
fn work(inner: &Inner) {
    loop {
        {
            let Ok(mut s) = inner.state.lock() else {
                return;
            };
            if s.backlog > 0 {
                s.backlog -= 1;
            } else {
                s.idle += 1;
            }
        }
        let job = loop {
            match inner.rx.recv_timeout(IDLE_EXIT) {
                Ok(job) => break Some(job),
                Err(RecvTimeoutError::Timeout) => {
                    let Ok(mut s) = inner.state.lock() else {
                        return;
                    };
                    // Exit only as an unreserved idle thread; with idle at
                    // 0 a job is on its way to some waiting thread.
                    if s.idle > 0 && (s.threads > MIN_THREADS || s.tx.is_none()) {
                        s.idle -= 1;
                        s.threads -= 1;
                        break None;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if let Ok(mut s) = inner.state.lock() {
                        s.idle = s.idle.saturating_sub(1);
                        s.threads -= 1;
                    }
                    break None;
                }
            }
        };
        match job {
            Some(job) => job(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn blocked_jobs_do_not_hold_up_others() {
        let pool = Pool::new(64);
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        // Twenty jobs block until released...
        for _ in 0..20 {
            let rx = gate_rx.clone();
            assert!(pool
                .submit(Box::new(move || {
                    let _ = rx.recv();
                }))
                .is_ok());
        }
        // ...and a later job still runs at once.
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        assert!(pool
            .submit(Box::new(move || done_tx.send(()).unwrap()))
            .is_ok());
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(pool.threads() >= 21);
        drop(gate_tx);
    }

    #[test]
    fn jobs_beyond_the_cap_queue_and_all_run() {
        let pool = Pool::new(MIN_THREADS);
        let n = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..200 {
            let (n, tx) = (n.clone(), tx.clone());
            assert!(pool
                .submit(Box::new(move || {
                    n.fetch_add(1, Ordering::SeqCst);
                    tx.send(()).unwrap();
                }))
                .is_ok());
        }
        for _ in 0..200 {
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        assert_eq!(n.load(Ordering::SeqCst), 200);
        assert!(pool.threads() <= MIN_THREADS);
        pool.close();
        assert!(pool.submit(Box::new(|| {})).is_err());
    }
}
