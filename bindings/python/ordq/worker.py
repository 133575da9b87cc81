"""A worker loop: claim -> handler -> complete/fail, with automatic
heartbeats, graceful shutdown and an optional drain-and-exit mode; and
:func:`json_handler`, for handlers that take the payload as JSON."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, TypeVar, Union

from ._core import Duration, Lease, Queue, _json_bytes
from .errors import Closed, Error, LeaseLost, NonRetryable

__all__ = ["Worker", "json_handler"]

log = logging.getLogger("ordq.worker")

Handler = Callable[[Lease], Any]

L = TypeVar("L")


def _result_bytes(rv: Any) -> bytes:
    """A handler's return value as the task's result."""
    if rv is None:
        return b""
    if isinstance(rv, bytes):
        return rv
    if isinstance(rv, str):
        return rv.encode("utf-8")
    if isinstance(rv, (bytearray, memoryview)):
        return bytes(rv)
    raise TypeError(
        "a handler must return bytes, str or None (the task's result), not %s" % type(rv).__name__
    )


def _describe(e: BaseException) -> str:
    """The fault text recorded for a handler's exception."""
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def _retryable(e: BaseException) -> bool:
    """Whether a handler's exception asks for a retry (see :class:`Worker`)."""
    return bool(getattr(e, "retryable", True))


def _default_worker_id() -> str:
    return "py-%s-%d" % (socket.gethostname(), os.getpid())


def _seconds(v: Union[int, float, Any]) -> float:
    total = getattr(v, "total_seconds", None)
    return float(total()) if total is not None else float(v)


def _heartbeat_interval(queue: Queue, lease: Optional[Duration], heartbeat: Optional[float]) -> float:
    """Seconds between heartbeats: ``heartbeat``, else a third of the lease."""
    lease_s = _seconds(lease) if lease is not None else queue.config.lease
    interval = heartbeat if heartbeat is not None else lease_s / 3.0
    if interval <= 0:
        raise ValueError("heartbeat must be > 0")
    return interval


def json_handler(fn: Callable[[Any, L], Any]) -> Callable[[L], Any]:
    """Wraps ``fn(obj, lease)`` into a handler for :class:`Worker` (or, when
    ``fn`` is a coroutine function, for :class:`ordq.aio.Worker`): ``obj``
    is the payload decoded as JSON, and what ``fn`` returns is stored as
    the task's result encoded as JSON (``None``: no result). A payload
    that is not valid JSON (or not UTF-8) fails the task at once, without
    retries (:class:`ordq.NonRetryable`): it is dead-lettered with the
    decode error as its fault, ``fn`` is not called::

        @ordq.json_handler
        def send(mail, lease):
            smtp.send(mail["to"], mail["body"])
            return {"sent": True}

        ordq.Worker(q, send).run()
    """

    def decode(lease: Any) -> Any:
        try:
            return lease.json()
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise NonRetryable("payload is not valid JSON: %s" % e) from e

    def encode(rv: Any) -> Optional[bytes]:
        return None if rv is None else _json_bytes(rv)

    if inspect.iscoroutinefunction(fn):
        afn: Callable[[Any, L], Awaitable[Any]] = fn

        @functools.wraps(fn)
        async def ahandler(lease: L) -> Optional[bytes]:
            return encode(await afn(decode(lease), lease))

        return ahandler

    @functools.wraps(fn)
    def handler(lease: L) -> Optional[bytes]:
        return encode(fn(decode(lease), lease))

    return handler


def _on_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Makes SIGTERM and the first SIGINT call ``stop`` instead of raising
    (main thread only; a second SIGINT raises KeyboardInterrupt as usual);
    answers the undo. An exception raised inside a lock's wait can leave
    the lock held and the worker hung, so the first signal only asks."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    asked: List[bool] = []

    def on_int(_sig: int, _frame: Any) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(True)
        log.info("SIGINT: stopping (again to interrupt)")
        stop()

    prev_term = signal.signal(signal.SIGTERM, lambda _sig, _frame: stop())
    prev_int = signal.signal(signal.SIGINT, on_int)

    def undo() -> None:
        signal.signal(signal.SIGTERM, prev_term)
        signal.signal(signal.SIGINT, prev_int)

    return undo


class _Heartbeats:
    """Heartbeats the leases of running handlers from one thread, each every
    ``interval`` seconds, for :class:`Worker` and :class:`ordq.aio.Worker`.
    A lease found lost gets ``lost = True`` and is heartbeaten no more; an
    unexpected library error is passed to ``on_error``."""

    def __init__(
        self,
        interval: float,
        lease: Optional[Duration],
        worker_id: str,
        on_error: Callable[[], None],
    ) -> None:
        self.interval = interval
        self._lease = lease
        self._worker_id = worker_id
        self._on_error = on_error
        self._lock = threading.Lock()
        self._due: Dict[Lease, float] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Starts the heartbeat thread."""
        self._thread = threading.Thread(target=self._run, name="ordq-heartbeat", daemon=True)
        self._thread.start()

    def add(self, lease: Lease) -> None:
        """Heartbeats ``lease`` from now on (its handler started)."""
        with self._lock:
            self._due[lease] = time.monotonic() + self.interval

    def remove(self, lease: Lease) -> None:
        """Stops heartbeating ``lease`` (its handler ended)."""
        with self._lock:
            self._due.pop(lease, None)

    def leases(self) -> List[Lease]:
        """The leases heartbeaten now."""
        with self._lock:
            return list(self._due)

    def stop(self, join: bool = True) -> None:
        """Ends the thread (and waits for it when ``join``)."""
        self._stop.set()
        t = self._thread
        if join and t is not None and t is not threading.current_thread():
            t.join()

    def _run(self) -> None:
        tick = max(0.005, min(self.interval / 4.0, 1.0))
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                due = [le for le, at in self._due.items() if at <= now]
            for lease in due:
                try:
                    lease.heartbeat(self._lease)
                except LeaseLost:
                    lease.lost = True
                    self.remove(lease)
                    continue
                except Closed:
                    return
                except Error as e:
                    self._on_error()
                    log.error("ordq worker %s: heartbeat failed: %r", self._worker_id, e)
                with self._lock:
                    if lease in self._due:
                        self._due[lease] = time.monotonic() + self.interval


class Worker:
    """Runs ``handler(lease)`` for every task of ``queue`` on ``concurrency``
    threads.

    - The handler's return value (bytes, str or None) becomes the task's
      result: the lease is completed.
    - An exception fails the lease: the task is retried with backoff, or
      dead-lettered at once when the exception is an :class:`ordq.NonRetryable`
      or has a false ``retryable`` attribute (or when its attempts are spent).
    - While a handler runs, its lease is heartbeaten every ``heartbeat``
      seconds (default: a third of the lease), so a handler may run longer
      than the lease. If a heartbeat finds the lease lost, ``lease.lost`` is
      set; the handler's outcome is then refused (:class:`ordq.LeaseLost`,
      counted in ``lost``).
    - A handler may settle the lease itself (``lease.complete(...)``,
      ``lease.fail(...)``, ``lease.release()``); the worker then leaves it.
    - :meth:`stop` lets running handlers finish and report, releases leases
      claimed but not started, and returns when every thread has ended.
    - With ``drain=True`` the worker also ends by itself once the queue is
      drained: a claim found nothing and the queue's stats say nothing is
      unfinished (:attr:`ordq.QueueStats.unfinished` is 0; a running
      handler's task is leased, so it counts until its outcome is
      committed), and its handlers have finished. Until then it keeps
      claiming, so it waits for tasks in retry backoff, delayed tasks, and
      tasks leased by other workers (they may come back when their lease
      expires). A lane held by a dead letter under ``dlq_policy="block"``
      keeps its later tasks unfinished, so a drain worker waits for it
      until the dead letter is redriven or purged. Tasks enqueued while it
      drains may or may not be run by it.

    Example::

        def send(lease):
            smtp.send(lease.key, lease.payload)
            return b"sent"

        ordq.Worker(q, send, concurrency=4).run()              # until stop() or Ctrl-C
        ordq.Worker(q, send, concurrency=4, drain=True).run()  # until the queue is empty

    Args:
        queue: the queue to work on.
        handler: called with each :class:`ordq.Lease`; see
            :func:`ordq.json_handler` for JSON payloads.
        concurrency: handler threads.
        lease: lease duration in seconds (default: the queue's).
        worker_id: recorded with each lease (default ``py-HOST-PID``).
        batch: tasks claimed per claim call by each thread.
        wait: seconds a claim blocks on an idle queue (default 1 s); also
            bounds how long :meth:`stop` takes to notice idle threads.
        heartbeat: seconds between heartbeats of a running lease.
        drain: end once the queue is drained (see above) instead of
            waiting for new tasks.
    """

    def __init__(
        self,
        queue: Queue,
        handler: Handler,
        *,
        concurrency: int = 1,
        lease: Optional[Duration] = None,
        worker_id: Optional[str] = None,
        batch: int = 1,
        wait: Duration = 1.0,
        heartbeat: Optional[float] = None,
        drain: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.lease = lease
        self.worker_id = worker_id or _default_worker_id()
        self.batch = batch
        self.wait = wait
        self.drain = drain
        #: Seconds between heartbeats of one running lease.
        self.heartbeat_interval: float = _heartbeat_interval(queue, lease, heartbeat)
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
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Handler threads still running, and a condition to wait for them
        # on: Thread.join from the main thread can return early after a
        # KeyboardInterrupt (CPython issue 90882), leaving handlers running.
        self._alive = 0
        self._cv = threading.Condition(self._lock)
        self._done = threading.Event()
        self._hb = _Heartbeats(self.heartbeat_interval, lease, self.worker_id, lambda: self._count("errors"))
        self._threads: List[threading.Thread] = []
        self._fatal: Optional[BaseException] = None

    def __repr__(self) -> str:
        return "<ordq.Worker %s on %r x%d>" % (self.worker_id, self.queue.name, self.concurrency)

    # -- lifecycle

    @property
    def running(self) -> bool:
        """True while any handler thread of this worker is running."""
        with self._lock:
            return self._alive > 0

    def start(self) -> "Worker":
        """Starts the threads in the background and returns at once."""
        if self._threads:
            raise RuntimeError("a Worker can be started once")
        self._stop.clear()
        self._hb.start()
        with self._lock:
            self._alive = self.concurrency
        for i in range(self.concurrency):
            t = threading.Thread(target=self._thread, name="ordq-worker-%d" % i, daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def run(self, grace: Optional[float] = None) -> None:
        """Runs until :meth:`stop` is called (from a handler or another
        thread), Ctrl-C (SIGINT) or SIGTERM, or with ``drain=True`` until
        the queue is drained. Then no task is claimed any more, tasks
        claimed but not started are released, running handlers finish and
        report — for up to ``grace`` seconds when given, after which their
        leases are released so the tasks run again at once elsewhere (a
        late outcome is then refused and counted in ``lost``) — and run
        returns. The signals are handled only when run is called from the
        main thread (a second Ctrl-C interrupts at once); the previous
        handlers are restored."""
        self.start()
        restore = _on_signals(self._stop.set)
        try:
            while not self._done.wait(0.2):
                if self._stop.is_set():
                    break
        except KeyboardInterrupt:
            log.info("interrupted: stopping %r", self)
        finally:
            restore()
            self.stop(grace)
            if grace is not None:
                self._release_running()
        if self._fatal is not None:
            raise self._fatal

    def stop(self, timeout: Optional[float] = None) -> None:
        """Asks every thread to stop and waits (up to ``timeout`` seconds)
        for them: running handlers finish and report first. Safe to call
        from a handler (it then does not wait for its own thread)."""
        self._stop.set()
        me = threading.current_thread()
        mine = 1 if me in self._threads else 0
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._alive > mine:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(left)
            idle = self._alive <= mine
        if idle:
            self._hb.stop()

    def _release_running(self) -> None:
        """Releases the leases of handlers still running after the grace."""
        for lease in self._hb.leases():
            if not lease._settled:
                try:
                    lease.release()
                except Error:
                    pass

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- threads

    def _thread(self) -> None:
        try:
            self._loop()
        finally:
            with self._cv:
                self._alive -= 1
                if self._alive == 0:
                    self._done.set()
                    # Every handler has ended (stopped, drained, or the
                    # database closed): nothing is left to heartbeat.
                    self._hb.stop(join=False)
                self._cv.notify_all()

    def _loop(self) -> None:
        q = self.queue
        pause = 0.05
        # Drain mode claims without blocking first, so that an empty queue
        # is noticed at once, and blocks only while the queue is not drained.
        # A running handler holds a lease, so its task is unfinished until
        # its outcome is committed: no thread ends the run under it.
        wait = 0.0 if self.drain else self.wait
        while not self._stop.is_set():
            try:
                leases = q.claim(self.worker_id, self.batch, self.lease, wait)
                if self.drain:
                    if leases:
                        wait = 0.0
                    elif q.stats().unfinished == 0:
                        self._stop.set()
                        return
                    else:
                        wait = self.wait
                pause = 0.05
            except Closed:
                self._stop.set()
                return
            except Error as e:
                self._count("errors")
                log.error("ordq worker %s: claiming failed: %r", self.worker_id, e)
                self._stop.wait(pause)
                pause = min(pause * 2, 2.0)
                continue
            for i, lease in enumerate(leases):
                if self._stop.is_set():
                    for rest in leases[i:]:
                        try:
                            rest.release()
                        except Error:
                            pass
                    return
                self._process(lease)

    def _process(self, lease: Lease) -> None:
        self._hb.add(lease)
        try:
            try:
                result = _result_bytes(self.handler(lease))
            except Exception as e:  # the handler failed: report it
                if not lease._settled:
                    out = lease.fail(_describe(e), retryable=_retryable(e))
                    self._count("dead" if out.dead else "retried")
            except BaseException as e:  # KeyboardInterrupt, SystemExit: stop
                self._fatal = e
                self._stop.set()
                if not lease._settled:
                    lease.release()
            else:
                if not lease._settled:
                    lease.complete(result)
                    self._count("completed")
        except LeaseLost as e:
            self._count("lost")
            log.warning("ordq worker %s: lease of offset %d lost: %s", self.worker_id, lease.offset, e)
        except Closed:
            self._stop.set()
        except Error as e:
            self._count("errors")
            log.error("ordq worker %s: reporting offset %d failed: %r", self.worker_id, lease.offset, e)
        finally:
            self._hb.remove(lease)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
