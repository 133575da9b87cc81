"""ctypes declarations of the ordq C ABI (``include/ordq.h``) and the loader.

Every constant, struct and function of the header is declared here and only
here; ``tests/test_header.py`` parses ``include/ordq.h`` and checks these
declarations against it (names, values, field order and types, function
signatures, and -- with a C compiler -- struct sizes and field offsets), so
the two cannot drift apart.

Nothing in this module is public API: use the ``ordq`` package.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_int32,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

# --------------------------------------------------------------------------
# Constants (#define and enum ordq_status)
# --------------------------------------------------------------------------

ORDQ_ABI_VERSION_MAJOR = 0
ORDQ_ABI_VERSION_MINOR = 5
ORDQ_ABI_VERSION_PATCH = 0
ORDQ_ABI_VERSION = (
    (ORDQ_ABI_VERSION_MAJOR << 16) | (ORDQ_ABI_VERSION_MINOR << 8) | ORDQ_ABI_VERSION_PATCH
)

ORDQ_DURABILITY_IMMEDIATE = 0
ORDQ_DURABILITY_NONE = 1

ORDQ_ORDERING_KEY = 0
ORDQ_ORDERING_SHARD = 1
ORDQ_ORDERING_GLOBAL = 2
ORDQ_ORDERING_NONE = 3

ORDQ_DLQ_SKIP = 0
ORDQ_DLQ_BLOCK = 1

ORDQ_TASK_ID_LEN = 32
ORDQ_TASK_ID_SIZE = 33

ORDQ_REDRIVE_HEAD = 0
ORDQ_REDRIVE_NEW_OFFSET = 1

#: ``enum ordq_status``, in header order.
STATUS: Dict[str, int] = {
    "ORDQ_OK": 0,
    "ORDQ_INVALID_ARGUMENT": 1,
    "ORDQ_NOT_FOUND": 2,
    "ORDQ_ALREADY_EXISTS": 3,
    "ORDQ_ALREADY_OPEN": 4,
    "ORDQ_LEASE_LOST": 5,
    "ORDQ_TOO_LARGE": 6,
    "ORDQ_INVALID_STATE": 7,
    "ORDQ_FORMAT_TOO_NEW": 8,
    "ORDQ_CORRUPT": 9,
    "ORDQ_IO": 10,
    "ORDQ_CLOSED": 11,
    "ORDQ_UNAVAILABLE": 12,
    "ORDQ_NULL_POINTER": 100,
    "ORDQ_PANIC": 101,
}
globals().update(STATUS)

#: Every ``#define`` of the header that is a number, by name.
DEFINES: Dict[str, int] = {
    name: globals()[name]
    for name in (
        "ORDQ_ABI_VERSION_MAJOR",
        "ORDQ_ABI_VERSION_MINOR",
        "ORDQ_ABI_VERSION_PATCH",
        "ORDQ_ABI_VERSION",
        "ORDQ_DURABILITY_IMMEDIATE",
        "ORDQ_DURABILITY_NONE",
        "ORDQ_ORDERING_KEY",
        "ORDQ_ORDERING_SHARD",
        "ORDQ_ORDERING_GLOBAL",
        "ORDQ_ORDERING_NONE",
        "ORDQ_DLQ_SKIP",
        "ORDQ_DLQ_BLOCK",
        "ORDQ_TASK_ID_LEN",
        "ORDQ_TASK_ID_SIZE",
        "ORDQ_REDRIVE_HEAD",
        "ORDQ_REDRIVE_NEW_OFFSET",
    )
}

# ``ordq_status`` is an int32_t (the enum names its values).
ordq_status = c_int32

# --------------------------------------------------------------------------
# Opaque handles
# --------------------------------------------------------------------------


class ordq_db(Structure):
    """Opaque database handle."""


class ordq_error(Structure):
    """Opaque owned error."""


class ordq_lease(Structure):
    """Opaque lease."""


class ordq_lease_list(Structure):
    """Opaque list of leases."""


class ordq_string_list(Structure):
    """Opaque list of strings."""


OPAQUE = (ordq_db, ordq_error, ordq_lease, ordq_lease_list, ordq_string_list)

# --------------------------------------------------------------------------
# Value structs, in header order. Pointer fields the binding only writes
# (inputs) are c_char_p, so a ``bytes`` object can be assigned and is kept
# alive by the struct; pointer fields the binding reads by address
# (borrowed outputs) are c_void_p.
# --------------------------------------------------------------------------


class ordq_bytes(Structure):
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class ordq_options(Structure):
    _fields_ = [
        ("durability", c_int32),
        ("max_payload", c_uint64),
        ("max_result", c_uint64),
        ("max_key", c_uint64),
        ("max_headers", c_uint64),
        ("retain_done_ms", c_uint64),
        ("max_batch", c_uint64),
        ("cache_size", c_uint64),
        ("token", c_char_p),
        ("token_len", c_size_t),
        ("timeout_ms", c_uint64),
        ("client", c_char_p),
        ("client_len", c_size_t),
        ("runtime", c_char_p),
        ("runtime_len", c_size_t),
        ("must_exist", c_bool),
        ("signing_key", c_char_p),
        ("signing_key_len", c_size_t),
    ]


class ordq_queue_config(Structure):
    _fields_ = [
        ("shards", c_uint32),
        ("ordering", c_int32),
        ("max_attempts", c_uint32),
        ("dlq_policy", c_int32),
        ("lease_ms", c_uint64),
        ("backoff_initial_ms", c_uint64),
        ("backoff_max_ms", c_uint64),
        ("backoff_multiplier", c_double),
        ("backoff_jitter", c_double),
    ]


class ordq_header(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("name_len", c_size_t),
        ("value", c_char_p),
        ("value_len", c_size_t),
    ]


class ordq_enqueue_options(Structure):
    _fields_ = [
        ("priority", c_int32),
        ("max_attempts", c_uint32),
        ("not_before_ms", c_uint64),
        ("delay_ms", c_uint64),
        ("idempotency_key", c_char_p),
        ("idempotency_key_len", c_size_t),
        ("headers", POINTER(ordq_header)),
        ("headers_len", c_size_t),
    ]


class ordq_receipt(Structure):
    _fields_ = [
        ("offset", c_uint64),
        ("shard", c_uint32),
        ("duplicate", c_bool),
        ("id", c_char * ORDQ_TASK_ID_SIZE),
    ]


class ordq_enqueue_item(Structure):
    _fields_ = [
        ("key", c_char_p),
        ("key_len", c_size_t),
        ("payload", c_char_p),
        ("payload_len", c_size_t),
        ("opts", POINTER(ordq_enqueue_options)),
    ]


class ordq_claim_options(Structure):
    _fields_ = [
        ("max", c_uint32),
        ("lease_ms", c_uint64),
        ("wait_ms", c_uint64),
        ("shards", POINTER(c_uint32)),
        ("shards_len", c_size_t),
    ]


class ordq_token(Structure):
    _fields_ = [("queue_id", c_uint32), ("offset", c_uint64), ("fence", c_uint64)]


class ordq_lease_info(Structure):
    _fields_ = [
        ("token", ordq_token),
        ("offset", c_uint64),
        ("shard", c_uint32),
        ("priority", c_int32),
        ("attempt", c_uint32),
        ("max_attempts", c_uint32),
        ("enqueued_at", c_uint64),
        ("leased_at", c_uint64),
        ("expires_at", c_uint64),
        ("queue", c_void_p),
        ("queue_len", c_size_t),
        ("id", c_void_p),
        ("id_len", c_size_t),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("payload", c_void_p),
        ("payload_len", c_size_t),
        ("header_count", c_size_t),
    ]


class ordq_completion(Structure):
    _fields_ = [("offset", c_uint64), ("committed_at", c_uint64), ("duplicate", c_bool)]


class ordq_complete_item(Structure):
    _fields_ = [("token", ordq_token), ("result", c_char_p), ("result_len", c_size_t)]


class ordq_fail_outcome(Structure):
    _fields_ = [("dead", c_bool), ("attempt", c_uint32), ("not_before", c_uint64)]


STRUCTS = (
    ordq_bytes,
    ordq_options,
    ordq_queue_config,
    ordq_header,
    ordq_enqueue_options,
    ordq_receipt,
    ordq_enqueue_item,
    ordq_claim_options,
    ordq_token,
    ordq_lease_info,
    ordq_completion,
    ordq_complete_item,
    ordq_fail_outcome,
)


_POINTER_TYPE = type(POINTER(c_uint32))


def struct_format(cls: type) -> str:
    """A :mod:`struct` format (native sizes, explicit padding) that unpacks
    one ``cls`` into a flat tuple of its scalar fields in declaration order
    (nested structs flattened, ``char[N]`` as ``bytes``). Used to read whole
    arrays of receipts or a lease info in one call instead of one ctypes
    attribute access per field."""
    codes = {
        c_uint32: "I",
        c_int32: "i",
        c_uint64: "Q",
        c_size_t: "N",
        c_bool: "?",
        c_double: "d",
        c_void_p: "P",
    }

    def walk(t: type, base: int, out: List[Tuple[int, str, int]]) -> None:
        for name, ft in t._fields_:
            off = base + getattr(t, name).offset
            if isinstance(ft, type) and issubclass(ft, Structure):
                walk(ft, off, out)
            elif hasattr(ft, "_length_") and ft._type_ is c_char:
                out.append((off, "%ds" % ft._length_, ctypes.sizeof(ft)))
            elif ft is c_char_p or isinstance(ft, _POINTER_TYPE):
                out.append((off, "P", ctypes.sizeof(ft)))
            else:
                out.append((off, codes[ft], ctypes.sizeof(ft)))

    items: List[Tuple[int, str, int]] = []
    walk(cls, 0, items)
    fmt, pos = "@", 0
    for off, code, size in items:
        if off > pos:
            fmt += "%dx" % (off - pos)
        fmt += code
        pos = off + size
    if ctypes.sizeof(cls) > pos:
        fmt += "%dx" % (ctypes.sizeof(cls) - pos)
    # Native mode ('N' and 'P' exist only there); every field already sits
    # at its ctypes offset, so no implicit alignment is added.
    assert struct.calcsize(fmt) == ctypes.sizeof(cls), (cls.__name__, fmt)
    return fmt


#: Unpacks one ``ordq_receipt``: (offset, shard, duplicate, id).
RECEIPT_STRUCT = struct.Struct(struct_format(ordq_receipt))
#: Unpacks one ``ordq_lease_info`` (token flattened first).
LEASE_INFO_STRUCT = struct.Struct(struct_format(ordq_lease_info))
#: Unpacks one ``ordq_completion``: (offset, committed_at, duplicate).
COMPLETION_STRUCT = struct.Struct(struct_format(ordq_completion))

# --------------------------------------------------------------------------
# Functions: name -> (restype, argtypes), in header order.
# --------------------------------------------------------------------------

_P = POINTER
_ERR = _P(_P(ordq_error))  # ordq_error **err_out

FUNCTIONS: Dict[str, Tuple[Optional[type], Sequence[type]]] = {
    "ordq_abi_version": (c_uint32, ()),
    "ordq_version_string": (c_char_p, ()),
    "ordq_status_name": (c_char_p, (c_int32,)),
    "ordq_error_code": (ordq_status, (_P(ordq_error),)),
    "ordq_error_message": (c_char_p, (_P(ordq_error),)),
    "ordq_error_free": (None, (_P(ordq_error),)),
    "ordq_bytes_free": (None, (_P(ordq_bytes),)),
    "ordq_options_init": (None, (_P(ordq_options),)),
    "ordq_open": (
        ordq_status,
        (c_char_p, c_size_t, _P(ordq_options), _P(_P(ordq_db)), _ERR),
    ),
    "ordq_db_close": (ordq_status, (_P(ordq_db), _ERR)),
    "ordq_db_free": (None, (_P(ordq_db),)),
    "ordq_db_sync": (ordq_status, (_P(ordq_db), _ERR)),
    "ordq_queue_config_init": (None, (_P(ordq_queue_config),)),
    "ordq_queue_create": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, _P(ordq_queue_config), _ERR),
    ),
    "ordq_queue_create_if_not_exists": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, _P(ordq_queue_config), _ERR),
    ),
    "ordq_queue_get": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, _P(ordq_queue_config), _ERR),
    ),
    "ordq_queue_get_json": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, _P(ordq_bytes), _ERR),
    ),
    "ordq_queue_list": (ordq_status, (_P(ordq_db), _P(_P(ordq_string_list)), _ERR)),
    "ordq_queue_delete": (ordq_status, (_P(ordq_db), c_char_p, c_size_t, _ERR)),
    "ordq_queue_stats_json": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, _P(ordq_bytes), _ERR),
    ),
    "ordq_queue_pending_json": (
        ordq_status,
        (
            _P(ordq_db),
            c_char_p,
            c_size_t,
            c_bool,
            c_uint64,
            c_size_t,
            _P(ordq_bytes),
            _ERR,
        ),
    ),
    "ordq_string_list_len": (c_size_t, (_P(ordq_string_list),)),
    "ordq_string_list_get": (c_char_p, (_P(ordq_string_list), c_size_t)),
    "ordq_string_list_free": (None, (_P(ordq_string_list),)),
    "ordq_enqueue_options_init": (None, (_P(ordq_enqueue_options),)),
    "ordq_enqueue": (
        ordq_status,
        (
            _P(ordq_db),
            c_char_p,
            c_size_t,
            c_char_p,
            c_size_t,
            c_char_p,
            c_size_t,
            _P(ordq_enqueue_options),
            _P(ordq_receipt),
            _ERR,
        ),
    ),
    "ordq_enqueue_batch": (
        ordq_status,
        (
            _P(ordq_db),
            c_char_p,
            c_size_t,
            _P(ordq_enqueue_item),
            c_size_t,
            _P(ordq_receipt),
            _ERR,
        ),
    ),
    "ordq_claim_options_init": (None, (_P(ordq_claim_options),)),
    "ordq_claim": (
        ordq_status,
        (
            _P(ordq_db),
            c_char_p,
            c_size_t,
            c_char_p,
            c_size_t,
            _P(ordq_claim_options),
            _P(_P(ordq_lease_list)),
            _ERR,
        ),
    ),
    "ordq_lease_list_len": (c_size_t, (_P(ordq_lease_list),)),
    "ordq_lease_list_get": (_P(ordq_lease), (_P(ordq_lease_list), c_size_t)),
    "ordq_lease_list_take": (
        ordq_status,
        (_P(ordq_lease_list), c_size_t, _P(_P(ordq_lease)), _ERR),
    ),
    "ordq_lease_list_free": (None, (_P(ordq_lease_list),)),
    "ordq_lease_free": (None, (_P(ordq_lease),)),
    "ordq_lease_get_info": (ordq_status, (_P(ordq_lease), _P(ordq_lease_info), _ERR)),
    "ordq_lease_token": (ordq_status, (_P(ordq_lease), _P(ordq_token), _ERR)),
    "ordq_lease_offset": (c_uint64, (_P(ordq_lease),)),
    "ordq_lease_attempt": (c_uint32, (_P(ordq_lease),)),
    "ordq_lease_max_attempts": (c_uint32, (_P(ordq_lease),)),
    "ordq_lease_shard": (c_uint32, (_P(ordq_lease),)),
    "ordq_lease_priority": (c_int32, (_P(ordq_lease),)),
    "ordq_lease_enqueued_at": (c_uint64, (_P(ordq_lease),)),
    "ordq_lease_leased_at": (c_uint64, (_P(ordq_lease),)),
    "ordq_lease_expires_at": (c_uint64, (_P(ordq_lease),)),
    "ordq_lease_header_count": (c_size_t, (_P(ordq_lease),)),
    "ordq_lease_key": (
        ordq_status,
        (_P(ordq_lease), _P(c_void_p), _P(c_size_t), _ERR),
    ),
    "ordq_lease_id": (
        ordq_status,
        (_P(ordq_lease), _P(c_void_p), _P(c_size_t), _ERR),
    ),
    "ordq_lease_queue": (
        ordq_status,
        (_P(ordq_lease), _P(c_void_p), _P(c_size_t), _ERR),
    ),
    "ordq_lease_payload": (
        ordq_status,
        (_P(ordq_lease), _P(c_void_p), _P(c_size_t), _ERR),
    ),
    "ordq_lease_header_get": (
        ordq_status,
        (
            _P(ordq_lease),
            c_size_t,
            _P(c_void_p),
            _P(c_size_t),
            _P(c_void_p),
            _P(c_size_t),
            _ERR,
        ),
    ),
    "ordq_heartbeat": (
        ordq_status,
        (_P(ordq_db), ordq_token, c_uint64, _P(c_uint64), _ERR),
    ),
    "ordq_start": (ordq_status, (_P(ordq_db), ordq_token, _ERR)),
    "ordq_complete": (
        ordq_status,
        (_P(ordq_db), ordq_token, c_char_p, c_size_t, _P(ordq_completion), _ERR),
    ),
    "ordq_complete_batch": (
        ordq_status,
        (
            _P(ordq_db),
            _P(ordq_complete_item),
            c_size_t,
            _P(ordq_completion),
            _P(ordq_status),
            _ERR,
        ),
    ),
    "ordq_fail": (
        ordq_status,
        (
            _P(ordq_db),
            ordq_token,
            c_char_p,
            c_size_t,
            c_bool,
            _P(ordq_fail_outcome),
            _ERR,
        ),
    ),
    "ordq_release": (ordq_status, (_P(ordq_db), ordq_token, _ERR)),
    "ordq_task_get_json": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, c_uint64, _P(ordq_bytes), _ERR),
    ),
    "ordq_task_faults_json": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, c_uint64, _P(ordq_bytes), _ERR),
    ),
    "ordq_dlq_list_json": (
        ordq_status,
        (
            _P(ordq_db),
            c_char_p,
            c_size_t,
            c_bool,
            c_uint64,
            c_size_t,
            _P(ordq_bytes),
            _ERR,
        ),
    ),
    "ordq_dlq_get_json": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, c_uint64, _P(ordq_bytes), _ERR),
    ),
    "ordq_dlq_redrive": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, c_uint64, c_int32, _P(ordq_receipt), _ERR),
    ),
    "ordq_dlq_purge": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, c_bool, c_uint64, _P(c_uint64), _ERR),
    ),
    "ordq_db_checkpoint": (ordq_status, (_P(ordq_db), _P(ordq_bytes), _ERR)),
    "ordq_db_verify_json": (ordq_status, (_P(ordq_db), c_char_p, _P(ordq_bytes), _ERR)),
    "ordq_db_audit_json": (
        ordq_status,
        (_P(ordq_db), c_char_p, c_size_t, c_char_p, c_size_t, _P(ordq_bytes), _ERR),
    ),
}

# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

if sys.platform == "darwin":
    LIBRARY_FILE = "libordq.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "ordq.dll"
else:
    LIBRARY_FILE = "libordq.so"

#: The directory of this package (a bundled library sits here).
PACKAGE_DIR = Path(__file__).resolve().parent


class LibraryError(ImportError):
    """The ordq shared library could not be found, loaded, or has an
    incompatible ABI version."""


def abi_compatible(lib_version: int, want: int = ORDQ_ABI_VERSION) -> bool:
    """Whether a library with packed ABI version ``lib_version`` may be used
    by a binding built for ``want``: same major, and while the major is 0,
    same minor too (docs/FFI.md, "Versions")."""
    lib_major, lib_minor = lib_version >> 16, (lib_version >> 8) & 0xFF
    want_major, want_minor = want >> 16, (want >> 8) & 0xFF
    if lib_major != want_major:
        return False
    return want_major != 0 or lib_minor == want_minor


def format_version(v: int) -> str:
    """``0x000100`` -> ``"0.1.0"``."""
    return "%d.%d.%d" % (v >> 16, (v >> 8) & 0xFF, v & 0xFF)


def _repo_roots() -> List[Path]:
    """Repository roots to search for ``target/{release,debug}``: the
    checkout this source file lives in (``bindings/python/ordq``), if any.
    An installed package has its library bundled (setup.py refuses to
    build without one)."""
    here = PACKAGE_DIR
    if len(here.parents) >= 3 and (here.parents[2] / "include" / "ordq.h").is_file():
        return [here.parents[2]]
    return []


def candidates() -> List[Tuple[str, Path]]:
    """Where the library is looked for, in order, as (origin, path).
    ``ORDQ_LIBRARY``, when set, is the only candidate."""
    env = os.environ.get("ORDQ_LIBRARY")
    if env:
        return [("ORDQ_LIBRARY", Path(env))]
    out = [("package directory", PACKAGE_DIR / LIBRARY_FILE)]
    for root in _repo_roots():
        out.append(("repository release build", root / "target" / "release" / LIBRARY_FILE))
    for root in _repo_roots():
        out.append(("repository debug build", root / "target" / "debug" / LIBRARY_FILE))
    return out


#: Functions that never wait for the engine: accessors, ``_init``, ``_free``
#: and error/version queries. They run in well under a microsecond, so they
#: are called *without* releasing the GIL (through a ``PyDLL`` view of the
#: library): releasing and re-taking the GIL around each of them would cost
#: more than the call, and with several Python threads every release is a
#: thread switch. Every other function (anything that takes an ``ordq_db``:
#: commits, claims that may wait, reads of the store, ``ordq_db_free``
#: which closes) and ``ordq_open`` release the GIL.
HOLD_GIL = frozenset(
    name
    for name, (_, argtypes) in FUNCTIONS.items()
    if POINTER(ordq_db) not in argtypes and name != "ordq_open"
)


class Lib:
    """The library's functions as attributes, each declared with its
    ``restype``/``argtypes``; those in :data:`HOLD_GIL` keep the GIL."""

    def __init__(self, path: Path, cdll: ctypes.CDLL) -> None:
        self.path = path
        pydll = ctypes.PyDLL(str(path))
        for name, (restype, argtypes) in FUNCTIONS.items():
            try:
                fn = getattr(pydll if name in HOLD_GIL else cdll, name)
            except AttributeError:
                raise LibraryError(
                    "ordq: the library %s has no symbol %s: it is not an ordq "
                    "library of ABI %s" % (path, name, format_version(ORDQ_ABI_VERSION))
                ) from None
            fn.restype = restype
            fn.argtypes = list(argtypes)
            setattr(self, name, fn)


def load_from(path: Path, origin: str = "path") -> Lib:
    """Loads the library at ``path``, checks its ABI version, declares every
    function. Raises LibraryError with a clear message on any problem."""
    try:
        cdll = ctypes.CDLL(str(path))
    except OSError as e:
        raise LibraryError("ordq: cannot load %s (%s): %s" % (path, origin, e)) from None
    try:
        abi = cdll.ordq_abi_version
    except AttributeError:
        raise LibraryError(
            "ordq: %s (%s) is not an ordq library (no ordq_abi_version)" % (path, origin)
        ) from None
    abi.restype, abi.argtypes = c_uint32, []
    got = abi()
    if not abi_compatible(got):
        raise LibraryError(
            "ordq: the library %s (%s) has ABI version %s, but this package was "
            "built for ABI %s: %s. Rebuild the library from the same checkout "
            "(`make build`, or `cargo build -p ordq-ffi-lib --release`) or install the "
            "matching Python package."
            % (
                path,
                origin,
                format_version(got),
                format_version(ORDQ_ABI_VERSION),
                "a different major version"
                if (got >> 16) != ORDQ_ABI_VERSION_MAJOR
                else "a different minor version, and 0.x minors are incompatible",
            )
        )
    return Lib(path, cdll)


def load() -> Tuple[Lib, Path]:
    """Finds and loads the library (see :func:`candidates`)."""
    tried = []
    for origin, path in candidates():
        if path.is_file() or origin == "ORDQ_LIBRARY":
            return load_from(path, origin), path
        tried.append("  %s: %s" % (origin, path))
    raise LibraryError(
        "ordq: cannot find the ordq shared library (%s). Looked in:\n%s\n"
        "Build it with `make build` (or `cargo build -p ordq-ffi-lib --release`) in the "
        "ordq repository, or point ORDQ_LIBRARY at it." % (LIBRARY_FILE, "\n".join(tried))
    )


lib, LIBRARY_PATH = load()

#: Pointer types of the handles (``ErrPtr()`` is a NULL ``ordq_error*``).
ErrPtr = POINTER(ordq_error)
DbPtr = POINTER(ordq_db)
LeaseListPtr = POINTER(ordq_lease_list)
StringListPtr = POINTER(ordq_string_list)
