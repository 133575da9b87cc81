//! Each batch's changes to the segment log: one commit group per batch,
//! synced before any caller of it is answered (durability `immediate`),
//! and the periodic state checkpoint. A failed log write, sync or
//! checkpoint stops the engine: every later call gets that error.

use super::Writer;
use crate::config::Durability;
use crate::durability;
use crate::error::{Error, Result};
use crate::redo::Changes;
use std::sync::atomic::Ordering::Release;
use std::time::Instant;

impl Writer {
    /// Appends a committed batch's changes as one group and syncs it when
    /// durability or a `sync` call asks.
    pub(super) fn log_group(&mut self, changes: &Changes) -> Result<()> {
        let r = (|| {
            for (kind, body) in changes {
                self.wal.append(*kind, body)?;
            }
            if self.wal.commit()?.is_some() && self.checkpoint_due.is_none() {
                self.checkpoint_due = Some(Instant::now() + self.opts.checkpoint_interval);
            }
            if self.opts.durability == Durability::Immediate || self.sync_requested {
                self.wal.sync()?;
                failpoint!("writer-after-sync");
            }
            Ok(())
        })();
        r.map_err(|e| self.stop(e))
    }

    /// Syncs what the log holds (a `sync` call).
    pub(super) fn sync_log(&mut self) -> Result<()> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        self.wal.sync().map_err(|e| self.stop(e))
    }

    /// Checkpoints the state when one is due.
    pub(super) fn checkpoint_if_due(&mut self) {
        if self.poisoned.is_none() && self.checkpoint_due.is_some_and(|t| t <= Instant::now()) {
            self.checkpoint();
        }
    }

    /// Commits the state durably at the log's current position: the open
    /// transaction, which readers then see.
    pub(super) fn checkpoint(&mut self) {
        let r = match self.txn.take() {
            Some(txn) => durability::commit_checkpoint(txn, &mut self.wal),
            None => durability::checkpoint(&self.db, &mut self.wal),
        };
        match r {
            Ok(()) => {
                self.checkpoint_due = None;
                self.counters.unpublished.store(false, Release);
            }
            Err(e) => {
                self.stop(e);
            }
        }
    }

    /// Stops the engine with `e`: no later call is tried.
    fn stop(&mut self, e: Error) -> Error {
        self.poisoned.get_or_insert(e).clone()
    }
}
