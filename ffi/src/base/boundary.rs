//! The call boundary of fallible exports: panic catching, error hand-off,
//! and checked conversion of raw pointer arguments.

use super::error::{ordq_error, Failure, FfiResult};
use super::guard::panic_text;
use super::status::ordq_status;
use std::any::Any;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the body of a fallible export: catches panics (as `ORDQ_PANIC`),
/// and on failure hands an owned `ordq_error` to `err_out` when it is
/// non-NULL. `err_out` is left untouched on success.
pub(crate) fn boundary(
    err_out: *mut *mut ordq_error,
    body: impl FnOnce() -> FfiResult<()>,
) -> ordq_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return ordq_status::ORDQ_OK,
        Ok(Err(f)) => f,
        Err(payload) => panic_failure(payload.as_ref()),
    };
    let code = failure.code;
    if !err_out.is_null() {
        let err = Box::into_raw(failure.into_error());
        // SAFETY: `err_out` is non-NULL and, by the caller contract, points
        // to writable storage for one `ordq_error*`. `write` does not read
        // or drop whatever the slot held.
        unsafe { err_out.write(err) };
    }
    code
}

/// The `ORDQ_PANIC` failure carrying a panic's message.
pub(crate) fn panic_failure(payload: &(dyn Any + Send)) -> Failure {
    let text = panic_text(payload);
    Failure::new(
        ordq_status::ORDQ_PANIC,
        format!("ordq panicked (a bug, please report it): {text}"),
    )
}

/// Borrows an optional object argument (NULL gives `None`).
///
/// # Safety
/// `p` is NULL or points to a live `T` that outlives `'a`.
pub(crate) unsafe fn opt_obj<'a, T>(p: *const T, arg: &str) -> FfiResult<Option<&'a T>> {
    if !p.is_aligned() {
        return Err(Failure::invalid(format!(
            "argument `{arg}` is not properly aligned"
        )));
    }
    // SAFETY: aligned, and NULL or live per the function contract.
    Ok(unsafe { p.as_ref() })
}

/// Borrows a required object argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` that outlives `'a`.
pub(crate) unsafe fn obj<'a, T>(p: *const T, arg: &str) -> FfiResult<&'a T> {
    // SAFETY: per the function contract.
    unsafe { opt_obj(p, arg) }?.ok_or_else(|| Failure::null(arg))
}

/// Mutably borrows a required object argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` that nothing else accesses during `'a`.
pub(crate) unsafe fn obj_mut<'a, T>(p: *mut T, arg: &str) -> FfiResult<&'a mut T> {
    // SAFETY: per the function contract (checked for alignment by `obj`).
    unsafe { obj(p.cast_const(), arg) }?;
    // SAFETY: non-NULL, aligned, exclusive per the function contract.
    Ok(unsafe { &mut *p })
}

/// A checked, required out-parameter: non-NULL and aligned. Writing does
/// not drop the (possibly uninitialised) previous contents.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Checks `p` for NULL and alignment.
    ///
    /// # Safety
    /// `p` is NULL or valid for a write of one `T` until the call returns.
    pub(crate) unsafe fn new(p: *mut T, arg: &str) -> FfiResult<Out<T>> {
        if p.is_null() {
            return Err(Failure::null(arg));
        }
        if !p.is_aligned() {
            return Err(Failure::invalid(format!(
                "argument `{arg}` is not properly aligned"
            )));
        }
        Ok(Out(p))
    }

    /// Stores the output.
    pub(crate) fn write(self, v: T) {
        // SAFETY: non-NULL and aligned (checked in `new`), writable per the
        // contract of `new`.
        unsafe { self.0.write(v) }
    }
}

/// A checked, required output array of `len` elements.
pub(crate) struct OutSlice<T>(*mut T, usize);

impl<T> OutSlice<T> {
    /// Checks `p` (may be NULL only when `len` is 0).
    ///
    /// # Safety
    /// `p` is NULL or valid for writes of `len` consecutive `T`s until the
    /// call returns.
    pub(crate) unsafe fn new(p: *mut T, len: usize, arg: &str) -> FfiResult<OutSlice<T>> {
        if len == 0 {
            return Ok(OutSlice(std::ptr::NonNull::dangling().as_ptr(), 0));
        }
        if p.is_null() {
            return Err(Failure::null(arg));
        }
        if !p.is_aligned() {
            return Err(Failure::invalid(format!(
                "argument `{arg}` is not properly aligned"
            )));
        }
        Ok(OutSlice(p, len))
    }

    /// Stores element `i` (`i < len`).
    pub(crate) fn write(&self, i: usize, v: T) {
        assert!(i < self.1, "output index {i} out of bounds");
        // SAFETY: `i < len`; the array is writable per the contract of `new`.
        unsafe { self.0.add(i).write(v) }
    }
}

/// Borrows an input array `(ptr, len)`; `ptr` may be NULL only when `len`
/// is 0.
///
/// # Safety
/// Unless NULL or `len == 0`, `ptr` points to `len` initialised `T`s that
/// stay unchanged for `'a`.
pub(crate) unsafe fn slice_in<'a, T>(ptr: *const T, len: usize, arg: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(arg));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!(
            "argument `{arg}` is not properly aligned"
        )));
    }
    let too_long = match len.checked_mul(std::mem::size_of::<T>().max(1)) {
        Some(bytes) => bytes > isize::MAX as usize,
        None => true,
    };
    if too_long {
        return Err(Failure::invalid(format!(
            "argument `{arg}`: length {len} is too large"
        )));
    }
    // SAFETY: non-NULL, aligned, size within isize::MAX, and the caller
    // guarantees `len` readable, initialised elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows a required UTF-8 string `(ptr, len)` (not NUL-terminated);
/// invalid UTF-8 is `ORDQ_INVALID_ARGUMENT`.
///
/// # Safety
/// As for [`slice_in`].
pub(crate) unsafe fn str_in<'a>(ptr: *const c_char, len: usize, arg: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded caller contract.
    let bytes = unsafe { slice_in(ptr.cast::<u8>(), len, arg) }?;
    std::str::from_utf8(bytes).map_err(|e| {
        Failure::invalid(format!(
            "argument `{arg}` is not valid UTF-8 (invalid byte at index {})",
            e.valid_up_to()
        ))
    })
}

/// Borrows an optional UTF-8 string: `ptr == NULL` means absent (then `len`
/// must be 0).
///
/// # Safety
/// As for [`slice_in`].
pub(crate) unsafe fn opt_str_in<'a>(
    ptr: *const c_char,
    len: usize,
    arg: &str,
) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        if len != 0 {
            return Err(Failure::invalid(format!(
                "argument `{arg}` is NULL (absent) but its length is {len}"
            )));
        }
        return Ok(None);
    }
    // SAFETY: forwarded caller contract.
    unsafe { str_in(ptr, len, arg) }.map(Some)
}

/// Converts a C size to `usize`-bounded `u64` milliseconds etc.: saturates.
pub(crate) fn usize_from_u64(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::error::{ordq_error_code, ordq_error_free, ordq_error_message};
    use super::super::guard::boundary_value;
    use super::*;
    use std::ffi::CStr;
    use std::ptr;

    #[test]
    fn panics_become_ordq_panic_with_message() {
        let mut err: *mut ordq_error = ptr::null_mut();
        let st = boundary(&mut err, || panic!("boom {}", 42));
        assert_eq!(st, ordq_status::ORDQ_PANIC);
        assert!(!err.is_null());
        // SAFETY: `err` was just produced by `boundary`.
        unsafe {
            assert_eq!(ordq_error_code(err), ordq_status::ORDQ_PANIC);
            let msg = CStr::from_ptr(ordq_error_message(err));
            assert!(msg.to_str().unwrap().contains("boom 42"), "{msg:?}");
            ordq_error_free(err);
        }
        // A static-str panic, and no err_out at all.
        let st = boundary(ptr::null_mut(), || panic!("static"));
        assert_eq!(st, ordq_status::ORDQ_PANIC);
        assert_eq!(boundary_value(7, || panic!("x")), 7);
    }

    #[test]
    fn success_leaves_err_out_untouched() {
        let sentinel = 0x10 as *mut ordq_error;
        let mut err = sentinel;
        assert_eq!(boundary(&mut err, || Ok(())), ordq_status::ORDQ_OK);
        assert_eq!(err, sentinel);
    }

    #[test]
    fn input_checks() {
        // SAFETY: all pointers below are NULL or point to live locals.
        unsafe {
            assert_eq!(slice_in::<u8>(ptr::null(), 0, "p").unwrap(), b"");
            let e = slice_in::<u8>(ptr::null(), 3, "payload").unwrap_err();
            assert_eq!(e.code, ordq_status::ORDQ_NULL_POINTER);
            assert!(e.message.contains("`payload`"));
            let bad = [0x66u8, 0xff];
            let e = str_in(bad.as_ptr().cast(), 2, "key").unwrap_err();
            assert_eq!(e.code, ordq_status::ORDQ_INVALID_ARGUMENT);
            assert!(e.message.contains("UTF-8"));
            assert_eq!(opt_str_in(ptr::null(), 0, "k").unwrap(), None);
            assert!(opt_str_in(ptr::null(), 2, "k").is_err());
            let s = "héllo";
            assert_eq!(str_in(s.as_ptr().cast(), s.len(), "s").unwrap(), s);
            let words = [1u32, 2, 3];
            let misaligned = words.as_ptr().cast::<u8>().add(1).cast::<u32>();
            assert!(slice_in(misaligned, 1, "shards").is_err());
            assert!(slice_in(words.as_ptr(), usize::MAX / 2, "shards").is_err());
            assert!(Out::<u64>::new(ptr::null_mut(), "out").is_err());
        }
    }
}
