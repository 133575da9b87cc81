"""Python worker of the cross-language scenario (make test-cross, make demo;
driven by tests/cross/scenario.py).

    python3 examples/python/cross_worker.py --db unix:///tmp/x/ordq.sock --id py-1 \\
        --ctl /tmp/x/ctl --report /tmp/x/workers/py-1.0.json

Run beside the Go and Rust workers on one queue of a broker, it claims in
batches and treats each task as its JSON payload says ({"b": ...}, written
by the Rust cross_producer): "ok" completes, "once" fails (retryable) on
attempt 1 and completes later, "always" fails every attempt until it is
dead-lettered. Completions go in one complete_batch per claim, with the
result {"w": "<worker id>", "f": <fence>}.

Control files in --ctl: once producer-done exists and the queue has nothing
unfinished (stats().unfinished: nothing ready, leased or waiting for a
retry), the worker exits 0. When hang-<id>
appears, the worker takes its next batches, records those leases in
hung-<id>.json and hangs holding them (the orchestrator then kills it).
--report is rewritten every 250 ms and at exit with the worker's counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))

import ordq  # noqa: E402


def write_json(path: Path, doc: Any) -> None:
    """Writes ``doc`` atomically (temporary file, then rename)."""
    tmp = path.with_name("%s.tmp%d" % (path.name, os.getpid()))
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="broker address (unix://..., tcp://...) or file")
    ap.add_argument("--id", required=True, help="worker id, e.g. py-1")
    ap.add_argument("--ctl", required=True, type=Path, help="control directory")
    ap.add_argument("--queue", default="cross")
    ap.add_argument("--report", type=Path, help="report file (JSON)")
    ap.add_argument("--max", type=int, default=32, help="most leases per claim")
    ap.add_argument("--wait", type=float, default=0.5, help="claim wait, seconds")
    args = ap.parse_args()

    wid = args.id
    counts: Dict[str, Any] = dict(
        id=wid, runtime="python", pid=os.getpid(), claims=0, claimed=0, completed=0,
        failed=0, dead=0, lease_lost=0, final=False,
    )
    last = [0.0]

    def report(final: bool = False) -> None:
        last[0] = time.monotonic()
        counts["final"] = final
        if args.report:
            write_json(args.report, counts)

    hang_marker = args.ctl / ("hang-" + wid)
    done_marker = args.ctl / "producer-done"
    with ordq.open(args.db) as db:
        q = db.queue(args.queue)
        while True:
            if time.monotonic() - last[0] >= 0.25:
                report()
            hang = hang_marker.exists()
            leases = q.claim(wid, max=args.max, wait=args.wait)
            if not leases:
                if done_marker.exists():
                    if q.stats().unfinished == 0:
                        break
                continue
            counts["claims"] += 1
            counts["claimed"] += len(leases)
            if hang:
                # Take a few more batches first (for up to half a lease), so
                # the kill catches a handful of leases, not just one.
                start = time.monotonic()
                while len(leases) < 8 and time.monotonic() - start < 1.0:
                    leases += q.claim(wid, max=32, wait=0.1)
                hang_marker.unlink()
                report()
                held = [dict(offset=l.offset, fence=l.token.fence, attempt=l.attempt) for l in leases]
                write_json(args.ctl / ("hung-%s.json" % wid), dict(id=wid, pid=os.getpid(), leases=held))
                while True:  # holding the leases until killed (SIGKILL)
                    time.sleep(1)
            ok = []
            for lease in leases:
                b = json.loads(lease.payload)["b"]
                if b == "ok" or (b == "once" and lease.attempt > 1):
                    result = json.dumps({"w": wid, "f": lease.token.fence}, separators=(",", ":"))
                    ok.append((lease, result.encode()))
                    continue
                if b not in ("once", "always"):
                    raise ValueError("task %d: payload has no valid \"b\": %r" % (lease.offset, b))
                try:
                    out = lease.fail("%s: injected failure, attempt %d" % (wid, lease.attempt), retryable=True)
                except ordq.LeaseLost:
                    counts["lease_lost"] += 1
                    continue
                counts["dead" if out.dead else "failed"] += 1
            for r in q.complete_batch(ok):
                if isinstance(r, ordq.LeaseLost):
                    counts["lease_lost"] += 1
                elif isinstance(r, ordq.Error):
                    raise r
                else:
                    counts["completed"] += 1
    report(final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
