//! Operations on a lease by its token: heartbeat, start, complete (single
//! and batch), fail, release.

use crate::base::ordq_status;
use crate::base::{boundary, obj, slice_in, Out, OutSlice};
use crate::base::{ordq_error, Failure};
use crate::handle::ordq_db;
use crate::lease::ordq_token;
use ordq_core::{Completion, FailOutcome};
use std::ffi::c_char;
use std::time::Duration;

/// Answer to a completion (a plain value).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ordq_completion {
    /// Completed offset.
    pub offset: u64,
    /// Commit time, ms since the Unix epoch.
    pub committed_at: u64,
    /// True when this token had completed the task already (the first
    /// outcome is returned).
    pub duplicate: bool,
}

impl From<Completion> for ordq_completion {
    fn from(c: Completion) -> Self {
        ordq_completion {
            offset: c.offset,
            committed_at: c.committed_at,
            duplicate: c.duplicate,
        }
    }
}

/// One completion of `ordq_complete_batch`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ordq_complete_item {
    /// The lease's token.
    pub token: ordq_token,
    /// Result bytes; may be NULL when `result_len` is 0.
    pub result: *const u8,
    /// Length of `result` in bytes.
    pub result_len: usize,
}

/// What a `fail` led to (a plain value).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ordq_fail_outcome {
    /// True when the task was dead-lettered; false when a retry is
    /// scheduled.
    pub dead: bool,
    /// Attempts made so far.
    pub attempt: u32,
    /// Retry time, ms since the Unix epoch (0 when `dead`).
    pub not_before: u64,
}

impl From<FailOutcome> for ordq_fail_outcome {
    fn from(f: FailOutcome) -> Self {
        match f {
            FailOutcome::Retry {
                attempt,
                not_before,
            } => ordq_fail_outcome {
                dead: false,
                attempt,
                not_before,
            },
            FailOutcome::Dead { attempt } => ordq_fail_outcome {
                dead: true,
                attempt,
                not_before: 0,
            },
        }
    }
}

/// Extends the lease by `lease_ms` from now (0 = the queue's default
/// lease) and writes the new expiry (ms since the Unix epoch) to
/// `*expires_out`. `ORDQ_LEASE_LOST` for a stale token.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_heartbeat(
    db: *const ordq_db,
    token: ordq_token,
    lease_ms: u64,
    expires_out: *mut u64,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, out) = unsafe { (obj(db, "db")?, Out::new(expires_out, "expires_out")?) };
        let lease = (lease_ms != 0).then(|| Duration::from_millis(lease_ms));
        out.write(db.engine().heartbeat(token.into(), lease)?);
        Ok(())
    })
}

/// Records that processing started (shown in task info).
/// `ORDQ_LEASE_LOST` for a stale token.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_start(
    db: *const ordq_db,
    token: ordq_token,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract.
        let db = unsafe { obj(db, "db") }?;
        Ok(db.engine().start(token.into())?)
    })
}

/// Commits the task's `result` (NULL allowed when `result_len` is 0) and
/// frees its lane; writes the outcome to `*completion_out`. A repeat with
/// the same token returns the first outcome with `duplicate` set; any
/// other stale token gives `ORDQ_LEASE_LOST`.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_complete(
    db: *const ordq_db,
    token: ordq_token,
    result: *const u8,
    result_len: usize,
    completion_out: *mut ordq_completion,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, result, out) = unsafe {
            (
                obj(db, "db")?,
                slice_in(result, result_len, "result")?,
                Out::new(completion_out, "completion_out")?,
            )
        };
        out.write(db.engine().complete(token.into(), result)?.into());
        Ok(())
    })
}

/// Completes `items_len` leases in one commit, each with its own outcome.
/// Returns `ORDQ_OK` when the call itself worked; then `statuses_out[i]`
/// holds item i's status (e.g. `ORDQ_LEASE_LOST` for a stale token) and
/// `completions_out[i]` its completion where that status is `ORDQ_OK`
/// (untouched otherwise). Both are caller-owned arrays of `items_len`; all
/// three arrays may be NULL when `items_len` is 0. A result over the size
/// limit fails the whole call.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_complete_batch(
    db: *const ordq_db,
    items: *const ordq_complete_item,
    items_len: usize,
    completions_out: *mut ordq_completion,
    statuses_out: *mut ordq_status,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, raw, outs, statuses) = unsafe {
            (
                obj(db, "db")?,
                slice_in(items, items_len, "items")?,
                OutSlice::new(completions_out, items_len, "completions_out")?,
                OutSlice::new(statuses_out, items_len, "statuses_out")?,
            )
        };
        let mut batch = Vec::with_capacity(raw.len());
        for (i, it) in raw.iter().enumerate() {
            // SAFETY: caller contract for each item's result.
            let result = unsafe { slice_in(it.result, it.result_len, "items[i].result") }
                .map_err(|e| e.at_item(i))?;
            batch.push((it.token.into(), result.to_vec()));
        }
        let answers = db.engine().complete_batch(batch)?;
        if answers.len() != items_len {
            return Err(Failure::new(
                ordq_status::ORDQ_PANIC,
                format!(
                    "engine returned {} outcomes for {items_len} items",
                    answers.len()
                ),
            ));
        }
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(c) => {
                    outs.write(i, c.into());
                    statuses.write(i, ordq_status::ORDQ_OK);
                }
                Err(e) => statuses.write(i, ordq_status::from_code(e.code())),
            }
        }
        Ok(())
    })
}

/// Records a failed attempt with `error` text (UTF-8; NULL allowed when
/// `error_len` is 0). The task is retried after backoff, or dead-lettered
/// when its attempts are spent or `retryable` is false; the outcome is
/// written to `*outcome_out`. Unlike other strings, invalid UTF-8 in
/// `error` is not refused but replaced (U+FFFD): a failing worker must
/// always be able to report its failure. `ORDQ_LEASE_LOST` for a stale
/// token.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_fail(
    db: *const ordq_db,
    token: ordq_token,
    error: *const c_char,
    error_len: usize,
    retryable: bool,
    outcome_out: *mut ordq_fail_outcome,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract for every pointer argument.
        let (db, error, out) = unsafe {
            (
                obj(db, "db")?,
                slice_in(error.cast::<u8>(), error_len, "error")?,
                Out::new(outcome_out, "outcome_out")?,
            )
        };
        let text = String::from_utf8_lossy(error);
        out.write(db.engine().fail(token.into(), &text, retryable)?.into());
        Ok(())
    })
}

/// Gives the lease back without counting the attempt; the task is ready
/// again at once. `ORDQ_LEASE_LOST` for a stale token.
///
/// # Safety
/// Pointer arguments follow the rules at the top of this header.
#[no_mangle]
pub unsafe extern "C" fn ordq_release(
    db: *const ordq_db,
    token: ordq_token,
    err_out: *mut *mut ordq_error,
) -> ordq_status {
    boundary(err_out, || {
        // SAFETY: caller contract.
        let db = unsafe { obj(db, "db") }?;
        Ok(db.engine().release(token.into())?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_outcome_conversion() {
        let r = ordq_fail_outcome::from(FailOutcome::Retry {
            attempt: 2,
            not_before: 99,
        });
        assert_eq!((r.dead, r.attempt, r.not_before), (false, 2, 99));
        let d = ordq_fail_outcome::from(FailOutcome::Dead { attempt: 3 });
        assert_eq!((d.dead, d.attempt, d.not_before), (true, 3, 0));
    }
}
