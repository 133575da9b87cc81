"""Shared fixtures. The library is the one ``ordq`` finds (``make
test-python`` sets ORDQ_LIBRARY to the release build).

With ``ORDQ_TEST_MODE=broker`` every database the fixtures hand out is
served by its own ``ordq serve`` (binary from ``ORDQ_BIN``, default
target/release/ordq, else target/debug/ordq) on a Unix socket, and the
tests open it by address: the same tests cover remote mode."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

PKG_ROOT = Path(__file__).resolve().parents[1]
REPO = PKG_ROOT.parents[1]
HEADER = REPO / "include" / "ordq.h"

# Test the package in this checkout, not an installed copy.
sys.path.insert(0, str(PKG_ROOT))

import ordq  # noqa: E402


BROKER_MODE = os.environ.get("ORDQ_TEST_MODE", "embedded") == "broker"
if os.environ.get("ORDQ_TEST_MODE", "embedded") not in ("embedded", "broker"):
    raise RuntimeError("ORDQ_TEST_MODE must be 'embedded' or 'broker'")

def local_only(why: str) -> pytest.MarkDecorator:
    """Marks a test about the local database file (file lock, file
    options, paths) that has no remote equivalent: skipped in broker mode."""
    return pytest.mark.skipif(BROKER_MODE, reason="embedded mode only: " + why)


def ordq_bin() -> Path:
    """The ``ordq`` binary the broker mode runs."""
    env = os.environ.get("ORDQ_BIN")
    if env:
        return Path(env)
    for build in ("release", "debug"):
        p = REPO / "target" / build / "ordq"
        if p.exists():
            return p
    raise RuntimeError("no ordq binary: run `cargo build -p ordq-cli` or set ORDQ_BIN")


class Broker:
    """An ``ordq serve`` child process on ``<dir>/s.sock`` serving ``<dir>/q.ordq``."""

    def __init__(self) -> None:
        # Private (0700) directory: the broker refuses group/world-writable ones.
        self.dir = Path(tempfile.mkdtemp(prefix="ordq-py-broker-"))
        os.chmod(self.dir, 0o700)
        self.sock = self.dir / "s.sock"
        self.uri = "unix://%s" % self.sock
        self.proc = subprocess.Popen(
            [str(ordq_bin()), "--db", str(self.dir / "q.ordq"), "serve", "--listen", self.uri],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError("ordq serve exited with %s: %s" % (self.proc.returncode, err))
            if self.sock.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(self.sock))
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("ordq serve did not listen on %s in time" % self.sock)
            time.sleep(0.01)

    def stop(self) -> int:
        """SIGTERMs the broker and returns its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stderr:
                self.proc.stderr.close()
            for p in sorted(self.dir.rglob("*"), reverse=True):
                p.unlink() if not p.is_dir() else p.rmdir()
            self.dir.rmdir()
        return rc


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    """Where the test's database is: a file path, or in broker mode the
    ``unix://`` address of a broker started for the test (stopped after
    it, which must exit 0)."""
    if not BROKER_MODE:
        yield tmp_path / "test.ordq"
        return
    b = Broker()
    try:
        yield b.uri  # type: ignore[misc]
    finally:
        rc = b.stop()
    assert rc == 0, "ordq serve exited with %d" % rc


@pytest.fixture
def db(db_path: Path) -> Iterator[ordq.Db]:
    """A fresh database (durability "none": the tests check behaviour, not
    fsync; a few tests open their own with the default)."""
    d = ordq.open(db_path, durability="none")
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def q(db: ordq.Db) -> ordq.Queue:
    """A fresh queue with 4 shards and fast retries."""
    return db.queue("jobs", create=True, shards=4, backoff_initial=0.01, backoff_max=0.05)


def subprocess_env(**extra: str) -> dict:
    """Environment for a child Python that imports this checkout's ordq."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env
