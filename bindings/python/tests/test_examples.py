"""The example in examples/python runs and keeps per-user order."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, subprocess_env

EXAMPLES = REPO / "examples" / "python"


def run(*args: str) -> str:
    r = subprocess.run(
        [sys.executable, *args], env=subprocess_env(), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_producer_then_worker(tmp_path: Path) -> None:
    db = str(tmp_path / "emails.ordq")
    out = run(str(EXAMPLES / "producer.py"), db, "--users", "10", "--per-user", "3")
    assert "enqueued 30 tasks (0 already there)" in out
    out = run(str(EXAMPLES / "worker.py"), db, "--fail-rate", "0.3")
    assert "every user's e-mails were sent in order: True" in out
    m = re.search(r"\(queue: (\d+) done, (\d+) dead\)", out)
    assert m and int(m.group(1)) + int(m.group(2)) == 30, out  # drained
    assert "key user-13" not in out  # only 10 users
    out = run(str(EXAMPLES / "producer.py"), db, "--users", "20", "--per-user", "2")
    assert "enqueued 20 tasks (20 already there)" in out  # idempotency keys
    out = run(str(EXAMPLES / "worker.py"), db)
    assert "dead letter offset" in out and "key user-13: NonRetryable: invalid address" in out
