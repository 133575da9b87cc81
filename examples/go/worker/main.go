// Command worker processes an ordq queue with ordq.Worker until
// interrupted (Ctrl-C stops gracefully) or, with -exit-when-empty, until
// the queue has no pending work. With -demo it enqueues tasks first.
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
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	ordq "github.com/ordq/ordq/bindings/go"
)

func main() {
	path := flag.String("db", "jobs.ordq", "database file")
	queue := flag.String("queue", "emails", "queue name")
	concurrency := flag.Int("concurrency", 8, "handlers running at once")
	failRate := flag.Float64("fail-rate", 0.1, "fraction of attempts that fail (transiently)")
	demo := flag.Int("demo", 0, "enqueue this many tasks first")
	exitWhenEmpty := flag.Bool("exit-when-empty", false, "stop once nothing is pending")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *path, *queue, *concurrency, *failRate, *demo, *exitWhenEmpty); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

func run(ctx context.Context, path, queue string, concurrency int, failRate float64, demo int, exitWhenEmpty bool) error {
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
		if _, err := q.Enqueue(ctx, fmt.Sprintf("user-%d", i%10), fmt.Appendf(nil, "task %d", i), nil); err != nil {
			return err
		}
	}

	var handled atomic.Int64
	w := ordq.NewWorker(q, func(ctx context.Context, l *ordq.Lease) error {
		select { // pretend to work
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if rand.Float64() < failRate {
			return fmt.Errorf("transient failure on attempt %d", l.Attempt)
		}
		handled.Add(1)
		l.SetResult([]byte("ok"))
		return nil
	}, ordq.WorkerOptions{Concurrency: concurrency, WorkerID: "example-worker",
		OnError: func(l *ordq.Lease, err error) { log.Printf("task %d: %v", l.Offset, err) }})

	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	if exitWhenEmpty {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				if err := db.Sync(ctx); err != nil {
					return
				}
				st, err := q.Stats(ctx)
				if err == nil && st.Ready+st.Leased+st.RetryWait == 0 {
					sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_ = w.Stop(sctx)
					cancel()
					return
				}
			}
		}()
	}
	err = <-errc
	st, serr := q.Stats(context.Background())
	if serr == nil {
		fmt.Printf("handled %d; done %d, dead %d, retried %d\n", handled.Load(), st.Done, st.Dead, st.Totals.Retried)
	}
	return err
}
