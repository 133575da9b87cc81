"""Send the e-mails of the "emails" queue with an ordq.Worker, then exit
when the queue is drained (or on Ctrl-C / SIGTERM).

    python3 examples/python/producer.py /tmp/emails.ordq
    python3 examples/python/worker.py   /tmp/emails.ordq [--concurrency 4] [--fail-rate 0.2]

ordq.json_handler hands the handler the payload decoded as JSON (a payload
that is not JSON is dead-lettered at once). The handler's return value is
the task's result; an exception fails the attempt (retried with backoff);
ordq.NonRetryable dead-letters at once. Heartbeats keep each lease alive
while its handler runs. drain=True makes run() return once nothing is
left: no task ready, leased or waiting for its retry. Without it, run()
waits for new tasks until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))

import ordq  # noqa: E402


class SmtpTimeout(Exception):
    """A temporary failure: the task is retried."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--fail-rate", type=float, default=0.2, help="share of attempts that time out")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rng_lock = threading.Lock()
    sent = defaultdict(list)  # user -> steps, in the order they were sent

    @ordq.json_handler
    def send(mail: Any, lease: ordq.Lease) -> str:
        if "@" not in mail["to"]:
            raise ordq.NonRetryable("invalid address %r" % mail["to"])
        with rng_lock:
            flaky = rng.random() < args.fail_rate
        time.sleep(0.002)  # the SMTP round trip
        if flaky:
            raise SmtpTimeout("smtp timeout (attempt %d of %d)" % (lease.attempt, lease.max_attempts))
        sent[lease.key].append(mail["step"])
        return "sent %s to %s" % (mail["template"], mail["to"])  # stored as JSON

    with ordq.open(args.db) as db:
        q = db.queue("emails")
        worker = ordq.Worker(
            q, send, concurrency=args.concurrency, wait=0.1, worker_id="example-worker", drain=True
        )
        worker.run()

        s = q.stats()
        print(
            "completed %d, retried %d, dead-lettered %d (queue: %d done, %d dead)"
            % (worker.completed, worker.retried, worker.dead, s.done, s.dead)
        )
        in_order = all(steps == sorted(steps) for steps in sent.values())
        print("every user's e-mails were sent in order:", in_order)
        for task in q.dlq:
            dl = q.dlq.get(task.offset)
            print("dead letter offset %d, key %s: %s" % (task.offset, task.key, dl.faults[-1].error))
        if not in_order:
            sys.exit(1)


if __name__ == "__main__":
    main()
