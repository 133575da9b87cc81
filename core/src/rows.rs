//! Every row of the state, table by table, as raw bytes: what the base
//! image of a migration logs and what `verify` compares.

use crate::error::Result;
use crate::tables::{self, DLQ, EVENTS, FAULTS, IDEM, LOG, META, QSTATE, QUEUES, TASKS};
use redb::{Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value};

/// A table's name in reports.
pub fn table_name(id: u8) -> &'static str {
    match id {
        tables::ID_META => "meta",
        tables::ID_QUEUES => "queues",
        tables::ID_QSTATE => "queue_state",
        tables::ID_LOG => "log",
        tables::ID_TASKS => "tasks",
        tables::ID_EVENTS => "events",
        tables::ID_FAULTS => "faults",
        tables::ID_DLQ => "dlq",
        tables::ID_IDEM => "idempotency",
        _ => "unknown",
    }
}

fn each<K: Key + 'static, V: Value + 'static>(
    rtx: &ReadTransaction,
    def: TableDefinition<K, V>,
    id: u8,
    f: &mut impl FnMut(u8, &[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let t = match rtx.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in t.iter()? {
        let (k, v) = row?;
        f(
            id,
            K::as_bytes(&k.value()).as_ref(),
            V::as_bytes(&v.value()).as_ref(),
        )?;
    }
    Ok(())
}

/// Calls `f(table id, key, value)` for every row, tables in id order,
/// rows in key order.
pub fn for_each(
    rtx: &ReadTransaction,
    mut f: impl FnMut(u8, &[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    each(rtx, META, tables::ID_META, &mut f)?;
    each(rtx, QUEUES, tables::ID_QUEUES, &mut f)?;
    each(rtx, QSTATE, tables::ID_QSTATE, &mut f)?;
    each(rtx, LOG, tables::ID_LOG, &mut f)?;
    each(rtx, TASKS, tables::ID_TASKS, &mut f)?;
    each(rtx, EVENTS, tables::ID_EVENTS, &mut f)?;
    each(rtx, FAULTS, tables::ID_FAULTS, &mut f)?;
    each(rtx, DLQ, tables::ID_DLQ, &mut f)?;
    each(rtx, IDEM, tables::ID_IDEM, &mut f)
}

/// [`for_each`] over a database's current committed state.
pub fn for_each_in(
    db: &redb::Database,
    f: impl FnMut(u8, &[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    for_each(&db.begin_read()?, f)
}
