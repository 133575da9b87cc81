//! [`Error`] and [`ErrorKind`]: every failure of a call, built from the
//! C ABI's status code and owned error message.

use std::fmt;

/// Result of every fallible call of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. Mapped one to one from the C
/// ABI's `ordq_status` values (see docs/FFI.md and docs/ERRORS.md); a
/// status this crate does not know becomes [`ErrorKind::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A malformed argument: bad queue name, option value, size or index
    /// (`ORDQ_INVALID_ARGUMENT`, 1).
    InvalidArgument,
    /// The named queue, task or dead letter does not exist (`ORDQ_NOT_FOUND`, 2).
    NotFound,
    /// A queue with that name already exists (`ORDQ_ALREADY_EXISTS`, 3).
    AlreadyExists,
    /// The database file is held by another handle or process
    /// (`ORDQ_ALREADY_OPEN`, 4).
    AlreadyOpen,
    /// The lease behind a token expired or was superseded (`ORDQ_LEASE_LOST`, 5).
    LeaseLost,
    /// A payload, key, header or result exceeds its size limit (`ORDQ_TOO_LARGE`, 6).
    TooLarge,
    /// The task is not in a state that allows the operation
    /// (`ORDQ_INVALID_STATE`, 7).
    InvalidState,
    /// The file was written by a newer ordq format (`ORDQ_FORMAT_TOO_NEW`, 8).
    FormatTooNew,
    /// Stored data failed a consistency check (`ORDQ_CORRUPT`, 9).
    Corrupt,
    /// The storage layer failed (`ORDQ_IO`, 10).
    Io,
    /// The handle was closed (`ORDQ_CLOSED`, 11).
    Closed,
    /// A remote engine could not be reached, or remote mode is not built
    /// (`ORDQ_UNAVAILABLE`, 12).
    Unavailable,
    /// A required pointer was NULL (`ORDQ_NULL_POINTER`, 100). This crate
    /// never passes NULL where it is refused, so seeing it is a bug.
    NullPointer,
    /// ordq panicked inside the call (`ORDQ_PANIC`, 101): a bug in ordq;
    /// the handle stays usable.
    Panic,
    /// The linked ordq library has an ABI version this crate was not
    /// written for (raised by this crate at [`crate::Db::open`]; no status
    /// value).
    AbiMismatch,
    /// A status value this crate does not know (a newer library); also
    /// `Unknown(0)` when an answer of the library cannot be read (e.g. a
    /// JSON document of an unexpected shape).
    Unknown(i32),
}

impl ErrorKind {
    /// The kind of an `ordq_status` value (`0`, success, is not an error
    /// and maps to `Unknown(0)`).
    pub fn from_code(code: i32) -> ErrorKind {
        match code {
            1 => ErrorKind::InvalidArgument,
            2 => ErrorKind::NotFound,
            3 => ErrorKind::AlreadyExists,
            4 => ErrorKind::AlreadyOpen,
            5 => ErrorKind::LeaseLost,
            6 => ErrorKind::TooLarge,
            7 => ErrorKind::InvalidState,
            8 => ErrorKind::FormatTooNew,
            9 => ErrorKind::Corrupt,
            10 => ErrorKind::Io,
            11 => ErrorKind::Closed,
            12 => ErrorKind::Unavailable,
            100 => ErrorKind::NullPointer,
            101 => ErrorKind::Panic,
            other => ErrorKind::Unknown(other),
        }
    }

    /// The `ordq_status` value of this kind; `None` for
    /// [`ErrorKind::AbiMismatch`], which this crate raises itself.
    pub fn code(self) -> Option<i32> {
        Some(match self {
            ErrorKind::InvalidArgument => 1,
            ErrorKind::NotFound => 2,
            ErrorKind::AlreadyExists => 3,
            ErrorKind::AlreadyOpen => 4,
            ErrorKind::LeaseLost => 5,
            ErrorKind::TooLarge => 6,
            ErrorKind::InvalidState => 7,
            ErrorKind::FormatTooNew => 8,
            ErrorKind::Corrupt => 9,
            ErrorKind::Io => 10,
            ErrorKind::Closed => 11,
            ErrorKind::Unavailable => 12,
            ErrorKind::NullPointer => 100,
            ErrorKind::Panic => 101,
            ErrorKind::AbiMismatch => return None,
            ErrorKind::Unknown(c) => c,
        })
    }

    /// Stable upper-snake-case name, as `ordq_status_name` gives it
    /// (`"LEASE_LOST"`, `"UNKNOWN"` for an unknown status).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::AlreadyOpen => "ALREADY_OPEN",
            ErrorKind::LeaseLost => "LEASE_LOST",
            ErrorKind::TooLarge => "TOO_LARGE",
            ErrorKind::InvalidState => "INVALID_STATE",
            ErrorKind::FormatTooNew => "FORMAT_TOO_NEW",
            ErrorKind::Corrupt => "CORRUPT",
            ErrorKind::Io => "IO",
            ErrorKind::Closed => "CLOSED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::NullPointer => "NULL_POINTER",
            ErrorKind::Panic => "PANIC",
            ErrorKind::AbiMismatch => "ABI_MISMATCH",
            ErrorKind::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Unknown(c) => write!(f, "UNKNOWN({c})"),
            k => f.write_str(k.name()),
        }
    }
}

/// A failed call: its [`ErrorKind`] and the one-line message ordq gave
/// (for errors of the C ABI, the text of its `ordq_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// Human-readable detail, never empty.
    pub message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        let mut message = message.into();
        if message.is_empty() {
            message = kind.name().to_string();
        }
        Error { kind, message }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `ordq_status` value, if the error came from the C ABI.
    pub fn code(&self) -> Option<i32> {
        self.kind.code()
    }

    /// `ErrorKind::InvalidArgument` raised by this crate.
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}
