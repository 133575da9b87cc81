//! The checkpoint ledger: every checkpoint record as an exportable line,
//! and the check of a database against a ledger exported earlier (an
//! anchor kept outside the machine). A database that lost its newest
//! checkpoints — the log and the state truncated back together, which
//! still verifies on its own — no longer holds what the anchor holds.

use super::log::Read;
use super::{Findings, ProblemClass};
use crate::checkpoint::{Stored, KIND_CHECKPOINT};
use crate::hash;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One checkpoint as exported (`ordq checkpoint export`, one JSON line each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Sequence number.
    pub seq: u64,
    /// LSN of the record.
    pub lsn: u64,
    /// `BLAKE3(checkpoint)`, hex: what the next checkpoint names as `prev`.
    pub hash: String,
    /// The signed checkpoint, as stored (canonical JSON).
    pub checkpoint: String,
    /// Its Ed25519 signature, hex, if signed.
    pub signature: Option<String>,
}

/// Every checkpoint record of `read` with `seq >= since`, in order.
pub(crate) fn ledger(read: &Read, since: u64) -> Vec<LedgerEntry> {
    read.records
        .iter()
        .filter(|r| r.kind == KIND_CHECKPOINT)
        .filter_map(|r| {
            let s = Stored::decode(&r.body).ok()?;
            let c = s.checkpoint().ok()?;
            (c.seq >= since).then(|| LedgerEntry {
                seq: c.seq,
                lsn: r.lsn,
                hash: hash::hex(&s.hash()),
                checkpoint: String::from_utf8_lossy(&s.json).into_owned(),
                signature: s.signature.map(|g| hash::hex(&g)),
            })
        })
        .collect()
}

/// Checks that every anchored checkpoint is in `read`, byte for byte.
pub(crate) fn check(read: &Read, anchor: &[LedgerEntry], f: &mut Findings) {
    let have: HashMap<u64, LedgerEntry> = ledger(read, 0).into_iter().map(|e| (e.seq, e)).collect();
    let newest = have.keys().max().copied().unwrap_or(0);
    for a in anchor {
        let at = format!("anchored checkpoint {}", a.seq);
        match have.get(&a.seq) {
            Some(h) if h == a => {}
            // In segments retention removed: cannot be checked.
            None if a.lsn < read.first_lsn => {}
            Some(_) => f.add(
                ProblemClass::Checkpoint,
                at,
                "the database's checkpoint differs from the anchored one (history rewritten)",
            ),
            None if a.seq > newest => f.add(
                ProblemClass::Checkpoint,
                at,
                format!("missing: the database's newest checkpoint is {newest} (checkpoints dropped from the end)"),
            ),
            None => f.add(ProblemClass::Checkpoint, at, "missing from the database"),
        }
    }
}
