//! Each batch's changes to the segment log: one commit group per batch,
//! synced before any caller of it is answered (durability `immediate`),
//! the periodic state checkpoint, and removing the log segments it covers
//! (retention, `compact_log`). A failed log write, sync or
//! checkpoint stops the engine: every later call gets that error.

use super::Writer;
use crate::config::Durability;
use crate::durability;
use crate::error::{Error, Result};
use crate::redo::Changes;
use crate::types::{Compacted, LogInfo};
use crate::wal::Removed;
use std::sync::atomic::Ordering::Release;
use std::time::{Instant, SystemTime};

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
        let r = (|| {
            let txn = match self.txn.take() {
                Some(t) => t,
                None => self.db.begin_write()?,
            };
            self.append_checkpoint_record(&txn)?;
            durability::commit_checkpoint(txn, &mut self.wal)
        })();
        match r {
            Ok(()) => {
                self.checkpoint_due = None;
                self.checkpoint_lsn = self.wal.next_lsn();
                self.counters.unpublished.store(false, Release);
            }
            Err(e) => {
                self.stop(e);
                return;
            }
        }
        if let Some(keep) = self.opts.log_retention {
            let before = SystemTime::now().checked_sub(keep);
            let r = match before {
                Some(t) => self.wal.remove_below(self.checkpoint_lsn, Some(t)),
                None => Ok(Removed::default()),
            };
            if let Err(e) = r {
                self.stop(e);
            }
        }
    }

    /// The log's extent.
    pub(super) fn log_info(&self) -> Result<LogInfo> {
        let segments = self.wal.segments();
        Ok(LogInfo {
            segments: segments.len(),
            bytes: self.wal.bytes()?,
            first_lsn: segments.first().copied().unwrap_or(0),
            next_lsn: self.wal.next_lsn(),
            checkpoint_lsn: self.checkpoint_lsn,
        })
    }

    /// Answers the batch's `checkpoint` callers: one checkpoint for all.
    pub(super) fn answer_checkpoints(&mut self) {
        if self.checkpoints_asked.is_empty() {
            return;
        }
        if self.poisoned.is_none() {
            self.checkpoint();
        }
        let r = match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => self.log_info(),
        };
        for reply in self.checkpoints_asked.drain(..) {
            reply.send(r.clone());
        }
    }

    /// Answers the batch's `compact_log` callers: a checkpoint, then every
    /// sealed segment it covers removed.
    pub(super) fn compact_log(&mut self) {
        if self.compactions.is_empty() {
            return;
        }
        let r = (|| {
            if let Some(e) = &self.poisoned {
                return Err(e.clone());
            }
            self.checkpoint();
            if let Some(e) = &self.poisoned {
                return Err(e.clone());
            }
            let removed = self
                .wal
                .remove_below(self.checkpoint_lsn, None)
                .map_err(|e| self.stop(e))?;
            Ok(Compacted {
                removed_segments: removed.segments,
                removed_bytes: removed.bytes,
                log: self.log_info()?,
            })
        })();
        for reply in self.compactions.drain(..) {
            reply.send(r.clone());
        }
    }

    /// Stops the engine with `e`: no later call is tried.
    fn stop(&mut self, e: Error) -> Error {
        self.poisoned.get_or_insert(e).clone()
    }
}
