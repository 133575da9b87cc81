# ordq — build, test, demo, bench. Every target does its own set-up.
CARGO ?= cargo

.PHONY: all build test test-rust test-c test-go test-python test-outside lint fmt demo bench bench-broker clean header header-check cbindgen

all: build

build:
	$(CARGO) build --release --workspace

## test: every suite of the repo, plus format and lint checks.
test: lint header-check test-rust test-c test-go test-python test-outside test-broker test-cross bench-broker-smoke

## test-rust: every crate's tests, then the engine's failpoint tests (a
## build with feature `failpoints`: 200 SIGKILLs at the log's and the
## writer's critical steps, and a batch failed inside the writer).
test-rust:
	$(CARGO) test --workspace
	$(CARGO) test -p ordq-core --features failpoints --test failpoints
	ORDQ_FAILPOINT_CYCLES=$${ORDQ_FAILPOINT_CYCLES:-200} \
	  $(CARGO) test -p ordq-core --features failpoints --test crash sigkill_at_failpoints -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ordq-core --features failpoints --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## header: regenerate include/ordq.h from ffi/ with the pinned cbindgen.
# cbindgen is pinned (the header records its version) and installed into
# target/tools on first use, so a clean clone needs nothing by hand.
CBINDGEN_VERSION := 0.29.4
TOOLS_DIR := $(CURDIR)/target/tools
CBINDGEN := $(TOOLS_DIR)/bin/cbindgen
CBINDGEN_ARGS := --config ffi/cbindgen.toml --crate ordq-ffi --quiet ffi

cbindgen:
	@if ! "$(CBINDGEN)" --version 2>/dev/null | grep -qx "cbindgen $(CBINDGEN_VERSION)"; then \
	  echo "installing cbindgen $(CBINDGEN_VERSION) into $(TOOLS_DIR)"; \
	  $(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked --force --root "$(TOOLS_DIR)"; \
	fi

header: cbindgen
	$(CBINDGEN) $(CBINDGEN_ARGS) --output include/ordq.h

## header-check: fail when include/ordq.h differs from what ffi/ generates.
header-check: cbindgen
	@tmp=$$(mktemp); \
	$(CBINDGEN) $(CBINDGEN_ARGS) --output "$$tmp" || { rm -f "$$tmp"; exit 1; }; \
	if diff -u include/ordq.h "$$tmp"; then rm -f "$$tmp"; echo "include/ordq.h is up to date"; \
	else rm -f "$$tmp"; echo "include/ordq.h is stale: run 'make header' and commit it" >&2; exit 1; fi

## test-c: the C tests (tests/c) against the debug libordq.so, under
## AddressSanitizer + LeakSanitizer + UBSan, then under valgrind memcheck;
## and the cycle once more linked statically against libordq.a.
C_TEST_DIR := target/c-tests
C_TESTS := cycle bad_input
C_WARN := -std=c99 -Wall -Wextra -Werror -pedantic -g -Iinclude
C_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
C_LINK := -Ltarget/debug -lordq -Wl,-rpath,$(CURDIR)/target/debug
# From `cargo rustc -p ordq-ffi-lib --lib --crate-type staticlib -- --print native-static-libs`
# (documented in docs/FFI.md).
C_STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
VALGRIND := valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
	--suppressions=tests/c/valgrind.supp

test-c:
	$(CARGO) build -p ordq-ffi-lib
	@mkdir -p $(C_TEST_DIR)
	@for t in $(C_TESTS); do \
	  gcc $(C_WARN) $(C_SAN) tests/c/$$t.c -o $(C_TEST_DIR)/$$t-asan $(C_LINK) || exit 1; \
	  gcc $(C_WARN) tests/c/$$t.c -o $(C_TEST_DIR)/$$t $(C_LINK) || exit 1; \
	done
	gcc $(C_WARN) tests/c/cycle.c -o $(C_TEST_DIR)/cycle-static target/debug/libordq.a $(C_STATIC_LIBS)
	@for t in $(C_TESTS); do \
	  echo "== $$t (ASan+LSan+UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=98 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ./$(C_TEST_DIR)/$$t-asan || exit 1; \
	done
	@if command -v valgrind >/dev/null; then \
	  for t in $(C_TESTS); do \
	    echo "== $$t (valgrind memcheck)"; \
	    $(VALGRIND) ./$(C_TEST_DIR)/$$t || exit 1; \
	  done; \
	else echo "valgrind not installed: skipping the valgrind pass (ASan pass ran)"; fi
	@echo "== cycle (static libordq.a)"
	@./$(C_TEST_DIR)/cycle-static

## test-go: the Go package (bindings/go) and its examples: gofmt, go vet,
## the tests under the race detector, with cgocheck2, with -tags debug
## (runtime.GC() before every handle access), and linked dynamically.
GO ?= go
GO_DIRS := bindings/go examples/go bench/go
test-go:
	$(CARGO) build --release -p ordq-ffi-lib
	@out=$$(gofmt -l $(GO_DIRS)); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi
	cd bindings/go && $(GO) vet ./... && $(GO) vet -tags ordq_dynamic ./...
	cd bindings/go && $(GO) test -race -count=1 ./...
	cd bindings/go && GODEBUG=cgocheck=1 GOEXPERIMENT=cgocheck2 $(GO) test -count=1 ./...
	cd bindings/go && $(GO) test -tags debug -count=1 ./...
	cd bindings/go && $(GO) test -tags ordq_dynamic -count=1 ./...
	cd examples/go && $(GO) vet ./... && $(GO) build -o /dev/null ./...
	@d=$$(mktemp -d) && cd examples/go && $(GO) run ./producer -db $$d/ex.ordq -n 300 \
	  && $(GO) run ./worker -db $$d/ex.ordq -exit-when-empty; rc=$$?; rm -rf $$d; exit $$rc
	cd bench/go && $(GO) vet ./... && $(GO) run . -jobs 2000 -per-call-jobs 300 -only enqueue-batch,e2e-batched,e2e-per-call,e2e-worker

## test-python: the Python package (bindings/python) against the release
## libordq.so, named explicitly: pytest (the ctypes declarations checked
## against include/ordq.h, the API, errors, Worker, subscribe, threads, the
## loader and the example in examples/python); then a quick run of the
## Python bench (bench/python) so it keeps working.
PYTHON ?= python3
test-python:
	$(CARGO) build --release -p ordq-ffi-lib
	cd bindings/python && ORDQ_LIBRARY=$(CURDIR)/target/release/libordq.so \
	  $(PYTHON) -m pytest -q -p no:cacheprovider
	ORDQ_LIBRARY=$(CURDIR)/target/release/libordq.so $(PYTHON) bench/python/bench.py \
	  --skip-core --jobs 2000 --per-call-jobs 300

## test-outside: ordq used from projects outside the repository, as each
## binding's README says (tests/outside/run.sh): a cargo project with a path
## dependency, a Go module with a replace directive, a pip install into a
## fresh venv; each runs a producer and a drain-and-exit worker.
.PHONY: test-outside
test-outside:
	$(CARGO) build --release -p ordq-ffi-lib
	bash tests/outside/run.sh

## test-broker: the API suites of the Rust crate, the Go package and the
## Python package once more with ORDQ_TEST_MODE=broker: each test database
## is served by its own `ordq serve` (the debug build) on a Unix socket and
## opened by address, so embedded and remote mode cannot drift. Tests about
## the local file (file lock, file options) skip with the reason.
.PHONY: test-broker
test-broker:
	$(CARGO) build -p ordq-cli
	$(CARGO) build --release -p ordq-ffi-lib
	ORDQ_TEST_MODE=broker ORDQ_BIN=$(CURDIR)/target/debug/ordq $(CARGO) test -p ordq
	cd bindings/go && ORDQ_TEST_MODE=broker ORDQ_BIN=$(CURDIR)/target/debug/ordq $(GO) test -count=1 ./...
	cd bindings/python && ORDQ_TEST_MODE=broker ORDQ_BIN=$(CURDIR)/target/debug/ordq \
	  ORDQ_LIBRARY=$(CURDIR)/target/release/libordq.so $(PYTHON) -m pytest -q -p no:cacheprovider -rsx

## test-cross: the cross-language test (tests/cross/scenario.py): `ordq
## serve` on a Unix socket, a Rust producer enqueueing 20,000 tasks over 500
## keys while two Go, two Rust and two Python worker processes work the same
## queue; one worker is SIGKILLed holding leases and restarted, a zombie's
## stale completes must be refused; then ordq-cross-check verifies the run
## from the database file (exactly once, per-key order, fencing, shares).
## Builds what it runs (cargo release, go build).
.PHONY: test-cross
test-cross:
	CARGO="$(CARGO)" GO="$(GO)" $(PYTHON) tests/cross/scenario.py

## demo: the main job — the same scenario at 3,000 tasks with live
## progress and the final report (needs cargo, go and python3).
demo:
	CARGO="$(CARGO)" GO="$(GO)" $(PYTHON) tests/cross/scenario.py --demo

## bench: throughput and latency figures (see docs/PERFORMANCE.md): the
## engine, then the same jobs through the broker (bench-broker).
bench:
	$(CARGO) run --release -p ordq-bench
	$(MAKE) bench-broker

## bench-broker: end-to-end jobs/s through `ordq serve` with 1, 2, 4 Rust
## and Go worker processes, beside the embedded figure of the same run.
## Options: BENCH_BROKER_ARGS="--jobs 50k --modes batched,pipelined ..."
bench-broker: bench-broker-build
	./target/release/ordq-bench broker $(BENCH_BROKER_ARGS)

## bench-broker-smoke (part of make test): the broker bench once with tiny
## sizes and every runtime and mode, so it keeps working; fails on any
## failed run (a worker error, totals that disagree with the work done).
.PHONY: bench-broker-build bench-broker-smoke
bench-broker-smoke: bench-broker-build
	./target/release/ordq-bench broker --jobs 600 --per-call-jobs 200 --workers 1,2 \
	  --runtimes rust,rust-core,go --modes batched,per-call,pipelined --per-call-loops 4 --producers 2

bench-broker-build:
	$(CARGO) build --release -p ordq-cli -p ordq-ffi-lib -p ordq-bench
	cd bench/go && $(GO) build -o $(CURDIR)/target/release/ordq-bench-go-worker ./brokerworker

clean:
	$(CARGO) clean
