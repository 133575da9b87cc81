"""Plain value types returned by ordq calls (dataclasses; the hot ones,
Receipt, Completion and FailOutcome, are not frozen: that makes them 3x
cheaper to build).

Times are integers in milliseconds since the Unix epoch (0 = not yet /
never), exactly as the engine records them; durations given to and returned
from the Python API are seconds (``float``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Union

__all__ = [
    "Receipt",
    "Completion",
    "FailOutcome",
    "Token",
    "Item",
    "QueueConfig",
    "QueueInfo",
    "TaskInfo",
    "Fault",
    "DeadLetter",
    "ShardStats",
    "Totals",
    "QueueStats",
]


@dataclass
class Receipt:
    """Answer to an enqueue."""

    #: Queue-wide position of the task (order is the offset).
    offset: int
    #: Shard of the task's key.
    shard: int
    #: Task id (32 lower-case hex characters).
    id: str
    #: True when the idempotency key matched an earlier enqueue (this is
    #: that enqueue's receipt).
    duplicate: bool = False


@dataclass
class Completion:
    """Answer to a completion."""

    #: The completed task's offset.
    offset: int
    #: Commit time, ms since the Unix epoch.
    committed_at: int
    #: True when this lease had completed the task already (the first
    #: outcome is returned).
    duplicate: bool = False


@dataclass
class FailOutcome:
    """What a failure led to."""

    #: True when the task was dead-lettered; False when a retry is scheduled.
    dead: bool
    #: Attempts made so far.
    attempt: int
    #: Retry time, ms since the Unix epoch (0 when dead).
    not_before: int


class Token(NamedTuple):
    """Identifies one lease (the ABI's ``ordq_token``); a stale token is
    refused with :class:`ordq.LeaseLost`."""

    queue_id: int
    offset: int
    fence: int


Payload = Union[bytes, bytearray, memoryview, str]


@dataclass
class Item:
    """One task of :meth:`ordq.Queue.enqueue_batch` with options. A plain
    ``(key, payload)`` tuple is the same as ``Item(key, payload)``."""

    key: Union[str, bytes]
    payload: Payload = b""
    priority: int = 0
    delay: Optional[float] = None
    not_before: Any = None
    max_attempts: Optional[int] = None
    idempotency_key: Optional[str] = None
    headers: Optional[Mapping[str, str]] = None


@dataclass(frozen=True)
class QueueConfig:
    """A queue's configuration, fixed at creation (durations in seconds)."""

    shards: int = 16
    #: ``"key"``, ``"shard"``, ``"global"`` or ``"none"``.
    ordering: str = "key"
    max_attempts: int = 10
    #: ``"skip"`` or ``"block"``.
    dlq_policy: str = "skip"
    lease: float = 30.0
    backoff_initial: float = 1.0
    backoff_max: float = 600.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.2


@dataclass(frozen=True)
class QueueInfo:
    """A queue's identity and configuration."""

    name: str
    id: int
    created_at: int
    config: QueueConfig


def _b64(v: Optional[str]) -> Optional[bytes]:
    return None if v is None else base64.b64decode(v, validate=True)


def _pick(cls: type, d: Mapping[str, Any]) -> Dict[str, Any]:
    """The keys of ``d`` that are fields of ``cls`` (a newer library may add
    keys; they are ignored)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class TaskInfo:
    """Everything known about one task (``get_task``, dead letters)."""

    id: str
    queue: str
    key: str
    offset: int
    shard: int
    priority: int
    #: ``"ready"``, ``"leased"``, ``"retry_wait"``, ``"done"`` or ``"dead"``.
    state: str
    #: Attempts made so far / allowed.
    attempt: int
    max_attempts: int
    not_before: int
    enqueued_at: int
    leased_at: int
    started_at: int
    committed_at: int
    lease_expires_at: int
    #: Fencing value of the last lease (0 = never leased).
    fence: int
    #: Worker of the last lease/start/commit.
    worker: Optional[str] = None
    idempotency_key: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)
    #: None when pruned after ``retain_done``.
    payload: Optional[bytes] = None
    #: None when not done, pruned, or empty (the engine does not tell an
    #: empty result from an absent one).
    result: Optional[bytes] = None
    redriven_from: Optional[int] = None
    redriven_to: Optional[int] = None
    #: Record version.
    v: int = 1

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TaskInfo":
        """Builds a TaskInfo from the ABI's JSON object (base64 bytes)."""
        kw = _pick(cls, d)
        kw["payload"] = _b64(d.get("payload"))
        kw["result"] = _b64(d.get("result"))
        kw["headers"] = dict(d.get("headers") or {})
        return cls(**kw)


@dataclass(frozen=True)
class Fault:
    """One failed or expired attempt."""

    attempt: int
    #: ``"failed"`` (the worker called fail) or ``"expired"`` (lease ran out).
    kind: str
    error: str
    retryable: bool
    at: int
    worker: Optional[str] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Fault":
        """Builds a Fault from the ABI's JSON object."""
        return cls(**_pick(cls, d))


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter with its full fault history."""

    task: TaskInfo
    faults: List[Fault]


@dataclass(frozen=True)
class ShardStats:
    """Load of one shard."""

    pending: int
    eligible: int
    in_flight: int


@dataclass(frozen=True)
class Totals:
    """Lifetime counters of a queue."""

    enqueued: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    lease_expired: int = 0
    released: int = 0
    redriven: int = 0
    purged: int = 0
    #: complete/fail calls refused by fencing (the lease was lost)
    rollbacks: int = 0


@dataclass(frozen=True)
class QueueStats:
    """Counts per state, per-shard load and lifetime totals of a queue."""

    queue: str
    ready: int
    leased: int
    retry_wait: int
    done: int
    dead: int
    #: Tasks not yet done or dead (ready + leased + retry_wait, counted by
    #: the engine): 0 means the queue is drained.
    unfinished: int
    oldest_pending_age_ms: int
    next_offset: int
    shards: List[ShardStats]
    totals: Totals

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "QueueStats":
        """Builds QueueStats from the ABI's JSON object."""
        kw = _pick(cls, d)
        kw["shards"] = [ShardStats(**_pick(ShardStats, s)) for s in d["shards"]]
        kw["totals"] = Totals(**_pick(Totals, d["totals"]))
        return cls(**kw)
