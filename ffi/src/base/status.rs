//! `ordq_status`: the return value of every fallible call.

use ordq_core::ErrorCode;
use std::ffi::{c_char, CStr};

/// Result of a fallible call. `ORDQ_OK` (0) is success; 1..=12 are exactly
/// the engine's error codes (docs/ERRORS.md); 100 and above are raised by
/// the ABI layer itself. Values never change meaning; new ones are only
/// appended, so treat an unknown value as a generic failure.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::enum_variant_names)]
pub enum ordq_status {
    /// Success.
    ORDQ_OK = 0,
    /// A malformed argument: bad queue name, bad option or enum value,
    /// invalid UTF-8, index out of range.
    ORDQ_INVALID_ARGUMENT = 1,
    /// The named queue, task or dead letter does not exist.
    ORDQ_NOT_FOUND = 2,
    /// A queue with that name already exists.
    ORDQ_ALREADY_EXISTS = 3,
    /// The database file is held by another process or handle.
    ORDQ_ALREADY_OPEN = 4,
    /// The lease behind a token expired or was superseded (fencing).
    ORDQ_LEASE_LOST = 5,
    /// A payload, key, header or result exceeds its size limit.
    ORDQ_TOO_LARGE = 6,
    /// The task is not in a state that allows the operation.
    ORDQ_INVALID_STATE = 7,
    /// The file was written by a newer ordq format.
    ORDQ_FORMAT_TOO_NEW = 8,
    /// Stored data failed a consistency check.
    ORDQ_CORRUPT = 9,
    /// The storage layer failed (I/O).
    ORDQ_IO = 10,
    /// The handle was closed.
    ORDQ_CLOSED = 11,
    /// A remote engine (broker) could not be reached or did not answer in time.
    ORDQ_UNAVAILABLE = 12,
    /// A required pointer argument was NULL; the message names it.
    ORDQ_NULL_POINTER = 100,
    /// ordq panicked inside the call (a bug in ordq); the message carries
    /// the panic text. The handle stays usable.
    ORDQ_PANIC = 101,
}

impl ordq_status {
    /// Every status, in numeric order.
    pub fn all() -> [ordq_status; 15] {
        [
            ordq_status::ORDQ_OK,
            ordq_status::ORDQ_INVALID_ARGUMENT,
            ordq_status::ORDQ_NOT_FOUND,
            ordq_status::ORDQ_ALREADY_EXISTS,
            ordq_status::ORDQ_ALREADY_OPEN,
            ordq_status::ORDQ_LEASE_LOST,
            ordq_status::ORDQ_TOO_LARGE,
            ordq_status::ORDQ_INVALID_STATE,
            ordq_status::ORDQ_FORMAT_TOO_NEW,
            ordq_status::ORDQ_CORRUPT,
            ordq_status::ORDQ_IO,
            ordq_status::ORDQ_CLOSED,
            ordq_status::ORDQ_UNAVAILABLE,
            ordq_status::ORDQ_NULL_POINTER,
            ordq_status::ORDQ_PANIC,
        ]
    }

    /// The status for an engine error code.
    pub fn from_code(code: ErrorCode) -> ordq_status {
        use ordq_status::*;
        match code {
            ErrorCode::InvalidArgument => ORDQ_INVALID_ARGUMENT,
            ErrorCode::NotFound => ORDQ_NOT_FOUND,
            ErrorCode::AlreadyExists => ORDQ_ALREADY_EXISTS,
            ErrorCode::AlreadyOpen => ORDQ_ALREADY_OPEN,
            ErrorCode::LeaseLost => ORDQ_LEASE_LOST,
            ErrorCode::TooLarge => ORDQ_TOO_LARGE,
            ErrorCode::InvalidState => ORDQ_INVALID_STATE,
            ErrorCode::FormatTooNew => ORDQ_FORMAT_TOO_NEW,
            ErrorCode::Corrupt => ORDQ_CORRUPT,
            ErrorCode::Io => ORDQ_IO,
            ErrorCode::Closed => ORDQ_CLOSED,
            ErrorCode::Unavailable => ORDQ_UNAVAILABLE,
            // A code added to the engine without a status here: the unit
            // test `status_values_match_core_codes` fails first.
            _ => ORDQ_IO,
        }
    }

    /// The status with this integer value, if any.
    pub fn from_i32(v: i32) -> Option<ordq_status> {
        Self::all().into_iter().find(|s| *s as i32 == v)
    }

    /// Stable upper-snake-case name, without the `ORDQ_` prefix.
    pub fn name(self) -> &'static CStr {
        use ordq_status::*;
        match self {
            ORDQ_OK => c"OK",
            ORDQ_INVALID_ARGUMENT => c"INVALID_ARGUMENT",
            ORDQ_NOT_FOUND => c"NOT_FOUND",
            ORDQ_ALREADY_EXISTS => c"ALREADY_EXISTS",
            ORDQ_ALREADY_OPEN => c"ALREADY_OPEN",
            ORDQ_LEASE_LOST => c"LEASE_LOST",
            ORDQ_TOO_LARGE => c"TOO_LARGE",
            ORDQ_INVALID_STATE => c"INVALID_STATE",
            ORDQ_FORMAT_TOO_NEW => c"FORMAT_TOO_NEW",
            ORDQ_CORRUPT => c"CORRUPT",
            ORDQ_IO => c"IO",
            ORDQ_CLOSED => c"CLOSED",
            ORDQ_UNAVAILABLE => c"UNAVAILABLE",
            ORDQ_NULL_POINTER => c"NULL_POINTER",
            ORDQ_PANIC => c"PANIC",
        }
    }
}

/// Stable name of a status value without the `ORDQ_` prefix (`"OK"`,
/// `"LEASE_LOST"`, …; `"UNKNOWN"` for a value this build does not know).
/// The string is static: never free it.
#[no_mangle]
pub extern "C" fn ordq_status_name(status: i32) -> *const c_char {
    super::guard::boundary_value(c"UNKNOWN".as_ptr(), || {
        ordq_status::from_i32(status)
            .map_or(c"UNKNOWN", ordq_status::name)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_match_core_codes() {
        for code in ErrorCode::ALL {
            let s = ordq_status::from_code(code);
            assert_eq!(s as i32, code.as_i32(), "{code:?}");
            assert_eq!(s.name().to_str().unwrap(), code.name());
        }
        assert_eq!(ordq_status::ORDQ_OK as i32, 0);
        assert_eq!(ordq_status::ORDQ_NULL_POINTER as i32, 100);
        assert_eq!(ordq_status::ORDQ_PANIC as i32, 101);
        // Every core code is covered and the table has no gaps besides
        // the ABI's own values.
        assert_eq!(ordq_status::all().len(), ErrorCode::ALL.len() + 3);
    }

    #[test]
    fn status_names() {
        // SAFETY: ordq_status_name returns a static NUL-terminated string.
        let name = |v| {
            unsafe { CStr::from_ptr(ordq_status_name(v)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(name(0), "OK");
        assert_eq!(name(5), "LEASE_LOST");
        assert_eq!(name(100), "NULL_POINTER");
        assert_eq!(name(101), "PANIC");
        assert_eq!(name(13), "UNKNOWN");
        assert_eq!(name(-1), "UNKNOWN");
        for s in ordq_status::all() {
            assert_eq!(ordq_status::from_i32(s as i32), Some(s));
        }
    }
}
