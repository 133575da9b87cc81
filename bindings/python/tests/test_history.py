"""Verifiable history through the binding: an on-demand checkpoint,
``verify`` and ``audit`` reports (the engine's, as JSON) and their errors,
on a file and (``ORDQ_TEST_MODE=broker``) through a broker while it serves."""

from __future__ import annotations

import pytest

import ordq


def work(q: ordq.Queue) -> None:
    for i in range(20):
        q.enqueue("k%d" % (i % 3), b"p%d" % i)
    # One lease per lane at a time: claim until the queue is drained.
    while True:
        leases = q.claim("w", max=10)
        if not leases:
            return
        for lease in leases:
            lease.complete(b"ok")


def test_checkpoint_verify_and_audit(db: ordq.Db, q: ordq.Queue) -> None:
    work(q)
    info = db.checkpoint()
    assert info["checkpoint_lsn"] == info["next_lsn"] > 0
    r = db.verify()
    assert r["ok"] is True, r["problems"]
    assert r["state_checked"] is True
    assert r["checkpoints"] >= 1
    assert r["unsigned"] == r["checkpoints"]
    assert [x["name"] for x in r["queues"]] == ["jobs"]
    assert r["queues"][0]["log_records"] == 20
    # A public key given: the unsigned checkpoints are problems.
    pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    r = db.verify(pubkey=pub)
    assert r["ok"] is False
    assert {p["class"] for p in r["problems"]} == {"signature"}
    with pytest.raises(TypeError):
        db.verify(pubkey=b"short")
    a = db.audit("jobs")
    assert a["ok"] is True, a["violations"]
    assert a["lane_count"] == 3
    assert sum(lane["done"] for lane in a["lanes"]) == 20
    one = db.audit("jobs", key="k1")
    assert one["ok"] is True and one["lane_count"] == 1
    with pytest.raises(ordq.NotFound):
        db.audit("nope")
    with pytest.raises(ordq.InvalidArgument):
        db.audit("jobs", key="\udcff")
