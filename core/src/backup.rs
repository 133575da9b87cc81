//! Online backup: a consistent copy of a database — its state as of a read
//! snapshot and its segment log up to that snapshot's position — made while
//! writers go on, then opened and verified. The copy keeps the log id and
//! the whole history (checkpoints and their signatures included), so it
//! verifies like the original; it is written under temporary names and
//! renamed into place, so a crash leaves no half backup under `to`.

use crate::error::{Error, Result};
use crate::redo;
use crate::rows;
use crate::tables::{Tx, META_WAL_LSN};
use crate::wal::{self, segment, Position};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What [`crate::Db::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The backup's state file (its log is `PATH.log/`).
    pub path: String,
    /// The log position the backup ends at: everything before it is in.
    pub end_lsn: u64,
    /// Segment files copied.
    pub segments: usize,
    /// Bytes written (state file and segments).
    pub bytes: u64,
    /// Records the verification of the backup checked.
    pub verified_records: u64,
}

/// A temporary name beside `to`, for a copy built before it is renamed
/// into place.
pub(crate) fn tmp_name(to: &Path, what: &str) -> PathBuf {
    let name = to
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    to.with_file_name(format!(".{name}.{what}.{}", std::process::id()))
}

/// Refuses a destination database (or its log) that exists.
pub(crate) fn refuse_existing(to: &Path, what: &str) -> Result<()> {
    if to.exists() || wal::dir_of(to).exists() {
        return Err(Error::AlreadyExists(format!(
            "{} (or its log) exists; {what} never overwrites",
            to.display()
        )));
    }
    Ok(())
}

/// Copies `len` bytes (all when `None`) of `src` to a new file `dst`, synced.
fn copy_prefix(src: &Path, dst: &Path, len: Option<u64>) -> Result<u64> {
    let f = File::open(src)?;
    let mut r: Box<dyn Read> = match len {
        Some(n) => Box::new(f.take(n)),
        None => Box::new(f),
    };
    let mut out = File::create_new(dst)?;
    let n = std::io::copy(&mut r, &mut out)?;
    out.flush()?;
    out.sync_all()?;
    Ok(n)
}

/// Copies the log in `log_dir` up to byte `offset` of segment `segment`
/// into a new directory `dst` (whole segments before it, nothing after),
/// synced; answers the segments and bytes copied.
pub(crate) fn copy_log(
    log_dir: &Path,
    dst: &Path,
    segment: u64,
    offset: u64,
) -> Result<(usize, u64)> {
    fs::create_dir(dst)?;
    let (mut segments, mut bytes) = (0, 0);
    for (base, path) in segment::list(log_dir)? {
        if base > segment {
            continue;
        }
        let len = (base == segment).then_some(offset);
        bytes += copy_prefix(&path, &dst.join(segment::name(base)), len)?;
        segments += 1;
    }
    segment::sync_dir(dst)?;
    Ok((segments, bytes))
}

/// Writes the backup of the database whose log is in `log_dir`, as of
/// `snapshot` at log position `end`, to `to`. Answers what it wrote; the
/// caller verifies it.
pub(crate) fn write(
    log_dir: &Path,
    snapshot: &redb::ReadTransaction,
    end: Position,
    to: &Path,
) -> Result<BackupInfo> {
    refuse_existing(to, "a backup")?;
    let to_log = wal::dir_of(to);
    let (tmp_db, tmp_log) = (tmp_name(to, "backup"), tmp_name(to, "backup-log"));
    let r = (|| {
        // The log: up to the snapshot's position, nothing after.
        let (segments, mut bytes) = copy_log(log_dir, &tmp_log, end.segment, end.offset)?;
        // The state: every row of the snapshot, covering the log up to `end`.
        let db = redb::Database::create(&tmp_db).map_err(|e| Error::Io(e.to_string()))?;
        let txn = db.begin_write()?;
        {
            let mut tx = Tx::open(&txn)?;
            rows::for_each(snapshot, |t, k, v| {
                let (kind, body) = redo::put(t, k, v);
                redo::apply(&mut tx, kind, &body)
            })?;
            tx.meta
                .raw()
                .insert(META_WAL_LSN, end.lsn.to_le_bytes().as_slice())?;
        }
        txn.commit()?;
        drop(db);
        File::open(&tmp_db)?.sync_all()?;
        bytes += fs::metadata(&tmp_db)?.len();
        // Into place: the log first, then the file that names it.
        fs::rename(&tmp_log, &to_log)?;
        fs::rename(&tmp_db, to)?;
        segment::sync_dir(
            to.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
        Ok(BackupInfo {
            path: to.display().to_string(),
            end_lsn: end.lsn,
            segments,
            bytes,
            verified_records: 0,
        })
    })();
    if r.is_err() {
        let _ = fs::remove_dir_all(&tmp_log);
        let _ = fs::remove_file(&tmp_db);
    }
    r
}
