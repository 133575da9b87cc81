"""ordq.aio: the API as coroutines (the blocking calls in threads, the
event loop free meanwhile), and the async worker: bounded concurrency,
outcomes, heartbeats, drain, stop and cancellation. Each test runs its own
event loop with asyncio.run (no pytest plugin needed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, List

import pytest

import ordq
import ordq.aio


def run(fn: Callable[[ordq.aio.Db], Awaitable[None]], db_path: Path) -> None:
    """Runs ``fn(db)`` in a fresh event loop on a fresh async database."""

    async def main() -> None:
        async with await ordq.aio.open(db_path, durability="none") as db:
            await fn(db)

    asyncio.run(main())


async def jobs(db: ordq.aio.Db, **config: Any) -> ordq.aio.Queue:
    """The test queue: 4 shards, fast retries (like conftest's ``q``)."""
    config.setdefault("backoff_initial", 0.01)
    config.setdefault("backoff_max", 0.05)
    return await db.queue("jobs", create=True, shards=4, **config)


async def eventually(cond: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in %.1fs" % timeout)
        await asyncio.sleep(0.01)


# -- the client --------------------------------------------------------------


def test_round_trip_and_close(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        assert await db.queues() == ["jobs"]
        assert (await q.config()).shards == 4
        rc = await q.enqueue("k", b"payload", headers={"h": "v"})
        rj = await q.enqueue_json("k", {"n": 1})
        assert [r.offset for r in await q.enqueue_batch([("b", b"1"), ("c", b"2")])] == [2, 3]
        (le,) = await q.claim("w", max=1)
        assert isinstance(le, ordq.aio.Lease)
        assert (le.key, le.payload, le.text, le.headers, le.offset) == ("k", b"payload", "payload", {"h": "v"}, rc.offset)
        assert le.blocking.token == le.token and not le.settled
        assert await le.heartbeat(5.0) >= le.leased_at + 4000
        c = await le.complete(b"result")
        assert c.offset == rc.offset and le.settled
        (lj,) = await q.claim("w", max=1)
        assert lj.offset == rj.offset and lj.json() == {"n": 1}
        out = await lj.fail("no", retryable=False)
        assert out.dead
        assert (await q.get_task(rc.offset)).result == b"result"
        assert [t.offset for t in await q.dlq.list()] == [rj.offset]
        assert [t.offset async for t in q.dlq] == [rj.offset]
        assert (await q.dlq.get(rj.offset)).faults[0].error == "no"
        assert (await q.faults(rj.offset))[0].retryable is False
        s = await q.stats()
        assert (s.done, s.dead, s.unfinished) == (1, 1, 2)
        assert [t.offset for t in await q.pending()] == [2, 3]
        await db.sync()
        with pytest.raises(ordq.NotFound):
            await db.queue("missing")
        with pytest.raises(AttributeError):
            le._q_private  # noqa: B018  (only the lease's fields read through)

    run(body, db_path)


def test_calls_after_close_raise_closed(db_path: Path) -> None:
    async def main() -> None:
        db = await ordq.aio.open(db_path, durability="none")
        q = await jobs(db)
        await db.close()
        assert db.closed
        with pytest.raises(ordq.Closed):
            await q.stats()
        await db.close()  # idempotent

    asyncio.run(main())


def test_a_waiting_claim_does_not_block_the_event_loop(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        assert await q.claim("w", wait=0.5) == []
        assert time.monotonic() - t0 >= 0.45
        t.cancel()
        assert ticks >= 20, "the loop ran only %d ticks while the claim waited" % ticks

    run(body, db_path)


def test_a_cancelled_claim_gives_back_what_it_got(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        claim = asyncio.ensure_future(q.claim("w", wait=3.0))
        await asyncio.sleep(0.2)  # the claim waits in its thread now
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim
        await q.enqueue("k", b"x")  # the still-waiting call leases it...

        async def released() -> bool:
            s = await q.stats()
            return s.totals.released == 1

        await eventually(released)  # ...and gives it back
        s = await q.stats()
        assert (s.ready, s.leased) == (1, 0)

    run(body, db_path)


def test_subscribe_and_complete_batch(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue_batch([("same", b"%d" % i) for i in range(6)] + [("other", b"x")] * 3)
        stop = asyncio.Event()
        got: List[ordq.aio.Lease] = []
        async for le in q.subscribe("w", max=10, wait=0.05, stop=stop):
            got.append(le)
            if len(got) == 2:
                stop.set()
        # One lease per lane: "same" 0, "other" 6; order within claim.
        assert sorted(le.offset for le in got) == [0, 6]
        res = await q.complete_batch([(got[0], b"r0"), got[1]])
        assert all(isinstance(r, ordq.Completion) for r in res)
        with pytest.raises(TypeError):
            await q.complete_batch([got[0].blocking])  # type: ignore[list-item]  # a sync lease
        it = q.subscribe("w", max=10, wait=0.05)
        first = await it.__anext__()
        await it.aclose()  # releases what was claimed but not yielded
        s = await q.stats()
        assert s.leased == 1 and s.totals.released == 1
        await first.complete()
        with pytest.raises(ordq.InvalidArgument):
            q.subscribe("w", wait=0)

    run(body, db_path)


# -- the async worker ---------------------------------------------------------


def test_worker_bounds_concurrency_and_drains(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue_batch([("k%d" % i, b"%d" % i) for i in range(12)])
        now = peak = 0

        async def handler(lease: ordq.aio.Lease) -> bytes:
            nonlocal now, peak
            now += 1
            peak = max(peak, now)
            await asyncio.sleep(0.05)
            now -= 1
            return lease.payload * 2

        w = ordq.aio.Worker(q, handler, concurrency=4, wait=0.1, worker_id="aio-1", drain=True)
        await w.run()
        assert peak == 4
        assert (w.completed, w.retried, w.dead, w.lost, w.errors) == (12, 0, 0, 0, 0)
        t = await q.get_task(5)
        assert (t.result, t.worker) == (b"55", "aio-1")
        assert (await q.stats()).unfinished == 0
        with pytest.raises(RuntimeError):
            await w.run()

    run(body, db_path)


def test_worker_drain_waits_for_a_retry(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db, backoff_initial=0.4, backoff_max=0.4, backoff_jitter=0.0)
        await q.enqueue_batch([("flaky", b"x"), ("ok", b"y")])

        async def handler(lease: ordq.aio.Lease) -> str:
            if lease.key == "flaky" and lease.attempt == 1:
                raise ConnectionError("try again")
            return "done"

        w = ordq.aio.Worker(q, handler, wait=0.1, drain=True)
        t0 = time.monotonic()
        await w.run()
        assert time.monotonic() - t0 >= 0.4
        assert (w.completed, w.retried) == (2, 1)
        assert (await q.stats()).unfinished == 0
        assert [f.error for f in await q.faults(0)] == ["ConnectionError: try again"]

    run(body, db_path)


def test_worker_drain_on_an_empty_queue_returns_at_once(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        t0 = time.monotonic()
        await ordq.aio.Worker(q, lambda le: asyncio.sleep(0), wait=5, drain=True).run()
        assert time.monotonic() - t0 < 1.0

    run(body, db_path)


def test_worker_dead_letters_and_json_handler(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue("bad", b"not json")
        await q.enqueue_json("good", {"n": 21})
        await q.enqueue_json("refused", {"n": -1})

        @ordq.json_handler
        async def handler(obj: Any, lease: ordq.aio.Lease) -> Any:
            if obj["n"] < 0:
                raise ordq.NonRetryable("negative")
            return {"n": obj["n"] * 2}

        w = ordq.aio.Worker(q, handler, wait=0.05, drain=True)
        await w.run()
        assert (w.completed, w.dead, w.retried) == (1, 2, 0)
        assert (await q.get_task(1)).result == b'{"n":42}'
        errors = [(await q.faults(off))[0].error for off in (0, 2)]
        assert errors[0].startswith("NonRetryable: payload is not valid JSON: Expecting value")
        assert errors[1] == "NonRetryable: negative"

    run(body, db_path)


def test_worker_heartbeats_keep_a_short_lease_alive(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue("k", b"slow")

        async def slow(lease: ordq.aio.Lease) -> bytes:
            for _ in range(12):  # 1.2 s of work on a 0.4 s lease
                await asyncio.sleep(0.1)
                await db.sync()  # expire anything overdue right away
                assert not lease.lost
            return b"finished"

        w = ordq.aio.Worker(q, slow, lease=0.4, wait=0.05, drain=True)
        await w.run()
        assert (w.completed, w.lost) == (1, 0)
        assert await q.faults(0) == []

    run(body, db_path)


def test_worker_without_heartbeats_loses_the_lease(db_path: Path) -> None:
    # Control for the test above.
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue("k", b"slow")

        async def slow(lease: ordq.aio.Lease) -> bytes:
            await asyncio.sleep(0.4)
            await db.sync()
            w.stop()
            return b"too late"

        w = ordq.aio.Worker(q, slow, concurrency=1, lease=0.1, heartbeat=60, wait=0.05)
        await w.run()
        assert w.lost == 1 and w.completed == 0
        assert (await q.faults(0))[0].kind == "expired"

    run(body, db_path)


def test_cancellation_lets_running_handlers_finish(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue_batch([("a", b"1"), ("b", b"2"), ("a", b"3")])
        started = asyncio.Event()

        async def handler(lease: ordq.aio.Lease) -> bytes:
            started.set()
            await asyncio.sleep(0.5)
            return b"ok"

        w = ordq.aio.Worker(q, handler, concurrency=2, wait=0.05)
        task = asyncio.ensure_future(w.run())
        await started.wait()
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 >= 0.3  # waited for the handlers
        assert w.completed == 2
        s = await q.stats()
        # The third task (behind "a") was never started; nothing is leased.
        assert (s.done, s.ready, s.leased) == (2, 1, 0)

    run(body, db_path)


def test_cancellation_after_the_grace_releases_running_leases(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue_batch([("a", b"x"), ("b", b"y")])
        cancelled: List[str] = []
        running = 0

        async def handler(lease: ordq.aio.Lease) -> bytes:
            nonlocal running
            running += 1
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(lease.key)
                raise
            return b"never"

        w = ordq.aio.Worker(q, handler, concurrency=2, wait=0.05)
        task = asyncio.ensure_future(w.run(grace=0.2))

        async def both_running() -> bool:
            return running == 2

        await eventually(both_running)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 2.0
        assert sorted(cancelled) == ["a", "b"]
        s = await q.stats()
        assert (s.ready, s.leased, s.totals.released) == (2, 0, 2)
        assert await q.faults(0) == []  # released: the attempt is not counted

    run(body, db_path)


def test_stop_from_a_handler_and_stopping_while_claiming(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)
        await q.enqueue_batch([("k%d" % i, b"x") for i in range(5)])

        async def handler(lease: ordq.aio.Lease) -> bytes:
            w.stop()
            return b"last"

        w = ordq.aio.Worker(q, handler, concurrency=1, wait=0.05)
        await w.run()
        assert w.completed == 1 and (await q.stats()).done == 1

        # An idle worker waiting in a 10 s claim stops at once, and the
        # claim left waiting in its thread leases nothing for good.
        empty = await db.create_queue("empty")
        idle = ordq.aio.Worker(empty, handler, wait=10)
        task = asyncio.ensure_future(idle.run())
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        idle.stop()
        await task
        assert time.monotonic() - t0 < 1.0
        await empty.enqueue("k", b"x")

        async def given_back() -> bool:
            return (await empty.stats()).totals.released == 1

        await eventually(given_back)
        assert idle.completed == 0

    run(body, db_path)


def test_worker_arguments(db_path: Path) -> None:
    async def body(db: ordq.aio.Db) -> None:
        q = await jobs(db)

        async def h(lease: ordq.aio.Lease) -> None:
            return None

        for bad in (dict(concurrency=0), dict(batch=0), dict(wait=0), dict(heartbeat=0)):
            with pytest.raises(ValueError):
                ordq.aio.Worker(q, h, **bad)  # type: ignore[arg-type]
        w = ordq.aio.Worker(q, h)
        assert w.heartbeat_interval == pytest.approx(10.0)  # a third of 30 s
        assert w.worker_id.startswith("py-") and w.concurrency == 10

    run(body, db_path)
    with pytest.raises(ValueError):
        asyncio.run(ordq.aio.open(db_path, max_threads=0))
