//! `ordq-bench recovery`: what a crash costs at open, and what pending
//! work costs in memory. A child process (this binary, `recovery-child`)
//! enqueues N tasks over K keys with no state checkpoint after the queue's
//! creation, reports its RSS and is SIGKILLed; the parent then times the
//! open that replays the whole log suffix, reports the records replayed and
//! the RSS of a process holding N pending tasks, closes (a checkpoint),
//! times a clean open of the same file and a full `verify` of it.
//!
//! ```text
//! ordq-bench recovery [--tasks N] [--keys K] [--dir PATH]
//! ```

use crate::util::{thousands, TempDir};
use ordq_core::{Db, EnqueueItem, Options, QueueConfig};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BATCH: u64 = 1000;

/// Options of both processes: no periodic checkpoint, so everything
/// after the queue's creation is left to the log.
fn options() -> Options {
    Options {
        checkpoint_interval: Duration::from_secs(24 * 3600),
        ..Options::default()
    }
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The child: fills the queue and waits to be killed.
pub fn child(args: &[String]) -> i32 {
    let [path, tasks, keys] = args else {
        eprintln!("recovery-child PATH TASKS KEYS");
        return 2;
    };
    let (Ok(tasks), Ok(keys)) = (tasks.parse::<u64>(), keys.parse::<u64>()) else {
        eprintln!("recovery-child: bad numbers");
        return 2;
    };
    let run = || -> Result<(), String> {
        let e = |e: ordq_core::Error| e.to_string();
        let db = Db::open(path, options()).map_err(e)?;
        db.create_queue("q", QueueConfig::default()).map_err(e)?;
        // The queue's creation is checkpointed; the tasks are not.
        db.sync().map_err(e)?;
        let started = Instant::now();
        let mut next = 0;
        while next < tasks {
            let n = BATCH.min(tasks - next);
            let items = (next..next + n)
                .map(|i| EnqueueItem {
                    key: format!("k{}", i % keys),
                    payload: vec![0xab; 100],
                    ..EnqueueItem::default()
                })
                .collect();
            db.enqueue_batch("q", items).map_err(e)?;
            next += n;
        }
        println!(
            "filled {} {} {}",
            tasks,
            started.elapsed().as_millis(),
            rss()
        );
        std::thread::sleep(Duration::from_secs(3600));
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("recovery-child: {e}");
            1
        }
    }
}

struct Args {
    tasks: u64,
    keys: u64,
    dir: PathBuf,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        tasks: 1_000_000,
        keys: 100_000,
        dir: std::env::temp_dir(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tasks" => a.tasks = value()?.parse().map_err(|e| format!("--tasks: {e}"))?,
            "--keys" => a.keys = value()?.parse().map_err(|e| format!("--keys: {e}"))?,
            "--dir" => a.dir = PathBuf::from(value()?),
            "--help" | "-h" => {
                return Err("usage: ordq-bench recovery [--tasks N] [--keys K] [--dir PATH]".into())
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.tasks == 0 || a.keys == 0 {
        return Err("--tasks and --keys must be positive".into());
    }
    Ok(a)
}

/// The parent: see the module docs.
pub fn main(args: &[String]) -> i32 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ordq-bench recovery: {e}");
            return 2;
        }
    };
    match run(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ordq-bench recovery: {e}");
            1
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    let tmp = TempDir::new(&a.dir).map_err(|e| e.to_string())?;
    let path = tmp.file("db.ordq");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("recovery-child")
        .arg(&path)
        .arg(a.tasks.to_string())
        .arg(a.keys.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no child stdout")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let _ = child.kill();
    let _ = child.wait();
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let [tasks, fill_ms, child_rss] = f[..] else {
        return Err(format!("child said {line:?}"));
    };
    let log = ordq_core::wal::dir_of(&path);
    let (log_bytes, file_bytes) = (
        dir_bytes(&log),
        std::fs::metadata(&path).map_or(0, |m| m.len()),
    );
    println!(
        "recovery: {} tasks over {} keys enqueued in batches of {BATCH} in {:.2}s, then SIGKILL; \
         child RSS {} MiB; log {} MiB, state file {} MiB",
        thousands(tasks as f64),
        thousands(a.keys as f64),
        fill_ms as f64 / 1000.0,
        child_rss >> 20,
        log_bytes >> 20,
        file_bytes >> 20
    );
    let base_rss = rss();
    let t = Instant::now();
    let db = Db::open(&path, options()).map_err(|e| e.to_string())?;
    let replay = t.elapsed();
    let rec = db.log_recovery().clone();
    let s = db.stats("q").map_err(|e| e.to_string())?;
    if s.ready != tasks {
        return Err(format!("after replay {} ready, {tasks} enqueued", s.ready));
    }
    println!(
        "  open with replay: {:.2}s for {} log records ({} records/s); RSS of the open handle +{} MiB ({} B per pending task)",
        replay.as_secs_f64(),
        thousands(rec.next_lsn as f64),
        thousands(rec.next_lsn as f64 / replay.as_secs_f64()),
        rss().saturating_sub(base_rss) >> 20,
        rss().saturating_sub(base_rss) / tasks.max(1)
    );
    db.close();
    drop(db);
    let t = Instant::now();
    let db = Db::open(&path, options()).map_err(|e| e.to_string())?;
    let clean = t.elapsed();
    let s = db.stats("q").map_err(|e| e.to_string())?;
    println!(
        "  clean open (checkpointed at close): {:.2}s; {} ready",
        clean.as_secs_f64(),
        thousands(s.ready as f64)
    );
    let r = db.verify(None).map_err(|e| e.to_string())?;
    if !r.ok {
        return Err(format!("verify found problems: {:?}", r.problems));
    }
    println!(
        "  verify (every frame, both chains, the state rebuilt from the log and compared): {:.2}s for {} records ({} records/s)",
        r.seconds,
        thousands(r.records as f64),
        thousands(r.records as f64 / r.seconds.max(1e-9))
    );
    db.close();
    Ok(())
}
