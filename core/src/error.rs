//! Typed errors with stable numeric codes shared by every binding.

use std::fmt;
use std::path::PathBuf;

/// Stable numeric error codes. Values never change meaning; new codes are
/// only ever appended. Documented in `docs/ERRORS.md`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A malformed argument: bad queue name, bad option value, bad UTF-8.
    InvalidArgument = 1,
    /// The named queue, task or dead letter does not exist.
    NotFound = 2,
    /// A queue with that name already exists.
    AlreadyExists = 3,
    /// The database file is held by another process or handle.
    AlreadyOpen = 4,
    /// The lease behind a token expired or was superseded (fencing).
    LeaseLost = 5,
    /// A payload, key, header or result exceeds its size limit.
    TooLarge = 6,
    /// The task is not in a state that allows the operation.
    InvalidState = 7,
    /// The file was written by a newer ordq format.
    FormatTooNew = 8,
    /// Stored data failed a consistency check.
    Corrupt = 9,
    /// The storage layer failed (I/O, redb).
    Io = 10,
    /// The handle was closed.
    Closed = 11,
    /// A remote engine could not be reached in time.
    Unavailable = 12,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::AlreadyOpen,
        ErrorCode::LeaseLost,
        ErrorCode::TooLarge,
        ErrorCode::InvalidState,
        ErrorCode::FormatTooNew,
        ErrorCode::Corrupt,
        ErrorCode::Io,
        ErrorCode::Closed,
        ErrorCode::Unavailable,
    ];

    /// The code as its stable integer.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a stable integer, if it is known.
    pub fn from_i32(v: i32) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|c| c.as_i32() == v)
    }

    /// The stable upper-snake-case name, as used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::AlreadyOpen => "ALREADY_OPEN",
            ErrorCode::LeaseLost => "LEASE_LOST",
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::FormatTooNew => "FORMAT_TOO_NEW",
            ErrorCode::Corrupt => "CORRUPT",
            ErrorCode::Io => "IO",
            ErrorCode::Closed => "CLOSED",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

/// Every failure ordq reports. Each variant maps to one [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A malformed argument; the message names it.
    InvalidArgument(String),
    /// Something named does not exist; the message says what.
    NotFound(String),
    /// A queue of that name exists already.
    AlreadyExists(String),
    /// The database file is held by another process or handle.
    AlreadyOpen(PathBuf),
    /// The token's lease expired or was superseded.
    LeaseLost(String),
    /// A size limit was exceeded; the message gives the limit.
    TooLarge(String),
    /// The task's state does not allow the operation.
    InvalidState(String),
    /// The file's format version is newer than this build supports.
    FormatTooNew {
        /// Format version found in the file.
        found: u32,
        /// Newest format version this build reads.
        supported: u32,
    },
    /// Stored data failed a consistency check.
    Corrupt(String),
    /// The storage layer failed.
    Io(String),
    /// The handle was closed.
    Closed,
    /// A remote engine could not be reached in time.
    Unavailable(String),
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::AlreadyOpen(_) => ErrorCode::AlreadyOpen,
            Error::LeaseLost(_) => ErrorCode::LeaseLost,
            Error::TooLarge(_) => ErrorCode::TooLarge,
            Error::InvalidState(_) => ErrorCode::InvalidState,
            Error::FormatTooNew { .. } => ErrorCode::FormatTooNew,
            Error::Corrupt(_) => ErrorCode::Corrupt,
            Error::Io(_) => ErrorCode::Io,
            Error::Closed => ErrorCode::Closed,
            Error::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    /// The detail without the code: the message, the path of
    /// `AlreadyOpen`, `found/supported` of `FormatTooNew`. With
    /// [`Error::code`] it is all an error carries, so
    /// [`Error::from_parts`] rebuilds it (the wire and the C ABI carry
    /// errors this way).
    pub fn detail(&self) -> String {
        match self {
            Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::LeaseLost(m)
            | Error::TooLarge(m)
            | Error::InvalidState(m)
            | Error::Corrupt(m)
            | Error::Io(m)
            | Error::Unavailable(m) => m.clone(),
            Error::AlreadyOpen(p) => p.display().to_string(),
            Error::FormatTooNew { found, supported } => format!("{found}/{supported}"),
            Error::Closed => "closed".to_string(),
        }
    }

    /// The error of `code` with `detail` (as [`Error::detail`] gives it).
    pub fn from_parts(code: ErrorCode, detail: String) -> Error {
        let m = detail;
        match code {
            ErrorCode::InvalidArgument => Error::InvalidArgument(m),
            ErrorCode::NotFound => Error::NotFound(m),
            ErrorCode::AlreadyExists => Error::AlreadyExists(m),
            ErrorCode::AlreadyOpen => Error::AlreadyOpen(PathBuf::from(m)),
            ErrorCode::LeaseLost => Error::LeaseLost(m),
            ErrorCode::TooLarge => Error::TooLarge(m),
            ErrorCode::InvalidState => Error::InvalidState(m),
            ErrorCode::FormatTooNew => {
                let mut it = m.split('/').map(|v| v.parse().unwrap_or(0));
                Error::FormatTooNew {
                    found: it.next().unwrap_or(0),
                    supported: it.next().unwrap_or(0),
                }
            }
            ErrorCode::Corrupt => Error::Corrupt(m),
            ErrorCode::Io => Error::Io(m),
            ErrorCode::Closed => Error::Closed,
            ErrorCode::Unavailable => Error::Unavailable(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::AlreadyExists(m) => write!(f, "already exists: {m}"),
            Error::AlreadyOpen(p) => write!(
                f,
                "database {} is already open by another process or handle",
                p.display()
            ),
            Error::LeaseLost(m) => write!(f, "lease lost: {m}"),
            Error::TooLarge(m) => write!(f, "too large: {m}"),
            Error::InvalidState(m) => write!(f, "invalid state: {m}"),
            Error::FormatTooNew { found, supported } => write!(
                f,
                "database format {found} is newer than this build supports ({supported}); upgrade ordq"
            ),
            Error::Corrupt(m) => write!(f, "corrupt database: {m}"),
            Error::Io(m) => write!(f, "storage error: {m}"),
            Error::Closed => write!(f, "database handle is closed"),
            Error::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias used throughout ordq.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Io(e.to_string())
            }
        }
    )*};
}
storage_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    std::io::Error
);
