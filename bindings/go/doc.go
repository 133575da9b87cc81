// Package ordq is the Go binding of ordq, an embedded, durable task queue
// with per-key ordering, leases, retries and dead letters. It calls the
// ordq C ABI (include/ordq.h) through cgo.
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
// instead, with an rpath to that directory.
//
// # Use
//
//	db, err := ordq.Open("jobs.ordq")
//	q, err := db.CreateQueue(ctx, "emails", ordq.QueueConfig{})
//	_, err = q.Enqueue(ctx, "user-42", payload, nil)
//	w := ordq.NewWorker(q, func(ctx context.Context, l *ordq.Lease) error {
//		return send(ctx, l.Payload)
//	}, ordq.WorkerOptions{Concurrency: 8})
//	go w.Run(ctx)
//	...
//	w.Stop(ctx)
//
// Every method that can block takes a context.Context. Errors from ordq
// are *Error values carrying a stable Code; compare them with errors.Is
// against the sentinels (ErrLeaseLost, ErrNotFound, ...).
//
// A DB, its Queues and Leases are safe for concurrent use. A Lease's
// fields are copied into Go memory at claim time; the only C resource is
// the DB handle, freed by Close (a GC cleanup frees a forgotten one).
package ordq
