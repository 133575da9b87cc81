//! The raw redb baseline: write transactions that insert N small rows and
//! commit, on the same disk and with the same durability as the engine.
//! Engine figures are printed as ratios to it, which cancels much of the
//! noise of a shared machine.

use crate::measure::Measure;
use crate::sys::Probe;
use crate::util::TempDir;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

/// Size of each baseline row's value, in bytes ("small rows").
pub const ROW_BYTES: usize = 32;

/// Commits of `rows_per_commit` inserts each on a fresh file, until
/// `max_commits` or `cap` is reached. `items` counts rows, `calls` commits.
pub fn redb_commits(
    base: &Path,
    rows_per_commit: u64,
    max_commits: u64,
    cap: Duration,
    durable: bool,
) -> Result<Measure, String> {
    let dir = TempDir::new(base).map_err(|e| e.to_string())?;
    let db = redb::Database::create(dir.file("baseline.redb")).map_err(|e| e.to_string())?;
    let value = [0x5au8; ROW_BYTES];
    let durability = if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    let probe = Probe::start(false);
    let start = Instant::now();
    let mut key = 0u64;
    let mut commits = 0u64;
    while commits < max_commits && start.elapsed() < cap {
        let mut txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.set_durability(durability).map_err(|e| e.to_string())?;
        {
            let mut t = txn.open_table(ROWS).map_err(|e| e.to_string())?;
            for _ in 0..rows_per_commit {
                t.insert(key, value.as_slice()).map_err(|e| e.to_string())?;
                key += 1;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        commits += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let usage = probe.finish();
    Ok(Measure {
        items: key,
        calls: commits,
        secs,
        usage,
        ..Measure::default()
    })
}

/// The row writes one step of a job makes: `(table, value bytes)`.
pub type StepWrites = Vec<(String, usize)>;

/// The row writes the engine makes for one job, per step (enqueue,
/// claim, complete), found by running one job through a real database
/// and diffing its `(u32, u64) -> bytes` tables after each step. Rows
/// written once per commit (queue state, meta) are not per job and are
/// left out; so are tables of other key types.
#[derive(Debug, Clone, Default)]
pub struct JobShape {
    /// Writes of the enqueue, the claim and the complete.
    pub steps: [StepWrites; 3],
    /// Bytes the engine appended to its segment log for the job (three
    /// groups, one per step, with their commit markers).
    pub log_bytes: u64,
}

impl JobShape {
    /// Row writes per job.
    pub fn rows(&self) -> usize {
        self.steps.iter().map(Vec::len).sum()
    }

    /// Value bytes written per job.
    pub fn bytes(&self) -> usize {
        self.steps.iter().flatten().map(|w| w.1).sum()
    }

    /// `enqueue: log 525 B, tasks 102 B | claim: ... | complete: ...`.
    pub fn describe(&self) -> String {
        let names = ["enqueue", "claim", "complete"];
        let step = |i: usize| {
            let w: Vec<String> = self.steps[i]
                .iter()
                .map(|(t, n)| format!("{t} {n} B"))
                .collect();
            format!("{}: {}", names[i], w.join(", "))
        };
        (0..3).map(step).collect::<Vec<_>>().join(" | ")
    }
}

type Snapshot = HashMap<String, HashMap<(u32, u64), Vec<u8>>>;

/// Every `(u32, u64) -> bytes` table of the file at `path`.
fn snapshot(path: &Path) -> Result<Snapshot, String> {
    let e = |e: &dyn std::fmt::Display| format!("reading {}: {e}", path.display());
    let db = redb::Database::open(path).map_err(|x| e(&x))?;
    let rtx = db.begin_read().map_err(|x| e(&x))?;
    let mut out = Snapshot::new();
    for h in rtx.list_tables().map_err(|x| e(&x))? {
        let name = h.name().to_string();
        let def = TableDefinition::<(u32, u64), &[u8]>::new(&name);
        // Tables of other key or value types are not per-job rows.
        let Ok(t) = rtx.open_table(def) else {
            continue;
        };
        let mut rows = HashMap::new();
        for r in t.iter().map_err(|x| e(&x))? {
            let (k, v) = r.map_err(|x| e(&x))?;
            rows.insert(k.value(), v.value().to_vec());
        }
        out.insert(name, rows);
    }
    Ok(out)
}

/// Rows of `after` that are new or changed since `before`.
fn writes(before: &Snapshot, after: &Snapshot) -> StepWrites {
    let mut out = Vec::new();
    for (table, rows) in after {
        for (k, v) in rows {
            if before.get(table).and_then(|t| t.get(k)) != Some(v) {
                out.push((table.clone(), v.len()));
            }
        }
    }
    out.sort();
    out
}

/// Runs one job (the bench's key, payload and result sizes) through a
/// fresh database, closing it after each step to read what was written.
pub fn job_shape(base: &Path, payload: &[u8], result: &[u8]) -> Result<JobShape, String> {
    use ordq_core::{ClaimOptions, Db, EnqueueOptions, Options, QueueConfig};
    let e = |e: ordq_core::Error| e.to_string();
    let dir = TempDir::new(base).map_err(|x| x.to_string())?;
    let path = dir.file("shape.ordq");
    let open = || Db::open(&path, Options::default()).map_err(e);
    let db = open()?;
    db.create_queue("bench", QueueConfig::default())
        .map_err(e)?;
    db.close();
    let s0 = snapshot(&path)?;
    let l0 = log_end(&path)?;
    let db = open()?;
    db.enqueue("bench", "key-0042", payload, EnqueueOptions::default())
        .map_err(e)?;
    db.close();
    let s1 = snapshot(&path)?;
    let db = open()?;
    let lease = db
        .claim("bench", "worker-1", ClaimOptions::default())
        .map_err(e)?
        .pop()
        .ok_or("the shape job could not be claimed")?;
    db.close();
    let s2 = snapshot(&path)?;
    let db = open()?;
    db.complete(lease.token, result).map_err(e)?;
    db.close();
    let s3 = snapshot(&path)?;
    let l3 = log_end(&path)?;
    Ok(JobShape {
        steps: [writes(&s0, &s1), writes(&s1, &s2), writes(&s2, &s3)],
        log_bytes: l3 - l0,
    })
}

/// Where the next group of a closed database's (one-segment) log goes.
fn log_end(db: &Path) -> Result<u64, String> {
    use ordq_core::wal::{self, Wal};
    let dir = wal::dir_of(db);
    let seg = dir.join(wal::segment::name(0));
    let head = std::fs::read(&seg).map_err(|e| format!("{}: {e}", seg.display()))?;
    let id: [u8; 16] = head
        .get(24..40)
        .and_then(|b| b.try_into().ok())
        .ok_or("short segment header")?;
    let (w, _) = Wal::open(&dir, id, wal::DEFAULT_SEGMENT_SIZE, 0).map_err(|e| e.to_string())?;
    Ok(w.position().offset)
}

/// The segment log's floor ("W"): `bytes_per_job` bytes per job appended
/// to a zero-filled file and `fdatasync`ed, `per_sync` jobs per write and
/// sync, with no engine logic. `items` counts jobs, `calls` syncs.
pub fn log_floor(
    base: &Path,
    bytes_per_job: u64,
    per_sync: u64,
    jobs: u64,
    cap: Duration,
) -> Result<Measure, String> {
    use ordq_core::wal::segment;
    use std::os::unix::fs::FileExt;
    let e = |e: std::io::Error| e.to_string();
    let dir = TempDir::new(base).map_err(e)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.file("floor.log"))
        .map_err(e)?;
    let group = vec![0xa5u8; (bytes_per_job * per_sync) as usize];
    let (mut pos, mut allocated) = (0u64, 0u64);
    let probe = Probe::start(false);
    let start = Instant::now();
    let (mut done, mut syncs) = (0u64, 0u64);
    while done < jobs && start.elapsed() < cap {
        // Zero-filled ahead by chunks, as the engine's segments are.
        while pos + group.len() as u64 > allocated {
            segment::zero_fill(&f, allocated, allocated + segment::CHUNK)
                .map_err(|x| x.to_string())?;
            allocated += segment::CHUNK;
        }
        f.write_all_at(&group, pos).map_err(e)?;
        f.sync_data().map_err(e)?;
        pos += group.len() as u64;
        done += per_sync;
        syncs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Measure {
        items: done,
        calls: syncs,
        secs,
        usage: probe.finish(),
        ..Measure::default()
    })
}

/// The storage floor of the engine's schema: raw redb making the row
/// writes of `shape` for `jobs` jobs, `per_commit` jobs per commit, with
/// no engine logic. Each commit enqueues one group of jobs, claims the
/// group before it and completes the one before that, so every commit
/// carries all three steps, as the engine's do. `items` counts jobs,
/// `calls` commits.
pub fn redb_job_shape(
    base: &Path,
    shape: &JobShape,
    per_commit: u64,
    jobs: u64,
    cap: Duration,
    durable: bool,
) -> Result<Measure, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let dir = TempDir::new(base).map_err(|x| e(&x))?;
    let db = redb::Database::create(dir.file("shape.redb")).map_err(|x| e(&x))?;
    let biggest = shape.steps.iter().flatten().map(|w| w.1).max().unwrap_or(0);
    let filler: Vec<u8> = (0..biggest).map(|i| (i * 31 + 7) as u8).collect();
    let durability = if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    let probe = Probe::start(false);
    let start = Instant::now();
    // Next job of each step: complete, claim, enqueue.
    let mut next = [0u64; 3];
    let mut commits = 0u64;
    while next[0] < jobs && start.elapsed() < cap {
        let mut txn = db.begin_write().map_err(|x| e(&x))?;
        txn.set_durability(durability).map_err(|x| e(&x))?;
        {
            let mut tables = HashMap::new();
            for (table, _) in shape.steps.iter().flatten() {
                if !tables.contains_key(table) {
                    let def = TableDefinition::<(u32, u64), &[u8]>::new(table);
                    tables.insert(table.clone(), txn.open_table(def).map_err(|x| e(&x))?);
                }
            }
            // Step 2 (complete) trails step 1 (claim), which trails step 0.
            for (slot, step) in [(0usize, 2usize), (1, 1), (2, 0)] {
                let limit = if slot == 2 { jobs } else { next[slot + 1] };
                let stop = (next[slot] + per_commit).min(limit);
                for job in next[slot]..stop {
                    for (table, n) in &shape.steps[step] {
                        let t = tables.get_mut(table).expect("opened above");
                        t.insert((1, job), &filler[..*n]).map_err(|x| e(&x))?;
                    }
                }
                next[slot] = stop;
            }
        }
        txn.commit().map_err(|x| e(&x))?;
        commits += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Measure {
        items: next[0],
        calls: commits,
        secs,
        usage: probe.finish(),
        ..Measure::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape is read from the engine: every step writes something,
    /// and the enqueue stores at least the payload.
    #[test]
    fn job_shape_is_read_from_the_engine() {
        let base = std::env::temp_dir();
        let payload = vec![7u8; 256];
        let shape = job_shape(&base, &payload, b"ok").unwrap();
        for (i, step) in shape.steps.iter().enumerate() {
            assert!(!step.is_empty(), "step {i} wrote nothing: {shape:?}");
        }
        let enq: usize = shape.steps[0].iter().map(|w| w.1).sum();
        assert!(enq >= payload.len(), "enqueue wrote {enq} bytes: {shape:?}");
        assert!(shape.bytes() >= enq && shape.rows() >= 3);
        assert!(shape.describe().starts_with("enqueue: "));
        // The log carries the payload and every row value once.
        assert!(
            shape.log_bytes >= shape.bytes() as u64,
            "log {} B for {} B of rows",
            shape.log_bytes,
            shape.bytes()
        );
    }

    /// The log floor writes and syncs the asked number of jobs.
    #[test]
    fn log_floor_makes_the_jobs_and_syncs() {
        let m = log_floor(&std::env::temp_dir(), 700, 10, 200, Duration::from_secs(60)).unwrap();
        assert_eq!((m.items, m.calls), (200, 20));
        assert!(m.secs > 0.0);
    }

    /// Replaying a shape makes the requested number of jobs and commits.
    #[test]
    fn replays_a_shape() {
        let shape = JobShape {
            steps: [
                vec![("log".into(), 300), ("tasks".into(), 100)],
                vec![("tasks".into(), 100)],
                vec![("events".into(), 250), ("tasks".into(), 100)],
            ],
            log_bytes: 0,
        };
        let m = redb_job_shape(
            &std::env::temp_dir(),
            &shape,
            10,
            100,
            Duration::from_secs(60),
            false,
        )
        .unwrap();
        assert_eq!(m.items, 100);
        // Ten commits of enqueues, then two more to drain claim and complete.
        assert_eq!(m.calls, 12);
    }
}
