//! Checkpoint records ([`crate::checkpoint`]): the one each state
//! checkpoint appends to the log, with the meta rows that carry the
//! chain's head, and the signing key's check at open.

use super::Writer;
use crate::checkpoint::{
    self, Checkpoint, QueueHeads, KIND_CHECKPOINT, META_HEAD, META_PUBKEY, META_SEQ,
};
use crate::error::{Error, Result};
use crate::hash::{hex, GENESIS};
use crate::tables::Tx;
use ed25519_dalek::VerifyingKey;
use redb::ReadableTable;

impl Writer {
    /// Reads the last checkpoint's sequence number and hash, and checks
    /// the signing key against the one the database recorded.
    pub(super) fn load_checkpoint_meta(&mut self, tx: &Tx<'_>) -> Result<()> {
        let seq = match tx.meta.get(META_SEQ)? {
            Some(v) => u64::from_le_bytes(
                v.value()
                    .try_into()
                    .map_err(|_| Error::Corrupt("meta checkpoint_seq".into()))?,
            ),
            None => 0,
        };
        let head = match tx.meta.get(META_HEAD)? {
            Some(v) => v
                .value()
                .try_into()
                .map_err(|_| Error::Corrupt("meta checkpoint_head".into()))?,
            None => GENESIS,
        };
        self.checkpoint_head = (seq, head);
        let recorded = tx.meta.get(META_PUBKEY)?.map(|v| v.value().to_vec());
        self.record_pubkey = false;
        if let Some(key) = &self.signing_key {
            let public = key.verifying_key();
            match recorded {
                None => self.record_pubkey = true,
                Some(r) if r == public.as_bytes() => {}
                Some(r) => {
                    let id = <[u8; 32]>::try_from(r.as_slice())
                        .ok()
                        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                        .map_or_else(|| "unreadable".to_string(), |k| checkpoint::key_id(&k));
                    return Err(Error::InvalidArgument(format!(
                        "the signing key (key id {}) is not the one this database signs with (key id {id}); key rotation is not supported",
                        checkpoint::key_id(&public)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Appends the checkpoint record, with the meta rows naming it, to
    /// the open transaction and the log as one group (not synced: the
    /// state checkpoint syncs it).
    pub(super) fn append_checkpoint_record(&mut self, txn: &redb::WriteTransaction) -> Result<()> {
        let (seq, prev) = self.checkpoint_head;
        let mut ids: Vec<u32> = self.queues.keys().copied().collect();
        ids.sort_unstable();
        let queues = ids
            .iter()
            .map(|id| {
                let q = &self.queues[id];
                QueueHeads {
                    id: *id,
                    name: q.info.name.clone(),
                    next_offset: q.qs.next_offset,
                    log_head: hex(&q.qs.log_head),
                    next_event: q.qs.next_event,
                    event_head: hex(&q.qs.event_head),
                    watermark: q.qs.watermark,
                }
            })
            .collect();
        let mut tx = Tx::open(txn)?;
        if self.record_pubkey {
            if let Some(k) = &self.signing_key {
                tx.meta
                    .insert(META_PUBKEY, k.verifying_key().as_bytes().as_slice())?;
            }
        }
        // Two meta rows go before the record in its group.
        let lsn = self.wal.next_lsn() + 2 + u64::from(self.record_pubkey);
        let c = Checkpoint {
            v: 1,
            seq: seq + 1,
            at: self.opts.clock.now_ms(),
            lsn,
            prev: hex(&prev),
            fence: self.next_fence,
            key_id: self
                .signing_key
                .as_ref()
                .map(|k| checkpoint::key_id(&k.verifying_key())),
            queues,
        };
        let stored = checkpoint::seal(&c, self.signing_key.as_ref(), self.wal.log_id());
        let head = stored.hash();
        tx.meta
            .insert(META_SEQ, (seq + 1).to_le_bytes().as_slice())?;
        tx.meta.insert(META_HEAD, head.as_slice())?;
        let changes = tx.take_changes();
        drop(tx);
        for (kind, body) in &changes {
            self.wal.append(*kind, body)?;
        }
        let at = self.wal.append(KIND_CHECKPOINT, &stored.encode())?;
        debug_assert_eq!(at, lsn, "checkpoint record LSN");
        self.wal.commit()?;
        self.checkpoint_head = (seq + 1, head);
        self.record_pubkey = false;
        Ok(())
    }
}
