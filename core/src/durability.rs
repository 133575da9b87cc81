//! How state becomes durable (format 2): the redb file holds the state, its
//! segment log `NAME.ordq.log/` ([`crate::wal`]) is the log of record.
//!
//! Every write batch is applied to the writer's open redb transaction; its
//! changes ([`crate::redo`] records) are appended to the log as one commit
//! group, and the group is synced before any caller of it is answered. The
//! open transaction is committed without durability when a reader needs to
//! see it, and durably at each **state checkpoint**, which records in
//! `meta.wal_lsn` the log position its state covers. Opening takes redb's last durable state and
//! replays the log's groups from there; a log that ends before that
//! position is corruption.
//!
//! Also here: creating a database with its log, and migrating a format-1
//! file (a copy of it is kept as `NAME.ordq.v1.bak`).

use crate::checkpoint::KIND_CHECKPOINT;
use crate::config::Options;
use crate::error::{Error, Result};
use crate::redo;
use crate::rows;
use crate::store;
use crate::tables::{
    self, Tx, FORMAT_VERSION, META, META_CREATED, META_FORMAT, META_LOG_ID, META_WAL_LSN,
};
use crate::wal::{self, segment, Recovery, Wal};
use redb::ReadableDatabase;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The copy of a format-1 file kept by its migration.
pub fn v1_backup(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".v1.bak");
    PathBuf::from(name)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh random log id, tying a log to its database.
fn new_log_id() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut id)?;
    Ok(id)
}

/// Holds an exclusive lock on the database's directory while a database
/// or its log is created or migrated, so two processes opening a missing
/// file at once do not both build one.
struct CreationLock {
    _dir: File,
}

impl CreationLock {
    fn take(path: &Path) -> Result<CreationLock> {
        let dir = File::open(parent(path))?;
        // SAFETY: flock on an open descriptor; released when it closes.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(CreationLock { _dir: dir })
    }
}

/// Creates the empty log of a database about to be created or migrated.
/// A log directory left by a creation or migration that crashed before it
/// finished holds no frame, or only a migration's base image, and is
/// replaced; one that holds anything else is not touched (it would be the
/// log of a database that is missing).
fn create_log(dir: &Path, log_id: [u8; 16], opts: &Options) -> Result<Wal> {
    if dir.exists() {
        let segs = segment::list(dir)?;
        let leftover = segs
            .iter()
            .all(|(base, p)| fs::read(p).is_ok_and(|b| only_base_image(&b, *base)));
        if !leftover {
            return Err(Error::Corrupt(format!(
                "{} holds a segment log but its database is missing or of format 1; move it away",
                dir.display()
            )));
        }
        fs::remove_dir_all(dir)?;
    }
    Wal::create(dir, log_id, opts.segment_size)
}

/// Whether a segment's frames are all base records and commit markers
/// (an unfinished last frame included): what a crashed migration leaves.
fn only_base_image(seg: &[u8], base: u64) -> bool {
    let seed = segment::seed_of(seg);
    let mut pos = segment::HEADER as usize;
    let mut lsn = base;
    loop {
        match wal::frame::decode(seg.get(pos..).unwrap_or(&[]), seed, lsn) {
            wal::frame::Decoded::Frame { kind, len, .. } => {
                if kind != redo::KIND_BASE && kind != wal::frame::KIND_COMMIT {
                    return false;
                }
                pos += len;
                lsn += 1;
            }
            wal::frame::Decoded::End | wal::frame::Decoded::Short | wal::frame::Decoded::Bad(_) => {
                return true
            }
        }
    }
}

/// Meta rows that are the file's own and never logged: the format, the
/// log id, the position the state covers, the creation time.
pub(crate) fn unlogged_meta(key: &[u8]) -> bool {
    [META_FORMAT, META_LOG_ID, META_WAL_LSN, META_CREATED]
        .iter()
        .any(|k| k.as_bytes() == key)
}

/// Writes every row of a format-1 state (but its unlogged meta rows) to
/// the new log as its first group of base records, synced, so that the
/// log alone rebuilds the state (`ordq verify`).
fn log_base_image(db: &redb::Database, wal: &mut Wal) -> Result<()> {
    let mut n = 0u64;
    rows::for_each_in(db, |table, key, value| {
        if table == tables::ID_META && unlogged_meta(key) {
            return Ok(());
        }
        let (kind, body) = redo::base(table, key, value);
        wal.append(kind, &body)?;
        n += 1;
        Ok(())
    })?;
    if n > 0 {
        wal.commit()?;
        wal.sync()?;
    }
    Ok(())
}

fn meta_bytes(db: &redb::Database, key: &str) -> Result<Vec<u8>> {
    let rtx = db.begin_read()?;
    let t = rtx.open_table(META)?;
    let v = t
        .get(key)?
        .ok_or_else(|| Error::Corrupt(format!("meta {key} missing")))?;
    Ok(v.value().to_vec())
}

/// Migrates a format-1 database to format 2 in place: a copy of the file
/// first (`NAME.ordq.v1.bak`, synced), then an empty log, then one durable
/// commit that names the log and sets the format. A crash before that
/// commit leaves a format-1 file that migrates again.
fn migrate(path: &Path, db: &redb::Database, opts: &Options) -> Result<()> {
    let bak = v1_backup(path);
    let tmp = {
        let mut n = bak.as_os_str().to_owned();
        n.push(".tmp");
        PathBuf::from(n)
    };
    fs::copy(path, &tmp)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &bak)?;
    File::open(parent(path))?.sync_all()?;
    let log_id = new_log_id()?;
    let mut wal = create_log(&wal::dir_of(path), log_id, opts)?;
    log_base_image(db, &mut wal)?;
    let txn = db.begin_write()?;
    {
        let mut tx = Tx::open(&txn)?;
        let meta = tx.meta.raw();
        meta.insert(META_LOG_ID, log_id.as_slice())?;
        // The state holds the base image already: replay starts after it.
        meta.insert(META_WAL_LSN, wal.next_lsn().to_le_bytes().as_slice())?;
        meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Commits the state durably, recording that it covers the log up to the
/// log's next LSN (everything appended so far, which is synced first).
pub(crate) fn checkpoint(db: &redb::Database, wal: &mut Wal) -> Result<()> {
    commit_checkpoint(db.begin_write()?, wal)
}

/// Commits `txn` durably as a state checkpoint (see [`checkpoint`]): the
/// writer's open transaction, or a fresh one.
pub(crate) fn commit_checkpoint(mut txn: redb::WriteTransaction, wal: &mut Wal) -> Result<()> {
    wal.sync()?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| Error::Io(e.to_string()))?;
    {
        let mut tx = Tx::open(&txn)?;
        tx.meta
            .raw()
            .insert(META_WAL_LSN, wal.next_lsn().to_le_bytes().as_slice())?;
    }
    failpoint!("checkpoint-mid");
    txn.commit()?;
    Ok(())
}

/// Applies every log group after the last durable state checkpoint to
/// redb, in one commit without durability; answers how many records it
/// applied. Replaying over state that already holds some of those groups
/// gives the same state (redo records are absolute).
pub(crate) fn replay(db: &redb::Database, wal: &Wal) -> Result<usize> {
    let covered = covered_lsn(db)?;
    let records = wal.read_from(covered)?;
    if !records.is_empty() {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| Error::Io(e.to_string()))?;
        {
            let mut tx = Tx::open(&txn)?;
            for r in records.iter().filter(|r| r.kind != KIND_CHECKPOINT) {
                redo::apply(&mut tx, r.kind, &r.body)?;
            }
        }
        txn.commit()?;
    }
    Ok(records.len())
}

/// The log position the last durable state checkpoint covers.
fn covered_lsn(db: &redb::Database) -> Result<u64> {
    Ok(u64::from_le_bytes(
        meta_bytes(db, META_WAL_LSN)?
            .try_into()
            .map_err(|_| Error::Corrupt("meta wal_lsn is not 8 bytes".into()))?,
    ))
}

/// Opens the database at `path`: creates it with its log when missing,
/// migrates format 1, opens the log (cutting an unfinished last group) and
/// replays every group the durable state does not cover. Returns the
/// database, the log ready for appending and what the log's recovery found.
pub(crate) fn open(path: &Path, opts: &Options) -> Result<(redb::Database, Wal, Recovery)> {
    store::sweep_stale_temps(path);
    let dir = wal::dir_of(path);
    if !path.exists() {
        if opts.must_exist {
            return Err(Error::NotFound(format!(
                "database {} does not exist (must_exist is set)",
                path.display()
            )));
        }
        let parent = store::parent(path);
        if !parent.is_dir() {
            return Err(Error::Io(format!(
                "cannot create database {}: directory {} does not exist",
                path.display(),
                parent.display()
            )));
        }
        let _lock = CreationLock::take(path)?;
        if !path.exists() {
            let id = new_log_id()?;
            create_log(&dir, id, opts)?;
            store::create_atomic(path, opts, &id)?;
        }
    }
    let (db, format) = store::open_file(path, opts)?;
    if format < FORMAT_VERSION {
        let _lock = CreationLock::take(path)?;
        migrate(path, &db, opts)?;
    }
    let log_id: [u8; 16] = meta_bytes(&db, META_LOG_ID)?
        .try_into()
        .map_err(|_| Error::Corrupt("meta log_id is not 16 bytes".into()))?;
    let covered = covered_lsn(&db)?;
    if !dir.is_dir() {
        return Err(Error::Corrupt(format!(
            "{}: the segment log of {} is missing",
            dir.display(),
            path.display()
        )));
    }
    let (mut wal, rec) = Wal::open(&dir, log_id, opts.segment_size, covered)?;
    if rec.next_lsn < covered {
        return Err(Error::Corrupt(format!(
            "{}: the state covers the log up to LSN {covered} but the log ends at LSN {} (log cut or damaged)",
            dir.display(),
            rec.next_lsn
        )));
    }
    if replay(&db, &wal)? > 0 {
        checkpoint(&db, &mut wal)?;
    }
    Ok((db, wal, rec))
}
