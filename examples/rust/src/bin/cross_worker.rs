//! Rust worker of the cross-language scenario (`make test-cross`,
//! `make demo`; driven by tests/cross/scenario.py), through the `ordq`
//! crate (the C ABI; a `unix://` or `tcp://` address reaches a broker).
//!
//! It claims in batches and treats each task as its payload says (see
//! `cross_producer`): `ok` completes, `once` fails (retryable) on attempt 1
//! and completes later, `always` fails every attempt until it is
//! dead-lettered. Completions go in one `complete_batch` per claim, with
//! the result `{"w":"<worker id>","f":<fence>}` so the checker can tell
//! who committed under which lease.
//!
//! ```text
//! cross_worker --db unix:///tmp/x/ordq.sock --id rs-1 --ctl /tmp/x/ctl \
//!     --report /tmp/x/workers/rs-1.0.json
//! ```
//!
//! Control files in `--ctl`: once `producer-done` exists and the queue has
//! nothing ready, leased or waiting for a retry, the worker exits 0. When
//! `hang-<id>` appears, the worker takes its next batches, records those
//! leases in `hung-<id>.json` and hangs holding them (the orchestrator
//! then kills it with SIGKILL). `--report` is rewritten every 250 ms and
//! at exit with the worker's counts.

use ordq::{ClaimOptions, Db, ErrorKind, Options};
use ordq_examples::cross::{write_json, Args, Behaviour, Ctl};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "cross_worker --db URI --id ID --ctl DIR [--queue cross] [--report FILE] \
    [--max 32] [--wait-ms 500]";

/// Leases a hanging worker tries to hold before it reports itself hung.
const HANG_LEASES: usize = 8;

const OPTS: &[&str] = &["db", "id", "ctl", "queue", "report", "max", "wait-ms"];

/// What this process did, as written to `--report`.
#[derive(Default)]
struct Counts {
    claims: u64,
    claimed: u64,
    completed: u64,
    failed: u64,
    dead: u64,
    lease_lost: u64,
}

struct Worker {
    db: Db,
    queue: String,
    id: String,
    ctl: Ctl,
    report: Option<PathBuf>,
    counts: Counts,
    last_report: Instant,
}

impl Worker {
    fn write_report(&mut self, done: bool) -> std::io::Result<()> {
        self.last_report = Instant::now();
        let Some(path) = &self.report else {
            return Ok(());
        };
        let c = &self.counts;
        let v = json!({
            "id": self.id, "runtime": "rust", "pid": std::process::id(),
            "claims": c.claims, "claimed": c.claimed, "completed": c.completed,
            "failed": c.failed, "dead": c.dead, "lease_lost": c.lease_lost,
            "final": done,
        });
        write_json(path, &v)
    }

    /// True once the producer is done and nothing is left to run.
    fn drained(&self) -> ordq::Result<bool> {
        if !self.ctl.has("producer-done") {
            return Ok(false);
        }
        let s = self.db.stats(&self.queue)?;
        Ok(s.ready + s.leased + s.retry_wait == 0)
    }

    fn run(&mut self, opts: &ClaimOptions) -> Result<(), Box<dyn std::error::Error>> {
        let hang_marker = format!("hang-{}", self.id);
        loop {
            if self.last_report.elapsed() >= Duration::from_millis(250) {
                self.write_report(false)?;
            }
            let hang = self.ctl.has(&hang_marker);
            let mut leases = self.db.claim(&self.queue, &self.id, opts)?;
            if leases.is_empty() {
                if self.drained()? {
                    return Ok(());
                }
                continue;
            }
            self.counts.claims += 1;
            self.counts.claimed += leases.len() as u64;
            if hang {
                // Take a few more batches first (for up to half a lease), so
                // the kill catches a handful of leases, not just one.
                let start = Instant::now();
                while leases.len() < HANG_LEASES && start.elapsed() < Duration::from_secs(1) {
                    let more = ClaimOptions::new().max(32).wait(Duration::from_millis(100));
                    leases.extend(self.db.claim(&self.queue, &self.id, &more)?);
                }
                let held: Vec<_> = leases
                    .iter()
                    .map(|l| json!({"offset": l.offset, "fence": l.token.fence(), "attempt": l.attempt}))
                    .collect();
                std::fs::remove_file(self.ctl.path(&hang_marker))?;
                self.write_report(false)?;
                let marker = json!({"id": self.id, "pid": std::process::id(), "leases": held});
                write_json(&self.ctl.path(&format!("hung-{}.json", self.id)), &marker)?;
                loop {
                    // Holding the leases until killed (SIGKILL).
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            let mut ok = Vec::with_capacity(leases.len());
            for l in leases {
                let fail = match Behaviour::of_payload(&l.payload)? {
                    Behaviour::Ok => false,
                    Behaviour::FailOnce => l.attempt == 1,
                    Behaviour::FailAlways => true,
                };
                if !fail {
                    ok.push(l);
                    continue;
                }
                let msg = format!("{}: injected failure, attempt {}", self.id, l.attempt);
                match self.db.fail(l.token, &msg, true) {
                    Ok(o) if o.is_dead() => self.counts.dead += 1,
                    Ok(_) => self.counts.failed += 1,
                    Err(e) if e.kind == ErrorKind::LeaseLost => self.counts.lease_lost += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            let results: Vec<Vec<u8>> = ok
                .iter()
                .map(|l| {
                    json!({"w": self.id, "f": l.token.fence()})
                        .to_string()
                        .into_bytes()
                })
                .collect();
            let items: Vec<_> = ok
                .iter()
                .zip(&results)
                .map(|(l, r)| (l.token, r.as_slice()))
                .collect();
            for r in self.db.complete_batch(&items)? {
                match r {
                    Ok(_) => self.counts.completed += 1,
                    Err(e) if e.kind == ErrorKind::LeaseLost => self.counts.lease_lost += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

fn main() {
    let a = Args::parse(USAGE, OPTS);
    let id = a.required(USAGE, "id");
    let opts = ClaimOptions::new()
        .max(a.num(USAGE, "max", 32))
        .wait(Duration::from_millis(a.num(USAGE, "wait-ms", 500)));
    let db = match Db::open(&a.required(USAGE, "db"), &Options::new()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("cross_worker {id}: {e}");
            std::process::exit(1);
        }
    };
    let mut w = Worker {
        db,
        queue: a.str("queue", "cross"),
        ctl: Ctl::new(a.required(USAGE, "ctl")),
        report: a.opt("report").map(PathBuf::from),
        id,
        counts: Counts::default(),
        last_report: Instant::now(),
    };
    let r = w.run(&opts);
    let written = w.write_report(r.is_ok());
    if let Err(e) = r.and(written.map_err(Into::into)) {
        eprintln!("cross_worker {}: {e}", w.id);
        std::process::exit(1);
    }
}
