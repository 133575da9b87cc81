//! The panic guard under every export: a panic never unwinds into C.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the body of an infallible export (accessors, `_free`, `_init`):
/// a panic yields `fallback` instead of unwinding into C.
pub(crate) fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The message a panic carried.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
