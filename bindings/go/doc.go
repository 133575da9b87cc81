// Package ordq is the Go binding of ordq, a durable task queue with
// per-key ordering, leases, retries and dead letters. It calls the ordq C
// ABI (include/ordq.h) through cgo, in one of two modes with the same API:
// embedded, where the engine runs in this process on a database file
// (Open("jobs.ordq")), or remote, where every call goes to a broker
// (`ordq serve`) at unix:///path/to/ordq.sock or tcp://host:port, so many
// processes and languages share one queue.
//
// # Building
//
// The package links target/release/libordq.a (relative to this
// directory) statically by default, so Go binaries are self-contained:
//
//	cargo build --release -p ordq-ffi-lib   # or: make build
//	go test ./...
//
// With the build tag ordq_dynamic it links target/release/libordq.so
// instead, with an rpath to that directory. Without the library the build
// stops with an #error saying how to build it. To use the package from
// another module, require github.com/ordq/ordq/bindings/go with a replace
// directive pointing at a clone's bindings/go (see README.md there).
//
// # Use
//
//	db, err := ordq.Open("jobs.ordq") // or "unix:///run/ordq/ordq.sock"
//	q, err := db.CreateQueueIfNotExists(ctx, "emails", ordq.QueueConfig{})
//	_, err = q.Enqueue(ctx, "user-42", payload, nil)
//	w := ordq.NewWorker(q, func(ctx context.Context, l *ordq.Lease) error {
//		return send(ctx, l.Payload)
//	}, ordq.WorkerOptions{Concurrency: 8})
//	defer w.StopOnSignals(30 * time.Second)() // SIGINT/SIGTERM: graceful stop
//	err = w.Run(ctx)
//
// WorkerOptions.Drain makes Run return once the queue is drained, and
// EnqueueJSON with JSONHandler carry typed payloads.
//
// Every method that can block takes a context.Context. Errors from ordq
// are *Error values carrying a stable Code; compare them with errors.Is
// against the sentinels (ErrLeaseLost, ErrNotFound, ...).
//
// A DB, its Queues and Leases are safe for concurrent use. A Lease's
// fields are copied into Go memory at claim time; the only C resource is
// the DB handle, freed by Close (a GC cleanup frees a forgotten one).
package ordq
