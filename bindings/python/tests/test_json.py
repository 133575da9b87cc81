"""JSON helpers: Queue.enqueue_json, Lease.json and ordq.json_handler (a
payload that is not JSON is dead-lettered at once with the decode error)."""

from __future__ import annotations

import json
import math
from typing import Any, List

import pytest

import ordq


def test_enqueue_json_stores_compact_utf8_json(q: ordq.Queue) -> None:
    rc = q.enqueue_json("user-1", {"to": "zoë@example.com", "n": [1, 2.5, None, True]})
    assert q.get_task(rc.offset).payload == '{"to":"zoë@example.com","n":[1,2.5,null,true]}'.encode()
    (lease,) = q.claim("w")
    assert lease.json() == {"to": "zoë@example.com", "n": [1, 2.5, None, True]}


def test_enqueue_json_passes_enqueue_options(q: ordq.Queue) -> None:
    first = q.enqueue_json(
        "k", [1], priority=5, max_attempts=2, idempotency_key="once", headers={"h": "v"}
    )
    again = q.enqueue_json("k", [2], idempotency_key="once")
    assert again.duplicate and again.offset == first.offset
    t = q.get_task(first.offset)
    assert (t.priority, t.max_attempts, t.idempotency_key, t.headers) == (5, 2, "once", {"h": "v"})
    delayed = q.enqueue_json("later", "x", delay=60)
    assert q.get_task(delayed.offset).not_before > q.get_task(first.offset).enqueued_at + 50_000


@pytest.mark.parametrize(
    "obj,exc", [(math.nan, ValueError), ({"x": math.inf}, ValueError), ({"s": {1, 2}}, TypeError)]
)
def test_enqueue_json_refuses_what_is_not_json(q: ordq.Queue, obj: Any, exc: type) -> None:
    with pytest.raises(exc):
        q.enqueue_json("k", obj)
    assert q.stats().next_offset == 0  # nothing enqueued


def test_lease_json_raises_on_a_bad_payload(q: ordq.Queue) -> None:
    q.enqueue("k", b"{not json")
    (lease,) = q.claim("w")
    with pytest.raises(json.JSONDecodeError):
        lease.json()


def test_json_handler_gets_the_object_and_stores_a_json_result(q: ordq.Queue) -> None:
    q.enqueue_json("a", {"n": 1})
    q.enqueue_json("b", {"n": 2})
    seen: List[Any] = []

    @ordq.json_handler
    def handler(obj: Any, lease: ordq.Lease) -> Any:
        seen.append((obj, lease.key))
        return {"double": obj["n"] * 2} if obj["n"] == 1 else None

    w = ordq.Worker(q, handler, wait=0.05, drain=True)
    w.run()
    assert sorted(seen, key=lambda s: s[1]) == [({"n": 1}, "a"), ({"n": 2}, "b")]
    assert q.get_task(0).result == b'{"double":2}'
    assert q.get_task(1).result is None and q.get_task(1).state == "done"
    assert handler.__name__ == "handler"  # functools.wraps


def test_json_handler_dead_letters_a_payload_that_is_not_json(q: ordq.Queue) -> None:
    q.enqueue("k1", b"{not json", max_attempts=10)
    q.enqueue("k2", b"\xff\xfe{}", max_attempts=10)  # not UTF-8 (a UTF-16 BOM)
    q.enqueue_json("k3", {"fine": True})
    called: List[Any] = []

    @ordq.json_handler
    def handler(obj: Any, lease: ordq.Lease) -> None:
        called.append(obj)

    w = ordq.Worker(q, handler, wait=0.05, drain=True)
    w.run()
    assert called == [{"fine": True}]
    assert (w.dead, w.retried, w.completed) == (2, 0, 1)
    for off in (0, 1):
        t = q.get_task(off)
        assert t.state == "dead" and t.attempt == 1  # at once, not after 10 attempts
        (fault,) = q.faults(off)
        assert fault.retryable is False
        assert fault.error.startswith("NonRetryable: payload is not valid JSON: ")
    assert "Expecting property name" in q.faults(0)[0].error
    assert "codec can't decode" in q.faults(1)[0].error


def test_json_handler_errors_of_the_handler_itself_are_retried(q: ordq.Queue) -> None:
    q.enqueue_json("k", {"x": 1})

    @ordq.json_handler
    def handler(obj: Any, lease: ordq.Lease) -> str:
        if lease.attempt == 1:
            raise ConnectionError("flaky")
        return "ok"

    w = ordq.Worker(q, handler, wait=0.05, drain=True)
    w.run()
    assert (w.retried, w.completed) == (1, 1)
    assert q.get_task(0).result == b'"ok"'  # the return value, as JSON
