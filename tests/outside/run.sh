#!/usr/bin/env bash
# Uses ordq as a new user would, from projects OUTSIDE the repository: a
# tiny producer + drain-and-exit worker in Rust (path dependency on
# bindings/rust), Go (require + replace of bindings/go) and Python (pip
# install of bindings/python into a fresh venv), each following only its
# binding's README. Needs the release library built (make build) for Go
# and Python. Each program enqueues 20 tasks over 4 keys, drains the queue
# with a worker and checks that all 20 completed in per-key order.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/ordq-outside.XXXXXX)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR=${ORDQ_OUTSIDE_TARGET:-$repo/target/outside}

echo "== Rust: a cargo project depending on bindings/rust by path"
mkdir -p "$work/rs/src"
cat > "$work/rs/Cargo.toml" <<EOF
[package]
name = "outside"
version = "0.1.0"
edition = "2021"

[dependencies]
ordq = { path = "$repo/bindings/rust" }

[workspace]
EOF
cp "$repo/Cargo.lock" "$work/rs/Cargo.lock" # the repository's pinned versions
cat > "$work/rs/src/main.rs" <<'EOF'
use ordq::{Db, EnqueueOptions, Options, QueueConfig, Worker};
use std::collections::HashMap;
use std::sync::Mutex;

fn main() -> ordq::Result<()> {
    let path = std::env::args().nth(1).expect("db path");
    let db = Db::open(&path, &Options::new())?;
    db.create_queue_if_not_exists("jobs", &QueueConfig::new())?;
    for i in 0..20 {
        db.enqueue("jobs", &format!("k{}", i % 4), i.to_string().as_bytes(), &EnqueueOptions::new())?;
    }
    let seen = Mutex::new(HashMap::<String, Vec<u32>>::new());
    let report = Worker::new("jobs", "outside-rs").concurrency(2).drain(true).run(&db, |l| {
        let n: u32 = String::from_utf8_lossy(&l.payload).parse().unwrap();
        seen.lock().unwrap().entry(l.key.clone()).or_default().push(n);
        Ok(Vec::new())
    })?;
    assert_eq!(report.completed, 20, "{report:?}");
    for (k, v) in seen.into_inner().unwrap() {
        assert!(v.windows(2).all(|w| w[0] < w[1]), "key {k} out of order: {v:?}");
    }
    db.close()?;
    println!("rust: 20 completed in key order");
    Ok(())
}
EOF
(cd "$work/rs" && cargo run -q --release -- "$work/rs.ordq")

echo "== Go: a module requiring bindings/go with a replace directive"
mkdir -p "$work/go"
cat > "$work/go/go.mod" <<EOF
module example.com/outside

go 1.24

require github.com/ordq/ordq/bindings/go v0.0.0

replace github.com/ordq/ordq/bindings/go => $repo/bindings/go
EOF
cat > "$work/go/main.go" <<'EOF'
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"

	ordq "github.com/ordq/ordq/bindings/go"
)

func main() {
	ctx := context.Background()
	db, err := ordq.Open(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q, err := db.CreateQueueIfNotExists(ctx, "jobs", ordq.QueueConfig{})
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := q.Enqueue(ctx, fmt.Sprintf("k%d", i%4), []byte(strconv.Itoa(i)), nil); err != nil {
			log.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string][]int{}
	w := ordq.NewWorker(q, func(ctx context.Context, l *ordq.Lease) error {
		n, _ := strconv.Atoi(string(l.Payload))
		mu.Lock()
		seen[l.Key] = append(seen[l.Key], n)
		mu.Unlock()
		return nil
	}, ordq.WorkerOptions{Concurrency: 2, Drain: true})
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
	total := 0
	for k, v := range seen {
		for i := 1; i < len(v); i++ {
			if v[i-1] >= v[i] {
				log.Fatalf("key %s out of order: %v", k, v)
			}
		}
		total += len(v)
	}
	if total != 20 {
		log.Fatalf("completed %d of 20", total)
	}
	fmt.Println("go: 20 completed in key order")
}
EOF
(cd "$work/go" && GOFLAGS=-mod=mod go run . "$work/go.ordq")

echo "== Python: pip install bindings/python into a fresh venv"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$repo/bindings/python"
cat > "$work/py.py" <<'EOF'
import sys, threading
import ordq

with ordq.open(sys.argv[1]) as db:
    q = db.create_queue("jobs", if_not_exists=True)
    for i in range(20):
        q.enqueue("k%d" % (i % 4), str(i).encode())
    seen, lock = {}, threading.Lock()
    def handle(lease):
        with lock:
            seen.setdefault(lease.key, []).append(int(lease.payload))
    ordq.Worker(q, handle, concurrency=2, drain=True).run()
    assert sum(map(len, seen.values())) == 20, seen
    for k, v in seen.items():
        assert v == sorted(v), (k, v)
print("python: 20 completed in key order")
EOF
(cd "$work" && "$work/venv/bin/python" py.py "$work/py.ordq")
echo "outside-project builds: ok"
