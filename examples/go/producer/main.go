// Command producer enqueues keyed tasks into an ordq database.
//
//	go run ./producer -db /tmp/jobs.ordq -n 1000
//	go run ./worker -db /tmp/jobs.ordq
//
// (The database is held by one process at a time: run them one after the
// other, or use the worker's -demo mode, which does both.)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"

	ordq "github.com/ordq/ordq/bindings/go"
)

func main() {
	path := flag.String("db", "jobs.ordq", "database file")
	queue := flag.String("queue", "emails", "queue name")
	n := flag.Int("n", 100, "tasks to enqueue")
	keys := flag.Int("keys", 10, "distinct ordering keys")
	batch := flag.Int("batch", 100, "tasks per EnqueueBatch call")
	flag.Parse()
	if err := run(context.Background(), *path, *queue, *n, *keys, *batch); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, path, queue string, n, keys, batch int) error {
	db, err := ordq.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	q, err := db.CreateQueue(ctx, queue, ordq.QueueConfig{MaxAttempts: 3})
	if errors.Is(err, ordq.ErrAlreadyExists) {
		q = db.Queue(queue)
	} else if err != nil {
		return err
	}
	items := make([]ordq.EnqueueItem, 0, batch)
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		_, err := q.EnqueueBatch(ctx, items)
		items = items[:0]
		return err
	}
	for i := range n {
		items = append(items, ordq.EnqueueItem{
			Key:     fmt.Sprintf("user-%d", i%keys),
			Payload: fmt.Appendf(nil, `{"seq":%d}`, i),
			Opts:    &ordq.EnqueueOpts{Headers: map[string]string{"source": "producer"}},
		})
		if len(items) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("enqueued %d tasks into %q (next offset %d, ready %d)\n", n, queue, st.NextOffset, st.Ready)
	return nil
}
