"""One create-if-missing and one must-exist, with the engine's semantics:
``create_queue(if_not_exists=True)`` and ``open(must_exist=True)``; and a
signing key given at open."""

from pathlib import Path

import pytest

import ordq
from conftest import local_only


def test_create_queue_if_not_exists(db: ordq.Db) -> None:
    db.create_queue("q", if_not_exists=True, shards=4)
    again = db.create_queue("q", if_not_exists=True, shards=4)
    assert again.config.shards == 4
    with pytest.raises(ordq.AlreadyExists, match=r"max_attempts=2 \(exists with 10\)"):
        db.create_queue("q", if_not_exists=True, shards=4, max_attempts=2)
    with pytest.raises(ordq.AlreadyExists):
        db.create_queue("q", shards=4)
    assert db.queues() == ["q"]


@local_only("file options")
def test_must_exist_and_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.ordq"
    with pytest.raises(ordq.NotFound, match="does not exist"):
        ordq.open(path, must_exist=True)
    assert not path.exists()
    with pytest.raises(ordq.InvalidArgument, match="31 bytes"):
        ordq.open(path, signing_key=b"k" * 31)
    assert not path.exists()
    with ordq.open(path, signing_key=bytes(range(32))) as db:
        db.checkpoint()
        r = db.verify()
        assert r["signed"] >= 1 and r["unsigned"] == 0, r
    with ordq.open(path, must_exist=True) as db:
        assert db.verify()["ok"] is True
