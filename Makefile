# ordq — build, test, demo, bench. Every target does its own set-up.
CARGO ?= cargo

.PHONY: all build test test-rust lint fmt demo bench clean

all: build

build:
	$(CARGO) build --release --workspace

## test: every suite of the repo, plus format and lint checks.
test: lint test-rust

test-rust:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## demo: the main job — keyed tasks, worker threads, injected failures.
demo:
	$(CARGO) run --release -p ordq-examples --bin demo

## bench: throughput and latency figures (see docs/PERFORMANCE.md).
bench:
	$(CARGO) run --release -p ordq-bench

clean:
	$(CARGO) clean
