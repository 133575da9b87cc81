//! `ordq_error`: an owned error object (status code and message), and the
//! internal `Failure` every call builds it from.

use super::guard::boundary_value;
use super::status::ordq_status;
use std::ffi::{c_char, CString};

/// An error returned through a call's `err_out`: a status code and a
/// one-line, non-empty, NUL-terminated UTF-8 message. Owned by the caller;
/// free it with `ordq_error_free`. Immutable, so it may be read from any
/// thread.
pub struct ordq_error {
    code: ordq_status,
    message: CString,
}

/// Why a call failed, before it crosses the ABI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: ordq_status,
    pub(crate) message: String,
}

/// Result type of every call's body.
pub(crate) type FfiResult<T> = Result<T, Failure>;

impl Failure {
    /// Names item `i` in a message that says `items[i]`: batch calls use
    /// the generic name and index it only on failure (no allocation per
    /// item on the hot path).
    pub(crate) fn at_item(mut self, i: usize) -> Failure {
        self.message = self.message.replace("items[i]", &format!("items[{i}]"));
        self
    }

    /// A failure with `code` and `message`.
    pub(crate) fn new(code: ordq_status, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// `ORDQ_INVALID_ARGUMENT` with `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ordq_status::ORDQ_INVALID_ARGUMENT, message)
    }

    /// `ORDQ_NULL_POINTER` naming the argument.
    pub(crate) fn null(arg: &str) -> Failure {
        Failure::new(
            ordq_status::ORDQ_NULL_POINTER,
            format!("argument `{arg}` must not be NULL"),
        )
    }

    /// The owned C error object.
    pub(crate) fn into_error(self) -> Box<ordq_error> {
        let mut message = self.message;
        if message.is_empty() {
            message = self.code.name().to_string_lossy().into_owned();
        }
        // Interior NULs would cut the C string short: escape them.
        let message = CString::new(message.replace('\0', "\\0"))
            .unwrap_or_else(|_| CString::from(c"error message unavailable"));
        Box::new(ordq_error {
            code: self.code,
            message,
        })
    }
}

impl From<ordq_core::Error> for Failure {
    fn from(e: ordq_core::Error) -> Failure {
        Failure::new(ordq_status::from_code(e.code()), e.to_string())
    }
}

/// The status code of `err`; `ORDQ_NULL_POINTER` when `err` is NULL.
///
/// # Safety
/// `err` is NULL or a live `ordq_error` (see the pointer rules at the top).
#[no_mangle]
pub unsafe extern "C" fn ordq_error_code(err: *const ordq_error) -> ordq_status {
    boundary_value(ordq_status::ORDQ_PANIC, || {
        // SAFETY: the caller passes NULL or a live error.
        match unsafe { err.as_ref() } {
            Some(e) => e.code,
            None => ordq_status::ORDQ_NULL_POINTER,
        }
    })
}

/// The message of `err`: NUL-terminated UTF-8, never empty, borrowed from
/// `err` (valid until `ordq_error_free`). A static placeholder text when
/// `err` is NULL.
///
/// # Safety
/// `err` is NULL or a live `ordq_error`.
#[no_mangle]
pub unsafe extern "C" fn ordq_error_message(err: *const ordq_error) -> *const c_char {
    boundary_value(
        c"ordq: panic while reading an error message".as_ptr(),
        || {
            // SAFETY: the caller passes NULL or a live error.
            match unsafe { err.as_ref() } {
                Some(e) => e.message.as_ptr(),
                None => c"ordq_error_message: the error pointer is NULL".as_ptr(),
            }
        },
    )
}

/// Frees an error. NULL is a no-op.
///
/// # Safety
/// `err` is NULL or an `ordq_error` not yet freed; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn ordq_error_free(err: *mut ordq_error) {
    boundary_value((), || {
        if !err.is_null() {
            // SAFETY: a non-NULL `err` came from `Box::into_raw` in
            // `util::boundary` and is freed once (caller contract).
            drop(unsafe { Box::from_raw(err) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn messages_are_never_empty_and_nul_safe() {
        let e = Failure::new(ordq_status::ORDQ_IO, "").into_error();
        assert_eq!(e.message.to_str().unwrap(), "IO");
        let e = Failure::invalid("a\0b").into_error();
        assert_eq!(e.message.to_str().unwrap(), "a\\0b");
        let raw = Box::into_raw(e);
        // SAFETY: `raw` is a live error until freed below.
        unsafe {
            assert_eq!(ordq_error_code(raw), ordq_status::ORDQ_INVALID_ARGUMENT);
            assert_eq!(CStr::from_ptr(ordq_error_message(raw)).to_bytes(), b"a\\0b");
            ordq_error_free(raw);
            ordq_error_free(std::ptr::null_mut());
            assert_eq!(
                ordq_error_code(std::ptr::null()),
                ordq_status::ORDQ_NULL_POINTER
            );
            assert!(!CStr::from_ptr(ordq_error_message(std::ptr::null())).is_empty());
        }
    }

    #[test]
    fn core_errors_keep_code_and_text() {
        let f = Failure::from(ordq_core::Error::LeaseLost("token superseded".into()));
        assert_eq!(f.code, ordq_status::ORDQ_LEASE_LOST);
        assert_eq!(f.message, "lease lost: token superseded");
    }
}
