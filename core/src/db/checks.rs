//! Argument checks made before an operation reaches the writer: worker
//! ids, lease lengths, task keys, payloads, headers and results.

use crate::config::EnqueueOptions;
use crate::error::{Error, Result};
use std::time::Duration;

use super::{Db, MAX_WORKER_ID};

pub(super) fn check_worker(worker: &str) -> Result<()> {
    if worker.is_empty() || worker.len() > MAX_WORKER_ID {
        return Err(Error::InvalidArgument(format!(
            "worker id must be 1..={MAX_WORKER_ID} bytes"
        )));
    }
    Ok(())
}

pub(super) fn check_lease(lease: Option<Duration>) -> Result<()> {
    match lease {
        Some(l) if l < Duration::from_millis(1) => Err(Error::InvalidArgument(
            "lease must be at least 1 ms (leases have millisecond resolution)".into(),
        )),
        _ => Ok(()),
    }
}

impl Db {
    pub(super) fn check_item(&self, key: &str, payload: &[u8], o: &EnqueueOptions) -> Result<()> {
        let opts = &self.inner.opts;
        if payload.len() > opts.max_payload {
            return Err(Error::TooLarge(format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                payload.len(),
                opts.max_payload
            )));
        }
        if key.len() > opts.max_key {
            return Err(Error::TooLarge(format!(
                "key of {} bytes exceeds the limit of {} bytes",
                key.len(),
                opts.max_key
            )));
        }
        let hdr: usize = o.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if hdr > opts.max_headers {
            return Err(Error::TooLarge(format!(
                "headers of {hdr} bytes exceed the limit of {} bytes",
                opts.max_headers
            )));
        }
        if o.headers.keys().any(|k| k.is_empty()) {
            return Err(Error::InvalidArgument(
                "header names must not be empty".into(),
            ));
        }
        if o.max_attempts == Some(0) {
            return Err(Error::InvalidArgument(
                "max_attempts must be at least 1".into(),
            ));
        }
        if let Some(k) = &o.idempotency_key {
            if k.is_empty() {
                return Err(Error::InvalidArgument(
                    "idempotency key must not be empty".into(),
                ));
            }
            if k.len() > opts.max_key {
                return Err(Error::TooLarge(format!(
                    "idempotency key of {} bytes exceeds the limit of {} bytes",
                    k.len(),
                    opts.max_key
                )));
            }
        }
        Ok(())
    }

    pub(super) fn check_result(&self, result: &[u8]) -> Result<()> {
        if result.len() > self.inner.opts.max_result {
            return Err(Error::TooLarge(format!(
                "result of {} bytes exceeds the limit of {} bytes",
                result.len(),
                self.inner.opts.max_result
            )));
        }
        Ok(())
    }
}
