//! `ordq-bench broker-worker`: one Rust worker process of the broker
//! bench. It connects to a broker, then follows the driver's lines on
//! stdin and answers on stdout (the Go worker in `bench/go/brokerworker`
//! speaks the same lines):
//!
//! 1. it prints `ready` once connected;
//! 2. `go` starts its claim loops;
//! 3. `done` (or end of input) says the producer has enqueued everything:
//!    a loop stops once a claim it began after that, while the process
//!    held no lease, came back empty;
//! 4. it prints `result completed=N calls=N claims=N empty=N last_ns=N
//!    cpu_s=F` and exits 0 (on an error: the message on stderr, exit 1).
//!
//! `last_ns` is the wall clock (ns since the epoch) of its last
//! completion, so the driver can stop its clock at the last completion of
//! any process.

use super::{Api, Mode, CLAIM_WAIT, RESULT};
use ordq_core::Engine;
use ordq_wire::client::{Client, ClientOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the driver asked this process to do.
struct Args {
    uri: String,
    queue: String,
    api: Api,
    mode: Mode,
    loops: usize,
    name: String,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        uri: String::new(),
        queue: super::QUEUE.to_string(),
        api: Api::Crate,
        mode: Mode::Batched,
        loops: 1,
        name: "worker".to_string(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--uri" => a.uri = value()?,
            "--queue" => a.queue = value()?,
            "--api" => a.api = Api::parse(&value()?)?,
            "--mode" => a.mode = Mode::parse(&value()?)?,
            "--loops" => {
                a.loops = value()?
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("--loops must be a count of at least 1")?
            }
            "--name" => a.name = value()?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if a.uri.is_empty() {
        return Err("--uri is required".into());
    }
    Ok(a)
}

/// The three calls a worker makes, over either Rust remote path.
trait Remote: Sync {
    /// A lease's token.
    type Token: Copy + Send;
    /// Claims up to `max` leases, waiting [`CLAIM_WAIT`] for work.
    fn claim(&self, queue: &str, worker: &str, max: u32) -> Result<Vec<Self::Token>, String>;
    /// Completes every token in one `complete_batch`; any refused item is
    /// an error.
    fn complete_all(&self, tokens: &[Self::Token]) -> Result<(), String>;
    /// Completes one token with `complete`.
    fn complete_one(&self, token: Self::Token) -> Result<(), String>;
}

/// The `ordq` crate (safe Rust over the C ABI) in remote mode.
impl Remote for ordq::Db {
    type Token = ordq::Token;

    fn claim(&self, queue: &str, worker: &str, max: u32) -> Result<Vec<ordq::Token>, String> {
        let opts = ordq::ClaimOptions::new().max(max).wait(CLAIM_WAIT);
        let leases = ordq::Db::claim(self, queue, worker, &opts).map_err(|e| e.to_string())?;
        Ok(leases.iter().map(|l| l.token).collect())
    }

    fn complete_all(&self, tokens: &[ordq::Token]) -> Result<(), String> {
        let items: Vec<(ordq::Token, &[u8])> = tokens.iter().map(|t| (*t, RESULT)).collect();
        let out = self.complete_batch(&items).map_err(|e| e.to_string())?;
        out.into_iter()
            .find_map(|r| r.err())
            .map_or(Ok(()), |e| Err(e.to_string()))
    }

    fn complete_one(&self, token: ordq::Token) -> Result<(), String> {
        self.complete(token, RESULT)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The core broker client ([`Client`], the [`Engine`] trait).
impl Remote for Client {
    type Token = ordq_core::Token;

    fn claim(&self, queue: &str, worker: &str, max: u32) -> Result<Vec<ordq_core::Token>, String> {
        let opts = ordq_core::ClaimOptions {
            max: max as usize,
            wait: CLAIM_WAIT,
            ..Default::default()
        };
        let leases = Engine::claim(self, queue, worker, opts).map_err(|e| e.to_string())?;
        Ok(leases.iter().map(|l| l.token).collect())
    }

    fn complete_all(&self, tokens: &[ordq_core::Token]) -> Result<(), String> {
        let items = tokens.iter().map(|t| (*t, RESULT.to_vec())).collect();
        let out = Engine::complete_batch(self, items).map_err(|e| e.to_string())?;
        out.into_iter()
            .find_map(|r| r.err())
            .map_or(Ok(()), |e| Err(e.to_string()))
    }

    fn complete_one(&self, token: ordq_core::Token) -> Result<(), String> {
        Engine::complete(self, token, RESULT)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Counters shared by the loops of this process.
#[derive(Default)]
struct State {
    /// The producer has enqueued everything.
    done: AtomicBool,
    /// A loop failed: the others stop too.
    failed: AtomicBool,
    /// Leases claimed and not yet completed (pipelined mode).
    inflight: AtomicU64,
    completed: AtomicU64,
    calls: AtomicU64,
    claims: AtomicU64,
    empty: AtomicU64,
    last_ns: AtomicU64,
}

impl State {
    fn completed(&self, n: usize) {
        self.completed.fetch_add(n as u64, Ordering::Relaxed);
        self.last_ns.fetch_max(now_ns(), Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Claims and completes until the queue is drained (see the module doc).
/// `max` 1 completes with `complete`, otherwise with `complete_batch`.
fn claim_loop<R: Remote>(
    r: &R,
    queue: &str,
    worker: &str,
    max: u32,
    st: &State,
) -> Result<(), String> {
    while !st.failed.load(Ordering::Relaxed) {
        let drained_if_empty = st.done.load(Ordering::Acquire);
        let tokens = r.claim(queue, worker, max)?;
        st.calls.fetch_add(1, Ordering::Relaxed);
        if tokens.is_empty() {
            st.empty.fetch_add(1, Ordering::Relaxed);
            if drained_if_empty {
                return Ok(());
            }
            continue;
        }
        st.claims.fetch_add(1, Ordering::Relaxed);
        if max == 1 {
            for t in &tokens {
                r.complete_one(*t)?;
                st.calls.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            r.complete_all(&tokens)?;
            st.calls.fetch_add(1, Ordering::Relaxed);
        }
        st.completed(tokens.len());
    }
    Ok(())
}

/// Pipelined: one thread claims batches of 100 while another completes
/// the previous batch, so each process keeps a claim and a completion in
/// flight on its connection. The claimer may run at most two batches
/// ahead of the completer.
fn pipelined<R: Remote>(r: &R, queue: &str, worker: &str, st: &State) -> Result<(), String> {
    let (tx, rx) = mpsc::sync_channel::<Vec<R::Token>>(1);
    std::thread::scope(|s| {
        let completer = s.spawn(move || -> Result<(), String> {
            for tokens in rx {
                r.complete_all(&tokens)?;
                st.calls.fetch_add(1, Ordering::Relaxed);
                st.completed(tokens.len());
                st.inflight.fetch_sub(tokens.len() as u64, Ordering::AcqRel);
            }
            Ok(())
        });
        let claimer = (|| -> Result<(), String> {
            loop {
                // Only a claim begun after every earlier completion
                // returned may end the run: a completion can unblock
                // the next task of its key.
                let drained_if_empty =
                    st.done.load(Ordering::Acquire) && st.inflight.load(Ordering::Acquire) == 0;
                let tokens = r.claim(queue, worker, 100)?;
                st.calls.fetch_add(1, Ordering::Relaxed);
                if tokens.is_empty() {
                    st.empty.fetch_add(1, Ordering::Relaxed);
                    if drained_if_empty {
                        return Ok(());
                    }
                    continue;
                }
                st.claims.fetch_add(1, Ordering::Relaxed);
                st.inflight.fetch_add(tokens.len() as u64, Ordering::AcqRel);
                if tx.send(tokens).is_err() {
                    // The completer stopped: its error is the one to report.
                    return Ok(());
                }
            }
        })();
        drop(tx);
        let completed = completer
            .join()
            .unwrap_or_else(|_| Err("completer thread panicked".into()));
        claimer.and(completed)
    })
}

/// Runs `a.loops` loops of `a.mode` over `r` and returns when they end.
fn run<R: Remote>(r: &R, a: &Args, st: &State) -> Result<(), String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.loops)
            .map(|i| {
                let worker = format!("{}-{i}", a.name);
                s.spawn(move || {
                    let r = match a.mode {
                        Mode::Batched => claim_loop(r, &a.queue, &worker, 100, st),
                        Mode::PerCall => claim_loop(r, &a.queue, &worker, 1, st),
                        Mode::Pipelined => pipelined(r, &a.queue, &worker, st),
                    };
                    if r.is_err() {
                        st.failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("worker loop panicked".into()))
            })
            .find(|r| r.is_err())
            .unwrap_or(Ok(()))
    })
}

/// Reads stdin on a thread of its own: returns once the driver says `go`,
/// then sets `done` on `done` or end of input.
fn follow_driver(st: Arc<State>) -> Result<(), String> {
    let (go_tx, go_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let mut lines = std::io::stdin().lines();
        let go = match lines.next() {
            Some(Ok(l)) if l.trim() == "go" => Ok(()),
            Some(Ok(l)) => Err(format!("expected \"go\" from the driver, got {l:?}")),
            _ => Err("the driver went away before \"go\"".to_string()),
        };
        let started = go.is_ok();
        // The receiver waits for this message: it cannot be gone.
        let _ = go_tx.send(go);
        if started {
            for l in lines {
                match l {
                    Ok(l) if l.trim() != "done" => continue,
                    _ => break,
                }
            }
        }
        st.done.store(true, Ordering::Release);
    });
    go_rx
        .recv()
        .map_err(|_| "stdin reader stopped".to_string())?
}

fn work<R: Remote>(r: &R, a: &Args) -> Result<(), String> {
    let st = Arc::new(State::default());
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    follow_driver(Arc::clone(&st))?;
    run(r, a, &st)?;
    println!(
        "result completed={} calls={} claims={} empty={} last_ns={} cpu_s={:.3}",
        st.completed.load(Ordering::Relaxed),
        st.calls.load(Ordering::Relaxed),
        st.claims.load(Ordering::Relaxed),
        st.empty.load(Ordering::Relaxed),
        st.last_ns.load(Ordering::Relaxed),
        crate::sys::process_cpu().unwrap_or(f64::NAN),
    );
    std::io::stdout().flush().map_err(|e| e.to_string())
}

/// Entry point of `ordq-bench broker-worker ARGS`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let result = parse(args).and_then(|a| match a.api {
        Api::Crate => {
            let db = ordq::Db::open(&a.uri, &ordq::Options::new())
                .map_err(|e| format!("open {}: {e}", a.uri))?;
            work(&db, &a)
        }
        Api::Core => {
            let opts = ClientOptions {
                client: "ordq-bench-worker".into(),
                runtime: "rust".into(),
                ..ClientOptions::default()
            };
            let c = Client::connect(&a.uri, opts).map_err(|e| format!("connect {}: {e}", a.uri))?;
            work(&c, &a)
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ordq-bench broker-worker: {e}");
            1
        }
    }
}
