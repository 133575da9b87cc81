//! One request → one engine call → one response frame.

use ordq_core::config::EnqueueItem;
use ordq_core::error::{Error, ErrorCode, Result};
use ordq_core::Db;
use ordq_wire::protocol::{
    encode_err, encode_ok, Claim, Expiry, ItemOutcome, NoArgs, Purged, Request, WireDeadLetter,
    WireLease,
};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest single engine wait of a claim: a longer wait is served as a
/// series of these, so a shutting-down broker ends it within one slice.
const CLAIM_SLICE: Duration = Duration::from_secs(1);

/// A response frame and the error code it carries, if any.
pub(crate) struct Answer {
    /// The frame, newline included.
    pub frame: Vec<u8>,
    /// The error code, for metrics.
    pub error: Option<ErrorCode>,
}

impl Answer {
    /// An answer from a result.
    fn of<T: Serialize>(id: u64, r: Result<T>) -> Answer {
        match r {
            Ok(v) => Answer {
                frame: encode_ok(id, &v),
                error: None,
            },
            Err(e) => Answer::err(Some(id), &e),
        }
    }

    /// An error answer.
    pub(crate) fn err(id: Option<u64>, e: &Error) -> Answer {
        Answer {
            frame: encode_err(id, e),
            error: Some(e.code()),
        }
    }
}

fn none(r: Result<()>) -> Result<NoArgs> {
    r.map(|()| NoArgs {})
}

/// A claim whose wait is cut into slices, ending early when the broker
/// stops (with whatever was leased: nothing).
fn claim(db: &Db, a: Claim, stopping: &AtomicBool) -> Result<Vec<WireLease>> {
    let mut opts = a.options();
    let total = opts.wait;
    let deadline = Instant::now().checked_add(total);
    loop {
        let left = deadline.map_or(total, |d| d.saturating_duration_since(Instant::now()));
        opts.wait = left.min(CLAIM_SLICE);
        let last = left <= CLAIM_SLICE;
        let leases = db.claim(&a.queue, &a.worker, opts.clone())?;
        if !leases.is_empty() || last || stopping.load(Ordering::Acquire) {
            return Ok(leases.into_iter().map(WireLease::from).collect());
        }
    }
}

/// Runs `req` (anything but `hello`) on `db` and answers request `id`.
pub(crate) fn dispatch(db: &Db, id: u64, req: Request, stopping: &AtomicBool) -> Answer {
    match req {
        Request::Hello(_) => Answer::err(
            Some(id),
            &Error::InvalidArgument("hello was already done on this connection".into()),
        ),
        Request::Ping(_) => Answer::of(id, Ok(NoArgs {})),
        Request::Sync(_) => Answer::of(id, none(db.sync())),
        Request::CreateQueue(a) if a.if_not_exists => {
            Answer::of(id, db.create_queue_if_not_exists(&a.queue, a.config))
        }
        Request::CreateQueue(a) => Answer::of(id, db.create_queue(&a.queue, a.config)),
        Request::GetQueue(a) => Answer::of(id, db.queue(&a.queue)),
        Request::ListQueues(_) => Answer::of(id, db.list_queues()),
        Request::DeleteQueue(a) => Answer::of(id, none(db.delete_queue(&a.queue))),
        Request::Enqueue(a) => {
            let items = a.items.into_iter().map(EnqueueItem::from).collect();
            Answer::of(id, db.enqueue_batch(&a.queue, items))
        }
        Request::Claim(a) => Answer::of(id, claim(db, a, stopping)),
        Request::Heartbeat(a) => Answer::of(
            id,
            db.heartbeat(a.token, a.lease_ms.map(Duration::from_millis))
                .map(|expires_at| Expiry { expires_at }),
        ),
        Request::Start(a) => Answer::of(id, none(db.start(a.token))),
        Request::Complete(a) => {
            let items = a.items.into_iter().map(|i| (i.token, i.result)).collect();
            Answer::of(
                id,
                db.complete_batch(items).map(|v| {
                    v.into_iter()
                        .map(ItemOutcome::from_result)
                        .collect::<Vec<_>>()
                }),
            )
        }
        Request::Fail(a) => Answer::of(id, db.fail(a.token, &a.error, a.retryable)),
        Request::Release(a) => Answer::of(id, none(db.release(a.token))),
        Request::GetTask(a) => Answer::of(id, db.get_task(&a.queue, a.offset)),
        Request::Faults(a) => Answer::of(id, db.faults(&a.queue, a.offset)),
        Request::Stats(a) => Answer::of(id, db.stats(&a.queue)),
        Request::Pending(a) => Answer::of(id, db.pending(&a.queue, a.after, a.limit)),
        Request::DlqList(a) => Answer::of(id, db.dlq_list(&a.queue, a.after, a.limit)),
        Request::DlqGet(a) => Answer::of(
            id,
            db.dlq_get(&a.queue, a.offset).map(|d| WireDeadLetter {
                task: d.task,
                faults: d.faults,
            }),
        ),
        Request::DlqRedrive(a) => Answer::of(id, db.dlq_redrive(&a.queue, a.offset, a.mode)),
        Request::DlqPurge(a) => Answer::of(
            id,
            db.dlq_purge(&a.queue, a.offset)
                .map(|purged| Purged { purged }),
        ),
        Request::Checkpoint(_) => Answer::of(id, db.checkpoint()),
        Request::Verify(a) => {
            Answer::of(id, pubkey(a.pubkey.as_deref()).and_then(|k| db.verify(k)))
        }
        Request::Audit(a) => Answer::of(id, db.audit(&a.queue, a.key.as_deref())),
        Request::Backup(a) => Answer::of(id, backup_path(&a.to).and_then(|p| db.backup(p))),
    }
}

/// A backup path from a client: absolute, so it never depends on the
/// broker's working directory.
fn backup_path(to: &str) -> Result<&std::path::Path> {
    let p = std::path::Path::new(to);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(Error::InvalidArgument(format!(
            "backup path {to:?} must be absolute (it is a path on the broker's machine)"
        )))
    }
}

/// A public key given as hex on the wire.
fn pubkey(hex: Option<&str>) -> Result<Option<[u8; 32]>> {
    hex.map(|h| {
        ordq_core::hash::from_hex(h)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::InvalidArgument("pubkey must be 64 hex digits".into()))
    })
    .transpose()
}
