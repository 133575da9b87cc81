"""ordq: a durable, strictly ordered job queue -- Python bindings over the C ABI.

::

    import ordq

    with ordq.open("jobs.ordq") as db:
        q = db.queue("emails", create=True)
        q.enqueue("user-42", b"welcome")
        for lease in q.claim(worker="py-1", max=10, wait=1.0):
            lease.complete(b"sent")

For asyncio, :mod:`ordq.aio` has the same API as coroutines and an async
worker (``await ordq.aio.open(...)``; imported on first use).

The shared library is found through ``ORDQ_LIBRARY``, then next to this
package (a bundled copy), then in the ordq repository's ``target/release``
(and ``target/debug``); its ABI version is checked on import. See
``bindings/python/README.md`` and docs/FFI.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _ffi
from ._core import Db, DeadLetters, Lease, Queue, open
from ._ffi import LibraryError
from .errors import (
    AlreadyExists,
    AlreadyOpen,
    Closed,
    Corrupt,
    Error,
    FormatTooNew,
    InvalidArgument,
    InvalidState,
    IoError,
    LeaseLost,
    NonRetryable,
    NotFound,
    NullPointer,
    Panic,
    TooLarge,
    Unavailable,
)
from .types import (
    Completion,
    DeadLetter,
    FailOutcome,
    Fault,
    Item,
    QueueConfig,
    QueueInfo,
    QueueStats,
    Receipt,
    ShardStats,
    TaskInfo,
    Token,
    Totals,
)
from .worker import Worker, json_handler

__version__ = "0.5.0"

#: Path of the loaded shared library.
LIBRARY_PATH: str = str(_ffi.LIBRARY_PATH)


def library_version() -> str:
    """The loaded library's version string (e.g. ``"0.1.0"``)."""
    return _ffi.lib.ordq_version_string().decode("ascii")


def abi_version() -> str:
    """The loaded library's ABI version (``"major.minor.patch"``)."""
    return _ffi.format_version(_ffi.lib.ordq_abi_version())


def __getattr__(name: str) -> Any:
    """Imports :mod:`ordq.aio` on first use of ``ordq.aio`` (so that
    ``import ordq`` does not import asyncio)."""
    if name == "aio":
        return importlib.import_module(".aio", __name__)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = [
    "open",
    "Db",
    "Queue",
    "Lease",
    "DeadLetters",
    "Worker",
    "json_handler",
    "Receipt",
    "Completion",
    "FailOutcome",
    "Token",
    "Item",
    "QueueConfig",
    "QueueInfo",
    "QueueStats",
    "ShardStats",
    "Totals",
    "TaskInfo",
    "Fault",
    "DeadLetter",
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
    "LibraryError",
    "LIBRARY_PATH",
    "library_version",
    "abi_version",
]
