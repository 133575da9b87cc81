"""Graceful shutdown of ``Worker.run()`` in a real worker process: SIGINT
(Ctrl-C) and SIGTERM (systemd, Docker, Kubernetes) stop claiming, let the
running handlers (3 s and 5 s) finish and report, and exit 0 with no task
left leased and exact counters; with a grace shorter than the handlers,
what is still running is released, not left leased until expiry; a drain
worker (``drain=True``) stops the same way, leaving the rest queued."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ordq
from conftest import subprocess_env

CHILD = r"""
import sys, time, ordq
db = ordq.open(sys.argv[1])
q = db.queue("jobs")
def handler(lease):
    time.sleep(float(lease.payload))
    return b"ok"
grace = None if sys.argv[2] == "none" else float(sys.argv[2])
w = ordq.Worker(q, handler, concurrency=2, wait=0.1, drain=sys.argv[3] == "drain")
print("ready", flush=True)
w.run(grace=grace)
print("completed %d lost %d" % (w.completed, w.lost), flush=True)
db.close()
"""


def run_child(db_path: Path, sig: int, grace: float | None, drain: bool = False) -> tuple[int, str, float]:
    with ordq.open(db_path) as db:
        q = db.queue("jobs", create=True)
        q.enqueue("a", b"3")
        q.enqueue("b", b"5")
        if drain:
            q.enqueue("a", b"0")  # behind "a" in its lane: not started before the signal
    args = [sys.executable, "-c", CHILD, str(db_path), "none" if grace is None else str(grace)]
    args.append("drain" if drain else "forever")
    p = subprocess.Popen(args, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    sent = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    return p.returncode, out + err, time.monotonic() - sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_lets_running_handlers_finish(db_path: Path, sig: int) -> None:
    rc, out, took = run_child(db_path, sig, None)
    assert rc == 0, out
    assert "completed 2 lost 0" in out, out
    assert took >= 3.0, "run() returned before the 5 s handler finished: %.1f s" % took
    with ordq.open(db_path) as db:
        s = db.queue("jobs").stats()
        assert (s.done, s.leased, s.ready) == (2, 0, 0), s


def test_after_the_grace_running_tasks_are_released(db_path: Path) -> None:
    rc, out, took = run_child(db_path, signal.SIGTERM, 0.5)
    assert rc == 0, out
    assert took < 3.0, "the grace was not kept: %.1f s" % took
    with ordq.open(db_path) as db:
        s = db.queue("jobs").stats()
        # Nothing is left leased: both tasks are back, ready to run.
        assert s.leased == 0 and s.ready + s.done == 2, s


def test_a_signal_stops_a_drain_worker_before_it_drains(db_path: Path) -> None:
    rc, out, took = run_child(db_path, signal.SIGTERM, None, drain=True)
    assert rc == 0, out
    assert "completed 2 lost 0" in out, out
    assert took >= 3.0, "run() returned before the 5 s handler finished: %.1f s" % took
    with ordq.open(db_path) as db:
        s = db.queue("jobs").stats()
        # The third task was never claimed: it waits for the next worker.
        assert (s.done, s.leased, s.ready, s.unfinished) == (2, 0, 1, 1), s
