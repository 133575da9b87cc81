"""The Pythonic API: database, queues, enqueue, claim, lease operations,
task info, stats and dead letters."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import ordq
from conftest import local_only


def now_ms() -> int:
    return int(time.time() * 1000)


# -- database and queues ---------------------------------------------------


def test_open_as_context_manager_closes(db_path: Path) -> None:
    with ordq.open(db_path) as db:
        assert not db.closed
        db.queue("a", create=True)
    assert db.closed
    with pytest.raises(ordq.Closed):
        db.queues()
    db.close()  # idempotent
    # The file was released and kept its data.
    with ordq.open(str(db_path)) as db2:
        assert db2.queues() == ["a"]


def test_open_file_uri_and_options(tmp_path: Path) -> None:
    p = tmp_path / "u.ordq"
    with ordq.open(
        "file://%s" % p,
        durability="none",
        max_payload=10,
        max_result=5,
        max_key=8,
        max_headers=100,
        retain_done=3600,
        max_batch=64,
        cache_size=1 << 20,
    ) as db:
        q = db.queue("q", create=True)
        with pytest.raises(ordq.TooLarge):
            q.enqueue("k", b"x" * 11)
        with pytest.raises(ordq.TooLarge):
            q.enqueue("k" * 9, b"x")
        q.enqueue("k" * 8, b"x" * 10)
        (le,) = q.claim("w")
        with pytest.raises(ordq.TooLarge):
            le.complete(b"123456")
        le.complete(b"12345")
    assert p.exists()


def test_queue_create_get_list_delete(db: ordq.Db) -> None:
    q = db.create_queue(
        "emails",
        shards=2,
        ordering="shard",
        max_attempts=3,
        dlq_policy="block",
        lease=5,
        backoff_initial=0.5,
        backoff_max=timedelta(seconds=60),
        backoff_multiplier=3,
        backoff_jitter=0.0,
    )
    assert q.name == "emails" and repr(q) == "<ordq.Queue 'emails'>"
    assert q.config == ordq.QueueConfig(
        shards=2,
        ordering="shard",
        max_attempts=3,
        dlq_policy="block",
        lease=5.0,
        backoff_initial=0.5,
        backoff_max=60.0,
        backoff_multiplier=3.0,
        backoff_jitter=0.0,
    )
    info = q.info()
    assert info.name == "emails" and info.id >= 1 and abs(info.created_at - now_ms()) < 60_000
    assert info.config == q.config
    db.create_queue("alpha")
    assert db.queues() == ["alpha", "emails"]
    assert db.queue("emails") == q
    assert db.queue("alpha").config == ordq.QueueConfig()  # the defaults
    q.delete()
    assert db.queues() == ["alpha"]
    with pytest.raises(ordq.NotFound):
        db.queue("emails")
    with pytest.raises(ordq.NotFound):
        db.delete_queue("emails")


def test_queue_create_true_is_idempotent_but_checks_config(db: ordq.Db) -> None:
    q1 = db.queue("q", create=True, shards=8, ordering="global")
    q2 = db.queue("q", create=True, shards=8)
    assert q1 == q2 and q2.config.ordering == "global"
    assert db.queue("q", create=True).config.shards == 8
    with pytest.raises(ordq.AlreadyExists) as e:
        db.queue("q", create=True, shards=4)
    assert "shards=4 (exists with 8)" in e.value.message
    with pytest.raises(ordq.AlreadyExists):
        db.create_queue("q")
    with pytest.raises(TypeError):
        db.queue("q", shards=4)  # options without create=True
    with pytest.raises(TypeError):
        db.queue("z", create=True, colour="red")


def test_sync(db: ordq.Db, q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    db.sync()
    assert q.stats().ready == 1


# -- enqueue ---------------------------------------------------------------


def test_enqueue_receipt_and_payload_types(q: ordq.Queue) -> None:
    r0 = q.enqueue("user-1", b"bytes")
    r1 = q.enqueue("user-2", "text é")
    r2 = q.enqueue(b"user-3", bytearray(b"ba"))
    r3 = q.enqueue("user-4")
    assert [r.offset for r in (r0, r1, r2, r3)] == [0, 1, 2, 3]
    assert all(len(r.id) == 32 and not r.duplicate for r in (r0, r1, r2, r3))
    assert all(0 <= r.shard < 4 for r in (r0, r1, r2, r3))
    assert q.get_task(1).payload == "text é".encode()
    assert q.get_task(2).payload == b"ba" and q.get_task(2).key == "user-3"
    assert q.get_task(3).payload == b""


def test_enqueue_options(q: ordq.Queue) -> None:
    r = q.enqueue(
        "k",
        b"p",
        priority=-5,
        max_attempts=2,
        idempotency_key="idem-1",
        headers={"traceparent": "00-abc-01", "tenant": "ümlaut"},
    )
    t = q.get_task(r.offset)
    assert t.priority == -5 and t.max_attempts == 2
    assert t.idempotency_key == "idem-1"
    assert t.headers == {"traceparent": "00-abc-01", "tenant": "ümlaut"}
    again = q.enqueue("k", b"other", idempotency_key="idem-1")
    assert again.duplicate and again.offset == r.offset and again.id == r.id
    assert q.stats().totals.enqueued == 1


def test_priority_orders_claims(q: ordq.Queue) -> None:
    q.enqueue("a", b"low", priority=1)
    q.enqueue("b", b"high", priority=10)
    q.enqueue("c", b"mid", priority=5)
    got = q.claim("w", max=3)
    assert [le.payload for le in got] == [b"high", b"mid", b"low"]


def test_delay_and_not_before(q: ordq.Queue) -> None:
    before = now_ms()
    r1 = q.enqueue("a", b"x", delay=60)
    r2 = q.enqueue("b", b"x", not_before=datetime.now(timezone.utc) + timedelta(hours=1))
    r3 = q.enqueue("c", b"x", not_before=now_ms() + 120_000)
    r4 = q.enqueue("d", b"x", delay=timedelta(milliseconds=1))
    assert q.get_task(r1.offset).not_before >= before + 60_000
    assert q.get_task(r2.offset).not_before >= before + 3_600_000 - 1000
    assert q.get_task(r3.offset).not_before >= before + 120_000
    time.sleep(0.01)
    got = q.claim("w", max=10)
    assert [le.offset for le in got] == [r4.offset]


def test_enqueue_batch_forms_and_order(q: ordq.Queue) -> None:
    rs = q.enqueue_batch(
        [
            ("k1", b"a"),
            ("k2", "b", {"priority": 3, "headers": {"h": "v"}}),
            ordq.Item("k3", b"c", idempotency_key="i3", max_attempts=4),
            ordq.Item(b"k4"),
        ]
    )
    assert [r.offset for r in rs] == [0, 1, 2, 3]
    assert q.get_task(1).priority == 3 and q.get_task(1).headers == {"h": "v"}
    assert q.get_task(2).idempotency_key == "i3" and q.get_task(2).max_attempts == 4
    assert q.get_task(3).key == "k4" and q.get_task(3).payload == b""
    dup = q.enqueue_batch([ordq.Item("k3", b"zzz", idempotency_key="i3")])
    assert dup[0].duplicate and dup[0].offset == 2
    assert q.enqueue_batch([]) == []
    rs = q.enqueue_batch(("g%d" % i, b"x") for i in range(250))  # any iterable
    assert [r.offset for r in rs] == list(range(4, 254))


def test_enqueue_batch_is_all_or_nothing(q: ordq.Queue) -> None:
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue_batch([("ok", b"x"), (b"\xff\xfe", b"bad key")])
    with pytest.raises(ordq.InvalidArgument):
        q.enqueue_batch([("ok", b"x"), ("k", b"x", {"priority": 1 << 40})])
    with pytest.raises(TypeError):
        q.enqueue_batch([("only-key",)])
    with pytest.raises(TypeError):
        q.enqueue_batch(["not a tuple"])
    assert q.stats().next_offset == 0


# -- claim and leases ------------------------------------------------------


def test_claim_returns_complete_leases(q: ordq.Queue) -> None:
    r = q.enqueue("user-42", b"\x00payload\xff", priority=2, headers={"b": "2", "a": "1"})
    before = now_ms()
    (le,) = q.claim(worker="py-1", max=10, lease=30.0, wait=0.5)
    assert le.key == "user-42" and le.payload == b"\x00payload\xff"
    assert le.headers == {"a": "1", "b": "2"}
    assert list(le.headers) == ["a", "b"]  # sorted by name
    assert le.id == r.id and le.offset == r.offset and le.shard == r.shard
    assert le.queue == "jobs" and le.worker == "py-1"
    assert le.priority == 2 and le.attempt == 1 and le.max_attempts == 10
    assert le.enqueued_at <= le.leased_at and abs(le.leased_at - before) < 5_000
    assert 29_000 <= le.expires_at - le.leased_at <= 30_000
    assert le.token.offset == le.offset and le.token.fence >= 1
    assert not le.settled and not le.lost
    assert "offset=0" in repr(le)
    with pytest.raises(UnicodeDecodeError):
        le.text
    with pytest.raises(TypeError):
        ordq.Lease()


def test_keys_with_nul_bytes_round_trip(q: ordq.Queue) -> None:
    q.enqueue("a\x00b", b"x")
    (le,) = q.claim("w")
    assert le.key == "a\x00b"


def test_one_task_per_lane_in_flight(q: ordq.Queue) -> None:
    q.enqueue("same", b"1")
    q.enqueue("same", b"2")
    q.enqueue("other", b"3")
    got = q.claim("w", max=10)
    assert sorted(le.payload for le in got) == [b"1", b"3"]
    assert q.claim("w", max=10) == []
    first = next(le for le in got if le.payload == b"1")
    first.complete(b"done")
    (second,) = q.claim("w", max=10)
    assert second.payload == b"2"


def test_claim_wait_returns_empty_after_the_wait(q: ordq.Queue) -> None:
    t = time.monotonic()
    assert q.claim("w", wait=0.2) == []
    assert time.monotonic() - t >= 0.15


def test_claim_from_shards(q: ordq.Queue) -> None:
    rs = q.enqueue_batch([("key-%d" % i, b"x") for i in range(40)])
    shard = rs[0].shard
    got = q.claim("w", max=100, shards=[shard])
    assert got and all(le.shard == shard for le in got)
    assert len(got) == sum(1 for r in rs if r.shard == shard)
    with pytest.raises(ordq.InvalidArgument):
        q.claim("w", shards=[99])


def test_complete_and_duplicate_complete(q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    (le,) = q.claim("w")
    c = le.complete("résultat")
    assert le.settled and not c.duplicate and c.offset == le.offset
    again = le.complete(b"ignored")
    assert again.duplicate and again.committed_at == c.committed_at
    t = q.get_task(le.offset)
    assert t.state == "done" and t.result == "résultat".encode() and t.worker == "w"


def test_fail_retries_then_dead_letters(q: ordq.Queue) -> None:
    q.enqueue("k", b"x", max_attempts=2)
    (le,) = q.claim("w")
    out = le.fail("smtp timeout")
    assert not out.dead and out.attempt == 1 and out.not_before > 0
    assert q.get_task(le.offset).state == "retry_wait"
    time.sleep(0.06)
    (le2,) = q.claim("w", wait=1.0)
    assert le2.attempt == 2 and le2.offset == le.offset
    out2 = le2.fail(RuntimeError("still down"))
    assert out2.dead and out2.attempt == 2 and out2.not_before == 0
    faults = q.faults(le.offset)
    assert [(f.attempt, f.kind, f.error, f.retryable, f.worker) for f in faults] == [
        (1, "failed", "smtp timeout", True, "w"),
        (2, "failed", "RuntimeError: still down", True, "w"),
    ]


def test_fail_not_retryable_dead_letters_at_once(q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    (le,) = q.claim("w")
    out = le.fail("bad input", retryable=False)
    assert out.dead and out.attempt == 1
    assert q.get_task(le.offset).state == "dead"


def test_release_does_not_count_an_attempt(q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    (le,) = q.claim("w")
    le.release()
    assert le.settled
    (le2,) = q.claim("w")
    assert le2.attempt == 1 and le2.offset == le.offset
    assert q.stats().totals.released == 1
    with pytest.raises(ordq.LeaseLost):
        le.complete()


def test_heartbeat_and_start(q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    (le,) = q.claim("w", lease=1.0)
    first = le.expires_at
    new = le.heartbeat(120)
    assert new == le.expires_at and new >= first + 100_000
    assert le.heartbeat() <= now_ms() + 31_000  # the queue's default lease
    le.start()
    t = q.get_task(le.offset)
    assert t.state == "leased" and t.started_at > 0 and t.lease_expires_at == le.expires_at


def test_expired_lease_is_lost(db: ordq.Db, q: ordq.Queue) -> None:
    q.enqueue("k", b"x")
    (le,) = q.claim("w", lease=0.05)
    time.sleep(0.1)
    db.sync()  # runs due timers
    with pytest.raises(ordq.LeaseLost):
        le.complete(b"late")
    with pytest.raises(ordq.LeaseLost):
        le.heartbeat()
    (le2,) = q.claim("w2")
    assert le2.attempt == 2
    (f,) = q.faults(le.offset)
    assert f.kind == "expired" and f.worker == "w"
    # The refused complete is a rollback; the refused heartbeat is not.
    assert q.stats().totals.rollbacks == 1


def test_complete_batch_reports_each_item(q: ordq.Queue) -> None:
    q.enqueue_batch([("k%d" % i, b"x") for i in range(5)])
    leases = q.claim("w", max=5)
    stale = leases[4]
    stale.release()
    out = q.complete_batch([leases[0], (leases[1], b"r1"), (leases[2], "r2"), leases[3], stale])
    assert [type(o) for o in out[:4]] == [ordq.Completion] * 4
    assert isinstance(out[4], ordq.LeaseLost) and out[4].code == 5
    assert "item 4" in out[4].message
    assert [o.offset for o in out[:4]] == [le.offset for le in leases[:4]]
    assert q.get_task(leases[1].offset).result == b"r1"
    assert q.get_task(leases[2].offset).result == b"r2"
    assert all(le.settled for le in leases[:4])
    assert q.complete_batch([]) == []
    with pytest.raises(TypeError):
        q.complete_batch(["nope"])


@local_only("max_result is a file option; a broker applies its own")
def test_complete_batch_too_large_result_fails_whole_call(db_path: Path) -> None:
    with ordq.open(db_path, durability="none", max_result=4) as db:
        q = db.queue("q", create=True)
        q.enqueue_batch([("a", b""), ("b", b"")])
        a, b = q.claim("w", max=2)
        with pytest.raises(ordq.TooLarge):
            q.complete_batch([(a, b"ok"), (b, b"too long")])
        assert q.stats().done == 0


# -- stats, tasks, dead letters -------------------------------------------


def test_stats(q: ordq.Queue) -> None:
    q.enqueue_batch([("k%d" % i, b"x") for i in range(3)])
    a, b = q.claim("w", max=2)
    a.complete()
    b.fail("x", retryable=False)
    s = q.stats()
    assert (s.queue, s.ready, s.leased, s.retry_wait, s.done, s.dead) == ("jobs", 1, 0, 0, 1, 1)
    assert s.next_offset == 3 and len(s.shards) == 4
    assert sum(sh.pending for sh in s.shards) == 1
    assert s.totals.enqueued == 3 and s.totals.completed == 1
    assert s.totals.dead_lettered == 1 and s.totals.failed == 1


def test_get_task_unknown_offset(q: ordq.Queue) -> None:
    with pytest.raises(ordq.NotFound):
        q.get_task(12345)
    with pytest.raises(ordq.InvalidArgument):
        q.get_task(-1)


def dead_letters(q: ordq.Queue, n: int) -> list:
    q.enqueue_batch([("dead-%d" % i, b"p%d" % i) for i in range(n)])
    out = []
    for le in q.claim("w", max=n):
        le.fail("boom", retryable=False)
        out.append(le.offset)
    return out


def test_pending_lists_unfinished_tasks(db: ordq.Db) -> None:
    q = db.queue(
        "pend",
        create=True,
        ordering="none",
        max_attempts=3,
        backoff_initial=600,
        backoff_max=600,
        backoff_jitter=0.0,
    )
    assert q.pending() == []
    q.enqueue_batch([("k%d" % i, b"p%d" % i) for i in range(4)])
    leases = {le.offset: le for le in q.claim("w", max=4)}
    assert sorted(leases) == [0, 1, 2, 3]
    # 0 done, 1 leased, 2 waiting for its retry, 3 dead; then 4 ready and
    # 5 delayed.
    leases[0].complete(b"ok")
    assert not leases[2].fail("again", retryable=True).dead
    assert leases[3].fail("never", retryable=False).dead
    q.enqueue("k4", b"p4")
    q.enqueue("k5", b"p5", delay=3600)
    tasks = q.pending()
    assert [t.offset for t in tasks] == [1, 2, 4, 5]
    assert [t.state for t in tasks] == ["leased", "retry_wait", "ready", "ready"]
    assert tasks[0].worker == "w" and tasks[1].attempt == 1
    assert tasks[2].key == "k4" and tasks[2].payload == b"p4"
    assert tasks[3].not_before > time.time() * 1000 + 3000 * 1000
    # Paging.
    assert [t.offset for t in q.pending(after=1, limit=2)] == [2, 4]
    assert [t.offset for t in q.pending(limit=1)] == [1]
    assert q.pending(after=5) == []
    assert q.pending(limit=0) == []
    # Listing leased nothing: 4 is still the one claimable task.
    (le,) = q.claim("w2", max=10)
    assert le.offset == 4
    le.complete()
    leases[1].complete()
    assert [t.offset for t in q.pending()] == [2, 5]
    with pytest.raises(ordq.InvalidArgument):
        q.pending(after=-1)
    with pytest.raises(ordq.InvalidArgument):
        q.pending(limit=-1)
    gone = db.queue("gone", create=True)
    gone.delete()
    with pytest.raises(ordq.NotFound):
        gone.pending()


def test_dlq_list_get_iterate(q: ordq.Queue) -> None:
    offs = dead_letters(q, 5)
    assert [t.offset for t in q.dlq.list()] == offs
    assert [t.offset for t in q.dlq.list(after=offs[1], limit=2)] == offs[2:4]
    assert [t.offset for t in q.dlq] == offs
    dl = q.dlq.get(offs[0])
    assert dl.task.state == "dead" and dl.task.payload == b"p0"
    assert [(f.kind, f.error, f.retryable) for f in dl.faults] == [("failed", "boom", False)]
    q.enqueue("alive", b"x")
    with pytest.raises(ordq.NotFound):
        q.dlq.get(5)


def test_dlq_iterates_past_one_page(q: ordq.Queue) -> None:
    offs = dead_letters(q, 130)
    assert [t.offset for t in q.dlq] == offs


def test_dlq_redrive_head_and_new_offset(q: ordq.Queue) -> None:
    a, b = dead_letters(q, 2)
    r = q.dlq.redrive(a)  # head
    assert r.offset == a
    (le,) = q.claim("w")
    assert le.offset == a and le.attempt == 1
    r2 = q.dlq.redrive(b, mode="new_offset")
    assert r2.offset == 2
    assert q.get_task(b).redriven_to == 2 and q.get_task(2).redriven_from == b
    with pytest.raises(ordq.InvalidState):
        q.dlq.redrive(2)
    with pytest.raises(ordq.NotFound):
        q.dlq.redrive(999)
    with pytest.raises(ordq.InvalidArgument):
        q.dlq.redrive(a, mode="sideways")


def test_dlq_purge(q: ordq.Queue) -> None:
    offs = dead_letters(q, 4)
    assert q.dlq.purge(offs[0]) == 1
    assert [t.offset for t in q.dlq.list()] == offs[1:]
    assert q.dlq.purge_all() == 3
    assert q.dlq.list() == []
    assert q.stats().totals.purged == 4
    q.enqueue("x", b"")
    with pytest.raises(ordq.InvalidState):
        q.dlq.purge(4)


@local_only("retain_done is a file option; a broker applies its own")
def test_retention_prunes_results(db_path: Path) -> None:
    with ordq.open(db_path, durability="none", retain_done=0) as db:
        q = db.queue("q", create=True)
        q.enqueue("k", b"payload")
        (le,) = q.claim("w")
        le.complete(b"result")
        db.sync()
        t = q.get_task(le.offset)
        assert t.state == "done" and t.payload is None and t.result is None


def test_an_unclosed_database_is_closed_at_exit(db_path: Path) -> None:
    import subprocess
    import sys

    from conftest import subprocess_env

    code = (
        "import ordq, sys; db = ordq.open(sys.argv[1], durability='none'); "
        "db.queue('q', create=True).enqueue('k', b'kept')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(db_path)], env=subprocess_env(), capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    with ordq.open(db_path) as db:
        assert db.queue("q").get_task(0).payload == b"kept"


def test_a_dropped_database_is_freed(db_path: Path) -> None:
    import gc

    db = ordq.open(db_path, durability="none")
    db.queue("q", create=True)
    del db
    gc.collect()
    with ordq.open(db_path) as db2:  # the file was released
        assert db2.queues() == ["q"]


def test_both_ways_of_copying_lease_bytes_agree(q: ordq.Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    from ordq import _core

    assert _core._MEM is not None  # the fast path is what CPython uses
    payloads = [b"", b"\x00" * 3, bytes(range(256)) * 40]
    q.enqueue_batch([("k%d\x00é" % i, p) for i, p in enumerate(payloads)])
    fast = q.claim("w", max=10)
    for le in fast:
        le.release()
    monkeypatch.setattr(_core, "_MEM", None)
    slow = q.claim("w", max=10)
    key = lambda le: (le.offset, le.key, le.id, le.payload, le.headers)  # noqa: E731
    assert [key(le) for le in fast] == [key(le) for le in slow]
    assert [le.payload for le in slow] == payloads
    assert [le.key for le in slow] == ["k%d\x00é" % i for i in range(3)]
