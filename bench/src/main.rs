//! ordq benchmarks: throughput and latency figures of the core engine,
//! next to a raw redb baseline measured in the same run on the same disk.
//! Figures, not assertions: a missed target is reported, not failed; a
//! run whose engine totals disagree with what it did fails.
//!
//! ```text
//! cargo run --release -p ordq-bench -- [--jobs N] [--per-call-jobs N]
//!     [--durability immediate|none] [--only NAME,...] [--dir PATH]
//! ```
//!
//! `ordq-bench broker [...]` measures end-to-end jobs/s through the broker
//! instead (`broker` module; `--help` for its options); `ordq-bench
//! recovery [...]` the open after a crash and the memory of pending work
//! (`recovery` module).
//!
//! Env vars `ORDQ_BENCH_JOBS`, `ORDQ_BENCH_PER_CALL_JOBS`,
//! `ORDQ_BENCH_DURABILITY`, `ORDQ_BENCH_ONLY` and `ORDQ_BENCH_DIR` set the
//! same things (the flags win). See docs/PERFORMANCE.md.

mod abi;
mod baseline;
mod broker;
mod measure;
mod recovery;
mod scenarios;
mod sys;
mod util;

use baseline::JobShape;
use measure::Measure;
use ordq_core::Durability;
use scenarios::{Env, Workers};
use std::path::PathBuf;
use std::time::Duration;
use util::{micros, thousands};

/// Every scenario, in run order: name and what it measures.
const SCENARIOS: &[(&str, &str)] = &[
    ("baseline", "raw redb write transactions"),
    ("enqueue-1t", "enqueue, single calls, 1 thread"),
    (
        "abi-enqueue-1t",
        "enqueue, single calls, 1 thread, via the C ABI",
    ),
    ("enqueue-8t", "enqueue, single calls, 8 threads"),
    ("enqueue-batch", "enqueue_batch of 100, 1 thread"),
    (
        "abi-enqueue-batch",
        "enqueue_batch of 100, 1 thread, via the C ABI",
    ),
    ("enqueue-batch-4t", "enqueue_batch of 100, 4 threads"),
    (
        "e2e-batched",
        "end-to-end, 4 workers, claim 100 + complete_batch",
    ),
    (
        "abi-e2e-batched",
        "e2e, 4 workers, claim 100 + batch, via the C ABI",
    ),
    ("e2e-per-call", "end-to-end, 64 workers, claim 1 + complete"),
    (
        "abi-e2e-per-call",
        "e2e, 64 workers, claim 1 + complete, via the C ABI",
    ),
];

/// Target of an `abi-*` figure: this share of its core counterpart
/// measured in the same run.
const ABI_TARGET: f64 = 0.90;

/// Targets (durable), items per second.
fn target(name: &str) -> Option<f64> {
    match name {
        "enqueue-batch" | "enqueue-batch-4t" => Some(200_000.0),
        "e2e-batched" => Some(150_000.0),
        "e2e-per-call" => Some(40_000.0),
        _ => None,
    }
}

/// Longest a single-call enqueue run may take before it stops early (its
/// rate is measured over what it did).
const ENQUEUE_CAP: Duration = Duration::from_secs(5);

struct Config {
    jobs: u64,
    per_call_jobs: u64,
    also_none: bool,
    only: Option<Vec<String>>,
    dir: PathBuf,
}

fn usage() -> String {
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.0).collect();
    format!(
        "usage: ordq-bench [--jobs N] [--per-call-jobs N] [--durability immediate|none] \
         [--only NAME,...] [--dir PATH]\n\
         \n  --jobs N           jobs of the batched runs (default 200000)\
         \n  --per-call-jobs N  jobs of the single-call runs (default 50000)\
         \n  --durability none  also run every scenario with durability None (extra lines)\
         \n  --only NAMES       run only these scenarios: {} (ratios need baseline)\
         \n  --dir PATH         where the temporary databases go (default: the temp dir)\
         \n\nEnv: ORDQ_BENCH_JOBS, ORDQ_BENCH_PER_CALL_JOBS, ORDQ_BENCH_DURABILITY, \
         ORDQ_BENCH_ONLY, ORDQ_BENCH_DIR.",
        names.join(",")
    )
}

fn parse_count(what: &str, v: &str) -> Result<u64, String> {
    let v = v.replace('_', "");
    let n: u64 = match v.strip_suffix(['k', 'K']) {
        Some(k) => k.parse::<u64>().map(|n| n * 1000),
        None => v.parse(),
    }
    .map_err(|_| format!("{what}: not a count: {v:?}"))?;
    if n == 0 {
        return Err(format!("{what} must be at least 1"));
    }
    Ok(n)
}

fn parse_durability(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "immediate" => Ok(false),
        "none" => Ok(true),
        _ => Err(format!("durability must be immediate or none, not {v:?}")),
    }
}

fn parse_only(v: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for n in &names {
        if !SCENARIOS.iter().any(|s| s.0 == n) {
            return Err(format!("unknown scenario {n:?}"));
        }
    }
    Ok(names)
}

fn parse_args() -> Result<Config, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut c = Config {
        jobs: 200_000,
        per_call_jobs: 50_000,
        also_none: false,
        only: None,
        dir: std::env::temp_dir(),
    };
    if let Some(v) = env("ORDQ_BENCH_JOBS") {
        c.jobs = parse_count("ORDQ_BENCH_JOBS", &v)?;
    }
    if let Some(v) = env("ORDQ_BENCH_PER_CALL_JOBS") {
        c.per_call_jobs = parse_count("ORDQ_BENCH_PER_CALL_JOBS", &v)?;
    }
    if let Some(v) = env("ORDQ_BENCH_DURABILITY") {
        c.also_none = parse_durability(&v)?;
    }
    if let Some(v) = env("ORDQ_BENCH_ONLY") {
        c.only = Some(parse_only(&v)?);
    }
    if let Some(v) = env("ORDQ_BENCH_DIR") {
        c.dir = PathBuf::from(v);
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--jobs" => c.jobs = parse_count("--jobs", &value()?)?,
            "--per-call-jobs" => c.per_call_jobs = parse_count("--per-call-jobs", &value()?)?,
            "--durability" => c.also_none = parse_durability(&value()?)?,
            "--only" => c.only = Some(parse_only(&value()?)?),
            "--dir" => c.dir = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a:?}\n\n{}", usage())),
        }
    }
    Ok(c)
}

/// The raw redb baseline of one durability.
struct Baseline {
    single: Measure,
    batch: Measure,
    shape: Measure,
    /// The segment log floor, one job per sync (W1) and 100 (WJ).
    log_single: Measure,
    log_grouped: Measure,
}

fn run_baseline(c: &Config, shape: &JobShape, durable: bool) -> Result<Baseline, String> {
    let cap = Duration::from_secs(3);
    Ok(Baseline {
        single: baseline::redb_commits(&c.dir, 1, 20_000, cap, durable)?,
        batch: baseline::redb_commits(&c.dir, 1000, 1_000, cap, durable)?,
        shape: baseline::redb_job_shape(&c.dir, shape, 100, c.jobs, cap, durable)?,
        log_single: baseline::log_floor(&c.dir, shape.log_bytes, 1, 20_000, cap)?,
        log_grouped: baseline::log_floor(&c.dir, shape.log_bytes, 100, c.jobs, cap)?,
    })
}

fn run(c: &Config, name: &str, durability: Durability) -> Result<Measure, String> {
    let env = Env {
        base: &c.dir,
        durability,
    };
    match name {
        "enqueue-1t" => scenarios::enqueue(&env, 1, 1, c.per_call_jobs, ENQUEUE_CAP),
        "enqueue-8t" => scenarios::enqueue(&env, 8, 1, c.per_call_jobs, ENQUEUE_CAP),
        "enqueue-batch" => scenarios::enqueue(&env, 1, 100, c.jobs, Duration::MAX),
        "enqueue-batch-4t" => scenarios::enqueue(&env, 4, 100, c.jobs, Duration::MAX),
        "e2e-batched" => scenarios::end_to_end(&env, c.jobs, 4, Workers::Batched),
        "e2e-per-call" => scenarios::end_to_end(&env, c.per_call_jobs, 64, Workers::PerCall),
        "abi-enqueue-1t" => abi::enqueue(&env, 1, 1, c.per_call_jobs, ENQUEUE_CAP),
        "abi-enqueue-batch" => abi::enqueue(&env, 1, 100, c.jobs, Duration::MAX),
        "abi-e2e-batched" => abi::end_to_end(&env, c.jobs, 4, Workers::Batched),
        "abi-e2e-per-call" => abi::end_to_end(&env, c.per_call_jobs, 64, Workers::PerCall),
        _ => Err(format!("unknown scenario {name}")),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{:.0}%", v * 100.0))
}

/// The line of details under a figure: calls, CPU, bytes written.
fn details(m: &Measure, jobs_word: &str) -> String {
    let mut s = format!(
        "{} {jobs_word} in {:.2}s, {} calls/s, writer CPU {}, process CPU {}",
        thousands(m.items as f64),
        m.secs,
        thousands(m.call_rate()),
        pct(m.writer_busy()),
        pct(m.proc_busy()),
    );
    if let Some(b) = m.bytes_per_item() {
        s += &format!(
            ", {} B written/{}",
            thousands(b),
            jobs_word.trim_end_matches('s')
        );
    }
    if m.claims > 0 {
        s += &format!(
            ", {:.1} jobs/claim, {} empty claims",
            m.items as f64 / m.claims as f64,
            thousands(m.empty_claims as f64)
        );
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("broker") => std::process::exit(broker::main(&args[1..])),
        Some("broker-worker") => std::process::exit(broker::worker::main(&args[1..])),
        Some("recovery") => std::process::exit(recovery::main(&args[1..])),
        Some("recovery-child") => std::process::exit(recovery::child(&args[1..])),
        _ => {}
    }
    let c = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ordq-bench: {e}");
            std::process::exit(2);
        }
    };
    let selected: Vec<(&str, &str)> = SCENARIOS[1..]
        .iter()
        .copied()
        .filter(|(n, _)| match &c.only {
            Some(o) => o.iter().any(|x| x == n),
            None => true,
        })
        .collect();
    println!("ordq bench: durability Immediate (default){}", {
        if c.also_none {
            ", plus durability None as extra lines"
        } else {
            ""
        }
    });
    println!("machine: {}", sys::machine());
    println!(
        "sizes: {} jobs (batched runs), {} jobs (single-call runs), {} keys, {}-byte payloads; \
         databases under {}",
        thousands(c.jobs as f64),
        thousands(c.per_call_jobs as f64),
        scenarios::KEYS,
        scenarios::PAYLOAD_BYTES,
        c.dir.display()
    );
    println!();

    let mut failed = false;
    let want_baseline = match &c.only {
        Some(o) => o.iter().any(|x| x == "baseline"),
        None => true,
    };
    let shape = if want_baseline {
        match baseline::job_shape(&c.dir, &scenarios::payload(), scenarios::RESULT) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("ordq-bench: reading the engine's job shape failed: {e}");
                failed = true;
                None
            }
        }
    } else {
        None
    };
    let base = if let Some(shape) = &shape {
        match run_baseline(&c, shape, true) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("ordq-bench: raw redb baseline failed: {e}");
                failed = true;
                None
            }
        }
    } else {
        None
    };
    let base_none = match (&base, &shape, c.also_none) {
        (Some(_), Some(shape), true) => match run_baseline(&c, shape, false) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("ordq-bench: raw redb baseline (None) failed: {e}");
                failed = true;
                None
            }
        },
        _ => None,
    };
    let b1 = base.as_ref().map(|b| b.single.call_rate());
    let b1000 = base.as_ref().map(|b| b.batch.rate());
    let bj = base.as_ref().map(|b| b.shape.rate());
    if let Some(base) = &base {
        println!(
            "baseline: raw redb write transactions, Immediate, {}-byte rows",
            baseline::ROW_BYTES
        );
        println!(
            "  [B1]    1 row/commit:     {:>10} commits/s  ({} commits in {:.2}s)",
            thousands(base.single.call_rate()),
            thousands(base.single.calls as f64),
            base.single.secs
        );
        println!(
            "  [B1000] 1000 rows/commit: {:>10} rows/s     ({} commits/s, {} commits in {:.2}s)",
            thousands(base.batch.rate()),
            thousands(base.batch.call_rate()),
            thousands(base.batch.calls as f64),
            base.batch.secs
        );
        println!(
            "  [BJ]    job-shaped rows:  {:>10} jobs/s     ({} commits/s of 100 jobs, \
             {:.0} B written/job)",
            thousands(base.shape.rate()),
            thousands(base.shape.call_rate()),
            base.shape.bytes_per_item().unwrap_or(f64::NAN),
        );
        println!(
            "  [W1]    log floor, 1 job/sync: {:>7} jobs/s     (write + fdatasync of the \
             engine's log bytes per job, zero-filled file)",
            thousands(base.log_single.rate()),
        );
        println!(
            "  [WJ]    log floor, 100 jobs/sync: {:>4} jobs/s     ({} syncs/s)",
            thousands(base.log_grouped.rate()),
            thousands(base.log_grouped.call_rate()),
        );
    }
    if let Some(shape) = &shape {
        println!(
            "          BJ replays the engine's row writes per job ({} rows, {} B of values), \
             read from a real database; W1/WJ its {} B of segment log per job:",
            shape.rows(),
            shape.bytes(),
            shape.log_bytes
        );
        println!("          {}", shape.describe());
    }
    if let Some(bn) = &base_none {
        println!(
            "  non-durable (redb Durability::None): {} commits/s at 1 row, {} rows/s at 1000 rows, \
             {} jobs/s job-shaped",
            thousands(bn.single.call_rate()),
            thousands(bn.batch.rate()),
            thousands(bn.shape.rate())
        );
    }
    println!();
    println!(
        "{:<52} {:>12} {:>10} {:>7} {:>8} {:>8} {:>6}",
        "figure (Immediate)", "value /s", "target", "of tgt", "x B1", "x B1000", "x BJ"
    );
    let mut rates: Vec<(&str, f64)> = Vec::new();
    for (name, what) in selected {
        let m = match run(&c, name, Durability::Immediate) {
            Ok(m) => m,
            Err(e) => {
                println!("{:<52} FAILED: {e}", format!("{what} [{name}]"));
                failed = true;
                continue;
            }
        };
        let r = m.rate();
        let (tgt, of) = match target(name) {
            Some(t) => (
                thousands(t),
                format!("{:.0}%{}", r / t * 100.0, if r >= t { "" } else { "!" }),
            ),
            None => ("-".into(), "-".into()),
        };
        let ratio =
            |b: Option<f64>, digits: usize| b.map_or("-".into(), |b| format!("{:.digits$}", r / b));
        let e2e = name.starts_with("e2e") || name.starts_with("abi-e2e");
        println!(
            "{:<52} {:>12} {:>10} {:>7} {:>8} {:>8} {:>6}",
            what,
            thousands(r),
            tgt,
            of,
            ratio(b1, 2),
            ratio(b1000, 3),
            if e2e { ratio(bj, 2) } else { "-".into() }
        );
        let word = if e2e { "jobs" } else { "tasks" };
        println!("    {}", details(&m, word));
        rates.push((name, r));
        if let Some(core) = name.strip_prefix("abi-") {
            match rates.iter().find(|(n, _)| *n == core) {
                Some((_, base)) => println!(
                    "    through the ABI / core [{core}], same run: {:.2}x (target >= {ABI_TARGET:.2}){}",
                    r / base.max(f64::EPSILON),
                    if r / base >= ABI_TARGET { "" } else { " !" }
                ),
                None => println!("    (run {core} too for the ABI / core ratio)"),
            }
        }
        if let Some(l) = &m.latency {
            println!(
                "    claim->complete latency: p50 {} p99 {} (from claim returning); \
                 p50 {}ms p99 {}ms (from lease leased_at); {} samples",
                micros(l.claim_p50_us),
                micros(l.claim_p99_us),
                l.lease_p50_ms,
                l.lease_p99_ms,
                thousands(l.samples as f64)
            );
        }
        if c.also_none {
            match run(&c, name, Durability::None) {
                Ok(mut n) => {
                    // Non-durable pages reach the disk later, by writeback
                    // that is not charged to the run: don't show 0 B/job.
                    n.usage.written = None;
                    let mut line = format!(
                        "    durability None: {} /s ({:.1}x the durable figure",
                        thousands(n.rate()),
                        n.rate() / r.max(f64::EPSILON)
                    );
                    if let Some(bn) = &base_none {
                        line += &format!(
                            "; x{:.2} B1, x{:.3} B1000",
                            n.rate() / bn.single.call_rate(),
                            n.rate() / bn.batch.rate()
                        );
                        if e2e {
                            line += &format!(", x{:.2} BJ", n.rate() / bn.shape.rate());
                        }
                        line += ", all redb None";
                    }
                    line += ")";
                    if let Some(l) = &n.latency {
                        line += &format!(
                            ", latency p50 {} p99 {}",
                            micros(l.claim_p50_us),
                            micros(l.claim_p99_us)
                        );
                    }
                    println!("{line}");
                    println!("      {}", details(&n, word));
                }
                Err(e) => {
                    println!("    durability None: FAILED: {e}");
                    failed = true;
                }
            }
        }
    }
    println!();
    println!(
        "x B1 = figure / redb commits per second at 1 row per commit; \
         x B1000 = figure / redb rows per second at 1000 rows per commit;"
    );
    println!(
        "x BJ = figure / raw redb jobs per second making the engine's row writes \
         (end-to-end runs only)."
    );
    println!("'!' marks a missed target. Targets are for durable (Immediate) runs.");
    if failed {
        std::process::exit(1);
    }
}
