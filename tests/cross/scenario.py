#!/usr/bin/env python3
"""The cross-language scenario: Go, Rust and Python worker processes share one
queue through a broker, in order. Run by `make test-cross` (full size) and
`make demo` (smaller); both print live progress every second.

    python3 tests/cross/scenario.py                      # 20,000 tasks, 500 keys
    python3 tests/cross/scenario.py --demo               # 3,000 tasks, 100 keys, live
    python3 tests/cross/scenario.py --keep --no-build    # keep the directory; skip builds

Steps:
 1. build the `ordq` binary, the Rust producer and worker, libordq, the checker
    (cargo, release) and the Go worker (go build, static libordq.a);
 2. start `ordq serve --db DIR/db.ordq --listen unix://DIR/ordq.sock` in a
    fresh 0700 temporary directory;
 3. run the Rust producer (it creates the queue: key ordering, 16 shards,
    2 s lease, 3 attempts, 50 ms backoff, and enqueues in batches) and, at
    the same time, six workers: go-1, go-2 (Go), rs-1, rs-2 (Rust), py-1,
    py-2 (Python);
 4. mid-run, make the victim worker (rs-1) take a batch and hang, SIGKILL it
    while it holds those leases, and restart it under the same worker id;
 5. go-1 keeps a few leases past their expiry and, once they were leased
    again, tries to complete them with the stale token (must be LEASE_LOST);
 6. when the producer is done and the queue drained, the workers exit; the
    broker gets SIGTERM (must exit 0), and `ordq-cross-check` verifies the
    run from the database file (see tests/cross/check/src/main.rs).

Exit status 0 when everything held, 1 otherwise. Python 3 standard library
plus the repository's ordq package (bindings/python) for live queue stats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "target" / "release"
GO_WORKER = REPO / "target" / "cross" / "crossworker"
QUEUE = "cross"
# (worker id, runtime)
WORKERS = [("go-1", "go"), ("go-2", "go"), ("rs-1", "rust"), ("rs-2", "rust"), ("py-1", "python"), ("py-2", "python")]
RUNTIMES = ["go", "rust", "python"]


class Failure(Exception):
    """The scenario cannot go on (a process failed, a deadline passed)."""


def num(n: int) -> str:
    return "{:,}".format(n)


def build(quiet: bool) -> None:
    """Builds every program the scenario runs."""
    cargo, go = os.environ.get("CARGO", "cargo"), os.environ.get("GO", "go")
    steps = [
        ([cargo, "build", "--release", "-q", "-p", "ordq-cli", "-p", "ordq-ffi-lib", "-p", "ordq-examples",
          "-p", "ordq-cross-check"], REPO),
        ([go, "build", "-o", str(GO_WORKER), "./crossworker"], REPO / "examples" / "go"),
    ]
    for cmd, cwd in steps:
        if not quiet:
            print("  $ " + " ".join(cmd[:3]) + " ...", flush=True)
        r = subprocess.run(cmd, cwd=cwd)
        if r.returncode != 0:
            raise Failure("build failed: %s" % " ".join(cmd))


class Proc:
    """A child process with its log file."""

    def __init__(self, name: str, cmd: List[str], log: Path, env: Dict[str, str]) -> None:
        self.name = name
        self.log = log
        self.started = time.monotonic()
        with open(log, "wb") as out:
            self.p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def poll(self) -> Optional[int]:
        return self.p.poll()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("      | " + line for line in text[-lines:])


class Scenario:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.dir = Path(tempfile.mkdtemp(prefix="ordq-cross-"))  # mode 0700
        os.chmod(self.dir, 0o700)
        self.ctl = self.dir / "ctl"
        self.reports = self.dir / "workers"
        self.logs = self.dir / "logs"
        for d in (self.ctl, self.reports, self.logs):
            d.mkdir()
        self.db_path = self.dir / "db.ordq"
        self.sock = self.dir / "ordq.sock"
        self.uri = "unix://%s" % self.sock
        self.env = dict(os.environ, ORDQ_LIBRARY=str(RELEASE / "libordq.so"))
        self.broker: Optional[Proc] = None
        self.producer: Optional[Proc] = None
        self.workers: Dict[str, Proc] = {}
        self.incarnation: Dict[str, int] = {}
        self.exited: Dict[str, int] = {}
        self.t0 = time.monotonic()
        self.events: List[str] = []
        self.stats_db = None  # an ordq.Db on the broker, for live stats

    # -- helpers

    def t(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        print("  %5.1fs  %s" % (self.t(), msg), flush=True)

    def event(self, msg: str) -> None:
        self.events.append("%5.1fs  %s" % (self.t(), msg))
        self.say(msg)

    def start_worker(self, wid: str, runtime: str) -> None:
        n = self.incarnation.get(wid, -1) + 1
        self.incarnation[wid] = n
        report = self.reports / ("%s.%d.json" % (wid, n))
        common = ["--db", self.uri, "--id", wid, "--ctl", str(self.ctl), "--queue", QUEUE, "--report", str(report)]
        if runtime == "go":
            cmd = [str(GO_WORKER)] + common  # Go's flag package takes --name too
            if wid == self.a.zombie_worker and self.a.zombies:
                cmd += ["-zombies", str(self.a.zombies), "-zombie-every", str(self.a.zombie_every)]
        elif runtime == "rust":
            cmd = [str(RELEASE / "cross_worker")] + common
        else:
            cmd = [sys.executable, str(REPO / "examples" / "python" / "cross_worker.py")] + common
        self.workers[wid] = Proc(wid, cmd, self.logs / ("%s.%d.log" % (wid, n)), self.env)

    def read_reports(self) -> List[dict]:
        out = []
        for p in sorted(self.reports.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                pass  # being replaced right now
        return out

    def per_runtime(self) -> Dict[str, int]:
        done = {rt: 0 for rt in RUNTIMES}
        for r in self.read_reports():
            done[r.get("runtime", "?")] = done.get(r.get("runtime", "?"), 0) + r.get("completed", 0)
        return done

    def wait_for(self, what: str, cond, timeout: float, proc: Optional[Proc] = None) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if proc is not None and proc.poll() is not None:
                raise Failure("%s exited with %s while waiting for %s\n%s" % (proc.name, proc.poll(), what, proc.tail()))
            if time.monotonic() > deadline:
                raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))
            time.sleep(0.05)

    # -- steps

    def start_broker(self) -> None:
        ordq = str(RELEASE / "ordq")
        self.broker = Proc("broker", [ordq, "serve", "--db", str(self.db_path), "--listen", self.uri],
                           self.logs / "broker.log", self.env)

        def listening() -> bool:
            if not self.sock.exists():
                return False
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.sock))
                return True
            except OSError:
                return False
            finally:
                s.close()

        self.wait_for("the broker's socket", listening, 15, self.broker)
        self.say("broker   ordq serve --db %s --listen %s (pid %d)" % (self.db_path, self.uri, self.broker.p.pid))

    def open_stats(self) -> None:
        os.environ["ORDQ_LIBRARY"] = self.env["ORDQ_LIBRARY"]
        sys.path.insert(0, str(REPO / "bindings" / "python"))
        import ordq  # noqa: E402  (the repository's package, over libordq)

        self.stats_db = ordq.open(self.uri)

    def start_producer(self) -> None:
        a = self.a
        cmd = [
            str(RELEASE / "cross_producer"), "--db", self.uri, "--queue", QUEUE,
            "--tasks", str(a.tasks), "--keys", str(a.keys), "--batch", str(a.batch), "--pace-ms", str(a.pace_ms),
            "--shards", "16", "--lease-ms", "2000", "--max-attempts", "3", "--backoff-ms", "50",
            "--ready", str(self.ctl / "queue-ready"), "--report", str(self.dir / "producer.json"),
        ]
        self.producer = Proc("producer", cmd, self.logs / "producer.log", self.env)
        self.wait_for("the queue", (self.ctl / "queue-ready").exists, 30, self.producer)
        self.say("producer cross_producer (Rust): %s tasks over %s keys, batches of %d, queue %r: key order, "
                 "16 shards, lease 2 s, 3 attempts, backoff 50 ms" % (num(a.tasks), num(a.keys), a.batch, QUEUE))

    def run(self) -> bool:
        a = self.a
        print("ordq cross-language scenario: Go, Rust and Python workers on one queue through a broker")
        print("  directory %s" % self.dir)
        self.start_broker()
        self.open_stats()
        self.start_producer()
        for wid, rt in WORKERS:
            self.start_worker(wid, rt)
        self.say("workers  %s (2 Go, 2 Rust, 2 Python processes; claim up to 32, wait 500 ms)"
                 % ", ".join(w for w, _ in WORKERS))
        if a.zombies:
            self.say("zombie   %s keeps %d leases past their expiry, then completes them with the stale token"
                     % (a.zombie_worker, a.zombies))
        print(flush=True)
        header = "  %6s %8s %6s %9s %7s  %s   %s" % (
            "time", "done", "dead", "in flight", "retry", "  ".join("%7s" % rt for rt in RUNTIMES), "producer")
        print(header, flush=True)

        victim, victim_rt = a.victim, dict(WORKERS)[a.victim]
        kill_state = "wait"  # wait -> triggered -> done
        kill_deadline = 0.0
        producer_done = False
        last_line = -1e9
        deadline = time.monotonic() + a.timeout
        while True:
            now = time.monotonic()
            if now > deadline:
                raise Failure("not finished after %d s" % a.timeout)
            # The producer.
            if not producer_done and self.producer.poll() is not None:
                if self.producer.poll() != 0:
                    raise Failure("the producer failed (exit %s)\n%s" % (self.producer.poll(), self.producer.tail()))
                producer_done = True
                (self.ctl / "producer-done").write_bytes(b"")
                rep = json.loads((self.dir / "producer.json").read_text())
                self.event("producer finished: %s tasks (%s fail once, %s fail always) in %.1f s"
                           % (num(rep["tasks"]), num(rep["once"]), num(rep["always"]), rep["elapsed_ms"] / 1000))
            # Workers.
            for wid, p in list(self.workers.items()):
                rc = p.poll()
                if rc is None or wid in self.exited:
                    continue
                if wid == victim and kill_state == "triggered":
                    raise Failure("%s exited (%s) before it was killed\n%s" % (wid, rc, p.tail()))
                if rc != 0:
                    raise Failure("worker %s failed (exit %s)\n%s" % (wid, rc, p.tail()))
                self.exited[wid] = rc
            # The kill.
            per_rt = self.per_runtime()
            total_done = sum(per_rt.values())
            victim_done = sum(r.get("completed", 0) for r in self.read_reports() if r.get("id") == victim)
            if kill_state == "wait" and total_done >= a.kill_at * a.tasks and victim_done > 0:
                (self.ctl / ("hang-" + victim)).write_bytes(b"")
                kill_state, kill_deadline = "triggered", now + 15
            elif kill_state == "triggered":
                marker = self.ctl / ("hung-%s.json" % victim)
                if marker.exists():
                    held = json.loads(marker.read_text())["leases"]
                    p = self.workers[victim]
                    p.p.send_signal(signal.SIGKILL)
                    p.p.wait()
                    self.event("SIGKILL  %s (pid %d) while it holds %d lease%s (offsets %s%s)"
                               % (victim, p.p.pid, len(held), "" if len(held) == 1 else "s",
                                  ", ".join(str(x["offset"]) for x in held[:4]), ", ..." if len(held) > 4 else ""))
                    time.sleep(0.3)
                    self.start_worker(victim, victim_rt)
                    self.event("restart  %s under the same worker id (pid %d); the killed leases expire after 2 s"
                               % (victim, self.workers[victim].p.pid))
                    kill_state = "done"
                elif now > kill_deadline:
                    raise Failure("%s did not hang with leases within 15 s" % victim)
            # Progress.
            finished = producer_done and len(self.exited) == len(WORKERS)
            if finished or now - last_line >= 1.0:
                last_line = now
                s = self.stats_db.queue(QUEUE).stats()
                prod = "done" if producer_done else "%s/%s" % (num(s.next_offset), num(a.tasks))
                print("  %5.1fs %8s %6s %9s %7s  %s   %s" % (
                    self.t(), num(s.done), num(s.dead), num(s.leased), num(s.retry_wait),
                    "  ".join("%7s" % num(per_rt[rt]) for rt in RUNTIMES), prod), flush=True)
            if finished:
                break
            time.sleep(0.1)
        if kill_state != "done":
            raise Failure("the queue drained before %s could be killed (kill_at %.2f)" % (victim, a.kill_at))
        elapsed = self.t()
        print()
        self.event("all workers exited 0; queue drained")
        self.stats_db.close()
        self.stats_db = None
        self.broker.p.send_signal(signal.SIGTERM)
        try:
            rc = self.broker.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("the broker did not exit within 30 s of SIGTERM\n%s" % self.broker.tail())
        if rc != 0:
            raise Failure("the broker exited with %s after SIGTERM\n%s" % (rc, self.broker.tail()))
        self.event("SIGTERM  broker: graceful shutdown, exit 0")
        print("  %s tasks in %.1f s: %s tasks/s end to end through the broker"
              % (num(a.tasks), elapsed, num(int(a.tasks / elapsed))))
        print(flush=True)

        check = [str(RELEASE / "ordq-cross-check"), "--db", str(self.db_path), "--dir", str(self.dir),
                 "--queue", QUEUE, "--min-share", str(a.min_share), "--expect-kill",
                 "--expect-zombies", str(a.zombies)]
        if subprocess.run(check).returncode != 0:
            return False
        # The database against its own history: frames, chains, signed-or-not
        # checkpoints, and the state rebuilt from the log (docs/CLI.md).
        verify = [str(RELEASE / "ordq"), "--db", str(self.db_path), "verify"]
        print("$ ordq --db %s verify" % self.db_path.name, flush=True)
        if subprocess.run(verify).returncode != 0:
            return False
        # Lane order, fencing and one outcome per task, from the log alone.
        audit = [str(RELEASE / "ordq"), "--db", str(self.db_path), "audit", QUEUE]
        print("$ ordq --db %s audit %s" % (self.db_path.name, QUEUE), flush=True)
        return subprocess.run(audit).returncode == 0

    def stop_all(self) -> None:
        """Kills every child still running (only ours, by pid)."""
        if self.stats_db is not None:
            try:
                self.stats_db.close()
            except Exception:  # noqa: BLE001 - best effort on the failure path
                pass
        for p in [self.producer, *self.workers.values(), self.broker]:
            if p is not None and p.poll() is None:
                p.p.kill()
                p.p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="the friendlier size of make demo")
    ap.add_argument("--tasks", type=int, help="tasks to enqueue (20,000; demo 3,000)")
    ap.add_argument("--keys", type=int, help="keys (500; demo 100)")
    ap.add_argument("--batch", type=int, help="producer batch size (250; demo 50)")
    ap.add_argument("--pace-ms", type=int, help="producer pause between batches (20; demo 100)")
    ap.add_argument("--victim", default="rs-1", choices=[w for w, rt in WORKERS if rt != "go"],
                    help="the worker killed with SIGKILL mid-run and restarted")
    ap.add_argument("--kill-at", type=float, default=0.3, help="kill once this share of tasks is done")
    ap.add_argument("--zombie-worker", default="go-1", choices=[w for w, rt in WORKERS if rt == "go"])
    ap.add_argument("--zombies", type=int, default=2, help="stale-token completes the zombie tries")
    ap.add_argument("--zombie-every", type=int, help="claims between two leases kept aside (10; demo 4)")
    ap.add_argument("--min-share", type=float, default=0.05, help="least share of the tasks per runtime")
    ap.add_argument("--timeout", type=int, default=150, help="give up after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the directory (database, reports, logs)")
    ap.add_argument("--no-build", action="store_true", help="use the programs built already")
    args = ap.parse_args()
    defaults = dict(tasks=(3000, 20000), keys=(100, 500), batch=(50, 250), pace_ms=(100, 20), zombie_every=(4, 10))
    for k, (demo, full) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, demo if args.demo else full)

    if not args.no_build:
        print("building (cargo build --release, go build) ...", flush=True)
        try:
            build(quiet=False)
        except Failure as e:
            print("FAILED: %s" % e, file=sys.stderr)
            return 1
    sc = Scenario(args)
    ok = False
    try:
        ok = sc.run()
    except Failure as e:
        print("\nFAILED: %s" % e, flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
    finally:
        sc.stop_all()
    if ok and not args.keep:
        shutil.rmtree(sc.dir, ignore_errors=True)
        print("(directory removed; --keep keeps the database, reports and logs)")
    else:
        print("directory kept: %s (db.ordq, producer.json, workers/, ctl/, logs/)" % sc.dir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
