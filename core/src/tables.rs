//! redb table definitions. Keys are `(queue_id, offset, …)` tuples so that
//! a queue's rows are contiguous and ranges scan in offset order.

use crate::redo::{self, Changes};
use redb::{Key, StorageError, TableDefinition, Value};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;

/// `name -> bytes`: format version, fence counter, next queue id.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `queue name -> QueueInfo JSON`.
pub const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues");
/// `queue id -> QueueState JSON`.
pub const QSTATE: TableDefinition<u32, &[u8]> = TableDefinition::new("queue_state");
/// `(queue, offset) -> hash ‖ len ‖ LogHeader JSON ‖ payload`: the log.
pub const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("log");
/// `(queue, offset) -> StateRec`, from a task's first lease on.
pub const TASKS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("tasks");
/// `(queue, seq) -> hash ‖ len ‖ Event JSON ‖ result`: the event chain.
pub const EVENTS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("events");
/// `(queue, offset, fence) -> Fault JSON`: the fault store, one row per
/// failed attempt, in time order (fences only grow).
pub const FAULTS: TableDefinition<(u32, u64, u64), &[u8]> = TableDefinition::new("faults");
/// `(queue, offset) -> dead-letter time`: dead letters held.
pub const DLQ: TableDefinition<(u32, u64), u64> = TableDefinition::new("dlq");
/// `(queue, idempotency key) -> offset`.
pub const IDEM: TableDefinition<(u32, &str), u64> = TableDefinition::new("idempotency");

/// Meta key: format version (u32 LE).
pub const META_FORMAT: &str = "format";
/// Meta key: next fencing value (u64 LE).
pub const META_FENCE: &str = "next_fence";
/// Meta key: next queue id (u32 LE).
pub const META_NEXT_QUEUE: &str = "next_queue_id";
/// Meta key: creation time (u64 LE ms).
pub const META_CREATED: &str = "created_at";
/// Meta key: id of the database's segment log (16 bytes), in every
/// segment header too (format 2).
pub const META_LOG_ID: &str = "log_id";
/// Meta key: the LSN up to which the state is built from the log (u64
/// LE): replay on open starts there (format 2).
pub const META_WAL_LSN: &str = "wal_lsn";

/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build opens (migrating it).
pub const FORMAT_OLDEST: u32 = 1;

/// Table id of [`META`] in redo records (docs/FORMAT.md).
pub const ID_META: u8 = 1;
/// Table id of [`QUEUES`].
pub const ID_QUEUES: u8 = 2;
/// Table id of [`QSTATE`].
pub const ID_QSTATE: u8 = 3;
/// Table id of [`LOG`].
pub const ID_LOG: u8 = 4;
/// Table id of [`TASKS`].
pub const ID_TASKS: u8 = 5;
/// Table id of [`EVENTS`].
pub const ID_EVENTS: u8 = 6;
/// Table id of [`FAULTS`].
pub const ID_FAULTS: u8 = 7;
/// Table id of [`DLQ`].
pub const ID_DLQ: u8 = 8;
/// Table id of [`IDEM`].
pub const ID_IDEM: u8 = 9;

/// Writes the meta rows every new database starts with and that creation
/// writes unlogged: the first fence and the first queue id. Creation, and
/// whatever rebuilds a state from the log (verify, recover), start here.
pub(crate) fn seed_new(
    meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
) -> Result<(), StorageError> {
    meta.insert(META_FENCE, 1u64.to_le_bytes().as_slice())?;
    meta.insert(META_NEXT_QUEUE, 1u32.to_le_bytes().as_slice())?;
    Ok(())
}

/// A table of a write transaction whose every change is also recorded as
/// a redo record (see [`crate::redo`]); reads go to the table itself.
pub struct Logged<'t, K: Key + 'static, V: Value + 'static> {
    table: redb::Table<'t, K, V>,
    id: u8,
    changes: Rc<RefCell<Changes>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for Logged<'t, K, V> {
    type Target = redb::Table<'t, K, V>;

    fn deref(&self) -> &Self::Target {
        &self.table
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> Logged<'t, K, V> {
    /// Sets `key` to `value`.
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), StorageError> {
        let (k, v) = (key.borrow(), value.borrow());
        self.changes.borrow_mut().push(redo::put(
            self.id,
            K::as_bytes(k).as_ref(),
            V::as_bytes(v).as_ref(),
        ));
        self.table.insert(k, v).map(drop)
    }

    /// Deletes `key`.
    pub fn remove<'k>(&mut self, key: impl Borrow<K::SelfType<'k>>) -> Result<(), StorageError> {
        let k = key.borrow();
        self.changes
            .borrow_mut()
            .push(redo::delete(self.id, K::as_bytes(k).as_ref()));
        self.table.remove(k).map(drop)
    }

    /// Deletes every row from `lo` to `hi`, both included.
    pub fn delete_range<'k>(
        &mut self,
        lo: K::SelfType<'k>,
        hi: K::SelfType<'k>,
    ) -> Result<(), StorageError> {
        self.changes.borrow_mut().push(redo::delete_range(
            self.id,
            K::as_bytes(&lo).as_ref(),
            K::as_bytes(&hi).as_ref(),
        ));
        self.table.retain_in(lo..=hi, |_, _| false)
    }

    /// The table itself, for changes that are not recorded: replaying the
    /// log, and the log position a state checkpoint covers.
    pub(crate) fn raw(&mut self) -> &mut redb::Table<'t, K, V> {
        &mut self.table
    }
}

/// Every table opened in one write transaction, each recording its changes
/// for the segment log.
pub struct Tx<'t> {
    /// See [`META`].
    pub meta: Logged<'t, &'static str, &'static [u8]>,
    /// See [`QUEUES`].
    pub queues: Logged<'t, &'static str, &'static [u8]>,
    /// See [`QSTATE`].
    pub qstate: Logged<'t, u32, &'static [u8]>,
    /// See [`LOG`].
    pub log: Logged<'t, (u32, u64), &'static [u8]>,
    /// See [`TASKS`].
    pub tasks: Logged<'t, (u32, u64), &'static [u8]>,
    /// See [`EVENTS`].
    pub events: Logged<'t, (u32, u64), &'static [u8]>,
    /// See [`FAULTS`].
    pub faults: Logged<'t, (u32, u64, u64), &'static [u8]>,
    /// See [`DLQ`].
    pub dlq: Logged<'t, (u32, u64), u64>,
    /// See [`IDEM`].
    pub idem: Logged<'t, (u32, &'static str), u64>,
    changes: Rc<RefCell<Changes>>,
}

impl<'t> Tx<'t> {
    /// Opens (creating if needed) every table in `txn`.
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::TableError> {
        let changes = Rc::new(RefCell::new(Changes::new()));
        let c = &changes;
        Ok(Tx {
            meta: logged(txn.open_table(META)?, ID_META, c),
            queues: logged(txn.open_table(QUEUES)?, ID_QUEUES, c),
            qstate: logged(txn.open_table(QSTATE)?, ID_QSTATE, c),
            log: logged(txn.open_table(LOG)?, ID_LOG, c),
            tasks: logged(txn.open_table(TASKS)?, ID_TASKS, c),
            events: logged(txn.open_table(EVENTS)?, ID_EVENTS, c),
            faults: logged(txn.open_table(FAULTS)?, ID_FAULTS, c),
            dlq: logged(txn.open_table(DLQ)?, ID_DLQ, c),
            idem: logged(txn.open_table(IDEM)?, ID_IDEM, c),
            changes,
        })
    }

    /// The changes recorded so far, in order, leaving none.
    pub fn take_changes(&self) -> Changes {
        std::mem::take(&mut self.changes.borrow_mut())
    }
}

fn logged<'t, K: Key + 'static, V: Value + 'static>(
    table: redb::Table<'t, K, V>,
    id: u8,
    changes: &Rc<RefCell<Changes>>,
) -> Logged<'t, K, V> {
    Logged {
        table,
        id,
        changes: changes.clone(),
    }
}
