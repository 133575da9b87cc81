"""Errors: the exception hierarchy and every error the ABI produces for a
Python caller."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import ordq
from conftest import BROKER_MODE, local_only
from ordq import _ffi
from ordq.errors import error_for

CLASSES = {
    1: ordq.InvalidArgument,
    2: ordq.NotFound,
    3: ordq.AlreadyExists,
    4: ordq.AlreadyOpen,
    5: ordq.LeaseLost,
    6: ordq.TooLarge,
    7: ordq.InvalidState,
    8: ordq.FormatTooNew,
    9: ordq.Corrupt,
    10: ordq.IoError,
    11: ordq.Closed,
    12: ordq.Unavailable,
    100: ordq.NullPointer,
    101: ordq.Panic,
}


def test_hierarchy_and_codes() -> None:
    assert set(CLASSES) == {v for v in _ffi.STATUS.values() if v}
    for code, cls in CLASSES.items():
        e = error_for(code, "msg")
        assert type(e) is cls and isinstance(e, ordq.Error) and isinstance(e, Exception)
        assert e.code == code == cls.status and e.message == "msg" and str(e) == "msg"
        assert repr(e) == "%s(code=%d, message='msg')" % (cls.__name__, code)
    # Pythonic extras: argument errors are ValueErrors, lookups LookupErrors.
    assert issubclass(ordq.InvalidArgument, ValueError)
    assert issubclass(ordq.TooLarge, ValueError)
    assert issubclass(ordq.NotFound, LookupError)
    # No builtin is shadowed.
    assert ordq.IoError is not IOError
    assert not hasattr(ordq, "IOError") and not hasattr(ordq, "TimeoutError")


def test_unknown_status_is_a_generic_error() -> None:
    e = error_for(77, "from a newer library")
    assert type(e) is ordq.Error and e.code == 77


def test_unknown_queue(db: ordq.Db) -> None:
    with pytest.raises(ordq.NotFound) as e:
        db.queue("missing")
    assert "missing" in e.value.message and e.value.code == 2
    ghost = ordq.Queue(db, "ghost")  # no check: calls on it fail
    with pytest.raises(ordq.NotFound):
        ghost.enqueue("k", b"x")
    with pytest.raises(ordq.NotFound):
        ghost.enqueue_batch([("k", b"x")])
    with pytest.raises(ordq.NotFound):
        ghost.enqueue_batch([])
    with pytest.raises(ordq.NotFound):
        ghost.claim("w")
    with pytest.raises(ordq.NotFound):
        ghost.stats()
    with pytest.raises(ordq.NotFound):
        ghost.dlq.list()


def test_stale_token_is_lease_lost(q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    (le,) = q.claim("w")
    le.release()
    (le2,) = q.claim("w2")
    for op in (le.complete, le.heartbeat, le.start, le.release, lambda: le.fail("x")):
        with pytest.raises(ordq.LeaseLost) as e:
            op()
        assert e.value.code == 5 and e.value.message
    le2.complete()


@local_only("max_payload and max_headers are file options; a broker applies its own")
def test_too_large(db_path: Path) -> None:
    with ordq.open(db_path, durability="none", max_payload=100, max_headers=10) as db:
        q = db.queue("q", create=True)
        with pytest.raises(ordq.TooLarge) as e:
            q.enqueue("k", b"x" * 101)
        assert e.value.code == 6
        with pytest.raises(ordq.TooLarge):
            q.enqueue("k", b"", headers={"name": "a-long-value"})
        with pytest.raises(ordq.TooLarge):
            q.enqueue_batch([("k", b"x"), ("k", b"x" * 101)])
        with pytest.raises(ordq.TooLarge):
            q.enqueue("k" * 1025, b"")  # default max_key 1024
        assert q.stats().next_offset == 0


def test_bad_names_and_arguments(db: ordq.Db, q: ordq.Queue) -> None:
    for bad in ("", "-leading-dash", "has space", "x" * 129, "ünïcode"):
        with pytest.raises(ordq.InvalidArgument):
            db.create_queue(bad)
    db.create_queue("x" * 128)
    with pytest.raises(ordq.InvalidArgument):
        db.queue("q", create=True, shards=0)
    with pytest.raises(ordq.InvalidArgument):
        db.queue("q", create=True, max_attempts=0)
    with pytest.raises(ordq.InvalidArgument):
        db.queue("q", create=True, ordering="random")
    with pytest.raises(ordq.InvalidArgument):
        db.queue("q", create=True, dlq_policy="drop")
    with pytest.raises(ordq.InvalidArgument):
        db.queue("q", create=True, shards=1 << 32)  # would wrap in ctypes
    with pytest.raises(ordq.InvalidArgument):
        q.claim("w", max=0)
    with pytest.raises(ordq.InvalidArgument):
        q.claim("w", max=10_001)
    with pytest.raises(ordq.InvalidArgument):
        q.claim("")  # empty worker id
    with pytest.raises(ordq.InvalidArgument):
        q.claim("w" * 257)
    with pytest.raises(ordq.InvalidArgument):
        q.claim("w", lease=0)
    with pytest.raises(ordq.InvalidArgument):
        q.claim("w", wait=-1)
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", b"", delay=-0.5)
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", b"", priority=1 << 31)
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", b"", max_attempts=0)
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", b"", headers={"": "empty name"})
    with pytest.raises(ordq.InvalidArgument):
        ordq.open(db.path + ".other", durability="sometimes")
    with pytest.raises(TypeError):
        q.enqueue(42, b"")
    with pytest.raises(TypeError):
        q.enqueue("k", 3.14)
    with pytest.raises(TypeError):
        q.claim("w", lease="30s")
    with pytest.raises(TypeError):
        q.enqueue("k", b"", priority=True)
    assert q.stats().next_offset == 0


def test_invalid_utf8_is_refused_by_the_library(q: ordq.Queue) -> None:
    # From str this can only happen with lone surrogates; bytes are passed
    # through as they are. Either way the ABI refuses it.
    for key in (b"\xff", b"ok\xc3", "\ud800"):
        with pytest.raises(ordq.InvalidArgument) as e:
            q.enqueue(key, b"x")
        assert "utf-8" in e.value.message.lower() and "key" in e.value.message
    with pytest.raises(ordq.InvalidArgument):
        q.claim(b"\xfe")
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", b"", headers={"h": "\udcff"})
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", b"", idempotency_key=b"\x80")
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue("k", "\ud800")  # a str payload must be encodable
    # A failing worker can always report: invalid UTF-8 in fail() is repaired.
    q.enqueue("k", b"x")
    (le,) = q.claim("w")
    le.fail("bad \udcff byte", retryable=False)
    assert q.faults(le.offset)[0].error == "bad \ufffd\ufffd\ufffd byte"


def test_closed_database(db_path: Path) -> None:
    db = ordq.open(db_path, durability="none")
    q = db.queue("q", create=True)
    q.enqueue("k", b"x")
    (le,) = q.claim("w")
    db.close()
    assert db.closed and "closed" in repr(db)
    for op in (
        lambda: q.enqueue("k", b"x"),
        lambda: q.claim("w"),
        lambda: q.stats(),
        lambda: q.pending(),
        lambda: le.complete(),
        lambda: db.sync(),
        lambda: db.queues(),
        lambda: db.create_queue("z"),
    ):
        with pytest.raises(ordq.Closed) as e:
            op()
        assert e.value.code == 11


def test_close_wakes_a_blocked_claim_in_another_thread(db_path: Path) -> None:
    db = ordq.open(db_path, durability="none")
    q = db.queue("q", create=True)
    got = []

    def claimer() -> None:
        try:
            got.append(q.claim("w", wait=10))
        except ordq.Error as e:
            got.append(e)

    t = threading.Thread(target=claimer)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    db.close()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - start < 3
    assert len(got) == 1 and isinstance(got[0], ordq.Closed)
    assert db._h is None  # freed once the claim returned


@local_only("AlreadyOpen from the file lock of a second local open")
def test_already_open(db_path: Path) -> None:
    with ordq.open(db_path) as db:
        db.queue("q", create=True)
        with pytest.raises(ordq.AlreadyOpen) as e:
            ordq.open(db_path)
        assert e.value.code == 4 and str(db_path) in e.value.message
    with ordq.open(db_path):  # released by close
        pass


def test_remote_open_options_are_checked() -> None:
    # Nothing listens on port 1: the options are accepted, the broker is not there.
    with pytest.raises(ordq.Unavailable) as e:
        ordq.open("tcp://127.0.0.1:1", token="s3cret", timeout=0.5)
    assert "cannot reach the broker" in e.value.message
    with pytest.raises(ordq.InvalidArgument):
        ordq.open("tcp://127.0.0.1:1", timeout=-1)
    with pytest.raises(ordq.InvalidArgument):
        ordq.open("tcp://127.0.0.1:1", timeout=0)
    with pytest.raises(TypeError):
        ordq.open("tcp://127.0.0.1:1", token=7)
    with pytest.raises(ordq.InvalidArgument) as e:
        ordq.open("tcp://127.0.0.1:1", token="\udc80")
    assert "opts.token" in e.value.message
    with pytest.raises(ordq.InvalidArgument):
        ordq.open("tcp://127.0.0.1")


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(ordq.Unavailable):
        ordq.open("unix:///tmp/ordq.sock")
    with pytest.raises(ordq.Unavailable):
        ordq.open("tcp://127.0.0.1:7000")
    with pytest.raises(ordq.InvalidArgument):
        ordq.open("gopher://x")
    with pytest.raises(ordq.InvalidArgument):
        ordq.open("")
    with pytest.raises(ordq.IoError):
        ordq.open(tmp_path / "no-such-dir" / "x.ordq")
    garbage = tmp_path / "garbage.ordq"
    garbage.write_bytes(b"not a database" * 1000)
    with pytest.raises((ordq.IoError, ordq.Corrupt)):
        ordq.open(garbage)


def test_error_is_per_call_not_thread_local(q: ordq.Queue) -> None:
    # Failing calls from several threads at once each get their own error.
    errors: list = []

    def fail(i: int) -> None:
        try:
            q.get_task(1000 + i)
        except ordq.NotFound as e:
            errors.append((i, e.message))

    threads = [threading.Thread(target=fail, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for i, _ in errors) == list(range(8))
    assert all(str(1000 + i) in m for i, m in errors)
