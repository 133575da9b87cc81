package ordq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ordq "github.com/ordq/ordq/bindings/go"
)

func tempPath() (string, func()) {
	dir, err := os.MkdirTemp("", "ordq-example")
	if err != nil {
		panic(err)
	}
	return filepath.Join(dir, "jobs.ordq"), func() { os.RemoveAll(dir) }
}

// Enqueue, claim and complete one task by hand.
func Example() {
	path, cleanup := tempPath()
	defer cleanup()
	ctx := context.Background()

	db, err := ordq.Open(path)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	q, err := db.CreateQueue(ctx, "emails", ordq.QueueConfig{})
	if err != nil {
		panic(err)
	}
	r, err := q.Enqueue(ctx, "user-42", []byte("welcome"), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("enqueued at offset", r.Offset)

	leases, err := q.Claim(ctx, ordq.ClaimOpts{Worker: "worker-1", Max: 10})
	if err != nil {
		panic(err)
	}
	for _, l := range leases {
		fmt.Printf("%s: %s (attempt %d)\n", l.Key, l.Payload, l.Attempt)
		if _, err := l.Complete(ctx, []byte("sent")); err != nil {
			panic(err)
		}
	}
	st, _ := q.Stats(ctx)
	fmt.Println("done:", st.Done)
	// Output:
	// enqueued at offset 0
	// user-42: welcome (attempt 1)
	// done: 1
}

// A Worker runs a handler with heartbeats; NonRetryable dead-letters.
func ExampleNewWorker() {
	path, cleanup := tempPath()
	defer cleanup()
	ctx := context.Background()
	db, _ := ordq.Open(path)
	defer db.Close()
	q, _ := db.CreateQueue(ctx, "orders", ordq.QueueConfig{})
	_, _ = q.Enqueue(ctx, "order-1", []byte("ok"), nil)
	_, _ = q.Enqueue(ctx, "order-2", []byte("bad"), nil)

	w := ordq.NewWorker(q, func(ctx context.Context, l *ordq.Lease) error {
		if string(l.Payload) == "bad" {
			return ordq.NonRetryable(errors.New("malformed order"))
		}
		l.SetResult([]byte("shipped"))
		return nil
	}, ordq.WorkerOptions{Concurrency: 2, PollWait: 20 * time.Millisecond, Drain: true})
	// Drain: Run returns once nothing is left to do.
	if err := w.Run(ctx); err != nil {
		panic(err)
	}

	dead, _ := q.DeadLetters(ctx, nil, 10)
	d, _ := q.DeadLetter(ctx, dead[0].Offset)
	fmt.Println("dead:", d.Task.Key, "-", d.Faults[0].Error)
	t, _ := q.Task(ctx, 0)
	fmt.Println(t.Key, t.State, string(t.Result))
	// Output:
	// dead: order-2 - malformed order
	// order-1 done shipped
}

// Typed payloads: EnqueueJSON encodes a value, JSONHandler decodes it for
// the handler; a payload that does not decode is dead-lettered.
func ExampleJSONHandler() {
	path, cleanup := tempPath()
	defer cleanup()
	ctx := context.Background()
	db, _ := ordq.Open(path)
	defer db.Close()
	q, _ := db.CreateQueue(ctx, "emails", ordq.QueueConfig{})

	type Email struct {
		To      string `json:"to"`
		Subject string `json:"subject"`
	}
	_, _ = ordq.EnqueueJSON(ctx, q, "user-42", Email{To: "ada@example.com", Subject: "welcome"}, nil)
	_, _ = q.Enqueue(ctx, "user-43", []byte("not json"), nil)

	w := ordq.NewWorker(q, ordq.JSONHandler(func(ctx context.Context, l *ordq.Lease, e Email) error {
		fmt.Println("to", e.To+":", e.Subject)
		return nil
	}), ordq.WorkerOptions{PollWait: 20 * time.Millisecond, Drain: true})
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
	d, _ := q.DeadLetter(ctx, 1)
	fmt.Println("dead:", d.Faults[0].Error)
	// Output:
	// to ada@example.com: welcome
	// dead: ordq: payload does not decode as ordq_test.Email: invalid character 'o' in literal null (expecting 'u')
}

// A worker process that Ctrl-C or SIGTERM stops gracefully: running
// handlers get 30 s to finish, then their tasks are released; a second
// signal exits at once.
func ExampleWorker_StopOnSignals() {
	db, err := ordq.Open("jobs.ordq")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	w := ordq.NewWorker(db.Queue("emails"), func(ctx context.Context, l *ordq.Lease) error {
		return nil // do the work, honouring ctx
	}, ordq.WorkerOptions{Concurrency: 8})
	defer w.StopOnSignals(30 * time.Second)()
	if err := w.Run(context.Background()); err != nil {
		panic(err)
	}
}

// Errors carry a stable code and match the sentinels with errors.Is.
func ExampleError() {
	path, cleanup := tempPath()
	defer cleanup()
	db, _ := ordq.Open(path)
	defer db.Close()
	_, err := db.Queue("missing").Stats(context.Background())
	var e *ordq.Error
	fmt.Println(errors.Is(err, ordq.ErrNotFound), errors.As(err, &e) && e.Code == ordq.CodeNotFound)
	// Output: true true
}

// Redrive a dead letter back to its lane.
func ExampleQueue_Redrive() {
	path, cleanup := tempPath()
	defer cleanup()
	ctx := context.Background()
	db, _ := ordq.Open(path)
	defer db.Close()
	q, _ := db.CreateQueue(ctx, "q", ordq.QueueConfig{MaxAttempts: 1})
	_, _ = q.Enqueue(ctx, "k", []byte("x"), nil)
	ls, _ := q.Claim(ctx, ordq.ClaimOpts{Worker: "w"})
	out, _ := ls[0].Fail(ctx, "broken", true)
	fmt.Println("dead:", out.Dead)
	r, _ := q.Redrive(ctx, 0, ordq.RedriveHead)
	ls, _ = q.Claim(ctx, ordq.ClaimOpts{Worker: "w"})
	fmt.Println("redriven offset", r.Offset, "claimed again:", len(ls) == 1 && ls[0].Offset == 0)
	// Output:
	// dead: true
	// redriven offset 0 claimed again: true
}

// Subscribe delivers leases on a channel.
func ExampleQueue_Subscribe() {
	path, cleanup := tempPath()
	defer cleanup()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, _ := ordq.Open(path)
	defer db.Close()
	q, _ := db.CreateQueue(ctx, "q", ordq.QueueConfig{Ordering: ordq.OrderingGlobal})
	for _, k := range []string{"a", "b", "c"} {
		_, _ = q.Enqueue(ctx, k, nil, nil)
	}
	n := 0
	for l := range q.Subscribe(ctx, ordq.ClaimOpts{Worker: "sub"}) {
		fmt.Println(l.Key)
		_, _ = l.Complete(ctx, nil)
		if n++; n == 3 {
			cancel()
		}
	}
	// Output:
	// a
	// b
	// c
}
