"""Shared fixtures. The library is the one ``ordq`` finds (``make
test-python`` sets ORDQ_LIBRARY to the release build)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

PKG_ROOT = Path(__file__).resolve().parents[1]
REPO = PKG_ROOT.parents[1]
HEADER = REPO / "include" / "ordq.h"

# Test the package in this checkout, not an installed copy.
sys.path.insert(0, str(PKG_ROOT))

import ordq  # noqa: E402


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.ordq"


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
