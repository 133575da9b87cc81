//! `verify`: checks a database against its own history, on a read
//! snapshot taken between two writer batches (writers go on meanwhile).
//!
//! 1. **Log**: every segment's header, order and contiguity, every frame's
//!    CRC32C and LSN, every group closed by its commit marker, up to the
//!    snapshot's end.
//! 2. **Checkpoints**: their chain (sequence, previous hash, own LSN), their
//!    signatures (Ed25519, strict), and that the heads each one names
//!    (every queue's log and event chain, the fence) are what replaying the
//!    log up to it gives.
//! 3. **State**: the log replayed from LSN 0 into an empty database must
//!    give the snapshot's state row for row (a row edited behind the log's
//!    back, a lost or extra row, shows here).
//! 4. **Chains**: every queue's log chain and event chain recomputed from
//!    the stored records, contiguous, ending at the heads the queue state
//!    names, payloads and results matching their digests.

mod anchor;
mod chains;
pub(crate) mod log;
mod replay;

pub use anchor::LedgerEntry;

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Most problems a report lists (the count goes on).
const MAX_LISTED: usize = 100;

/// What kind of damage a problem is; each has its own exit code in the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemClass {
    /// The segment log: a frame, a segment header, a missing segment.
    Log,
    /// A log or event chain: a hash, a gap, a digest, a head.
    Chain,
    /// The checkpoint chain, or a checkpoint's heads.
    Checkpoint,
    /// A signature: wrong, missing where required, or of another key.
    Signature,
    /// The state differs from what the log rebuilds.
    State,
}

impl ProblemClass {
    /// Exit code of `ordq verify` for this class (docs/CLI.md).
    pub fn exit_code(self) -> i32 {
        match self {
            ProblemClass::Log => 40,
            ProblemClass::Chain => 41,
            ProblemClass::Checkpoint => 42,
            ProblemClass::Signature => 43,
            ProblemClass::State => 44,
        }
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Its class.
    pub class: ProblemClass,
    /// Where: a segment and byte, an LSN, a table and key, a queue and offset.
    pub at: String,
    /// What is wrong.
    pub why: String,
}

/// One queue's chains as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReport {
    /// Queue name.
    pub name: String,
    /// Log records checked.
    pub log_records: u64,
    /// Events checked.
    pub events: u64,
}

/// The outcome of [`crate::Db::verify`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// No problem found.
    pub ok: bool,
    /// Segment files read.
    pub segments: usize,
    /// LSN of the first record kept.
    pub first_lsn: u64,
    /// LSN the snapshot ends at (records before it were checked).
    pub end_lsn: u64,
    /// Frames checked (commit markers included).
    pub frames: u64,
    /// Records replayed or checked.
    pub records: u64,
    /// Checkpoint records found.
    pub checkpoints: u64,
    /// Of them, signed and verified.
    pub signed: u64,
    /// Of them, unsigned.
    pub unsigned: u64,
    /// Key id of the key signatures were checked with, if any.
    pub key_id: Option<String>,
    /// Whether the state was compared with the log's replay; if not, why.
    pub state_checked: bool,
    /// Why something was not checked (a compacted log), if anything.
    pub notes: Vec<String>,
    /// Every queue's chains.
    pub queues: Vec<QueueReport>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Problems found (at most 100 listed).
    pub problems: Vec<Problem>,
    /// Problems found in all.
    pub problem_count: u64,
}

impl VerifyReport {
    /// The most serious class found: the lowest exit code wins (log
    /// damage explains the rest).
    pub fn worst(&self) -> Option<ProblemClass> {
        self.problems.iter().map(|p| p.class).min()
    }
}

/// Collects problems while the checks run.
#[derive(Default)]
pub(crate) struct Findings {
    list: Vec<Problem>,
    count: u64,
}

impl Findings {
    /// The problems listed and the count of all.
    pub(crate) fn into_parts(self) -> (Vec<Problem>, u64) {
        (self.list, self.count)
    }

    /// The first problem found, if any.
    pub(crate) fn first(&self) -> Option<&Problem> {
        self.list.first()
    }

    pub(crate) fn add(
        &mut self,
        class: ProblemClass,
        at: impl Into<String>,
        why: impl Into<String>,
    ) {
        self.count += 1;
        if self.list.len() < MAX_LISTED {
            self.list.push(Problem {
                class,
                at: at.into(),
                why: why.into(),
            });
        }
    }
}

/// Runs every check on `snapshot` (the state as of log position `end`) and
/// the log in `dir`, with `pubkey` (or the database's recorded key).
pub(crate) fn run(
    dir: &Path,
    snapshot: &redb::ReadTransaction,
    end: u64,
    pubkey: Option<[u8; 32]>,
    anchor: &[LedgerEntry],
) -> Result<VerifyReport> {
    let started = Instant::now();
    let mut f = Findings::default();
    let log_id = log::log_id(snapshot)?;
    let read = log::read(dir, &log_id, end, &mut f)?;
    let mut report = VerifyReport {
        ok: false,
        segments: read.segments,
        first_lsn: read.first_lsn,
        end_lsn: end,
        frames: read.frames,
        records: read.records.len() as u64,
        checkpoints: 0,
        signed: 0,
        unsigned: 0,
        key_id: None,
        state_checked: false,
        notes: Vec::new(),
        queues: Vec::new(),
        seconds: 0.0,
        problems: Vec::new(),
        problem_count: 0,
    };
    replay::run(&read, snapshot, &log_id, pubkey, &mut report, &mut f)?;
    if !anchor.is_empty() {
        anchor::check(&read, anchor, &mut f);
        report.notes.push(format!(
            "checked against an anchor of {} checkpoints",
            anchor.len()
        ));
    }
    report.queues = chains::check(snapshot, &mut f)?;
    report.seconds = started.elapsed().as_secs_f64();
    report.problem_count = f.count;
    report.problems = f.list;
    report.ok = report.problem_count == 0;
    Ok(report)
}

/// Compares the state of `rebuilt` with `current` row for row (but the
/// meta rows a file keeps for itself), as `verify` compares the replay.
pub(crate) fn compare_states(
    rebuilt: &redb::Database,
    current: &redb::ReadTransaction,
    f: &mut Findings,
) -> Result<()> {
    replay::compare(rebuilt, current, f)
}

/// The checkpoint ledger of the log in `dir` up to `end`: every checkpoint
/// with `seq >= since`.
pub(crate) fn ledger(
    dir: &Path,
    snapshot: &redb::ReadTransaction,
    end: u64,
    since: u64,
) -> Result<Vec<LedgerEntry>> {
    let log_id = log::log_id(snapshot)?;
    let mut f = Findings::default();
    let read = log::read(dir, &log_id, end, &mut f)?;
    if let Some(p) = f.first() {
        return Err(crate::error::Error::Corrupt(format!(
            "the log is damaged ({}: {}); run `ordq verify`",
            p.at, p.why
        )));
    }
    Ok(anchor::ledger(&read, since))
}
