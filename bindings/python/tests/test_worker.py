"""ordq.Worker and Queue.subscribe."""

from __future__ import annotations

import threading
import time
from typing import Callable, List

import pytest

import ordq


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in %.1fs" % timeout)
        time.sleep(0.01)


def test_worker_completes_with_the_return_value(q: ordq.Queue) -> None:
    q.enqueue_batch([("k%d" % i, b"n%d" % i) for i in range(20)])
    seen: List[bytes] = []

    def handler(lease: ordq.Lease) -> bytes:
        seen.append(lease.payload)
        return lease.payload.upper()

    w = ordq.Worker(q, handler, concurrency=3, wait=0.05, worker_id="py-test")
    with w:
        wait_for(lambda: w.completed == 20)
    assert not w.running
    assert sorted(seen) == sorted(b"n%d" % i for i in range(20))
    t = q.get_task(7)
    assert t.state == "done" and t.result == b"N7" and t.worker == "py-test"
    assert (w.retried, w.dead, w.lost, w.errors) == (0, 0, 0, 0)


# The engine reports an empty result as absent (None), like a pruned one.
@pytest.mark.parametrize("rv,stored", [(None, None), ("text", b"text"), (bytearray(b"ba"), b"ba")])
def test_worker_result_types(q: ordq.Queue, rv: object, stored: object) -> None:
    q.enqueue("k", b"x")
    w = ordq.Worker(q, lambda lease: rv, wait=0.05).start()
    wait_for(lambda: w.completed == 1)
    w.stop()
    assert q.get_task(0).result == stored


def test_worker_retries_a_failing_handler(q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    attempts: List[int] = []

    def flaky(lease: ordq.Lease) -> bytes:
        attempts.append(lease.attempt)
        if lease.attempt < 3:
            raise ConnectionError("try again")
        return b"ok"

    w = ordq.Worker(q, flaky, wait=0.05).start()
    wait_for(lambda: w.completed == 1)
    w.stop()
    assert attempts == [1, 2, 3] and w.retried == 2
    faults = q.faults(0)
    assert [f.error for f in faults] == ["ConnectionError: try again"] * 2
    assert all(f.retryable for f in faults)


class Permanent(Exception):
    retryable = False


@pytest.mark.parametrize(
    "exc",
    [ordq.NonRetryable("malformed"), Permanent("malformed"), ValueError("malformed")],
    ids=["NonRetryable", "retryable-attr", "attempts-spent"],
)
def test_worker_dead_letters(q: ordq.Queue, exc: Exception) -> None:
    spent = type(exc) is ValueError
    q.enqueue("k", b"x", max_attempts=2 if spent else 10)

    def handler(lease: ordq.Lease) -> None:
        raise exc

    w = ordq.Worker(q, handler, wait=0.05).start()
    wait_for(lambda: w.dead == 1)
    w.stop()
    assert q.get_task(0).state == "dead"
    faults = q.faults(0)
    assert len(faults) == (2 if spent else 1)
    assert faults[-1].error == "%s: malformed" % type(exc).__name__
    assert faults[-1].retryable is spent
    assert w.retried == (1 if spent else 0)


def test_heartbeats_keep_a_short_lease_alive(db: ordq.Db, q: ordq.Queue) -> None:
    q.enqueue("k", b"slow")
    done = threading.Event()

    def slow(lease: ordq.Lease) -> bytes:
        for _ in range(12):  # 1.2 s of work on a 0.4 s lease
            time.sleep(0.1)
            db.sync()  # expire anything overdue right away
            assert not lease.lost
        done.set()
        return b"finished"

    w = ordq.Worker(q, slow, lease=0.4, wait=0.05).start()
    wait_for(done.is_set)
    wait_for(lambda: w.completed == 1)
    w.stop()
    assert q.get_task(0).result == b"finished"
    assert q.faults(0) == [] and q.stats().totals.lease_expired == 0
    assert w.lost == 0


def test_without_heartbeats_the_lease_is_lost(db: ordq.Db, q: ordq.Queue) -> None:
    # Control for the test above: with heartbeats far apart the same work
    # loses its lease, and the worker counts the refused outcome.
    q.enqueue("k", b"slow")

    def slow(lease: ordq.Lease) -> bytes:
        time.sleep(0.4)
        db.sync()
        return b"too late"

    w = ordq.Worker(q, slow, lease=0.1, heartbeat=60, wait=0.05).start()
    wait_for(lambda: w.lost >= 1)
    w.stop()
    assert q.faults(0)[0].kind == "expired"


def test_stop_lets_running_handlers_finish(q: ordq.Queue) -> None:
    q.enqueue_batch([("k%d" % i, b"x") for i in range(10)])
    started = threading.Event()
    release = threading.Event()

    def handler(lease: ordq.Lease) -> bytes:
        started.set()
        release.wait(5)
        return b"ok"

    # batch=10: one claim takes every task, so the other 9 are claimed
    # but not started when stop() comes.
    w = ordq.Worker(q, handler, batch=10, wait=0.05).start()
    started.wait(5)
    stopper = threading.Thread(target=w.stop)
    stopper.start()
    time.sleep(0.1)
    assert w.running  # waiting for the handler
    release.set()
    stopper.join(5)
    assert not w.running and w.completed == 1
    s = q.stats()
    assert s.done == 1 and s.ready == 9 and s.leased == 0
    assert s.totals.released == 9


def test_stop_from_a_handler(q: ordq.Queue) -> None:
    q.enqueue_batch([("k%d" % i, b"x") for i in range(5)])
    w: ordq.Worker

    def handler(lease: ordq.Lease) -> bytes:
        w.stop()
        return b"last"

    w = ordq.Worker(q, handler, wait=0.05)
    t = threading.Thread(target=w.run)
    t.start()
    t.join(5)
    assert not t.is_alive() and w.completed == 1
    assert q.stats().done == 1


def test_handler_may_settle_the_lease_itself(q: ordq.Queue) -> None:
    q.enqueue_batch([("a", b"complete"), ("b", b"release-once"), ("c", b"fail")])
    released = set()

    def handler(lease: ordq.Lease) -> bytes:
        if lease.payload == b"complete":
            lease.complete(b"by hand")
        elif lease.payload == b"release-once" and lease.key not in released:
            released.add(lease.key)
            lease.release()
        elif lease.payload == b"fail":
            lease.fail("by hand", retryable=False)
        return b"ignored"

    w = ordq.Worker(q, handler, wait=0.05).start()
    wait_for(lambda: q.stats().done == 2 and q.stats().dead == 1)
    w.stop()
    assert q.get_task(0).result == b"by hand"
    assert q.get_task(1).result == b"ignored"
    assert w.errors == 0 and w.lost == 0


def test_worker_runs_handlers_concurrently(q: ordq.Queue) -> None:
    n = 4
    q.enqueue_batch([("key-%d" % i, b"x") for i in range(n)])
    barrier = threading.Barrier(n, timeout=5)

    def handler(lease: ordq.Lease) -> bytes:
        barrier.wait()  # only passes when all n handlers run at once
        return b"ok"

    w = ordq.Worker(q, handler, concurrency=n, wait=0.05).start()
    wait_for(lambda: w.completed == n)
    w.stop()
    assert w.retried == 0


def test_worker_stops_when_the_database_closes(db_path) -> None:
    db = ordq.open(db_path, durability="none")
    q = db.queue("q", create=True)
    w = ordq.Worker(q, lambda lease: b"", wait=5).start()
    time.sleep(0.1)
    db.close()
    wait_for(lambda: not w.running, 5)
    w.stop()


def test_worker_arguments(q: ordq.Queue) -> None:
    with pytest.raises(ValueError):
        ordq.Worker(q, lambda le: None, concurrency=0)
    with pytest.raises(ValueError):
        ordq.Worker(q, lambda le: None, batch=0)
    w = ordq.Worker(q, lambda le: None)
    assert w.heartbeat_interval == pytest.approx(10.0)  # a third of 30 s
    assert w.worker_id.startswith("py-")
    w2 = ordq.Worker(q, lambda le: None, wait=0.05)
    w2.start()
    with pytest.raises(RuntimeError):
        w2.start()
    w2.stop()


# -- subscribe -------------------------------------------------------------


def test_subscribe_yields_in_order_and_stops(q: ordq.Queue) -> None:
    q.enqueue_batch([("same-key", b"%d" % i) for i in range(5)])
    stop = threading.Event()
    got = []
    for lease in q.subscribe("py-sub", max=10, wait=0.05, stop=stop):
        got.append(lease.payload)
        lease.complete()
        if len(got) == 5:
            stop.set()
    assert got == [b"0", b"1", b"2", b"3", b"4"]


def test_subscribe_break_releases_unyielded_leases(q: ordq.Queue) -> None:
    q.enqueue_batch([("k%d" % i, b"x") for i in range(6)])
    it = q.subscribe("py-sub", max=6, wait=0.05)
    first = next(it)
    it.close()  # what `break` does to a for loop's generator
    s = q.stats()
    assert s.leased == 1 and s.totals.released == 5
    first.complete()


def test_subscribe_ends_when_the_database_closes(db_path) -> None:
    db = ordq.open(db_path, durability="none")
    q = db.queue("q", create=True)
    q.enqueue("k", b"x")
    it = q.subscribe("w", wait=0.05)
    le = next(it)
    le.complete()
    db.close()
    assert list(it) == []


def test_subscribe_needs_a_wait(q: ordq.Queue) -> None:
    with pytest.raises(ordq.InvalidArgument):
        q.subscribe("w", wait=0)
