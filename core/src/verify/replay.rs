//! Replaying the whole log into an empty in-memory database: checks every
//! checkpoint record against the replayed state at its LSN, then compares
//! the replayed state with the snapshot row for row.

use super::log::Read;
use super::{Findings, ProblemClass, VerifyReport};
use crate::checkpoint::{self, Checkpoint, Stored, KIND_CHECKPOINT, META_PUBKEY};
use crate::durability::unlogged_meta;
use crate::error::{Error, Result};
use crate::hash::{self, Digest, GENESIS};
use crate::record::QueueState;
use crate::redo;
use crate::rows::{self, table_name};
use crate::tables::{self, Tx, META, META_FENCE};
use ed25519_dalek::VerifyingKey;
use redb::ReadableTable;

/// The key signatures are checked with: the one given, else the one the
/// database recorded.
fn signing_key(
    pubkey: Option<[u8; 32]>,
    snapshot: &redb::ReadTransaction,
    f: &mut Findings,
) -> Result<Option<VerifyingKey>> {
    let recorded = snapshot
        .open_table(META)?
        .get(META_PUBKEY)?
        .map(|v| v.value().to_vec());
    let bytes = match (pubkey, recorded) {
        (Some(k), _) => k.to_vec(),
        (None, Some(r)) => r,
        (None, None) => return Ok(None),
    };
    match <[u8; 32]>::try_from(bytes.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
    {
        Some(k) => Ok(Some(k)),
        None => {
            f.add(
                ProblemClass::Signature,
                "meta signing_pubkey",
                "not an Ed25519 public key",
            );
            Ok(None)
        }
    }
}

/// Checks one checkpoint record at `lsn` against the replayed state.
#[allow(clippy::too_many_arguments)]
fn check_checkpoint(
    tx: &Tx<'_>,
    lsn: u64,
    body: &[u8],
    prev: &mut Option<(u64, Digest)>,
    key: Option<&VerifyingKey>,
    required: bool,
    log_id: &[u8; 16],
    report: &mut VerifyReport,
    f: &mut Findings,
) -> Result<()> {
    let at = format!("checkpoint at LSN {lsn}");
    report.checkpoints += 1;
    let stored = match Stored::decode(body) {
        Ok(s) => s,
        Err(e) => {
            f.add(ProblemClass::Checkpoint, at, e.to_string());
            return Ok(());
        }
    };
    let c: Checkpoint = match stored.checkpoint() {
        Ok(c) => c,
        Err(e) => {
            f.add(ProblemClass::Checkpoint, at, e.to_string());
            return Ok(());
        }
    };
    match (&stored.signature, key) {
        (Some(_), Some(k)) => {
            if !checkpoint::verify_signature(&stored, k, log_id) {
                f.add(
                    ProblemClass::Signature,
                    &at,
                    "the signature does not verify",
                );
            } else if c.key_id.as_deref() != Some(checkpoint::key_id(k).as_str()) {
                f.add(
                    ProblemClass::Signature,
                    &at,
                    "signed, but names another key id",
                );
            } else {
                report.signed += 1;
            }
        }
        (Some(_), None) => f.add(
            ProblemClass::Signature,
            &at,
            "signed, but no public key is known (give --pubkey)",
        ),
        (None, _) => {
            report.unsigned += 1;
            if required {
                f.add(
                    ProblemClass::Signature,
                    &at,
                    "unsigned, in a database that signs its checkpoints (or with a public key given)",
                );
            }
        }
    }
    if c.lsn != lsn {
        f.add(
            ProblemClass::Checkpoint,
            &at,
            format!("names LSN {}", c.lsn),
        );
    }
    if let Some((seq, h)) = prev {
        if c.seq != *seq + 1 || c.prev != hash::hex(h) {
            f.add(
                ProblemClass::Checkpoint,
                &at,
                format!(
                    "checkpoint {} does not follow checkpoint {seq} (sequence or previous hash)",
                    c.seq
                ),
            );
        }
    }
    *prev = Some((c.seq, stored.hash()));
    // The heads it names are the replayed state's.
    let fence = tx
        .meta
        .get(META_FENCE)?
        .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes));
    if fence != Some(c.fence) {
        f.add(
            ProblemClass::Checkpoint,
            &at,
            format!("fence {} but the log gives {fence:?}", c.fence),
        );
    }
    let mut replayed = Vec::new();
    for row in tx.qstate.iter()? {
        let (id, v) = row?;
        let qs: QueueState = serde_json::from_slice(v.value())
            .map_err(|e| Error::Corrupt(format!("queue state: {e}")))?;
        replayed.push((id.value(), qs));
    }
    let named: Vec<u32> = c.queues.iter().map(|q| q.id).collect();
    let have: Vec<u32> = replayed.iter().map(|(id, _)| *id).collect();
    if named != have {
        f.add(
            ProblemClass::Checkpoint,
            &at,
            format!("names queues {named:?}, the log gives {have:?}"),
        );
        return Ok(());
    }
    for (q, (_, qs)) in c.queues.iter().zip(&replayed) {
        let same = q.next_offset == qs.next_offset
            && q.log_head == hash::hex(&qs.log_head)
            && q.next_event == qs.next_event
            && q.event_head == hash::hex(&qs.event_head)
            && q.watermark == qs.watermark;
        if !same {
            f.add(
                ProblemClass::Checkpoint,
                &at,
                format!("queue {}: heads differ from what the log gives", q.name),
            );
        }
    }
    Ok(())
}

/// Replays `read` into an empty database, checking checkpoints on the
/// way, then compares the result with `snapshot`.
pub(super) fn run(
    read: &Read,
    snapshot: &redb::ReadTransaction,
    log_id: &[u8; 16],
    pubkey: Option<[u8; 32]>,
    report: &mut VerifyReport,
    f: &mut Findings,
) -> Result<()> {
    let recorded = snapshot.open_table(META)?.get(META_PUBKEY)?.is_some();
    // Once a database has a key, every checkpoint must be signed with it.
    let required = pubkey.is_some() || recorded;
    let key = signing_key(pubkey, snapshot, f)?;
    report.key_id = key.as_ref().map(checkpoint::key_id);
    let from_start = read.first_lsn == 0;
    if !from_start {
        report.notes.push(format!(
            "the log starts at LSN {} (segments before it were removed): the state and the checkpoints' heads cannot be rebuilt from it and were not compared",
            read.first_lsn
        ));
    }
    let mem = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| Error::Io(e.to_string()))?;
    let txn = mem.begin_write()?;
    {
        let mut tx = Tx::open(&txn)?;
        // A new database's first rows, which creation writes unlogged.
        tables::seed_new(tx.meta.raw())?;
        let mut prev = from_start.then_some((0, GENESIS));
        for r in &read.records {
            if r.kind == KIND_CHECKPOINT {
                // Without the log's start only the chain and the signatures
                // can be checked: the heads' problems are dropped.
                let mut scratch = Findings::default();
                let sink = if from_start { &mut *f } else { &mut scratch };
                check_checkpoint(
                    &tx,
                    r.lsn,
                    &r.body,
                    &mut prev,
                    key.as_ref(),
                    required,
                    log_id,
                    report,
                    sink,
                )?;
                for p in scratch
                    .list
                    .into_iter()
                    .filter(|p| p.class == ProblemClass::Signature)
                {
                    f.add(p.class, p.at, p.why);
                }
            } else if from_start {
                if let Err(e) = redo::apply(&mut tx, r.kind, &r.body) {
                    f.add(
                        ProblemClass::Log,
                        format!("record at LSN {}", r.lsn),
                        e.to_string(),
                    );
                }
            }
        }
    }
    txn.commit()?;
    if !from_start {
        return Ok(());
    }
    report.state_checked = true;
    compare(&mem, snapshot, f)
}

type Row = (u8, Vec<u8>, Vec<u8>);

/// Compares the replayed rows with the snapshot's, but the meta rows the
/// file keeps for itself.
pub(super) fn compare(
    mem: &redb::Database,
    snapshot: &redb::ReadTransaction,
    f: &mut Findings,
) -> Result<()> {
    let keep = |t: u8, k: &[u8]| !(t == tables::ID_META && unlogged_meta(k));
    let mut replayed: Vec<Row> = Vec::new();
    rows::for_each_in(mem, |t, k, v| {
        if keep(t, k) {
            replayed.push((t, k.to_vec(), v.to_vec()));
        }
        Ok(())
    })?;
    let mut it = replayed.into_iter().peekable();
    let mut differences = 0u64;
    let mut note = |f: &mut Findings, t: u8, k: &[u8], why: &str| {
        differences += 1;
        f.add(
            ProblemClass::State,
            format!("table {} key {}", table_name(t), hash::hex(k)),
            why.to_string(),
        );
    };
    rows::for_each(snapshot, |t, k, v| {
        if !keep(t, k) {
            return Ok(());
        }
        while let Some((rt, rk, _)) = it.peek() {
            if (*rt, rk.as_slice()) < (t, k) {
                let (rt, rk, _) = it.next().expect("peeked");
                note(f, rt, &rk, "in the log's replay, missing from the state");
            } else {
                break;
            }
        }
        match it.peek() {
            Some((rt, rk, rv)) if *rt == t && rk.as_slice() == k => {
                if rv.as_slice() != v {
                    note(f, t, k, "the state's value differs from the log's");
                }
                it.next();
            }
            _ => note(f, t, k, "in the state, not written by the log"),
        }
        Ok(())
    })?;
    for (rt, rk, _) in it {
        note(f, rt, &rk, "in the log's replay, missing from the state");
    }
    Ok(())
}
