"""ordq for asyncio: the same API as coroutines, and an async worker.

::

    import ordq.aio

    async def main():
        async with await ordq.aio.open("jobs.ordq") as db:
            q = await db.queue("emails", create=True)
            await q.enqueue_json("user-42", {"to": "a@example.com"})

            async def send(lease):
                await smtp.send(lease.json()["to"])
                return b"sent"

            await ordq.aio.Worker(q, send, concurrency=10, drain=True).run()

Every call runs the blocking call of :mod:`ordq` in a thread of the
database's own thread pool (ctypes releases the GIL around it), so the
event loop never blocks; the semantics are exactly the synchronous API's
(they live in the engine). The objects wrap the synchronous ones, which
they expose as ``.blocking``.

A cancelled :meth:`Queue.claim` whose call already runs cannot be
interrupted: when it returns, the leases it got are released (the attempts
are not counted), so nothing stays leased until expiry.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
from typing import (
    Any,
    AsyncGenerator,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
)

from . import _core
from ._core import Duration, Key, Payload
from .errors import Closed, Error, InvalidArgument, LeaseLost
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
from .worker import (
    _default_worker_id,
    _describe,
    _heartbeat_interval,
    _Heartbeats,
    _result_bytes,
    _retryable,
)

__all__ = ["open", "Db", "Queue", "Lease", "DeadLetters", "Worker"]

log = logging.getLogger("ordq.aio")

T = TypeVar("T")

#: Default size of a database's thread pool (:func:`open`'s ``max_threads``).
DEFAULT_MAX_THREADS = 16


def _release_claimed(cf: "concurrent.futures.Future[List[_core.Lease]]") -> None:
    """Done-callback of a claim whose caller was cancelled: gives back what
    it leased."""
    if cf.cancelled() or cf.exception() is not None:
        return
    for le in cf.result():
        try:
            le.release()
        except Error:
            pass


async def open(  # noqa: A001
    path: Union[str, bytes, "os.PathLike[str]"],
    *,
    max_threads: int = DEFAULT_MAX_THREADS,
    **options: Any,
) -> "Db":
    """Opens the database (or connects to the broker) at ``path``, as
    :func:`ordq.open` does with the same ``options``, and returns an async
    :class:`Db`; use it with ``async with``.

    ``max_threads`` bounds the database's thread pool: calls beyond it
    wait for a free thread. Each call in progress holds a thread, a claim
    for as long as it waits, so give it at least the sum of the workers'
    concurrency plus one per claim loop.
    """
    if max_threads < 1:
        raise ValueError("max_threads must be >= 1")
    pool = concurrent.futures.ThreadPoolExecutor(max_threads, thread_name_prefix="ordq-aio")
    try:
        db = await asyncio.wrap_future(pool.submit(functools.partial(_core.open, path, **options)))
    except BaseException:
        pool.shutdown(wait=False)
        raise
    return Db(db, pool)


class Db:
    """An open database for asyncio (get it from :func:`open`). Its
    coroutines are those of :class:`ordq.Db`."""

    def __init__(self, db: _core.Db, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        #: The synchronous :class:`ordq.Db` this wraps.
        self.blocking = db
        self._pool = pool

    def __repr__(self) -> str:
        return "<ordq.aio.Db %r%s>" % (self.path, " closed" if self.closed else "")

    @property
    def path(self) -> str:
        """The path or address it was opened with."""
        return self.blocking.path

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.blocking.closed

    def _submit(self, fn: Callable[..., T], *args: Any, **kw: Any) -> "concurrent.futures.Future[T]":
        """Starts the blocking ``fn(*args, **kw)`` in the pool
        (:class:`ordq.Closed` once the database is closed)."""
        if self.blocking.closed:
            raise Closed("the database is closed", Closed.status)
        return self._pool.submit(functools.partial(fn, *args, **kw))

    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Runs the blocking ``fn(*args, **kw)`` in the pool and awaits it."""
        return await asyncio.wrap_future(self._submit(fn, *args, **kw))

    async def close(self) -> None:
        """Closes the database (see :meth:`ordq.Db.close`); idempotent.
        Calls still in progress then fail with :class:`ordq.Closed`. The
        close runs on a thread of its own, so that claims waiting in the
        pool do not delay it."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.blocking.close)
        finally:
            self._pool.shutdown(wait=False)

    async def __aenter__(self) -> "Db":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def sync(self) -> None:
        """See :meth:`ordq.Db.sync`."""
        await self._run(self.blocking.sync)

    async def checkpoint(self) -> Dict[str, int]:
        """See :meth:`ordq.Db.checkpoint`."""
        return await self._run(self.blocking.checkpoint)

    async def verify(self, pubkey: Optional[bytes] = None) -> Dict[str, Any]:
        """See :meth:`ordq.Db.verify`."""
        return await self._run(self.blocking.verify, pubkey)

    async def audit(self, queue: str, key: Optional[str] = None) -> Dict[str, Any]:
        """See :meth:`ordq.Db.audit`."""
        return await self._run(self.blocking.audit, queue, key)

    async def create_queue(self, name: str, **config: Any) -> "Queue":
        """See :meth:`ordq.Db.create_queue`."""
        return Queue(self, await self._run(self.blocking.create_queue, name, **config))

    async def queue(self, name: str, *, create: bool = False, **config: Any) -> "Queue":
        """See :meth:`ordq.Db.queue`."""
        return Queue(self, await self._run(self.blocking.queue, name, create=create, **config))

    async def queues(self) -> List[str]:
        """See :meth:`ordq.Db.queues`."""
        return await self._run(self.blocking.queues)

    async def delete_queue(self, name: str) -> None:
        """See :meth:`ordq.Db.delete_queue`."""
        await self._run(self.blocking.delete_queue, name)

    async def complete_batch(
        self, items: Iterable[Union["Lease", Tuple["Lease", Payload]]]
    ) -> List[Union[Completion, Error]]:
        """See :meth:`ordq.Db.complete_batch` (with async leases)."""
        return await self._run(self.blocking.complete_batch, _unwrap(items))


def _unwrap(
    items: Iterable[Union["Lease", Tuple["Lease", Payload]]]
) -> List[Union[_core.Lease, Tuple[_core.Lease, Payload]]]:
    out: List[Union[_core.Lease, Tuple[_core.Lease, Payload]]] = []
    for it in items:
        if type(it) is tuple:
            lease, res = it
            if not isinstance(lease, Lease):
                raise TypeError("complete_batch items are leases or (lease, result) pairs")
            out.append((lease.blocking, res))
        elif isinstance(it, Lease):
            out.append(it.blocking)
        else:
            raise TypeError("complete_batch items are leases or (lease, result) pairs")
    return out


class Queue:
    """A queue for asyncio (get it from :meth:`Db.queue`). Its coroutines
    are those of :class:`ordq.Queue`; ``config`` is a coroutine here."""

    def __init__(self, db: Db, queue: _core.Queue) -> None:
        #: The async database.
        self.db = db
        #: The synchronous :class:`ordq.Queue` this wraps.
        self.blocking = queue
        #: Dead-letter operations of this queue.
        self.dlq = DeadLetters(self)

    def __repr__(self) -> str:
        return "<ordq.aio.Queue %r>" % (self.name,)

    @property
    def name(self) -> str:
        """The queue's name."""
        return self.blocking.name

    async def config(self) -> QueueConfig:
        """See :attr:`ordq.Queue.config`."""
        return await self.db._run(lambda: self.blocking.config)

    async def info(self) -> QueueInfo:
        """See :meth:`ordq.Queue.info`."""
        return await self.db._run(self.blocking.info)

    async def stats(self) -> QueueStats:
        """See :meth:`ordq.Queue.stats`."""
        return await self.db._run(self.blocking.stats)

    async def delete(self) -> None:
        """See :meth:`ordq.Queue.delete`."""
        await self.db._run(self.blocking.delete)

    async def get_task(self, offset: int) -> TaskInfo:
        """See :meth:`ordq.Queue.get_task`."""
        return await self.db._run(self.blocking.get_task, offset)

    async def faults(self, offset: int) -> List[Fault]:
        """See :meth:`ordq.Queue.faults`."""
        return await self.db._run(self.blocking.faults, offset)

    async def pending(self, after: Optional[int] = None, limit: int = 100) -> List[TaskInfo]:
        """See :meth:`ordq.Queue.pending`."""
        return await self.db._run(self.blocking.pending, after, limit)

    async def enqueue(
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
        """See :meth:`ordq.Queue.enqueue`."""
        return await self.db._run(
            self.blocking.enqueue,
            key,
            payload,
            priority=priority,
            delay=delay,
            not_before=not_before,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            headers=headers,
        )

    async def enqueue_json(
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
        """See :meth:`ordq.Queue.enqueue_json`."""
        return await self.db._run(
            self.blocking.enqueue_json,
            key,
            obj,
            priority=priority,
            delay=delay,
            not_before=not_before,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            headers=headers,
        )

    async def enqueue_batch(self, items: Iterable[Union[Tuple[Any, ...], Item]]) -> List[Receipt]:
        """See :meth:`ordq.Queue.enqueue_batch`."""
        return await self.db._run(self.blocking.enqueue_batch, list(items))

    async def claim(
        self,
        worker: str,
        max: int = 1,  # noqa: A002
        lease: Optional[Duration] = None,
        wait: Duration = 0.0,
        shards: Optional[Sequence[int]] = None,
    ) -> List["Lease"]:
        """See :meth:`ordq.Queue.claim`. While it waits, the event loop runs
        on. Cancelled, it leases nothing: a call already in progress
        releases what it got when it returns."""
        cf = self.db._submit(self.blocking.claim, worker, max, lease, wait, shards)
        try:
            leases = await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            cf.add_done_callback(_release_claimed)
            raise
        return [Lease(le, self) for le in leases]

    def subscribe(
        self,
        worker: str,
        *,
        max: int = 10,  # noqa: A002
        lease: Optional[Duration] = None,
        wait: Duration = 1.0,
        shards: Optional[Sequence[int]] = None,
        stop: Optional[asyncio.Event] = None,
    ) -> AsyncGenerator["Lease", None]:
        """Yields leases until ``stop`` is set or the database is closed,
        as :meth:`ordq.Queue.subscribe` does; leases claimed but not yet
        yielded are released when the iterator is closed (``aclose()``, or
        leaving ``async with contextlib.aclosing(q.subscribe(...))``)::

            async for lease in q.subscribe(worker="py-1"):
                await lease.complete(await handle(lease.payload))
        """
        if not wait:
            raise InvalidArgument("subscribe needs wait > 0 (it would spin otherwise)")
        return self._subscribe(worker, max, lease, wait, shards, stop)

    async def _subscribe(
        self,
        worker: str,
        max_: int,
        lease: Optional[Duration],
        wait: Duration,
        shards: Optional[Sequence[int]],
        stop: Optional[asyncio.Event],
    ) -> AsyncGenerator["Lease", None]:
        pending: List[Lease] = []
        try:
            while stop is None or not stop.is_set():
                try:
                    pending = await self.claim(worker, max_, lease, wait, shards)
                except Closed:
                    return
                pending.reverse()
                while pending:
                    if stop is not None and stop.is_set():
                        return
                    yield pending.pop()
        finally:
            if pending:
                await asyncio.gather(*(le._release_quietly() for le in pending))

    async def complete_batch(
        self, items: Iterable[Union["Lease", Tuple["Lease", Payload]]]
    ) -> List[Union[Completion, Error]]:
        """See :meth:`ordq.Queue.complete_batch` (with async leases)."""
        return await self.db.complete_batch(items)


class Lease:
    """A claimed task for asyncio: the attributes of :class:`ordq.Lease`
    (``key``, ``payload``, ``headers``, ``id``, ``offset``, ``attempt``,
    ``token``, ``lost``, ``settled``, ...), :meth:`json`, :attr:`text`, and
    its calls as coroutines."""

    __slots__ = ("blocking", "_q")

    #: The attributes read through from :class:`ordq.Lease`.
    _FIELDS = frozenset(
        (
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
            "lost",
            "token",
            "text",
            "settled",
        )
    )

    # Declared for type checkers; read from the synchronous lease.
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
    lost: bool
    token: Token
    text: str
    settled: bool

    def __init__(self, lease: _core.Lease, queue: Queue) -> None:
        #: The synchronous :class:`ordq.Lease` this wraps.
        self.blocking = lease
        self._q = queue

    def __getattr__(self, name: str) -> Any:
        if name in Lease._FIELDS:
            return getattr(self.blocking, name)
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    def __repr__(self) -> str:
        return "<ordq.aio.Lease %s offset=%d key=%r attempt=%d/%d>" % (
            self.blocking.queue,
            self.blocking.offset,
            self.blocking.key,
            self.blocking.attempt,
            self.blocking.max_attempts,
        )

    def json(self) -> Any:
        """See :meth:`ordq.Lease.json`."""
        return self.blocking.json()

    async def complete(self, result: Payload = b"") -> Completion:
        """See :meth:`ordq.Lease.complete`."""
        return await self._q.db._run(self.blocking.complete, result)

    async def fail(self, error: Union[str, BaseException] = "", retryable: bool = True) -> FailOutcome:
        """See :meth:`ordq.Lease.fail`."""
        return await self._q.db._run(self.blocking.fail, error, retryable)

    async def heartbeat(self, lease: Optional[Duration] = None) -> int:
        """See :meth:`ordq.Lease.heartbeat`."""
        return await self._q.db._run(self.blocking.heartbeat, lease)

    async def start(self) -> None:
        """See :meth:`ordq.Lease.start`."""
        await self._q.db._run(self.blocking.start)

    async def release(self) -> None:
        """See :meth:`ordq.Lease.release`."""
        await self._q.db._run(self.blocking.release)

    async def _release_quietly(self) -> None:
        """Releases the lease unless settled, ignoring library errors (it
        may have been lost or closed meanwhile)."""
        if not self.blocking.settled:
            try:
                await self.release()
            except Error:
                pass


class DeadLetters:
    """Dead-letter operations of one queue for asyncio (``queue.dlq``);
    ``async for`` yields every dead letter in offset order."""

    __slots__ = ("_q",)

    def __init__(self, queue: Queue) -> None:
        self._q = queue

    async def list(self, after: Optional[int] = None, limit: int = 100) -> List[TaskInfo]:  # noqa: A003
        """See :meth:`ordq.DeadLetters.list`."""
        return await self._q.db._run(self._q.blocking.dlq.list, after, limit)

    async def __aiter__(self) -> AsyncGenerator[TaskInfo, None]:
        after = None
        while True:
            page = await self.list(after, 100)
            for t in page:
                yield t
            if len(page) < 100:
                return
            after = page[-1].offset

    async def get(self, offset: int) -> DeadLetter:
        """See :meth:`ordq.DeadLetters.get`."""
        return await self._q.db._run(self._q.blocking.dlq.get, offset)

    async def redrive(self, offset: int, mode: str = "head") -> Receipt:
        """See :meth:`ordq.DeadLetters.redrive`."""
        return await self._q.db._run(self._q.blocking.dlq.redrive, offset, mode)

    async def purge(self, offset: int) -> int:
        """See :meth:`ordq.DeadLetters.purge`."""
        return await self._q.db._run(self._q.blocking.dlq.purge, offset)

    async def purge_all(self) -> int:
        """See :meth:`ordq.DeadLetters.purge_all`."""
        return await self._q.db._run(self._q.blocking.dlq.purge_all)


AsyncHandler = Callable[[Lease], Awaitable[Any]]


class Worker:
    """Runs the coroutine ``handler(lease)`` for every task of ``queue``,
    up to ``concurrency`` at once, with the outcomes of
    :class:`ordq.Worker`: the return value (bytes, str or None) is the
    task's result; an exception fails the attempt (retried with backoff;
    dead-lettered at once for :class:`ordq.NonRetryable` or a false
    ``retryable`` attribute); a handler may settle its lease itself.
    Running leases are heartbeaten by the same heartbeat thread as the
    synchronous worker's, every ``heartbeat`` seconds (a third of the lease
    by default); a lease found lost gets ``lease.lost`` set.

    :meth:`run` runs until :meth:`stop` is called, the task running it is
    cancelled, or with ``drain=True`` until the queue is drained (as for
    :class:`ordq.Worker`: a claim found nothing and
    :attr:`ordq.QueueStats.unfinished` is 0 — a running handler's task is
    leased, so it counts — and the handlers have finished; so it waits for
    retries in backoff and for tasks leased by other workers, and a lane
    blocked by a dead letter under ``dlq_policy="block"`` keeps it waiting).
    On a stop or a cancellation, claiming stops (a claim in progress gives
    back what it gets), running handlers finish and report, for up to
    ``grace`` seconds when given; then they are cancelled and their leases
    released. SIGTERM is not handled for you: add
    ``loop.add_signal_handler(signal.SIGTERM, worker.stop)``
    (``asyncio.run`` already turns Ctrl-C into a cancellation).

    Args:
        queue: an async :class:`Queue`.
        handler: a coroutine function called with each async :class:`Lease`
            (see :func:`ordq.json_handler` for JSON payloads).
        concurrency: most handlers running at once.
        lease: lease duration in seconds (default: the queue's).
        worker_id: recorded with each lease (default ``py-HOST-PID``).
        batch: most tasks per claim (default: as many as there are free
            handler slots).
        wait: seconds a claim blocks on an idle queue (default 1 s).
        heartbeat: seconds between heartbeats of a running lease.
        drain: end once the queue is drained instead of waiting for tasks.
    """

    def __init__(
        self,
        queue: Queue,
        handler: AsyncHandler,
        *,
        concurrency: int = 10,
        lease: Optional[Duration] = None,
        worker_id: Optional[str] = None,
        batch: Optional[int] = None,
        wait: Duration = 1.0,
        heartbeat: Optional[float] = None,
        drain: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if batch is not None and batch < 1:
            raise ValueError("batch must be >= 1")
        if not wait:
            raise ValueError("wait must be > 0 (the claim loop would spin otherwise)")
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.lease = lease
        self.worker_id = worker_id or _default_worker_id()
        self.batch = batch
        self.wait = wait
        self.drain = drain
        #: Seconds between heartbeats of one running lease.
        self.heartbeat_interval: float = _heartbeat_interval(queue.blocking, lease, heartbeat)
        #: Tasks completed.
        self.completed = 0
        #: Tasks failed and scheduled for a retry.
        self.retried = 0
        #: Tasks failed and dead-lettered.
        self.dead = 0
        #: Outcomes refused because the lease was lost.
        self.lost = 0
        #: Unexpected errors from the library (logged).
        self.errors = 0
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._stop: Optional[asyncio.Event] = None
        self._stop_asked = False
        self._ran = False

    def __repr__(self) -> str:
        return "<ordq.aio.Worker %s on %r x%d>" % (self.worker_id, self.queue.name, self.concurrency)

    def stop(self) -> None:
        """Asks :meth:`run` to stop (from a handler, or any code on the
        worker's event loop): it returns once the running handlers have
        finished (within its ``grace``)."""
        self._stop_asked = True
        if self._stop is not None:
            self._stop.set()

    async def run(self, grace: Optional[float] = None) -> None:
        """Works the queue until :meth:`stop`, a cancellation, or (with
        ``drain``) the queue is drained; see the class. Handlers still
        running ``grace`` seconds after the stop (when given) are cancelled
        and their leases released. A cancellation is re-raised after the
        shutdown."""
        if self._ran:
            raise RuntimeError("a Worker can be run once")
        self._ran = True
        self._stop = asyncio.Event()
        if self._stop_asked:
            self._stop.set()
        loop = asyncio.get_running_loop()

        def on_error() -> None:  # in the heartbeat thread
            loop.call_soon_threadsafe(self._count_error)

        hb = _Heartbeats(self.heartbeat_interval, self.lease, self.worker_id, on_error)
        hb.start()
        try:
            try:
                await self._claim_loop(hb)
            finally:
                await self._shutdown(grace)
        finally:
            hb.stop(join=False)

    def _count_error(self) -> None:
        # A heartbeat error, passed on from the heartbeat thread to the loop.
        self.errors += 1

    async def _claim_loop(self, hb: _Heartbeats) -> None:
        assert self._stop is not None
        stop_wait = asyncio.ensure_future(self._stop.wait())
        # The claim in progress, until its leases are handed to handlers.
        claim: "Optional[asyncio.Future[List[Lease]]]" = None
        try:
            # As in ordq.Worker: drain mode claims without blocking first.
            wait: Duration = 0.0 if self.drain else self.wait
            while not self._stop.is_set():
                free = self.concurrency - len(self._tasks)
                if free == 0:
                    await asyncio.wait(self._tasks | {stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                n = free if self.batch is None else min(self.batch, free)
                claim = asyncio.ensure_future(self.queue.claim(self.worker_id, n, self.lease, wait))
                await asyncio.wait({claim, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not claim.done():  # stopped while claiming
                    return
                try:
                    leases = claim.result()
                    claim = None
                except Closed:
                    return
                except Error as e:
                    self.errors += 1
                    log.error("ordq worker %s: claiming failed: %r", self.worker_id, e)
                    await asyncio.wait({stop_wait}, timeout=0.5)
                    continue
                if self.drain:
                    if leases:
                        wait = 0.0
                    elif await self._queue_drained():
                        return
                    else:
                        wait = self.wait
                for lease in leases:
                    task = asyncio.ensure_future(self._process(lease, hb))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            stop_wait.cancel()
            if claim is not None:
                # Stopped or cancelled while claiming: give back what it got.
                if claim.done():
                    if not claim.cancelled() and claim.exception() is None:
                        await asyncio.gather(*(le._release_quietly() for le in claim.result()))
                else:
                    claim.cancel()
                    await asyncio.gather(claim, return_exceptions=True)

    async def _queue_drained(self) -> bool:
        try:
            return (await self.queue.stats()).unfinished == 0
        except Error as e:
            self.errors += 1
            log.error("ordq worker %s: stats failed: %r", self.worker_id, e)
            return False

    async def _shutdown(self, grace: Optional[float]) -> None:
        """Waits for the running handlers (up to ``grace`` seconds), then
        cancels those left and releases their leases. A cancellation of
        run() while it waits cuts the grace short."""
        tasks = set(self._tasks)
        if not tasks:
            return
        try:
            await asyncio.wait(tasks, timeout=grace)
        finally:
            late = [t for t in tasks if not t.done()]
            for t in late:
                t.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)

    async def _process(self, lease: Lease, hb: _Heartbeats) -> None:
        hb.add(lease.blocking)
        try:
            try:
                result = _result_bytes(await self.handler(lease))
            except asyncio.CancelledError:  # cancelled after the grace
                await lease._release_quietly()
                raise
            except Exception as e:  # the handler failed: report it
                if not lease.settled:
                    out = await lease.fail(_describe(e), retryable=_retryable(e))
                    if out.dead:
                        self.dead += 1
                    else:
                        self.retried += 1
            else:
                if not lease.settled:
                    await lease.complete(result)
                    self.completed += 1
        except LeaseLost as e:
            self.lost += 1
            log.warning("ordq worker %s: lease of offset %d lost: %s", self.worker_id, lease.offset, e)
        except Closed:
            self.stop()
        except Error as e:
            self.errors += 1
            log.error("ordq worker %s: reporting offset %d failed: %r", self.worker_id, lease.offset, e)
        finally:
            hb.remove(lease.blocking)
