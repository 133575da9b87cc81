//! Redo records: every row change of a write batch as a segment-log record,
//! and their replay into redb.
//!
//! The segment log is the log of record; redb holds the state built from
//! it. Each batch's changes are recorded by [`crate::tables::Tx`] as it
//! makes them, appended to the log as one commit group, and replayed on open
//! for every group after the LSN the last durable redb commit covers. A
//! record sets a row to a value, deletes a row, or deletes an inclusive key
//! range; each is absolute, so replaying a group twice gives the same state.
//!
//! ```text
//! put, base:    table u8 ‖ key_len u32 LE ‖ key ‖ value
//! delete:       table u8 ‖ key
//! delete range: table u8 ‖ lo_len u32 LE ‖ lo ‖ hi      (inclusive)
//! ```
//!
//! Keys and values are redb's own encodings of the table's types.

use crate::error::{Error, Result};
use crate::tables::{self, Tx};
use redb::{Key, Value};

/// Record kind: a row set to a value.
pub const KIND_PUT: u8 = 16;
/// Record kind: a row deleted.
pub const KIND_DELETE: u8 = 17;
/// Record kind: every row of an inclusive key range deleted.
pub const KIND_DELETE_RANGE: u8 = 18;

/// Record kind: a row of a migrated database's state as it was before
/// the migration (the log's first group); encoded and applied as a put.
pub const KIND_BASE: u8 = 19;

/// The changes of one batch, in order: `(kind, body)`.
pub type Changes = Vec<(u8, Vec<u8>)>;

fn with_key(table: u8, key: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(5 + key.len() + rest.len());
    b.push(table);
    b.extend_from_slice(&(key.len() as u32).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(rest);
    b
}

/// A put record.
pub fn put(table: u8, key: &[u8], value: &[u8]) -> (u8, Vec<u8>) {
    (KIND_PUT, with_key(table, key, value))
}

/// A base record (see [`KIND_BASE`]).
pub fn base(table: u8, key: &[u8], value: &[u8]) -> (u8, Vec<u8>) {
    (KIND_BASE, with_key(table, key, value))
}

/// A delete record.
pub fn delete(table: u8, key: &[u8]) -> (u8, Vec<u8>) {
    let mut b = Vec::with_capacity(1 + key.len());
    b.push(table);
    b.extend_from_slice(key);
    (KIND_DELETE, b)
}

/// A delete-range record.
pub fn delete_range(table: u8, lo: &[u8], hi: &[u8]) -> (u8, Vec<u8>) {
    (KIND_DELETE_RANGE, with_key(table, lo, hi))
}

/// Splits a put or delete-range body (after its table byte) into its key
/// and the rest.
pub(crate) fn split_key(body: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || Error::Corrupt("redo record: bad key length".into());
    let len = body.get(..4).ok_or_else(bad)?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
    let key = body.get(4..4 + len).ok_or_else(bad)?;
    Ok((key, &body[4 + len..]))
}

fn apply_to<K: Key + 'static, V: Value + 'static>(
    t: &mut redb::Table<'_, K, V>,
    kind: u8,
    body: &[u8],
) -> Result<()> {
    match kind {
        KIND_PUT | KIND_BASE => {
            let (k, v) = split_key(body)?;
            t.insert(K::from_bytes(k), V::from_bytes(v))?;
        }
        KIND_DELETE => {
            t.remove(K::from_bytes(body))?;
        }
        KIND_DELETE_RANGE => {
            let (lo, hi) = split_key(body)?;
            let (lo, hi) = (K::from_bytes(lo), K::from_bytes(hi));
            t.retain_in(lo..=hi, |_, _| false)?;
        }
        other => {
            return Err(Error::Corrupt(format!("unknown redo record kind {other}")));
        }
    }
    Ok(())
}

/// Applies one redo record to the tables of `tx`, without recording it.
pub fn apply(tx: &mut Tx<'_>, kind: u8, body: &[u8]) -> Result<()> {
    let (&table, rest) = body
        .split_first()
        .ok_or_else(|| Error::Corrupt("empty redo record".into()))?;
    match table {
        tables::ID_META => apply_to(tx.meta.raw(), kind, rest),
        tables::ID_QUEUES => apply_to(tx.queues.raw(), kind, rest),
        tables::ID_QSTATE => apply_to(tx.qstate.raw(), kind, rest),
        tables::ID_LOG => apply_to(tx.log.raw(), kind, rest),
        tables::ID_TASKS => apply_to(tx.tasks.raw(), kind, rest),
        tables::ID_EVENTS => apply_to(tx.events.raw(), kind, rest),
        tables::ID_FAULTS => apply_to(tx.faults.raw(), kind, rest),
        tables::ID_DLQ => apply_to(tx.dlq.raw(), kind, rest),
        tables::ID_IDEM => apply_to(tx.idem.raw(), kind, rest),
        other => Err(Error::Corrupt(format!(
            "redo record for unknown table {other}"
        ))),
    }
}
