"""The Pythonic API over the C ABI: :class:`Db`, :class:`Queue`, :class:`Lease`.

Every call goes through the ctypes declarations in :mod:`ordq._ffi`. ctypes
releases the GIL around each foreign call, so a blocking ``claim(wait=...)``
or a durable commit blocks only the calling thread, and several Python
threads may share one :class:`Db`.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import math
import os
import struct
import sys
import threading
import weakref
from ctypes import byref, c_int32, c_size_t, c_uint32, c_uint64, c_void_p
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NoReturn,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _ffi
from ._ffi import (
    COMPLETION_STRUCT,
    LEASE_INFO_STRUCT,
    RECEIPT_STRUCT,
    DbPtr,
    ErrPtr,
    LeaseListPtr,
    StringListPtr,
    ordq_bytes,
    ordq_claim_options,
    ordq_complete_item,
    ordq_completion,
    ordq_enqueue_item,
    ordq_enqueue_options,
    ordq_fail_outcome,
    ordq_header,
    ordq_lease_info,
    ordq_options,
    ordq_queue_config,
    ordq_receipt,
    ordq_token,
)
from .errors import AlreadyExists, Closed, Error, InvalidArgument, error_for
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
    TaskInfo,
    Token,
)

__all__ = ["Db", "Queue", "Lease", "DeadLetters", "open"]

_L = _ffi.lib
_string_at = ctypes.string_at


def _memory_view() -> Optional[memoryview]:
    """A read-only byte view of the whole address space, to copy borrowed
    bytes out of the library with ``view[addr:addr + n].tobytes()``:
    several times cheaper than ``ctypes.string_at`` (a foreign call per
    copy), which
    matters when a claim copies the key, id and payload of 100 leases. Only
    ranges the library handed out are ever read. None (fall back to
    ``string_at``) if this Python's ctypes does not allow it."""
    try:
        whole = (ctypes.c_char * (sys.maxsize // 2)).from_address(0)
        view = memoryview(whole).cast("B").toreadonly()
        probe = ctypes.create_string_buffer(b"ordq\0probe", 10)
        a = ctypes.addressof(probe)
        if view[a : a + 10].tobytes() != b"ordq\0probe":
            return None
        return view
    except (ValueError, TypeError, OverflowError, MemoryError, AttributeError):
        return None


#: See _memory_view; None when unavailable.
_MEM = _memory_view()

Duration = Union[int, float, timedelta]
Payload = Union[bytes, bytearray, memoryview, str]
Key = Union[str, bytes]

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1

_ORDERINGS = {
    "key": _ffi.ORDQ_ORDERING_KEY,
    "shard": _ffi.ORDQ_ORDERING_SHARD,
    "global": _ffi.ORDQ_ORDERING_GLOBAL,
    "none": _ffi.ORDQ_ORDERING_NONE,
}
_DLQ_POLICIES = {"skip": _ffi.ORDQ_DLQ_SKIP, "block": _ffi.ORDQ_DLQ_BLOCK}
_DURABILITIES = {
    "immediate": _ffi.ORDQ_DURABILITY_IMMEDIATE,
    "none": _ffi.ORDQ_DURABILITY_NONE,
}
_REDRIVE_MODES = {"head": _ffi.ORDQ_REDRIVE_HEAD, "new_offset": _ffi.ORDQ_REDRIVE_NEW_OFFSET}

# --------------------------------------------------------------------------
# Argument conversion
# --------------------------------------------------------------------------


def _raise(status: int, err: Any) -> NoReturn:
    """Raises the exception for a failed call, freeing its ordq_error."""
    if err:
        raw = _L.ordq_error_message(err)
        code = _L.ordq_error_code(err)
        _L.ordq_error_free(err)
        message = raw.decode("utf-8", "replace") if raw else _status_name(status)
        if code != status:  # never expected: the ABI promises equality
            message = "%s (error object says %s)" % (message, _status_name(code))
    else:
        message = _status_name(status)
    raise error_for(status, message)


def _status_name(status: int) -> str:
    name = _L.ordq_status_name(status)
    return name.decode("ascii", "replace") if name else "UNKNOWN"


def _text(v: Any, name: str) -> bytes:
    """A str (or bytes, passed through) as the UTF-8 the ABI expects. A str
    that cannot be UTF-8 (lone surrogates) is passed on as such, so the
    library refuses it with InvalidArgument like any invalid UTF-8."""
    if type(v) is str:
        try:
            return v.encode()
        except UnicodeEncodeError:
            return v.encode("utf-8", "surrogatepass")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError("%s must be str or bytes, not %s" % (name, type(v).__name__))


def _bytes(v: Any, name: str) -> bytes:
    """Payload-like input: bytes-like, or str (encoded as UTF-8)."""
    if type(v) is bytes:
        return v
    if type(v) is str:
        try:
            return v.encode()
        except UnicodeEncodeError as e:
            raise InvalidArgument("%s: the str is not valid Unicode: %s" % (name, e)) from None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if v is None:
        return b""
    raise TypeError("%s must be bytes or str, not %s" % (name, type(v).__name__))


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    """An int in [lo, hi] (ctypes would silently wrap anything else)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("%s must be an int, not %s" % (name, type(v).__name__))
    if not lo <= v <= hi:
        raise InvalidArgument("%s must be in [%d, %d], got %d" % (name, lo, hi, v))
    return v


def _ms(v: Any, name: str, *, positive: bool = False) -> int:
    """Seconds (int, float or timedelta) as whole milliseconds, rounded up
    (so a tiny positive duration never becomes 0, which the ABI reads as
    "default"/"none"); ``math.inf`` saturates."""
    if isinstance(v, timedelta):
        secs = v.total_seconds()
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        secs = float(v)
    else:
        raise TypeError("%s must be seconds (int, float or timedelta), not %s" % (name, type(v).__name__))
    if secs != secs or secs < 0 or (positive and secs == 0):
        raise InvalidArgument(
            "%s must be %s seconds, got %r" % (name, "> 0" if positive else ">= 0", v)
        )
    if secs == math.inf:
        return _U64
    # round() first so that 0.3 s is 300 ms, not 301.
    return min(_U64, math.ceil(round(secs * 1000.0, 6)))


def _epoch_ms(v: Any, name: str) -> int:
    """A point in time: a datetime (naive = local time) or an int of ms since
    the Unix epoch."""
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.astimezone()
        ms = math.ceil(round((v - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000.0, 6))
        return _int(max(ms, 1), name, 1, _U64)
    return _int(v, name, 1, _U64)


def _seconds(ms: int) -> float:
    return ms / 1000.0


def _json_bytes(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON. NaN and infinities are refused
    (``ValueError``): they are not JSON, and other languages' decoders
    reject them."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class _EnqueueOptions:
    """An ``ordq_enqueue_options`` with everything it points to kept alive."""

    __slots__ = ("struct", "keep")

    def __init__(
        self,
        priority: int = 0,
        delay: Optional[Duration] = None,
        not_before: Any = None,
        max_attempts: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        where: str = "",
    ) -> None:
        o = ordq_enqueue_options()
        keep: List[Any] = []
        o.priority = _int(priority, where + "priority", _I32_MIN, _I32_MAX)
        if delay is not None:
            o.delay_ms = _ms(delay, where + "delay")
        if not_before is not None:
            o.not_before_ms = _epoch_ms(not_before, where + "not_before")
        if max_attempts is not None:
            o.max_attempts = _int(max_attempts, where + "max_attempts", 1, _U32)
        if idempotency_key is not None:
            ik = _text(idempotency_key, where + "idempotency_key")
            o.idempotency_key = ik
            o.idempotency_key_len = len(ik)
            keep.append(ik)
        if headers:
            arr = (ordq_header * len(headers))()
            for i, (hn, hv) in enumerate(headers.items()):
                nb = _text(hn, where + "headers name")
                vb = _text(hv, where + "headers[%r]" % (hn,))
                h = arr[i]
                h.name, h.name_len, h.value, h.value_len = nb, len(nb), vb, len(vb)
                keep.append(nb)
                keep.append(vb)
            o.headers = ctypes.cast(arr, ctypes.POINTER(ordq_header))
            o.headers_len = len(headers)
            keep.append(arr)
        self.struct = o
        self.keep = keep


def _receipts(arr: Any) -> List[Receipt]:
    return [
        Receipt(off, shard, rid[:32].decode("ascii"), dup)
        for off, shard, dup, rid in RECEIPT_STRUCT.iter_unpack(arr)
    ]


def _receipt(rc: ordq_receipt) -> Receipt:
    return Receipt(rc.offset, rc.shard, rc.id.decode("ascii"), rc.duplicate)


# --------------------------------------------------------------------------
# Db
# --------------------------------------------------------------------------

_LIVE: "weakref.WeakSet[Db]" = weakref.WeakSet()

# Who this is, for a broker's hello (remote mode).
_CLIENT = b"ordq-python/" + _L.ordq_version_string()
_RUNTIME = ("%s%d.%d.%d" % ((sys.implementation.name,) + tuple(sys.version_info[:3]))).encode()


def _close_all_at_exit() -> None:
    # Close what the program left open, so its last writes are committed.
    # close() frees a handle only once no call is using it, so a daemon
    # thread still inside a call at exit never sees a freed handle.
    for db in list(_LIVE):
        try:
            db.close()
        except Error:
            pass


atexit.register(_close_all_at_exit)


class Db:
    """An open ordq database (``ordq_db``). Thread-safe: share one Db between
    threads. Use as a context manager, or call :meth:`close`.

    Create with :func:`ordq.open`.
    """

    def __init__(
        self,
        path: Union[str, bytes, "os.PathLike[str]"],
        *,
        durability: str = "immediate",
        max_payload: Optional[int] = None,
        max_result: Optional[int] = None,
        max_key: Optional[int] = None,
        max_headers: Optional[int] = None,
        retain_done: Optional[Duration] = None,
        max_batch: Optional[int] = None,
        cache_size: Optional[int] = None,
        token: Optional[str] = None,
        timeout: Optional[Duration] = None,
        must_exist: bool = False,
        signing_key: Optional[bytes] = None,
    ) -> None:
        """Opens (creating it crash-atomically if missing) the database at
        ``path``, a file path or ``file://PATH``, or connects to a broker at
        ``unix:///path/to/ordq.sock`` or ``tcp://host:port``. See
        :func:`ordq.open`."""
        self._h: Optional[Any] = None
        p = os.fspath(path)
        uri = p if isinstance(p, bytes) else _text(p, "path")
        self.path: str = uri.decode("utf-8", "replace")
        opts = ordq_options()
        _L.ordq_options_init(byref(opts))
        if durability not in _DURABILITIES:
            raise InvalidArgument(
                "durability must be one of %s, got %r" % (sorted(_DURABILITIES), durability)
            )
        opts.durability = _DURABILITIES[durability]
        for name, v in (
            ("max_payload", max_payload),
            ("max_result", max_result),
            ("max_key", max_key),
            ("max_headers", max_headers),
            ("max_batch", max_batch),
            ("cache_size", cache_size),
        ):
            if v is not None:
                setattr(opts, name, _int(v, name, 0, _U64))
        if retain_done is not None:
            opts.retain_done_ms = _ms(retain_done, "retain_done")
        if token is not None:
            tb = _text(token, "token")
            opts.token, opts.token_len = tb, len(tb)
        if timeout is not None:
            opts.timeout_ms = _ms(timeout, "timeout", positive=True)
        opts.must_exist = bool(must_exist)
        if signing_key is not None:
            if not isinstance(signing_key, bytes):
                raise TypeError("signing_key must be bytes (a 32-byte Ed25519 seed)")
            opts.signing_key, opts.signing_key_len = signing_key, len(signing_key)
        opts.client, opts.client_len = _CLIENT, len(_CLIENT)
        opts.runtime, opts.runtime_len = _RUNTIME, len(_RUNTIME)
        h, err = DbPtr(), ErrPtr()
        st = _L.ordq_open(uri, len(uri), byref(opts), byref(h), byref(err))
        if st:
            _raise(st, err)
        self._h = h
        self._lock = threading.Lock()
        self._inflight = 0
        self._closing = False
        # Safety net only: frees the handle if the Db is dropped unclosed.
        self._finalizer = weakref.finalize(self, _L.ordq_db_free, h)
        self._finalizer.atexit = False
        _LIVE.add(self)

    # -- handle bookkeeping: close() may race with calls in other threads;
    # the handle is freed only when no call is using it.

    def _enter(self) -> Any:
        with self._lock:
            h = self._h
            if h is None:
                raise Closed("the database is closed", Closed.status)
            self._inflight += 1
            return h

    def _exit(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._closing and self._inflight == 0 and self._h is not None:
                self._h = None
                self._finalizer()  # ordq_db_free, exactly once

    def close(self) -> None:
        """Closes the database: finishes queued work, makes it durable,
        releases the file and frees the handle. Idempotent. Calls in other
        threads then fail with :class:`ordq.Closed` (the handle is freed
        when the last of them returns)."""
        with self._lock:
            h = self._h
            if h is None:
                return
            self._closing = True
            self._inflight += 1
        err = ErrPtr()
        try:
            st = _L.ordq_db_close(h, byref(err))
        finally:
            self._exit()
        if st:
            _raise(st, err)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._h is None or self._closing

    def __enter__(self) -> "Db":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<ordq.Db %r%s>" % (self.path, " closed" if self.closed else "")

    def _call(self, fn: Any, *args: Any) -> None:
        """Calls ``fn(handle, *args, &err)`` and raises on failure."""
        err = ErrPtr()
        h = self._enter()
        try:
            st = fn(h, *args, byref(err))
        finally:
            self._exit()
        if st:
            _raise(st, err)

    def _json(self, fn: Any, *args: Any) -> Any:
        """Calls a ``*_json`` function and parses the document."""
        out = ordq_bytes()
        self._call(fn, *args, byref(out))
        try:
            data = _string_at(out.ptr, out.len)
        finally:
            _L.ordq_bytes_free(byref(out))
        return json.loads(data)

    # -- database-wide calls

    def sync(self) -> None:
        """Waits until everything sent before is committed, and runs due
        timers (lease expiry, retries) and retention now."""
        self._call(_L.ordq_db_sync)

    def checkpoint(self) -> Dict[str, int]:
        """Makes a state checkpoint now (a checkpoint record in the log) and
        returns the log's extent: ``segments``, ``bytes``, ``first_lsn``,
        ``next_lsn``, ``checkpoint_lsn``."""
        return self._json(_L.ordq_db_checkpoint)

    def verify(self, pubkey: Optional[bytes] = None) -> Dict[str, Any]:
        """Verifies the database against its own history (frames, hash
        chains, checkpoints and their signatures, the state rebuilt from the
        log) and returns the report (docs/CLI.md, ``ordq verify``): ``ok``,
        ``problems`` (each with ``class``, ``at``, ``why``) and the counts.
        ``pubkey``: 32 bytes of an Ed25519 public key, else the key the
        database recorded. Through a broker, the broker verifies its
        database while it serves."""
        if pubkey is not None and (type(pubkey) is not bytes or len(pubkey) != 32):
            raise TypeError("pubkey must be 32 bytes")
        return self._json(_L.ordq_db_verify_json, pubkey)

    def audit(self, queue: str, key: Optional[str] = None) -> Dict[str, Any]:
        """Audits ``queue`` (only ``key``'s tasks if given) from the log
        alone: lane order, completions under the latest lease, one outcome
        per task. Returns the report: ``ok``, ``violations``, ``lanes``."""
        qb = _text(queue, "queue")
        kb = None if key is None else _text(key, "key")
        return self._json(_L.ordq_db_audit_json, qb, len(qb), kb, 0 if kb is None else len(kb))

    def create_queue(self, name: str, *, if_not_exists: bool = False, **config: Any) -> "Queue":
        """Creates queue ``name`` and returns it; :class:`ordq.AlreadyExists`
        if it exists. With ``if_not_exists=True`` a queue of that name
        with the same configuration (``config`` over the defaults) is
        returned instead (atomically, in the engine); another configuration
        is still :class:`ordq.AlreadyExists`, naming the fields that differ.
        ``config`` is as for :meth:`queue`."""
        nb = _text(name, "name")
        cfg = _queue_config(config)
        fn = _L.ordq_queue_create_if_not_exists if if_not_exists else _L.ordq_queue_create
        self._call(fn, nb, len(nb), byref(cfg))
        return Queue(self, name)

    def queue(self, name: str, *, create: bool = False, **config: Any) -> "Queue":
        """The queue ``name``.

        Without ``create``, the queue must exist (:class:`ordq.NotFound`).
        With ``create=True`` it is created if missing, with ``config``:
        ``shards`` (16), ``ordering`` (``"key"``, ``"shard"``,
        ``"global"``, ``"none"``), ``max_attempts`` (10), ``dlq_policy``
        (``"skip"``, ``"block"``), ``lease`` (30.0 s), ``backoff_initial``
        (1.0 s), ``backoff_max`` (600.0 s), ``backoff_multiplier`` (2.0),
        ``backoff_jitter`` (0.2). If it exists already, every option given
        must match its configuration, else :class:`ordq.AlreadyExists`.
        """
        if not create:
            if config:
                raise TypeError("queue options (%s) need create=True" % ", ".join(sorted(config)))
            q = Queue(self, name)
            q.config  # raises NotFound for an unknown queue
            return q
        try:
            return self.create_queue(name, **config)
        except AlreadyExists:
            q = Queue(self, name)
            have = q.config
            want = QueueConfig(**{**have.__dict__, **_public_config(config)})
            diff = [
                "%s=%r (exists with %r)" % (k, getattr(want, k), getattr(have, k))
                for k in config
                if getattr(want, k) != getattr(have, k)
            ]
            if diff:
                raise AlreadyExists(
                    "queue %r exists with a different configuration: %s" % (name, ", ".join(diff)),
                    AlreadyExists.status,
                ) from None
            return q

    def queues(self) -> List[str]:
        """Every queue's name, sorted."""
        lst = StringListPtr()
        self._call(_L.ordq_queue_list, byref(lst))
        try:
            return [
                _L.ordq_string_list_get(lst, i).decode("utf-8")
                for i in range(_L.ordq_string_list_len(lst))
            ]
        finally:
            _L.ordq_string_list_free(lst)

    def delete_queue(self, name: str) -> None:
        """Deletes queue ``name`` with all its tasks, results and dead letters."""
        nb = _text(name, "name")
        self._call(_L.ordq_queue_delete, nb, len(nb))

    def complete_batch(
        self, items: Iterable[Union["Lease", Tuple["Lease", Payload]]]
    ) -> List[Union[Completion, Error]]:
        """Completes many leases (of any queues of this database) in one
        commit. ``items`` are leases (empty result) or ``(lease, result)``
        pairs. Returns one entry per item, in order: a
        :class:`~ordq.Completion`, or the :class:`ordq.Error` of that item
        (typically :class:`ordq.LeaseLost`), which is returned, not raised.
        A result over the size limit fails the whole call
        (:class:`ordq.TooLarge`, nothing completed)."""
        items = items if isinstance(items, list) else list(items)
        n = len(items)
        leases: List[Lease] = []
        results: List[bytes] = []
        for it in items:
            if type(it) is tuple:
                lease, res = it
                rb = res if type(res) is bytes else _bytes(res, "result")
            else:
                lease, rb = it, b""
            if not isinstance(lease, Lease):
                raise TypeError("complete_batch items are leases or (lease, result) pairs")
            leases.append(lease)
            results.append(rb)
        # Results go into one buffer; the item array is one pack_into.
        arr = (ordq_complete_item * n)()
        if n:
            rbuf = b"".join(results)
            ra = _address(rbuf)
            flat: List[int] = []
            ro = 0
            for lease, rb in zip(leases, results):
                rl = len(rb)
                flat += (lease._qid, lease.offset, lease._fence, ra + ro, rl)
                ro += rl
            _complete_packer(n).pack_into(arr, 0, *flat)
        comps = (ordq_completion * n)()
        sts = (c_int32 * n)()
        self._call(_L.ordq_complete_batch, arr, n, comps, sts)
        out: List[Union[Completion, Error]] = []
        for i, (off, at, dup) in enumerate(COMPLETION_STRUCT.iter_unpack(comps)):
            s = sts[i]
            if s == 0:
                leases[i]._settled = True
                out.append(Completion(off, at, dup))
            else:
                out.append(
                    error_for(s, "complete_batch item %d (offset %d): %s" % (i, leases[i].offset, _status_name(s)))
                )
        return out


def _address(b: bytes) -> int:
    """Address of a bytes object's data (valid while the object lives)."""
    return ctypes.cast(b, c_void_p).value or 0


def _packer(item: type) -> Any:
    fmt = _ffi.struct_format(item)[1:]  # without the leading '@'
    cache: Dict[int, struct.Struct] = {}

    def get(n: int) -> struct.Struct:
        """A Struct that writes ``n`` consecutive items from a flat list of
        their fields (native layout, checked against ctypes)."""
        st = cache.get(n)
        if st is None:
            st = struct.Struct("@" + fmt * n)
            assert st.size == ctypes.sizeof(item) * n
            if len(cache) < 64:
                cache[n] = st
        return st

    return get


_item_packer = _packer(ordq_enqueue_item)
_complete_packer = _packer(ordq_complete_item)


def _public_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Normalises queue options as given to :meth:`Db.queue` into the
    :class:`QueueConfig` representation (for comparison)."""
    c = _queue_config(config)
    return {k: getattr(_config_from_struct(c), k) for k in config}


_CONFIG_KEYS = {
    "shards",
    "ordering",
    "max_attempts",
    "dlq_policy",
    "lease",
    "backoff_initial",
    "backoff_max",
    "backoff_multiplier",
    "backoff_jitter",
}


def _queue_config(config: Mapping[str, Any]) -> ordq_queue_config:
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise TypeError(
            "unknown queue option(s): %s (valid: %s)" % (", ".join(sorted(unknown)), ", ".join(sorted(_CONFIG_KEYS)))
        )
    c = ordq_queue_config()
    _L.ordq_queue_config_init(byref(c))
    if "shards" in config:
        c.shards = _int(config["shards"], "shards", 0, _U32)
    if "ordering" in config:
        v = config["ordering"]
        if v not in _ORDERINGS:
            raise InvalidArgument("ordering must be one of %s, got %r" % (list(_ORDERINGS), v))
        c.ordering = _ORDERINGS[v]
    if "max_attempts" in config:
        c.max_attempts = _int(config["max_attempts"], "max_attempts", 0, _U32)
    if "dlq_policy" in config:
        v = config["dlq_policy"]
        if v not in _DLQ_POLICIES:
            raise InvalidArgument("dlq_policy must be one of %s, got %r" % (list(_DLQ_POLICIES), v))
        c.dlq_policy = _DLQ_POLICIES[v]
    if "lease" in config:
        c.lease_ms = _ms(config["lease"], "lease", positive=True)
    if "backoff_initial" in config:
        c.backoff_initial_ms = _ms(config["backoff_initial"], "backoff_initial")
    if "backoff_max" in config:
        c.backoff_max_ms = _ms(config["backoff_max"], "backoff_max")
    for k in ("backoff_multiplier", "backoff_jitter"):
        if k in config:
            v = config[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError("%s must be a number, not %s" % (k, type(v).__name__))
            setattr(c, k, float(v))
    return c


def _config_from_struct(c: ordq_queue_config) -> QueueConfig:
    orderings = {v: k for k, v in _ORDERINGS.items()}
    policies = {v: k for k, v in _DLQ_POLICIES.items()}
    return QueueConfig(
        shards=c.shards,
        ordering=orderings.get(c.ordering, str(c.ordering)),
        max_attempts=c.max_attempts,
        dlq_policy=policies.get(c.dlq_policy, str(c.dlq_policy)),
        lease=_seconds(c.lease_ms),
        backoff_initial=_seconds(c.backoff_initial_ms),
        backoff_max=_seconds(c.backoff_max_ms),
        backoff_multiplier=c.backoff_multiplier,
        backoff_jitter=c.backoff_jitter,
    )


def open(path: Union[str, bytes, "os.PathLike[str]"], **options: Any) -> Db:  # noqa: A001
    """Opens the ordq database at ``path`` (created crash-atomically if
    missing) and returns a :class:`Db`; use it as a context manager::

        with ordq.open("/var/lib/app/jobs.ordq") as db:
            q = db.queue("emails", create=True)

    ``path`` may also be a broker address, ``unix:///path/to/ordq.sock`` or
    ``tcp://host:port`` (remote mode: the same API, every call goes to the
    broker, which must be running).

    File options (ignored in remote mode, where the broker's own options
    apply): ``durability`` (``"immediate"``, the default: a call returns
    after its commit is fsynced; or ``"none"``), ``max_payload``,
    ``max_result`` (bytes, 1 MiB), ``max_key`` (1024), ``max_headers``
    (64 KiB), ``retain_done`` (seconds that results of done tasks are kept,
    24 h), ``max_batch`` (8192), ``cache_size`` (bytes, 64 MiB).

    ``must_exist=True``: a missing file raises :class:`ordq.NotFound`
    instead of creating a new database (a guard against a typo in a path).
    ``signing_key``: a 32-byte Ed25519 seed (``ordq keygen``) that signs
    every checkpoint record.

    Remote options: ``token`` (the broker's access token; default: the
    ``ORDQ_TOKEN`` environment variable; ``""`` sends none) and ``timeout``
    (seconds, the deadline of every call, 30; a claim adds its wait). A
    broker that cannot be reached, or a call it does not answer in time,
    raises :class:`ordq.Unavailable`.

    Raises :class:`ordq.AlreadyOpen` when another handle or process holds
    the file, :class:`ordq.Corrupt` for a file that is not an ordq
    database, :class:`ordq.FormatTooNew` for a newer format.
    """
    return Db(path, **options)


# --------------------------------------------------------------------------
# Queue
# --------------------------------------------------------------------------


class Queue:
    """A named queue of a :class:`Db` (get it with :meth:`Db.queue`). A light
    object: it holds the name and the database, nothing else."""

    __slots__ = ("db", "name", "_nb", "dlq", "__weakref__")

    def __init__(self, db: Db, name: str) -> None:
        self.db = db
        self.name = name
        self._nb = _text(name, "name")
        #: Dead-letter operations of this queue.
        self.dlq = DeadLetters(self)

    def __repr__(self) -> str:
        return "<ordq.Queue %r>" % (self.name,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and other.db is self.db and other.name == self.name

    def __hash__(self) -> int:
        return hash((id(self.db), self.name))

    # -- metadata

    @property
    def config(self) -> QueueConfig:
        """The queue's configuration (:class:`ordq.NotFound` if it is gone)."""
        c = ordq_queue_config()
        self.db._call(_L.ordq_queue_get, self._nb, len(self._nb), byref(c))
        return _config_from_struct(c)

    def info(self) -> QueueInfo:
        """Name, internal id, creation time and configuration."""
        d = self.db._json(_L.ordq_queue_get_json, self._nb, len(self._nb))
        return QueueInfo(name=d["name"], id=d["id"], created_at=d["created_at"], config=self.config)

    def stats(self) -> QueueStats:
        """Counts per state, per-shard load and lifetime totals."""
        return QueueStats.from_json(self.db._json(_L.ordq_queue_stats_json, self._nb, len(self._nb)))

    def delete(self) -> None:
        """Deletes this queue with all its tasks, results and dead letters."""
        self.db.delete_queue(self.name)

    def get_task(self, offset: int) -> TaskInfo:
        """Everything known about the task at ``offset``
        (:class:`ordq.NotFound` for an unknown offset)."""
        off = _int(offset, "offset", 0, _U64)
        return TaskInfo.from_json(self.db._json(_L.ordq_task_get_json, self._nb, len(self._nb), off))

    def faults(self, offset: int) -> List[Fault]:
        """The failed and expired attempts of the task at ``offset``, oldest first."""
        off = _int(offset, "offset", 0, _U64)
        return [
            Fault.from_json(f)
            for f in self.db._json(_L.ordq_task_faults_json, self._nb, len(self._nb), off)
        ]

    def pending(self, after: Optional[int] = None, limit: int = 100) -> List[TaskInfo]:
        """Unfinished tasks (ready, delayed, waiting for a retry, or leased)
        in offset order: those after offset ``after`` (from the start when
        None), at most ``limit``. Offset order is not claim order, which also
        weighs priority and lane heads; nothing is leased. A task that
        finishes while the list is read is left out, so a page may hold
        fewer than ``limit`` while more are pending: page on from the last
        offset until a page is empty."""
        return self._task_list(_L.ordq_queue_pending_json, after, limit)

    def _task_list(self, fn: Any, after: Optional[int], limit: int) -> List[TaskInfo]:
        """A paged task-list call (``ordq_queue_pending_json``,
        ``ordq_dlq_list_json``) for this queue."""
        has_after = after is not None
        a = _int(after, "after", 0, _U64) if has_after else 0
        lim = _int(limit, "limit", 0, (1 << 63) - 1)
        return [
            TaskInfo.from_json(d)
            for d in self.db._json(fn, self._nb, len(self._nb), has_after, a, lim)
        ]

    # -- enqueue

    def enqueue(
        self,
        key: Key,
        payload: Payload = b"",
        *,
        priority: int = 0,
        delay: Optional[Duration] = None,
        not_before: Any = None,
        max_attempts: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Receipt:
        """Appends one task and returns its :class:`~ordq.Receipt`.

        Args:
            key: the task key (str; bytes must be UTF-8): tasks of one key
                run one at a time, in order (with ``ordering="key"``).
            payload: bytes, or str (stored as UTF-8).
            priority: higher runs first among eligible lane heads.
            delay: seconds (or timedelta) before the task may run.
            not_before: earliest run time: a datetime, or ms since the epoch
                (wins over ``delay``).
            max_attempts: attempts allowed for this task (default: the queue's).
            idempotency_key: a repeat with the same key returns the first
                receipt with ``duplicate=True`` instead of enqueueing.
            headers: str -> str metadata (e.g. ``traceparent``).
        """
        kb = _text(key, "key")
        pb = _bytes(payload, "payload")
        opts = None
        if (
            priority
            or delay is not None
            or not_before is not None
            or max_attempts is not None
            or idempotency_key is not None
            or headers
        ):
            eo = _EnqueueOptions(priority, delay, not_before, max_attempts, idempotency_key, headers)
            opts = byref(eo.struct)
        rc = ordq_receipt()
        nb = self._nb
        self.db._call(_L.ordq_enqueue, nb, len(nb), kb, len(kb), pb, len(pb), opts, byref(rc))
        return _receipt(rc)

    def enqueue_json(
        self,
        key: Key,
        obj: Any,
        *,
        priority: int = 0,
        delay: Optional[Duration] = None,
        not_before: Any = None,
        max_attempts: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Receipt:
        """Like :meth:`enqueue`, with ``obj`` (anything :func:`json.dumps`
        takes) stored as compact UTF-8 JSON; read it back with
        :meth:`Lease.json` or a :func:`ordq.json_handler`. ``TypeError``
        for an object JSON cannot represent, ``ValueError`` for NaN or an
        infinity."""
        return self.enqueue(
            key,
            _json_bytes(obj),
            priority=priority,
            delay=delay,
            not_before=not_before,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            headers=headers,
        )

    def enqueue_batch(self, items: Iterable[Union[Tuple[Any, ...], Item]]) -> List[Receipt]:
        """Appends many tasks in one commit, all or nothing (an invalid item
        fails the whole batch). ``items`` are ``(key, payload)`` tuples,
        ``(key, payload, options)`` tuples where ``options`` is a dict of
        :meth:`enqueue`'s keyword arguments, or :class:`~ordq.Item`
        objects. Returns the receipts in order."""
        items = items if isinstance(items, list) else list(items)
        n = len(items)
        keys: List[bytes] = []
        payloads: List[bytes] = []
        opts: List[int] = []
        keep: List[Any] = []  # option structs, alive until the call returns
        for i, it in enumerate(items):
            eo = None
            if type(it) is tuple:
                if len(it) == 2:
                    k, p = it
                elif len(it) == 3:
                    k, p, o = it
                    if o:
                        eo = _EnqueueOptions(**o, where="items[%d]." % i)
                else:
                    raise TypeError("items[%d]: expected (key, payload[, options]), got %d values" % (i, len(it)))
            elif isinstance(it, Item):
                k, p = it.key, it.payload
                if (
                    it.priority
                    or it.delay is not None
                    or it.not_before is not None
                    or it.max_attempts is not None
                    or it.idempotency_key is not None
                    or it.headers
                ):
                    eo = _EnqueueOptions(
                        it.priority,
                        it.delay,
                        it.not_before,
                        it.max_attempts,
                        it.idempotency_key,
                        it.headers,
                        where="items[%d]." % i,
                    )
            else:
                raise TypeError("items[%d]: expected a (key, payload) tuple or an ordq.Item" % i)
            keys.append(k.encode() if type(k) is str and k.isascii() else _text(k, "key"))
            payloads.append(p if type(p) is bytes else _bytes(p, "payload"))
            if eo is None:
                opts.append(0)
            else:
                opts.append(ctypes.addressof(eo.struct))
                keep.append(eo)
        # Every key and payload is copied into one buffer each, and the
        # item array is written with one struct.pack_into: no ctypes call
        # or attribute write per item.
        arr = (ordq_enqueue_item * n)()
        if n:
            kbuf, pbuf = b"".join(keys), b"".join(payloads)
            ka, pa = _address(kbuf), _address(pbuf)
            flat: List[int] = []
            ko = po = 0
            for kb, pb, op in zip(keys, payloads, opts):
                kl, pl = len(kb), len(pb)
                flat += (ka + ko, kl, pa + po, pl, op)
                ko += kl
                po += pl
            _item_packer(n).pack_into(arr, 0, *flat)
        rcs = (ordq_receipt * n)()
        nb = self._nb
        self.db._call(_L.ordq_enqueue_batch, nb, len(nb), arr, n, rcs)
        return _receipts(rcs)

    # -- claim

    def claim(
        self,
        worker: str,
        max: int = 1,  # noqa: A002
        lease: Optional[Duration] = None,
        wait: Duration = 0.0,
        shards: Optional[Sequence[int]] = None,
    ) -> List["Lease"]:
        """Leases up to ``max`` eligible tasks for ``worker`` (never two of
        one lane) and returns them as :class:`Lease` objects (possibly
        none).

        Args:
            worker: the worker's id (1..256 bytes), recorded with the lease.
            max: most leases returned (1..10000).
            lease: lease duration in seconds (default: the queue's).
            wait: seconds to block when nothing is eligible (0 = return at
                once); the GIL is released while blocked.
            shards: only claim from these shard numbers.
        """
        wb = _text(worker, "worker")
        o = ordq_claim_options()
        o.max = _int(max, "max", 0, _U32)
        if lease is not None:
            o.lease_ms = _ms(lease, "lease", positive=True)
        if wait:
            o.wait_ms = _ms(wait, "wait")
        if shards is not None:
            sh = (c_uint32 * len(shards))(*[_int(s, "shards[]", 0, _U32) for s in shards])
            o.shards = ctypes.cast(sh, ctypes.POINTER(c_uint32))
            o.shards_len = len(shards)
        lst = LeaseListPtr()
        nb = self._nb
        self.db._call(_L.ordq_claim, nb, len(nb), wb, len(wb), byref(o), byref(lst))
        try:
            return self._read_leases(lst, worker if type(worker) is str else wb.decode("utf-8"))
        finally:
            _L.ordq_lease_list_free(lst)

    def _read_leases(self, lst: Any, worker: str) -> List["Lease"]:
        """Copies every lease of ``lst`` into Python objects (one
        ``ordq_lease_get_info`` per lease, plus one call per header)."""
        n = _L.ordq_lease_list_len(lst)
        if not n:
            return []
        get = _L.ordq_lease_list_get
        get_info = _L.ordq_lease_get_info
        info = ordq_lease_info()
        pinfo = byref(info)
        unpack = LEASE_INFO_STRUCT.unpack_from
        sa = _string_at
        mem = _MEM
        name = self.name
        new = Lease.__new__
        out = []
        for i in range(n):
            lp = get(lst, i)
            st = get_info(lp, pinfo, None)
            if st:
                raise error_for(st, "ordq_lease_get_info failed: %s" % _status_name(st))
            (
                qid,
                _off,
                fence,
                offset,
                shard,
                priority,
                attempt,
                max_attempts,
                enqueued_at,
                leased_at,
                expires_at,
                _qp,
                _ql,
                idp,
                idl,
                kp,
                kl,
                pp,
                pl,
                hc,
            ) = unpack(info)
            le = new(Lease)
            le._q = self
            le._qid = qid
            le._fence = fence
            le._settled = False
            le.lost = False
            le.queue = name
            le.worker = worker
            le.offset = offset
            le.shard = shard
            le.priority = priority
            le.attempt = attempt
            le.max_attempts = max_attempts
            le.enqueued_at = enqueued_at
            le.leased_at = leased_at
            le.expires_at = expires_at
            if mem is not None:
                le.id = mem[idp : idp + idl].tobytes().decode("ascii")
                le.key = mem[kp : kp + kl].tobytes().decode("utf-8")
                le.payload = mem[pp : pp + pl].tobytes()
            else:
                le.id = sa(idp, idl).decode("ascii")
                le.key = sa(kp, kl).decode("utf-8")
                le.payload = sa(pp, pl)
            le.headers = _read_headers(lp, hc) if hc else {}
            out.append(le)
        return out

    def subscribe(
        self,
        worker: str,
        *,
        max: int = 10,  # noqa: A002
        lease: Optional[Duration] = None,
        wait: Duration = 1.0,
        shards: Optional[Sequence[int]] = None,
        stop: Optional[threading.Event] = None,
    ) -> Iterator["Lease"]:
        """Yields leases forever: claims up to ``max`` at a time, blocking up
        to ``wait`` seconds per claim when the queue is idle. The iteration
        ends when ``stop`` is set (checked between leases and after each
        claim) or the database is closed. The consumer completes or fails
        each lease; leases claimed but not yet yielded when the iterator is
        closed (``break``) are released (the attempt is not counted)::

            for lease in q.subscribe(worker="py-1"):
                lease.complete(handle(lease.payload))
        """
        _text(worker, "worker")
        if not wait:
            raise InvalidArgument("subscribe needs wait > 0 (it would spin otherwise)")
        return self._subscribe(worker, max, lease, wait, shards, stop)

    def _subscribe(
        self,
        worker: str,
        max_: int,
        lease: Optional[Duration],
        wait: Duration,
        shards: Optional[Sequence[int]],
        stop: Optional[threading.Event],
    ) -> Iterator["Lease"]:
        pending: List[Lease] = []
        try:
            while stop is None or not stop.is_set():
                try:
                    pending = self.claim(worker, max_, lease, wait, shards)
                except Closed:
                    return
                pending.reverse()
                while pending:
                    if stop is not None and stop.is_set():
                        return
                    yield pending.pop()
        finally:
            for le in pending:
                try:
                    le.release()
                except Error:
                    pass

    def complete_batch(
        self, items: Iterable[Union["Lease", Tuple["Lease", Payload]]]
    ) -> List[Union[Completion, Error]]:
        """Completes many leases in one commit; see :meth:`Db.complete_batch`."""
        return self.db.complete_batch(items)


def _read_headers(lp: Any, count: int) -> Dict[str, str]:
    np_, nl, vp, vl = c_void_p(), c_size_t(), c_void_p(), c_size_t()
    args = (byref(np_), byref(nl), byref(vp), byref(vl))
    hg = _L.ordq_lease_header_get
    out = {}
    for j in range(count):
        st = hg(lp, j, *args, None)
        if st:
            raise error_for(st, "ordq_lease_header_get failed: %s" % _status_name(st))
        out[_string_at(np_.value, nl.value).decode("utf-8")] = _string_at(vp.value, vl.value).decode("utf-8")
    return out


# --------------------------------------------------------------------------
# Lease
# --------------------------------------------------------------------------


class Lease:
    """A claimed task and its lease. Finish it with exactly one of
    :meth:`complete`, :meth:`fail` or :meth:`release`; :meth:`heartbeat`
    extends it while the work runs. A lease holds no native memory: every
    field is copied out at claim time.

    Attributes:
        key: the task key (str).
        payload: the payload (bytes).
        headers: str -> str.
        id: task id (32 hex characters).
        queue: queue name.
        worker: the worker id that claimed it.
        offset, shard, priority: the task's position, shard and priority.
        attempt: this attempt's number (1-based); max_attempts: allowed.
        enqueued_at, leased_at, expires_at: ms since the Unix epoch
            (``expires_at`` follows heartbeats made through this object).
        lost: set by :class:`ordq.Worker` when a heartbeat found the lease
            lost (another worker may run the task now).
    """

    __slots__ = (
        "_q",
        "_qid",
        "_fence",
        "_settled",
        "lost",
        "queue",
        "worker",
        "offset",
        "shard",
        "priority",
        "attempt",
        "max_attempts",
        "enqueued_at",
        "leased_at",
        "expires_at",
        "id",
        "key",
        "payload",
        "headers",
        "__weakref__",
    )

    _q: Queue
    _qid: int
    _fence: int
    _settled: bool
    lost: bool
    queue: str
    worker: str
    offset: int
    shard: int
    priority: int
    attempt: int
    max_attempts: int
    enqueued_at: int
    leased_at: int
    expires_at: int
    id: str
    key: str
    payload: bytes
    headers: Dict[str, str]

    def __init__(self) -> None:  # pragma: no cover - built by Queue.claim
        raise TypeError("leases come from Queue.claim / Queue.subscribe")

    def __repr__(self) -> str:
        return "<ordq.Lease %s offset=%d key=%r attempt=%d/%d>" % (
            self.queue,
            self.offset,
            self.key,
            self.attempt,
            self.max_attempts,
        )

    @property
    def token(self) -> Token:
        """The lease's fencing token."""
        return Token(self._qid, self.offset, self._fence)

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        """The payload decoded as UTF-8 JSON; a ``ValueError``
        (``json.JSONDecodeError``, or ``UnicodeDecodeError`` when it is not
        UTF-8) when it is not valid JSON."""
        return json.loads(self.payload.decode("utf-8"))

    @property
    def settled(self) -> bool:
        """True once complete/fail/release succeeded through this object."""
        return self._settled

    def _token(self) -> ordq_token:
        return ordq_token(self._qid, self.offset, self._fence)

    def complete(self, result: Payload = b"") -> Completion:
        """Commits ``result`` (bytes or str) and frees the task's lane.
        Completing again with the same lease returns the first outcome with
        ``duplicate=True``; :class:`ordq.LeaseLost` if the lease was lost."""
        rb = _bytes(result, "result")
        c = ordq_completion()
        self._q.db._call(_L.ordq_complete, self._token(), rb, len(rb), byref(c))
        self._settled = True
        return Completion(c.offset, c.committed_at, c.duplicate)

    def fail(self, error: Union[str, BaseException] = "", retryable: bool = True) -> FailOutcome:
        """Records a failed attempt with ``error`` (a message or an
        exception). The task is retried after backoff, or dead-lettered when
        its attempts are spent or ``retryable`` is False."""
        if isinstance(error, BaseException):
            error = "%s: %s" % (type(error).__name__, error)
        eb = _text(error, "error")
        o = ordq_fail_outcome()
        self._q.db._call(_L.ordq_fail, self._token(), eb, len(eb), bool(retryable), byref(o))
        self._settled = True
        return FailOutcome(o.dead, o.attempt, o.not_before)

    def heartbeat(self, lease: Optional[Duration] = None) -> int:
        """Extends the lease by ``lease`` seconds from now (default: the
        queue's lease) and returns the new expiry (ms since the epoch)."""
        ms = 0 if lease is None else _ms(lease, "lease", positive=True)
        out = c_uint64()
        self._q.db._call(_L.ordq_heartbeat, self._token(), ms, byref(out))
        self.expires_at = out.value
        return out.value

    def start(self) -> None:
        """Records that processing started (shown in task info)."""
        self._q.db._call(_L.ordq_start, self._token())

    def release(self) -> None:
        """Gives the task back without counting the attempt; it is ready
        again at once."""
        self._q.db._call(_L.ordq_release, self._token())
        self._settled = True


# --------------------------------------------------------------------------
# Dead letters
# --------------------------------------------------------------------------


class DeadLetters:
    """Dead-letter operations of one queue (``queue.dlq``). Iterating it
    yields every dead letter in offset order."""

    __slots__ = ("_q",)

    def __init__(self, queue: Queue) -> None:
        self._q = queue

    def list(self, after: Optional[int] = None, limit: int = 100) -> List[TaskInfo]:  # noqa: A003
        """Dead letters in offset order: those after offset ``after`` (from
        the start when None), at most ``limit``."""
        return self._q._task_list(_L.ordq_dlq_list_json, after, limit)

    def __iter__(self) -> Iterator[TaskInfo]:
        after = None
        while True:
            page = self.list(after, 100)
            yield from page
            if len(page) < 100:
                return
            after = page[-1].offset

    def get(self, offset: int) -> DeadLetter:
        """Dead letter ``offset`` with its fault history
        (:class:`ordq.NotFound` if it is not a held dead letter)."""
        q = self._q
        off = _int(offset, "offset", 0, _U64)
        d = q.db._json(_L.ordq_dlq_get_json, q._nb, len(q._nb), off)
        return DeadLetter(TaskInfo.from_json(d["task"]), [Fault.from_json(f) for f in d["faults"]])

    def redrive(self, offset: int, mode: str = "head") -> Receipt:
        """Runs dead letter ``offset`` again: ``mode="head"`` puts it back at
        the head of its lane at its original offset (attempts reset);
        ``"new_offset"`` re-enqueues it at the tail (the receipt has the new
        offset). :class:`ordq.InvalidState` if it is not a dead letter."""
        if mode not in _REDRIVE_MODES:
            raise InvalidArgument("mode must be one of %s, got %r" % (list(_REDRIVE_MODES), mode))
        q = self._q
        rc = ordq_receipt()
        off = _int(offset, "offset", 0, _U64)
        q.db._call(_L.ordq_dlq_redrive, q._nb, len(q._nb), off, _REDRIVE_MODES[mode], byref(rc))
        return _receipt(rc)

    def purge(self, offset: int) -> int:
        """Deletes dead letter ``offset``; returns how many were purged (1)."""
        q = self._q
        out = c_uint64()
        off = _int(offset, "offset", 0, _U64)
        q.db._call(_L.ordq_dlq_purge, q._nb, len(q._nb), False, off, byref(out))
        return out.value

    def purge_all(self) -> int:
        """Deletes every dead letter of the queue; returns how many."""
        q = self._q
        out = c_uint64()
        q.db._call(_L.ordq_dlq_purge, q._nb, len(q._nb), True, 0, byref(out))
        return out.value
