"""Enqueue welcome e-mails for a few users into the "emails" queue.

    python3 examples/python/producer.py /tmp/emails.ordq [--users 20] [--per-user 5]
    python3 examples/python/worker.py   /tmp/emails.ordq

Tasks of one user (the key) are handled one at a time, in order; users are
handled in parallel. Opened as a file, the database belongs to one process
at a time (here: the producer, then the worker). For several processes on
one queue at once, serve the database with `ordq serve --db FILE --listen
unix:///path/to/ordq.sock` (or tcp://host:port) and pass that address
instead of the file: producers and workers, in any language, then share it
through the broker.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))

import ordq  # noqa: E402

STEPS = ["welcome", "day-1-tips", "day-3-tips", "week-1-survey", "month-1-offer"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", help="database file (created if missing)")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--per-user", type=int, default=5)
    args = ap.parse_args()

    with ordq.open(args.db) as db:
        # Fast retries for the demo; the defaults are 1 s doubling to 10 min.
        q = db.queue("emails", create=True, max_attempts=4, backoff_initial=0.05, backoff_max=0.5)
        items = []
        for step in range(args.per_user):
            for user in range(args.users):
                body = {"to": "user%d@example.com" % user, "template": STEPS[step % len(STEPS)], "step": step}
                if user == 13 and step == 1:
                    body["to"] = "not-an-address"  # the worker dead-letters this one
                items.append(
                    ordq.Item(
                        "user-%d" % user,
                        json.dumps(body),
                        headers={"source": "producer.py"},
                        idempotency_key="user-%d/step-%d" % (user, step),
                    )
                )
        receipts = q.enqueue_batch(items)  # one commit, all or nothing
        new = sum(not r.duplicate for r in receipts)
        print("enqueued %d tasks (%d already there) into %s" % (new, len(receipts) - new, args.db))
        s = q.stats()
        print("queue emails: %d ready, %d done, %d dead" % (s.ready, s.done, s.dead))


if __name__ == "__main__":
    main()
