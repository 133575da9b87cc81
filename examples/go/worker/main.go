// Command worker processes an ordq queue with ordq.Worker until
// interrupted (Ctrl-C or SIGTERM stop it gracefully: running handlers get
// 10 s to finish; a second Ctrl-C exits at once) or, with
// -exit-when-empty, until the queue is drained (WorkerOptions.Drain:
// nothing ready, leased or waiting for a retry). Payloads are JSON
// ({"seq":N}, as the producer writes them), decoded by ordq.JSONHandler;
// one that does not decode is dead-lettered. With -demo it enqueues tasks
// first.
//
//	go run ./worker -db /tmp/jobs.ordq -demo 200 -exit-when-empty
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"sync/atomic"
	"time"

	ordq "github.com/ordq/ordq/bindings/go"
)

// task is a task's payload.
type task struct {
	Seq int `json:"seq"`
}

func main() {
	path := flag.String("db", "jobs.ordq", "database file")
	queue := flag.String("queue", "emails", "queue name")
	concurrency := flag.Int("concurrency", 8, "handlers running at once")
	failRate := flag.Float64("fail-rate", 0.1, "fraction of attempts that fail (transiently)")
	demo := flag.Int("demo", 0, "enqueue this many tasks first")
	exitWhenEmpty := flag.Bool("exit-when-empty", false, "stop once the queue is drained")
	flag.Parse()

	if err := run(*path, *queue, *concurrency, *failRate, *demo, *exitWhenEmpty); err != nil {
		log.Fatal(err)
	}
}

func run(path, queue string, concurrency int, failRate float64, demo int, exitWhenEmpty bool) error {
	ctx := context.Background()
	db, err := ordq.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	q, err := db.CreateQueue(ctx, queue, ordq.QueueConfig{MaxAttempts: 3, BackoffInitial: 10 * time.Millisecond})
	if errors.Is(err, ordq.ErrAlreadyExists) {
		q = db.Queue(queue)
	} else if err != nil {
		return err
	}
	for i := range demo {
		if _, err := ordq.EnqueueJSON(ctx, q, fmt.Sprintf("user-%d", i%10), task{Seq: i}, nil); err != nil {
			return err
		}
	}

	var handled atomic.Int64
	w := ordq.NewWorker(q, ordq.JSONHandler(func(ctx context.Context, l *ordq.Lease, t task) error {
		select { // pretend to work
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if rand.Float64() < failRate {
			return fmt.Errorf("transient failure of task %d on attempt %d", t.Seq, l.Attempt)
		}
		handled.Add(1)
		l.SetResult([]byte("ok"))
		return nil
	}), ordq.WorkerOptions{Concurrency: concurrency, WorkerID: "example-worker", Drain: exitWhenEmpty,
		OnError: func(l *ordq.Lease, err error) { log.Printf("task %d: %v", l.Offset, err) }})
	defer w.StopOnSignals(10 * time.Second)()

	err = w.Run(ctx)
	st, serr := q.Stats(ctx)
	if serr == nil {
		fmt.Printf("handled %d; done %d, dead %d, retried %d\n", handled.Load(), st.Done, st.Dead, st.Totals.Retried)
	}
	return err
}
