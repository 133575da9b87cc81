//! redb table definitions. Keys are `(queue_id, offset, …)` tuples so that
//! a queue's rows are contiguous and ranges scan in offset order.

use redb::TableDefinition;

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

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Every table opened in one write transaction.
pub struct Tx<'t> {
    /// See [`META`].
    pub meta: redb::Table<'t, &'static str, &'static [u8]>,
    /// See [`QUEUES`].
    pub queues: redb::Table<'t, &'static str, &'static [u8]>,
    /// See [`QSTATE`].
    pub qstate: redb::Table<'t, u32, &'static [u8]>,
    /// See [`LOG`].
    pub log: redb::Table<'t, (u32, u64), &'static [u8]>,
    /// See [`TASKS`].
    pub tasks: redb::Table<'t, (u32, u64), &'static [u8]>,
    /// See [`EVENTS`].
    pub events: redb::Table<'t, (u32, u64), &'static [u8]>,
    /// See [`FAULTS`].
    pub faults: redb::Table<'t, (u32, u64, u64), &'static [u8]>,
    /// See [`DLQ`].
    pub dlq: redb::Table<'t, (u32, u64), u64>,
    /// See [`IDEM`].
    pub idem: redb::Table<'t, (u32, &'static str), u64>,
}

impl<'t> Tx<'t> {
    /// Opens (creating if needed) every table in `txn`.
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Tx {
            meta: txn.open_table(META)?,
            queues: txn.open_table(QUEUES)?,
            qstate: txn.open_table(QSTATE)?,
            log: txn.open_table(LOG)?,
            tasks: txn.open_table(TASKS)?,
            events: txn.open_table(EVENTS)?,
            faults: txn.open_table(FAULTS)?,
            dlq: txn.open_table(DLQ)?,
            idem: txn.open_table(IDEM)?,
        })
    }
}
