"""One Db shared by several Python threads."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import ordq


def test_producers_and_consumers_share_one_handle(db: ordq.Db) -> None:
    q = db.queue("shared", create=True, shards=8)
    producers, consumers, keys_per_producer, per_key = 4, 4, 10, 20
    total = producers * keys_per_producer * per_key
    seen: Dict[str, List[int]] = defaultdict(list)
    lock = threading.Lock()
    done = threading.Event()
    errors: List[BaseException] = []
    count = [0]

    def produce(p: int) -> None:
        try:
            for seq in range(per_key):
                if seq % 2:
                    for k in range(keys_per_producer):
                        q.enqueue("p%d-k%d" % (p, k), b"%d" % seq)
                else:
                    q.enqueue_batch(
                        [("p%d-k%d" % (p, k), b"%d" % seq) for k in range(keys_per_producer)]
                    )
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def consume(c: int) -> None:
        try:
            while not done.is_set():
                leases = q.claim("c%d" % c, max=16, wait=0.05)
                with lock:  # record at claim time: lanes serialise claims
                    for le in leases:
                        seen[le.key].append(int(le.payload))
                if c % 2:
                    q.complete_batch(leases)
                else:
                    for le in leases:
                        le.complete()
                with lock:
                    count[0] += len(leases)
                    if count[0] >= total:
                        done.set()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            done.set()

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    threads += [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in threads:
        t.start()
    done.wait(30)
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert count[0] == total
    assert len(seen) == producers * keys_per_producer
    for key, seqs in seen.items():
        assert seqs == list(range(per_key)), key  # per-key order, each once
    s = q.stats()
    assert s.done == total and s.totals.completed == total and s.leased == 0


def test_blocking_claim_releases_the_gil(db: ordq.Db) -> None:
    q = db.queue("gil", create=True)
    got: List[Tuple[float, list]] = []

    def claimer() -> None:
        start = time.monotonic()
        leases = q.claim("w", wait=5)
        got.append((time.monotonic() - start, leases))

    t = threading.Thread(target=claimer)
    t.start()
    time.sleep(0.1)
    # This thread keeps running Python while the other is blocked in C.
    spins = 0
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        spins += 1
    assert spins > 1000
    q.enqueue("k", b"wake up")
    t.join(5)
    (elapsed, leases), = got
    assert [le.payload for le in leases] == [b"wake up"]
    assert elapsed < 2.0  # woken by the enqueue, not by the 5 s wait


def test_close_races_with_calls_in_other_threads(db_path: Path) -> None:
    db = ordq.open(db_path, durability="none")
    q = db.queue("race", create=True)
    stop_reasons: List[str] = []
    started = threading.Barrier(5)

    def hammer(i: int) -> None:
        started.wait()
        try:
            while True:
                q.enqueue("k%d" % i, b"x")
                for le in q.claim("w%d" % i, max=4, wait=0.01):
                    le.complete()
        except ordq.Closed:
            stop_reasons.append("closed")
        except ordq.LeaseLost:  # pragma: no cover - not expected
            stop_reasons.append("lost")

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.3)
    db.close()
    for t in threads:
        t.join(5)
    assert stop_reasons == ["closed"] * 4
    assert db._h is None  # freed after the last call returned
