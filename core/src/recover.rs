//! `recover`: rebuilds a database's whole state from its segment log alone
//! into a new database — up to the end of the log's last whole group, or
//! up to a chosen checkpoint — and compares the current state with it. The
//! original is never written: its log is only read, its state file is read
//! from a private copy (opening a redb file may repair it in place).

use crate::backup::{copy_log, refuse_existing, tmp_name};
use crate::checkpoint::{Stored, KIND_CHECKPOINT};
use crate::error::{Error, Result};
use crate::redo;
use crate::tables::{Tx, FORMAT_VERSION, META_CREATED, META_FORMAT, META_LOG_ID, META_WAL_LSN};
use crate::verify::{self, log as vlog, Findings, Problem};
use crate::wal::{self, segment};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::path::Path;

/// What [`crate::Db::recover`] rebuilt and found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoverReport {
    /// The new database.
    pub out: String,
    /// The log position the new database ends at.
    pub end_lsn: u64,
    /// Records replayed.
    pub records: u64,
    /// The checkpoint it stops at, if one was asked for.
    pub checkpoint: Option<u64>,
    /// Damage that ended the readable log early, if any.
    pub log_problems: Vec<Problem>,
    /// Whether the current state could be compared with the rebuilt one.
    pub compared: bool,
    /// How the current state differs from the rebuilt one (at most 100).
    pub differences: Vec<Problem>,
    /// Differences in all.
    pub difference_count: u64,
}

/// Rebuilds the database at `src` into `out` (see the module docs).
pub(crate) fn run(src: &Path, out: &Path, checkpoint: Option<u64>) -> Result<RecoverReport> {
    let log_dir = wal::dir_of(src);
    let out_log = wal::dir_of(out);
    refuse_existing(out, "recover")?;
    let segs = segment::list(&log_dir)?;
    let first = segs
        .first()
        .ok_or_else(|| Error::Corrupt(format!("{}: no segment", log_dir.display())))?;
    if first.0 != 0 {
        return Err(Error::InvalidState(format!(
            "the log starts at LSN {} (older segments were removed): the state cannot be rebuilt from it",
            first.0
        )));
    }
    let log_id: [u8; 16] = segment::read(&File::open(&first.1)?)?
        .get(24..40)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt("segment header".into()))?;
    let mut damage = Findings::default();
    let read = vlog::read(&log_dir, &log_id, u64::MAX, &mut damage)?;
    // Where to stop: after the chosen checkpoint's group, else at the end.
    let end = match checkpoint {
        None => read.groups.last().copied(),
        Some(seq) => {
            let at = read
                .records
                .iter()
                .filter(|r| r.kind == KIND_CHECKPOINT)
                .find(|r| {
                    Stored::decode(&r.body)
                        .and_then(|s| s.checkpoint())
                        .is_ok_and(|c| c.seq == seq)
                })
                .map(|r| r.lsn)
                .ok_or_else(|| Error::NotFound(format!("checkpoint {seq} in the log")))?;
            read.groups.iter().copied().find(|g| g.lsn > at)
        }
    };
    let end = end.unwrap_or(vlog::GroupEnd {
        lsn: 0,
        segment: 0,
        offset: segment::HEADER,
    });
    let (tmp_db, tmp_log) = (tmp_name(out, "recover"), tmp_name(out, "recover-log"));
    let built = (|| {
        copy_log(&log_dir, &tmp_log, end.segment, end.offset)?;
        let db = redb::Database::create(&tmp_db).map_err(|e| Error::Io(e.to_string()))?;
        let txn = db.begin_write()?;
        let mut records = 0u64;
        {
            let mut tx = Tx::open(&txn)?;
            crate::tables::seed_new(tx.meta.raw())?;
            for r in read.records.iter().filter(|r| r.lsn < end.lsn) {
                if r.kind != KIND_CHECKPOINT {
                    redo::apply(&mut tx, r.kind, &r.body)?;
                }
                records += 1;
            }
            let meta = tx.meta.raw();
            meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())?;
            meta.insert(META_LOG_ID, log_id.as_slice())?;
            meta.insert(META_WAL_LSN, end.lsn.to_le_bytes().as_slice())?;
            meta.insert(
                META_CREATED,
                crate::clock::Clock::now_ms(&crate::clock::SystemClock)
                    .to_le_bytes()
                    .as_slice(),
            )?;
        }
        txn.commit()?;
        drop(db);
        File::open(&tmp_db)?.sync_all()?;
        fs::rename(&tmp_log, &out_log)?;
        fs::rename(&tmp_db, out)?;
        Ok(records)
    })();
    let records = match built {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp_log);
            let _ = fs::remove_file(&tmp_db);
            return Err(e);
        }
    };
    // The current state, from a private copy of the file.
    let copy = tmp_name(out, "current");
    let mut diffs = Findings::default();
    let compared = (|| -> Result<()> {
        fs::copy(src, &copy)?;
        let current = redb::Database::open(&copy).map_err(|e| Error::Io(e.to_string()))?;
        let rebuilt = redb::Database::open(out).map_err(|e| Error::Io(e.to_string()))?;
        use redb::ReadableDatabase;
        verify::compare_states(&rebuilt, &current.begin_read()?, &mut diffs)
    })();
    let _ = fs::remove_file(&copy);
    let (differences, difference_count) = diffs.into_parts();
    Ok(RecoverReport {
        out: out.display().to_string(),
        end_lsn: end.lsn,
        records,
        checkpoint,
        log_problems: damage.into_parts().0,
        compared: compared.is_ok(),
        differences,
        difference_count,
    })
}
