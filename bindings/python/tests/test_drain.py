"""Drain-and-exit mode of ordq.Worker (``drain=True``): run() returns once
the queue has nothing unfinished and none of the worker's handlers runs;
it waits for retries in backoff, for tasks leased elsewhere, and for lanes
held by a blocking dead letter."""

from __future__ import annotations

import threading
import time
from typing import List

import ordq
from test_worker import wait_for


def test_stats_count_unfinished_tasks(db: ordq.Db) -> None:
    q = db.queue("jobs", create=True, backoff_initial=60)
    q.enqueue_batch([("a", b"1"), ("b", b"2"), ("c", b"3")])
    q.enqueue("d", b"later", delay=60)
    (done,) = q.claim("w", max=1)
    done.complete()
    (failing,) = q.claim("w", max=1)
    failing.fail("again")  # retry_wait
    q.claim("w", max=1)  # leased
    s = q.stats()
    # The delayed task counts as ready; done is not unfinished.
    assert (s.ready, s.leased, s.retry_wait, s.done) == (1, 1, 1, 1)
    assert s.unfinished == 3


def test_drain_returns_after_every_task_including_a_retry(db: ordq.Db) -> None:
    # A fixed 0.4 s backoff: the first claims find nothing while the failed
    # task waits, and run() must wait for it rather than return.
    q = db.queue("jobs", create=True, backoff_initial=0.4, backoff_jitter=0.0)
    q.enqueue_batch([("k%d" % i, b"ok") for i in range(10)] + [("flaky", b"once")])
    attempts: List[int] = []

    def handler(lease: ordq.Lease) -> bytes:
        if lease.payload == b"once":
            attempts.append(lease.attempt)
            if lease.attempt == 1:
                raise ConnectionError("try again")
        return b"done"

    w = ordq.Worker(q, handler, concurrency=3, wait=0.1, drain=True)
    t0 = time.monotonic()
    w.run()
    took = time.monotonic() - t0
    assert attempts == [1, 2]
    assert took >= 0.4, "returned before the retry's backoff ended: %.2f s" % took
    assert (w.completed, w.retried, w.dead, w.errors) == (11, 1, 0, 0)
    assert not w.running
    s = q.stats()
    assert s.unfinished == 0 and s.done == 11
    assert q.get_task(10).result == b"done"


def test_drain_on_an_empty_queue_returns_at_once(q: ordq.Queue) -> None:
    w = ordq.Worker(q, lambda lease: b"", concurrency=2, wait=5, drain=True)
    t0 = time.monotonic()
    w.run()
    # The first claim does not block: wait=5 would take 5 s.
    assert time.monotonic() - t0 < 1.0
    assert w.completed == 0


def test_drain_waits_for_a_running_handler_of_another_thread(q: ordq.Queue) -> None:
    # One thread runs a slow task while the others find nothing: they must
    # not end the run while it runs (it could still fail and retry).
    q.enqueue("slow", b"x")
    finished = threading.Event()

    def handler(lease: ordq.Lease) -> bytes:
        time.sleep(0.5)
        if lease.attempt == 1:
            raise ConnectionError("retry me")
        finished.set()
        return b"ok"

    w = ordq.Worker(q, handler, concurrency=3, wait=0.05, drain=True)
    w.run()
    assert finished.is_set()
    assert (w.retried, w.completed) == (1, 1)
    assert q.stats().unfinished == 0


def test_drain_waits_for_a_task_leased_elsewhere(db: ordq.Db, q: ordq.Queue) -> None:
    # Another worker holds the only task and vanishes: its lease expires,
    # the task comes back, and the drain worker runs it.
    q.enqueue("k", b"x")
    (held,) = q.claim("gone", lease=0.5)
    w = ordq.Worker(q, lambda lease: b"mine", wait=0.1, worker_id="drainer", drain=True)
    t0 = time.monotonic()
    w.run()
    assert time.monotonic() - t0 >= 0.4
    t = q.get_task(0)
    assert t.state == "done" and t.worker == "drainer" and t.result == b"mine"
    assert [f.kind for f in q.faults(0)] == ["expired"]
    assert q.stats().unfinished == 0


def test_drain_waits_while_a_dead_letter_blocks_its_lane(db: ordq.Db) -> None:
    q = db.queue("blocking", create=True, dlq_policy="block")
    q.enqueue_batch([("k", b"bad"), ("k", b"after")])

    def handler(lease: ordq.Lease) -> bytes:
        if lease.payload == b"bad":
            raise ordq.NonRetryable("bad task")
        return b"ok"

    w = ordq.Worker(q, handler, wait=0.05, drain=True).start()
    wait_for(lambda: w.dead == 1)
    time.sleep(0.5)
    # "after" is held behind the dead letter: unfinished, so no exit.
    assert w.running and q.stats().unfinished == 1
    assert q.dlq.purge(0) == 1
    wait_for(lambda: not w.running)
    w.stop()
    assert w.completed == 1 and q.get_task(1).state == "done"
