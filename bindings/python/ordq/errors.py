"""The exceptions of ordq, one class per status code of the C ABI.

Every failure the library reports is an :class:`Error` with ``.code`` (the
``ordq_status`` value, see docs/ERRORS.md) and ``.message``. The subclasses
map the status codes one to one, so callers catch exactly what they handle::

    try:
        lease.complete(b"done")
    except ordq.LeaseLost:
        pass  # another worker owns the task now; our result is refused
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "Error",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "AlreadyOpen",
    "LeaseLost",
    "TooLarge",
    "InvalidState",
    "FormatTooNew",
    "Corrupt",
    "IoError",
    "Closed",
    "Unavailable",
    "NullPointer",
    "Panic",
    "NonRetryable",
    "error_for",
]


class Error(Exception):
    """Base class of every error ordq raises.

    Attributes:
        code: the ``ordq_status`` value (an int; stable, see docs/ERRORS.md).
        message: the library's one-line message.
    """

    #: The status code of this class (instances carry the actual one).
    status: int = -1
    #: The stable name of the status (``"LEASE_LOST"``...).
    status_name: str = "UNKNOWN"

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: int = self.status if code is None else code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return "%s(code=%d, message=%r)" % (type(self).__name__, self.code, self.message)


class InvalidArgument(Error, ValueError):
    """A malformed argument: bad queue name, option or enum value, invalid
    UTF-8, a value out of range (status 1)."""

    status, status_name = 1, "INVALID_ARGUMENT"


class NotFound(Error, LookupError):
    """The named queue, task or dead letter does not exist (status 2)."""

    status, status_name = 2, "NOT_FOUND"


class AlreadyExists(Error):
    """A queue with that name already exists (status 3)."""

    status, status_name = 3, "ALREADY_EXISTS"


class AlreadyOpen(Error):
    """The database file is held by another handle or process (status 4)."""

    status, status_name = 4, "ALREADY_OPEN"


class LeaseLost(Error):
    """The lease behind a token expired or was superseded (fencing): the
    task belongs to someone else now (status 5)."""

    status, status_name = 5, "LEASE_LOST"


class TooLarge(Error, ValueError):
    """A payload, key, header or result exceeds its size limit (status 6)."""

    status, status_name = 6, "TOO_LARGE"


class InvalidState(Error):
    """The task is not in a state that allows the operation, e.g. redriving
    a task that is not a dead letter (status 7)."""

    status, status_name = 7, "INVALID_STATE"


class FormatTooNew(Error):
    """The file was written by a newer ordq format (status 8)."""

    status, status_name = 8, "FORMAT_TOO_NEW"


class Corrupt(Error):
    """Stored data failed a consistency check, or the file is not an ordq
    database (status 9)."""

    status, status_name = 9, "CORRUPT"


class IoError(Error):
    """The storage layer failed (status 10). Named so as not to shadow the
    builtin ``IOError``."""

    status, status_name = 10, "IO"


class Closed(Error):
    """The database handle was closed (status 11)."""

    status, status_name = 11, "CLOSED"


class Unavailable(Error):
    """A remote engine could not be reached, or remote mode is not built
    (status 12)."""

    status, status_name = 12, "UNAVAILABLE"


class NullPointer(Error):
    """A required pointer was NULL: a bug in this binding (status 100)."""

    status, status_name = 100, "NULL_POINTER"


class Panic(Error):
    """ordq panicked inside the call: a bug in ordq; the handle stays usable
    (status 101)."""

    status, status_name = 101, "PANIC"


class NonRetryable(Exception):
    """Raise from a :class:`ordq.Worker` handler to dead-letter the task at
    once instead of retrying it. Any exception with a false ``retryable``
    attribute has the same effect."""

    retryable = False


_BY_CODE: Dict[int, Type[Error]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        AlreadyOpen,
        LeaseLost,
        TooLarge,
        InvalidState,
        FormatTooNew,
        Corrupt,
        IoError,
        Closed,
        Unavailable,
        NullPointer,
        Panic,
    )
}


def error_for(code: int, message: str) -> Error:
    """The exception for status ``code`` (a plain :class:`Error` for a
    code this version does not know)."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, code)
