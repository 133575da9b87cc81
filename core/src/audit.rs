//! `audit`: proves from the segment log alone that a queue kept its
//! promises. Walking every record in log order, it follows each task's
//! lease grants (the fence written to its state row), its enqueue (key)
//! and the queue's events, and checks:
//!
//! - **order**: in every lane, `done` events follow offset order — a task
//!   completes only after every earlier task of its lane that completed,
//!   except a dead letter sent back to the head of its lane (`redrive_head`),
//!   which is run again on purpose;
//! - **fencing**: every `done` event carries the fence of the task's latest
//!   lease, and lease fences only grow (no token granted twice);
//! - **one outcome**: no task is done twice, nor done while dead (a task
//!   dead-lettered is done only after a `redrive_head`).

use crate::error::{Error, Result};
use crate::record::{Event, EventKind, LogHeader, StateRec};
use crate::redo::{self, KIND_BASE, KIND_PUT};
use crate::tables::{self, QUEUES};
use crate::types::QueueInfo;
use crate::verify::log as vlog;
use crate::verify::Findings;
use redb::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// One lane's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneSummary {
    /// Lane id (see docs/FORMAT.md, "Lanes").
    pub lane: u64,
    /// `done` events.
    pub done: u64,
    /// `dead` events.
    pub dead: u64,
    /// Offset of the last task done.
    pub last_done: Option<u64>,
}

/// A promise found broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `order`, `fence` or `outcome`.
    pub kind: String,
    /// The task's offset.
    pub offset: u64,
    /// What is wrong.
    pub why: String,
}

/// The outcome of [`crate::Db::audit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// No violation found.
    pub ok: bool,
    /// The queue audited.
    pub queue: String,
    /// Only the tasks of this key, if given.
    pub key: Option<String>,
    /// LSN the audit started at (0 unless the log was compacted).
    pub first_lsn: u64,
    /// Events checked.
    pub events: u64,
    /// Lease grants seen.
    pub leases: u64,
    /// Lanes with events, in lane order (at most 1,000 listed).
    pub lanes: Vec<LaneSummary>,
    /// Lanes in all.
    pub lane_count: u64,
    /// What could not be checked, if anything.
    pub notes: Vec<String>,
    /// Violations (at most 100 listed).
    pub violations: Vec<Violation>,
    /// Violations in all.
    pub violation_count: u64,
}

/// Per-lane progress while walking.
#[derive(Default)]
struct Lane {
    summary: Option<LaneSummary>,
    /// Highest offset done so far.
    high: Option<u64>,
}

#[derive(Default)]
struct Task {
    key: Option<String>,
    fence: u64,
    done: bool,
    dead: bool,
    redriven_head: bool,
}

const MAX_LANES: usize = 1000;
const MAX_VIOLATIONS: usize = 100;

/// Audits queue `name` over the log in `dir` up to `end`, the snapshot's
/// position.
pub(crate) fn run(
    dir: &Path,
    snapshot: &redb::ReadTransaction,
    end: u64,
    name: &str,
    key: Option<&str>,
) -> Result<AuditReport> {
    let info: QueueInfo = {
        let queues = snapshot.open_table(QUEUES)?;
        let v = queues
            .get(name)?
            .ok_or_else(|| Error::NotFound(format!("queue {name}")))?;
        serde_json::from_slice(v.value()).map_err(|e| Error::Corrupt(format!("queue: {e}")))?
    };
    let log_id = vlog::log_id(snapshot)?;
    let mut damage = Findings::default();
    let read = vlog::read(dir, &log_id, end, &mut damage)?;
    if let Some(p) = damage.first() {
        return Err(Error::Corrupt(format!(
            "the log is damaged ({}: {}); run `ordq verify`",
            p.at, p.why
        )));
    }
    let mut r = AuditReport {
        ok: false,
        queue: name.to_string(),
        key: key.map(str::to_string),
        first_lsn: read.first_lsn,
        events: 0,
        leases: 0,
        lanes: Vec::new(),
        lane_count: 0,
        notes: Vec::new(),
        violations: Vec::new(),
        violation_count: 0,
    };
    if read.first_lsn > 0 {
        r.notes.push(format!(
            "the log starts at LSN {} (older segments were removed): tasks and events before it are not audited",
            read.first_lsn
        ));
    }
    let mut violate = |r: &mut AuditReport, kind: &str, offset: u64, why: String| {
        r.violation_count += 1;
        if r.violations.len() < MAX_VIOLATIONS {
            r.violations.push(Violation {
                kind: kind.to_string(),
                offset,
                why,
            });
        }
    };
    let q = info.id;
    let mut tasks: HashMap<u64, Task> = HashMap::new();
    let mut lanes: BTreeMap<u64, Lane> = BTreeMap::new();
    let mut seen_events: HashSet<u64> = HashSet::new();
    let mut max_fence = 0u64;
    for rec in &read.records {
        if rec.kind != KIND_PUT && rec.kind != KIND_BASE {
            continue;
        }
        let Some((&table, rest)) = rec.body.split_first() else {
            continue;
        };
        let Ok((k, v)) = redo::split_key(rest) else {
            continue;
        };
        match table {
            tables::ID_LOG => {
                let (qid, offset) = <(u32, u64)>::from_bytes(k);
                if qid != q {
                    continue;
                }
                if let Ok((_, h)) = LogHeader::decode(v) {
                    tasks.entry(offset).or_default().key = Some(h.key);
                }
            }
            tables::ID_TASKS => {
                let (qid, offset) = <(u32, u64)>::from_bytes(k);
                let Ok(st) = StateRec::decode(v) else {
                    continue;
                };
                if qid == q {
                    let t = tasks.entry(offset).or_default();
                    // A changed fence is a new lease; a base image row is
                    // the task's state before the migration, not a grant.
                    if st.fence != t.fence {
                        if rec.kind == KIND_PUT {
                            r.leases += 1;
                            if st.fence <= max_fence {
                                violate(
                                    &mut r,
                                    "fence",
                                    offset,
                                    format!(
                                        "lease fence {} granted after fence {max_fence}",
                                        st.fence
                                    ),
                                );
                            }
                        }
                        t.fence = st.fence;
                    }
                }
                max_fence = max_fence.max(st.fence);
            }
            tables::ID_EVENTS => {
                let (qid, seq) = <(u32, u64)>::from_bytes(k);
                // Retention rewrites an event without its tail: count once.
                if qid != q || !seen_events.insert(seq) {
                    continue;
                }
                let Ok((_, e)) = Event::decode(v) else {
                    continue;
                };
                let t = tasks.entry(e.offset).or_default();
                if key.is_some_and(|want| t.key.as_deref() != Some(want)) {
                    continue;
                }
                r.events += 1;
                let base = rec.kind == KIND_BASE;
                audit_event(
                    &e,
                    t,
                    base,
                    lanes.entry(e.lane).or_default(),
                    &mut r,
                    &mut violate,
                );
            }
            _ => {}
        }
    }
    r.lane_count = lanes.len() as u64;
    r.lanes = lanes
        .into_values()
        .filter_map(|l| l.summary)
        .take(MAX_LANES)
        .collect();
    r.ok = r.violation_count == 0;
    Ok(r)
}

/// Checks one event; `base`: from a migration's base image, where the
/// task's lease at the time is not known (no fence check).
fn audit_event(
    e: &Event,
    t: &mut Task,
    base: bool,
    lane: &mut Lane,
    r: &mut AuditReport,
    violate: &mut impl FnMut(&mut AuditReport, &str, u64, String),
) {
    let s = lane.summary.get_or_insert(LaneSummary {
        lane: e.lane,
        done: 0,
        dead: 0,
        last_done: None,
    });
    match e.kind {
        EventKind::Done => {
            s.done += 1;
            s.last_done = Some(e.offset);
            if !base && e.fence != t.fence {
                violate(
                    r,
                    "fence",
                    e.offset,
                    format!(
                        "done under fence {}, the task's latest lease has fence {}",
                        e.fence, t.fence
                    ),
                );
            }
            if t.done {
                violate(r, "outcome", e.offset, "done twice".into());
            }
            if t.dead && !t.redriven_head {
                violate(r, "outcome", e.offset, "done while dead-lettered".into());
            }
            if let Some(high) = lane.high {
                if e.offset < high && !t.redriven_head {
                    violate(
                        r,
                        "order",
                        e.offset,
                        format!("done after offset {high} of the same lane {}", e.lane),
                    );
                }
            }
            lane.high = Some(lane.high.map_or(e.offset, |h| h.max(e.offset)));
            t.done = true;
            t.dead = false;
        }
        EventKind::Dead => {
            s.dead += 1;
            if t.done {
                violate(
                    r,
                    "outcome",
                    e.offset,
                    "dead-lettered after it was done".into(),
                );
            }
            t.dead = true;
            t.redriven_head = false;
        }
        EventKind::RedriveHead => t.redriven_head = true,
        EventKind::RedriveNew | EventKind::Purge => {}
    }
}
