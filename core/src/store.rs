//! The database file: crash-atomic creation, opening with format checks,
//! and the read-side queries that never wait for the writer.

use crate::config::Options;
use crate::error::{Error, Result};
use crate::hash::task_id;
use crate::record::{Chained, Event, LogHeader, StateRec};
use crate::tables::{
    Tx, DLQ, EVENTS, FAULTS, FORMAT_OLDEST, FORMAT_VERSION, LOG, META, META_CREATED, META_FORMAT,
    META_LOG_ID, META_WAL_LSN, QUEUES, TASKS,
};
use crate::types::{Fault, QueueInfo, TaskInfo};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.creating.")
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Removes temporary files left by creations whose process has died.
pub(crate) fn sweep_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(dir) = fs::read_dir(parent(path)) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid: i32 = rest
            .split('.')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn map_open_err(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen(path.to_path_buf()),
        redb::DatabaseError::UpgradeRequired(v) => Error::Corrupt(format!(
            "{}: redb file format {v} needs an upgrade",
            path.display()
        )),
        // Bytes that are not a redb file at all (redb's magic number).
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Error::Corrupt(format!("{}: not an ordq database ({io})", path.display()))
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => Error::Corrupt(
            format!("{}: the state file is damaged ({why})", path.display()),
        ),
        other => Error::Io(format!("{}: {other}", path.display())),
    }
}

/// Creates a new database at `path` atomically: built and committed under
/// a temporary name, fsynced, linked into place (never over an existing
/// file), and the directory fsynced. A crash leaves either no file or a
/// complete one. `log_id` names its segment log, created before it.
pub(crate) fn create_atomic(path: &Path, opts: &Options, log_id: &[u8; 16]) -> Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = parent(path).join(format!(
        "{}{}.{nanos}",
        temp_prefix(path),
        std::process::id()
    ));
    let built = (|| -> Result<()> {
        let db = redb::Builder::new()
            .create(&tmp)
            .map_err(|e| map_open_err(&tmp, e))?;
        let txn = db.begin_write()?;
        {
            let mut tx = Tx::open(&txn)?;
            tx.meta
                .insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())?;
            crate::tables::seed_new(tx.meta.raw())?;
            tx.meta
                .insert(META_CREATED, opts.clock.now_ms().to_le_bytes().as_slice())?;
            tx.meta.insert(META_LOG_ID, log_id.as_slice())?;
            tx.meta
                .insert(META_WAL_LSN, 0u64.to_le_bytes().as_slice())?;
        }
        txn.commit()?;
        drop(db);
        fs::File::open(&tmp)?.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    built?;
    fs::File::open(parent(path))?.sync_all()?;
    Ok(())
}

/// Opens the database file and checks its format; answers the format
/// version found (older ones are migrated by the caller).
pub(crate) fn open_file(path: &Path, opts: &Options) -> Result<(redb::Database, u32)> {
    let db = redb::Builder::new()
        .set_cache_size(opts.cache_size)
        .open(path)
        .map_err(|e| map_open_err(path, e))?;
    let rtx = db.begin_read()?;
    let not_ordq = || Error::Corrupt(format!("{} is not an ordq database", path.display()));
    let meta = rtx.open_table(META).map_err(|_| not_ordq())?;
    let v = meta.get(META_FORMAT)?.ok_or_else(not_ordq)?;
    let found = u32::from_le_bytes(v.value().try_into().map_err(|_| not_ordq())?);
    if found > FORMAT_VERSION {
        return Err(Error::FormatTooNew {
            found,
            supported: FORMAT_VERSION,
        });
    }
    if found < FORMAT_OLDEST {
        return Err(not_ordq());
    }
    drop(v);
    drop(meta);
    drop(rtx);
    Ok((db, found))
}

/// Looks a queue up by name in a read transaction.
pub(crate) fn queue_info(rtx: &ReadTransaction, name: &str) -> Result<QueueInfo> {
    let t = rtx.open_table(QUEUES)?;
    let v = t
        .get(name)?
        .ok_or_else(|| Error::NotFound(format!("queue {name}")))?;
    serde_json::from_slice(v.value()).map_err(|e| Error::Corrupt(format!("queue {name}: {e}")))
}

/// Every queue, by name.
pub(crate) fn list_queues(rtx: &ReadTransaction) -> Result<Vec<QueueInfo>> {
    let t = rtx.open_table(QUEUES)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(
            serde_json::from_slice(v.value()).map_err(|e| Error::Corrupt(format!("queue: {e}")))?,
        );
    }
    Ok(out)
}

/// One task's log record: its hash, header and payload (`None` once
/// pruned or purged).
pub(crate) fn log_record(
    rtx: &ReadTransaction,
    qid: u32,
    offset: u64,
) -> Result<([u8; 32], LogHeader, Option<Vec<u8>>)> {
    let t = rtx.open_table(LOG)?;
    let v = t
        .get((qid, offset))?
        .ok_or_else(|| Error::NotFound(format!("task {offset}")))?;
    let (h, hdr) = LogHeader::decode(v.value())?;
    let payload = hdr.payload(v.value())?.map(<[u8]>::to_vec);
    Ok((h, hdr, payload))
}

/// Everything known about a task.
pub(crate) fn task(rtx: &ReadTransaction, q: &QueueInfo, offset: u64) -> Result<TaskInfo> {
    let (h, hdr, payload) = log_record(rtx, q.id, offset).map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound(format!("task {offset} in queue {}", q.name)),
        e => e,
    })?;
    let st = match rtx.open_table(TASKS)?.get((q.id, offset))? {
        Some(v) => StateRec::decode(v.value())?,
        None => StateRec::fresh(&hdr, 0),
    };
    let result = match st.done_event {
        Some(seq) => match rtx.open_table(EVENTS)?.get((q.id, seq))? {
            Some(v) => {
                let tail = Chained::split(v.value())?.tail;
                let (_, ev) = Event::decode(v.value())?;
                (ev.result_len == Some(tail.len() as u64) && !tail.is_empty())
                    .then(|| tail.to_vec())
            }
            None => None,
        },
        None => None,
    };
    let leased = st.state == crate::types::TaskState::Leased;
    Ok(TaskInfo {
        v: hdr.v,
        id: task_id(&h),
        queue: q.name.clone(),
        key: hdr.key,
        shard: hdr.shard,
        offset,
        priority: hdr.priority,
        attempt: st.attempt,
        max_attempts: st.max_attempts,
        not_before: st.not_before,
        idempotency_key: hdr.idempotency_key,
        headers: hdr.headers,
        state: st.state,
        enqueued_at: st.enqueued_at,
        leased_at: st.leased_at,
        started_at: st.started_at,
        committed_at: st.finished_at,
        lease_expires_at: if leased { st.lease_until } else { 0 },
        fence: st.fence,
        worker: (!st.worker.is_empty()).then_some(st.worker),
        payload,
        result,
        redriven_from: hdr.redriven_from,
        redriven_to: st.redriven_to,
    })
}

/// Fault history of a task, oldest first.
pub(crate) fn faults(rtx: &ReadTransaction, qid: u32, offset: u64) -> Result<Vec<Fault>> {
    let t = rtx.open_table(FAULTS)?;
    let mut out = Vec::new();
    for row in t.range((qid, offset, 0)..=(qid, offset, u64::MAX))? {
        let (_, v) = row?;
        out.push(
            serde_json::from_slice(v.value()).map_err(|e| Error::Corrupt(format!("fault: {e}")))?,
        );
    }
    Ok(out)
}

/// True when `offset` is a held dead letter.
pub(crate) fn is_dead_letter(rtx: &ReadTransaction, qid: u32, offset: u64) -> Result<bool> {
    Ok(rtx.open_table(DLQ)?.get((qid, offset))?.is_some())
}

/// Offsets of held dead letters after `after`, at most `limit`.
pub(crate) fn dead_letters(
    rtx: &ReadTransaction,
    qid: u32,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<u64>> {
    let t = rtx.open_table(DLQ)?;
    let start = after.map(|a| a.saturating_add(1)).unwrap_or(0);
    let mut out = Vec::new();
    if after == Some(u64::MAX) {
        return Ok(out);
    }
    for row in t.range((qid, start)..=(qid, u64::MAX))?.take(limit) {
        out.push(row?.0.value().1);
    }
    Ok(out)
}
