//! `ordq-bench broker`: end-to-end durable jobs/s through the broker
//! (`ordq serve` on a Unix socket) with 1, 2 and 4 worker processes, Rust
//! and Go, batched and per call, each beside the embedded figure (the core
//! `e2e` scenario on a file, same jobs, same shape) measured in the same
//! run.
//!
//! For each broker figure: a fresh `ordq serve` (release build) with a
//! fresh database in a fresh temporary directory; the driver (this
//! process) creates the queue and, on one thread over the core
//! [`ordq_wire::client::Client`], enqueues every job in batches of 100
//! while the worker processes claim and complete them. Workers report
//! their completions and the wall-clock time of their last one; the clock
//! runs from the moment the workers are told to start to the last
//! completion of any of them. The run fails only when the workers'
//! completions or the queue's totals (`stats`) disagree with the jobs
//! enqueued. See docs/PERFORMANCE.md, section "Through the broker".

mod server;
pub mod worker;

use crate::measure::Measure;
use crate::scenarios::{self, Env, Workers};
use crate::sys::{Probe, Usage};
use crate::util::thousands;
use ordq_core::{Durability, Engine, EnqueueItem, QueueConfig};
use ordq_wire::client::Client;
use server::{PidProbe, Server};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Queue of every broker run.
const QUEUE: &str = "bench";
/// Result every worker commits (as in the core scenarios).
const RESULT: &[u8] = scenarios::RESULT;
/// How long an idle claim waits for work (as in the core scenarios).
const CLAIM_WAIT: Duration = Duration::from_millis(20);
/// Tasks per producer `enqueue` call.
const PRODUCER_BATCH: u64 = 100;
/// Longest a worker process may take to connect and say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A broker run still going after this long is stopped and failed.
const WATCHDOG: Duration = Duration::from_secs(300);
/// Target of the batched figures through the broker (issue 5).
const TARGET: f64 = 50_000.0;

/// Which Rust API a Rust worker process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The `ordq` crate over the C ABI, opened with a `unix://` URI.
    Crate,
    /// The core broker client, `ordq_wire::client::Client`.
    Core,
}

impl Api {
    fn parse(v: &str) -> Result<Api, String> {
        match v {
            "crate" => Ok(Api::Crate),
            "core" => Ok(Api::Core),
            _ => Err(format!("--api must be crate or core, not {v:?}")),
        }
    }
}

/// How a worker process claims and completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each loop: `claim` max 100 (wait 20 ms), then `complete_batch`.
    Batched,
    /// Each loop: `claim` max 1 (wait 20 ms), then `complete`.
    PerCall,
    /// Batched, with the next claim in flight while the previous batch
    /// is being completed (two threads on one connection).
    Pipelined,
}

impl Mode {
    fn parse(v: &str) -> Result<Mode, String> {
        match v {
            "batched" => Ok(Mode::Batched),
            "per-call" => Ok(Mode::PerCall),
            "pipelined" => Ok(Mode::Pipelined),
            _ => Err(format!(
                "mode must be batched, per-call or pipelined, not {v:?}"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::PerCall => "per-call",
            Mode::Pipelined => "pipelined",
        }
    }
}

/// The program a worker process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    /// `ordq-bench broker-worker` with the given Rust API.
    Rust(Api),
    /// `bench/go/brokerworker` (the Go package over the C ABI).
    Go,
}

impl Runtime {
    fn parse(v: &str) -> Result<Runtime, String> {
        match v {
            "rust" => Ok(Runtime::Rust(Api::Crate)),
            "rust-core" => Ok(Runtime::Rust(Api::Core)),
            "go" => Ok(Runtime::Go),
            _ => Err(format!("runtime must be rust, rust-core or go, not {v:?}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Runtime::Rust(Api::Crate) => "rust",
            Runtime::Rust(Api::Core) => "rust-core",
            Runtime::Go => "go",
        }
    }
}

struct Config {
    jobs: u64,
    per_call_jobs: u64,
    workers: Vec<usize>,
    runtimes: Vec<Runtime>,
    modes: Vec<Mode>,
    per_call_loops: usize,
    producers: usize,
    embedded: bool,
    dir: PathBuf,
    ordq: PathBuf,
    go_worker: PathBuf,
}

fn usage() -> String {
    "usage: ordq-bench broker [--jobs N] [--per-call-jobs N] [--workers 1,2,4] \
     [--runtimes rust,go] [--modes batched,per-call] [--per-call-loops N] [--producers N] \
     [--no-embedded] [--dir PATH] [--ordq PATH] [--go-worker PATH]\n\
     \n  --jobs N            jobs of each batched and pipelined run (default 100000)\
     \n  --per-call-jobs N   jobs of each per-call run (default 20000)\
     \n  --workers LIST      worker process counts (default 1,2,4)\
     \n  --runtimes LIST     rust (ordq crate, C ABI remote mode), rust-core (core Client), go \
     (default rust,go)\
     \n  --modes LIST        batched, per-call, pipelined (default batched,per-call)\
     \n  --per-call-loops N  concurrent claim/complete loops per per-call worker process (default 16)\
     \n  --producers N       producer threads on the driver's one connection (default 1)\
     \n  --no-embedded       skip the embedded figures (no ratios)\
     \n  --dir PATH          where the temporary databases and sockets go (default: the temp dir)\
     \n  --ordq PATH         the ordq binary (default: next to this one)\
     \n  --go-worker PATH    the Go worker binary (default: ordq-bench-go-worker next to this one)\
     \n\nEnv: ORDQ_BENCH_BROKER_JOBS, ORDQ_BENCH_BROKER_PER_CALL_JOBS, ORDQ_BENCH_BROKER_WORKERS, \
     ORDQ_BENCH_BROKER_RUNTIMES, ORDQ_BENCH_BROKER_MODES, ORDQ_BENCH_DIR."
        .into()
}

fn parse_list<T>(v: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    let items: Vec<T> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(one)
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Err(format!("empty list {v:?}"));
    }
    Ok(items)
}

fn parse_workers(v: &str) -> Result<Vec<usize>, String> {
    parse_list(v, |s| {
        s.parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or(format!("worker count must be 1..=64, not {s:?}"))
    })
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_default();
    let mut c = Config {
        jobs: 100_000,
        per_call_jobs: 20_000,
        workers: vec![1, 2, 4],
        runtimes: vec![Runtime::Rust(Api::Crate), Runtime::Go],
        modes: vec![Mode::Batched, Mode::PerCall],
        per_call_loops: 16,
        producers: 1,
        embedded: true,
        dir: std::env::temp_dir(),
        ordq: here.join("ordq"),
        go_worker: here.join("ordq-bench-go-worker"),
    };
    if let Some(v) = env("ORDQ_BENCH_BROKER_JOBS") {
        c.jobs = crate::parse_count("ORDQ_BENCH_BROKER_JOBS", &v)?;
    }
    if let Some(v) = env("ORDQ_BENCH_BROKER_PER_CALL_JOBS") {
        c.per_call_jobs = crate::parse_count("ORDQ_BENCH_BROKER_PER_CALL_JOBS", &v)?;
    }
    if let Some(v) = env("ORDQ_BENCH_BROKER_WORKERS") {
        c.workers = parse_workers(&v)?;
    }
    if let Some(v) = env("ORDQ_BENCH_BROKER_RUNTIMES") {
        c.runtimes = parse_list(&v, Runtime::parse)?;
    }
    if let Some(v) = env("ORDQ_BENCH_BROKER_MODES") {
        c.modes = parse_list(&v, Mode::parse)?;
    }
    if let Some(v) = env("ORDQ_BENCH_DIR") {
        c.dir = PathBuf::from(v);
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            "--jobs" => c.jobs = crate::parse_count("--jobs", &value()?)?,
            "--per-call-jobs" => {
                c.per_call_jobs = crate::parse_count("--per-call-jobs", &value()?)?
            }
            "--workers" => c.workers = parse_workers(&value()?)?,
            "--runtimes" => c.runtimes = parse_list(&value()?, Runtime::parse)?,
            "--modes" => c.modes = parse_list(&value()?, Mode::parse)?,
            "--per-call-loops" => {
                c.per_call_loops = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or("--per-call-loops must be 1..=256")?
            }
            "--producers" => {
                c.producers = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or("--producers must be 1..=64")?
            }
            "--no-embedded" => c.embedded = false,
            "--dir" => c.dir = PathBuf::from(value()?),
            "--ordq" => c.ordq = PathBuf::from(value()?),
            "--go-worker" => c.go_worker = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a:?}\n\n{}", usage())),
        }
    }
    Ok(c)
}

impl Config {
    /// Jobs of a run in `mode`.
    fn jobs_for(&self, mode: Mode) -> u64 {
        match mode {
            Mode::PerCall => self.per_call_jobs,
            Mode::Batched | Mode::Pipelined => self.jobs,
        }
    }

    /// Claim/complete loops in each worker process of `mode`.
    fn loops(&self, mode: Mode) -> usize {
        match mode {
            Mode::PerCall => self.per_call_loops,
            Mode::Batched | Mode::Pipelined => 1,
        }
    }
}

/// One line a worker process printed at its end.
#[derive(Debug, Default, Clone, Copy)]
struct WorkerResult {
    completed: u64,
    calls: u64,
    claims: u64,
    empty: u64,
    last_ns: u64,
    cpu_s: f64,
}

impl WorkerResult {
    fn parse(line: &str) -> Result<WorkerResult, String> {
        let rest = line
            .strip_prefix("result ")
            .ok_or_else(|| format!("unexpected worker line {line:?}"))?;
        let mut r = WorkerResult::default();
        for field in rest.split_whitespace() {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("bad field {field:?} in {line:?}"))?;
            let int = || v.parse::<u64>().map_err(|_| format!("bad {k} in {line:?}"));
            match k {
                "completed" => r.completed = int()?,
                "calls" => r.calls = int()?,
                "claims" => r.claims = int()?,
                "empty" => r.empty = int()?,
                "last_ns" => r.last_ns = int()?,
                "cpu_s" => r.cpu_s = v.parse().unwrap_or(f64::NAN),
                _ => {} // newer fields are ignored
            }
        }
        Ok(r)
    }
}

/// A worker process and the lines it prints; killed on drop if still
/// running.
struct WorkerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl WorkerProc {
    fn spawn(
        c: &Config,
        rt: Runtime,
        mode: Mode,
        uri: &str,
        name: String,
    ) -> Result<WorkerProc, String> {
        let mut cmd = match rt {
            Runtime::Rust(api) => {
                let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
                let mut cmd = Command::new(exe);
                cmd.arg("broker-worker").arg("--api").arg(match api {
                    Api::Crate => "crate",
                    Api::Core => "core",
                });
                cmd
            }
            Runtime::Go => Command::new(&c.go_worker),
        };
        cmd.arg("--uri")
            .arg(uri)
            .arg("--queue")
            .arg(QUEUE)
            .arg("--mode")
            .arg(mode.name())
            .arg("--loops")
            .arg(c.loops(mode).to_string())
            .arg("--name")
            .arg(&name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| {
            let what = match rt {
                Runtime::Go => format!(
                    "{} (build it: make bench-broker, or pass --go-worker)",
                    c.go_worker.display()
                ),
                Runtime::Rust(_) => "ordq-bench broker-worker".into(),
            };
            format!("cannot start {what}: {e}")
        })?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(WorkerProc {
            stdin: child.stdin.take(),
            child,
            lines,
            name,
        })
    }

    /// The next line, within `deadline`.
    fn line(&self, deadline: Instant, what: &str) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => format!("worker {}: no {what} in time", self.name),
            mpsc::RecvTimeoutError::Disconnected => {
                format!(
                    "worker {} exited before {what} (see its stderr above)",
                    self.name
                )
            }
        })
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("worker stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("worker {}: {e}", self.name))
    }

    /// Waits for the result line and the exit.
    fn finish(&mut self, deadline: Instant) -> Result<WorkerResult, String> {
        let r = WorkerResult::parse(&self.line(deadline, "result")?)?;
        self.stdin = None;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("worker {} exited with {status}", self.name));
        }
        Ok(r)
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one broker run measured.
struct BrokerRun {
    jobs: u64,
    secs: f64,
    /// Seconds the probes below cover (from start until every worker
    /// exited: includes each loop's last, empty claim).
    probe_secs: f64,
    broker: Usage,
    driver_cpu: Option<f64>,
    workers_cpu: f64,
    calls: u64,
    claims: u64,
    empty: u64,
    /// The writer's commits and operations during the run, if known.
    writer: Option<(u64, u64)>,
}

fn item(keys: &[String], payload: &[u8], i: u64) -> EnqueueItem {
    EnqueueItem {
        key: keys[i as usize % keys.len()].clone(),
        payload: payload.to_vec(),
        opts: Default::default(),
    }
}

/// Enqueues `jobs` tasks in batches of 100 from `threads` threads sharing
/// the driver's connection (more than one: several enqueues in flight on
/// it). Returns the calls made.
fn produce(client: &Client, threads: usize, jobs: u64, start: Instant) -> Result<u64, String> {
    let keys: Vec<String> = (0..scenarios::KEYS)
        .map(|i| format!("key-{i:04}"))
        .collect();
    let payload = scenarios::payload();
    let next = AtomicU64::new(0);
    let calls = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    while !failed.load(Ordering::Relaxed) {
                        let first = next.fetch_add(PRODUCER_BATCH, Ordering::Relaxed);
                        if first >= jobs {
                            return Ok(());
                        }
                        let n = PRODUCER_BATCH.min(jobs - first);
                        let items = (first..first + n)
                            .map(|i| item(&keys, &payload, i))
                            .collect();
                        if let Err(e) = client.enqueue_batch(QUEUE, items) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(format!("producer: enqueue: {e}"));
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                        if start.elapsed() > WATCHDOG {
                            failed.store(true, Ordering::Relaxed);
                            return Err(format!("producer did not finish within {WATCHDOG:?}"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("producer panicked".into())))
            .find(|r| r.is_err())
            .unwrap_or(Ok(()))
    })?;
    Ok(calls.into_inner())
}

fn run_broker(c: &Config, rt: Runtime, mode: Mode, procs: usize) -> Result<BrokerRun, String> {
    let jobs = c.jobs_for(mode);
    let (server, client) = Server::start(&c.ordq, &c.dir)?;
    client
        .create_queue(QUEUE, QueueConfig::default())
        .map_err(|e| format!("create_queue: {e}"))?;
    let mut workers = (0..procs)
        .map(|i| WorkerProc::spawn(c, rt, mode, &server.uri, format!("{}-{i}", rt.name())))
        .collect::<Result<Vec<_>, _>>()?;
    let ready_by = Instant::now() + READY_TIMEOUT;
    for w in &workers {
        let l = w.line(ready_by, "ready")?;
        if l.trim() != "ready" {
            return Err(format!("worker {}: expected \"ready\", got {l:?}", w.name));
        }
    }
    let counters0 = server.writer_counters();
    let broker_probe = PidProbe::start(server.pid());
    let driver_probe = Probe::start(false);
    let start = Instant::now();
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    for w in &mut workers {
        w.send("go")?;
    }
    let calls = produce(&client, c.producers, jobs, start)?;
    for w in &mut workers {
        w.send("done")?;
    }
    let deadline = start + WATCHDOG;
    let results = workers
        .iter_mut()
        .map(|w| w.finish(deadline))
        .collect::<Result<Vec<_>, _>>()?;
    let probe_secs = start.elapsed().as_secs_f64();
    let broker = broker_probe.finish();
    let driver_cpu = driver_probe.finish().proc_cpu;
    let writer = match (counters0, server.writer_counters()) {
        (Some((c0, o0)), Some((c1, o1))) => Some((c1.saturating_sub(c0), o1.saturating_sub(o0))),
        _ => None,
    };

    let stats = client.stats(QUEUE).map_err(|e| format!("stats: {e}"))?;
    drop(client);
    let stopped = server.stop();
    let completed: u64 = results.iter().map(|r| r.completed).sum();
    if completed != jobs {
        return Err(format!("workers completed {completed} of {jobs} jobs"));
    }
    if stats.totals.enqueued != jobs || stats.totals.completed != jobs {
        return Err(format!(
            "engine totals disagree: enqueued {} (expected {jobs}), completed {} (expected {jobs})",
            stats.totals.enqueued, stats.totals.completed
        ));
    }
    if let Err(e) = stopped {
        println!("    warning: {e}");
    }
    let last_ns = results.iter().map(|r| r.last_ns).max().unwrap_or(start_ns);
    Ok(BrokerRun {
        jobs,
        secs: last_ns.saturating_sub(start_ns) as f64 / 1e9,
        probe_secs,
        broker,
        driver_cpu,
        workers_cpu: results.iter().map(|r| r.cpu_s).sum(),
        calls: calls + results.iter().map(|r| r.calls).sum::<u64>(),
        claims: results.iter().map(|r| r.claims).sum(),
        empty: results.iter().map(|r| r.empty).sum(),
        writer,
    })
}

impl BrokerRun {
    fn rate(&self) -> f64 {
        self.jobs as f64 / self.secs.max(f64::EPSILON)
    }

    fn share(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.map(|c| c / self.probe_secs.max(f64::EPSILON))
    }
}

fn pct(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
}

const HEADER: &str = "scenario  workers     runtime    mode           jobs/s  x embedded  \
                      broker CPU  writer CPU  workers CPU  ops/commit";

/// One line of the table.
struct Row<'a> {
    scenario: &'a str,
    workers: String,
    runtime: &'a str,
    mode: &'a str,
    rate: f64,
    ratio: Option<f64>,
    broker_cpu: Option<f64>,
    writer_cpu: Option<f64>,
    workers_cpu: Option<f64>,
    ops_per_commit: Option<f64>,
}

impl Row<'_> {
    fn print(&self) {
        println!(
            "{:<9} {:<11} {:<10} {:<10} {:>10}  {:>10}  {:>10}  {:>10}  {:>11}  {:>10}",
            self.scenario,
            self.workers,
            self.runtime,
            self.mode,
            thousands(self.rate),
            self.ratio.map_or("-".into(), |r| format!("{r:.2}")),
            pct(self.broker_cpu),
            pct(self.writer_cpu),
            pct(self.workers_cpu),
            self.ops_per_commit
                .map_or("-".into(), |r| format!("{r:.1}")),
        );
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn embedded(c: &Config, mode: Mode, threads: usize) -> Result<Measure, String> {
    let env = Env {
        base: &c.dir,
        durability: Durability::Immediate,
    };
    let kind = match mode {
        Mode::PerCall => Workers::PerCall,
        Mode::Batched | Mode::Pipelined => Workers::Batched,
    };
    scenarios::end_to_end(&env, c.jobs_for(mode), threads, kind)
}

/// Entry point of `ordq-bench broker ARGS`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let c = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ordq-bench broker: {e}");
            return 2;
        }
    };
    println!("ordq broker bench: durable (Immediate) end-to-end jobs/s through `ordq serve` on a Unix socket");
    println!("machine: {}", crate::sys::machine());
    println!(
        "sizes: {} jobs (batched/pipelined runs), {} jobs (per-call runs), {} keys, {}-byte \
         payloads; {} loops per per-call worker process; databases and sockets under {}",
        thousands(c.jobs as f64),
        thousands(c.per_call_jobs as f64),
        scenarios::KEYS,
        scenarios::PAYLOAD_BYTES,
        c.per_call_loops,
        c.dir.display()
    );
    println!(
        "broker: {}; producer: {} of this process on one connection (core Client, enqueue \
         batches of 100); embedded runs: 1 producer thread",
        c.ordq.display(),
        plural(c.producers, "thread")
    );
    println!();
    println!("{HEADER}");
    let mut failed = false;
    let mut embedded_rates: Vec<((Workers, usize), f64)> = Vec::new();
    let mut best_batched: Option<(f64, String)> = None;
    for &mode in &c.modes {
        for &procs in &c.workers {
            let threads = procs * c.loops(mode);
            let kind = if mode == Mode::PerCall {
                Workers::PerCall
            } else {
                Workers::Batched
            };
            let mut base = embedded_rates
                .iter()
                .find(|(k, _)| *k == (kind, threads))
                .map(|(_, r)| *r);
            if c.embedded && base.is_none() {
                match embedded(&c, mode, threads) {
                    Ok(m) => {
                        Row {
                            scenario: "embedded",
                            workers: plural(threads, "thread"),
                            runtime: "core",
                            mode: if mode == Mode::PerCall {
                                "per-call"
                            } else {
                                "batched"
                            },
                            rate: m.rate(),
                            ratio: Some(1.0),
                            broker_cpu: m.proc_busy(),
                            writer_cpu: m.writer_busy(),
                            workers_cpu: None,
                            ops_per_commit: None,
                        }
                        .print();
                        base = Some(m.rate());
                        embedded_rates.push(((kind, threads), m.rate()));
                    }
                    Err(e) => {
                        println!("embedded  {threads} threads: FAILED: {e}");
                        failed = true;
                    }
                }
            }
            for &rt in &c.runtimes {
                match run_broker(&c, rt, mode, procs) {
                    Ok(r) => {
                        Row {
                            scenario: "broker",
                            workers: plural(procs, "proc"),
                            runtime: rt.name(),
                            mode: mode.name(),
                            rate: r.rate(),
                            ratio: base.map(|b| r.rate() / b.max(f64::EPSILON)),
                            broker_cpu: r.share(r.broker.proc_cpu),
                            writer_cpu: r.share(r.broker.writer_cpu),
                            workers_cpu: r.share(Some(r.workers_cpu)),
                            ops_per_commit: r
                                .writer
                                .map(|(commits, ops)| ops as f64 / commits.max(1) as f64),
                        }
                        .print();
                        let mut d = format!(
                            "    {} jobs in {:.2}s, {} calls/s, {:.1} jobs/claim, {} empty claims, \
                             producer (this process) CPU {}",
                            thousands(r.jobs as f64),
                            r.secs,
                            thousands(r.calls as f64 / r.secs.max(f64::EPSILON)),
                            r.jobs as f64 / r.claims.max(1) as f64,
                            thousands(r.empty as f64),
                            pct(r.share(r.driver_cpu)),
                        );
                        if let Some((commits, _)) = r.writer {
                            d += &format!(
                                ", {} commits ({:.0} jobs/commit)",
                                thousands(commits as f64),
                                r.jobs as f64 / commits.max(1) as f64
                            );
                        }
                        if let Some(w) = r.broker.written {
                            d += &format!(
                                ", broker wrote {} B/job",
                                thousands(w as f64 / r.jobs as f64)
                            );
                        }
                        println!("{d}");
                        let better = match &best_batched {
                            Some((b, _)) => r.rate() > *b,
                            None => true,
                        };
                        if mode != Mode::PerCall && better {
                            best_batched = Some((
                                r.rate(),
                                format!("{} procs, {}, {}", procs, rt.name(), mode.name()),
                            ));
                        }
                    }
                    Err(e) => {
                        println!(
                            "broker    {procs} procs     {:<10} {:<10} FAILED: {e}",
                            rt.name(),
                            mode.name()
                        );
                        failed = true;
                    }
                }
            }
        }
    }
    println!();
    println!(
        "x embedded = broker figure / embedded figure of the same run with as many worker threads \
         as the broker run has claim loops (batched: 1 per process; per-call: {} per process); \
         pipelined runs are compared with embedded batched.",
        c.per_call_loops
    );
    println!(
        "CPU columns: share of wall time (100% = one core) from the start to the last worker's \
         exit; broker = the whole ordq serve process, writer = its ordq-writer thread; embedded \
         rows show the bench process and its writer. ops/commit = the writer's operations per \
         commit during the run (ordq_engine_operations_total / ordq_engine_commits_total)."
    );
    if let Some((rate, what)) = best_batched {
        println!(
            "best figure with batched calls through the broker: {} jobs/s ({what}): {:.0}% of the \
             {} target{}",
            thousands(rate),
            rate / TARGET * 100.0,
            thousands(TARGET),
            if rate >= TARGET { "" } else { " !" }
        );
    }
    i32::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_worker_result_lines() {
        let r = WorkerResult::parse(
            "result completed=300 calls=7 claims=3 empty=1 last_ns=42 cpu_s=0.125 later=9",
        )
        .unwrap();
        assert_eq!(
            (r.completed, r.calls, r.claims, r.empty, r.last_ns),
            (300, 7, 3, 1, 42)
        );
        assert_eq!(r.cpu_s, 0.125);
        assert!(WorkerResult::parse("result completed=1 cpu_s=NaN")
            .unwrap()
            .cpu_s
            .is_nan());
        assert!(WorkerResult::parse("ready").is_err());
        assert!(WorkerResult::parse("result completed=x").is_err());
        assert!(WorkerResult::parse("result completed").is_err());
    }

    #[test]
    fn parses_lists() {
        assert_eq!(parse_workers("1, 2,4").unwrap(), vec![1, 2, 4]);
        assert!(parse_workers("0").is_err());
        assert!(parse_workers(",").is_err());
        assert_eq!(
            parse_list("rust,go,rust-core", Runtime::parse).unwrap(),
            vec![
                Runtime::Rust(Api::Crate),
                Runtime::Go,
                Runtime::Rust(Api::Core)
            ]
        );
        assert!(parse_list("python", Runtime::parse).is_err());
        assert_eq!(
            parse_list("per-call,pipelined", Mode::parse).unwrap(),
            vec![Mode::PerCall, Mode::Pipelined]
        );
    }
}
