// Command ordq-go-bench measures the Go binding: enqueue and end-to-end
// jobs/s, batched and per call with many goroutines, with the same
// workload as the core bench (bench/, ordq-bench): one queue with the
// default config, 1,000 keys, 256-byte payloads, a 2-byte result, durable
// (Immediate) writes. With -core it also runs the core bench's
// e2e-batched scenario in the same run, for comparison.
//
//	cargo build --release -p ordq-ffi-lib -p ordq-bench
//	cd bench/go && go run . -core ../../target/release/ordq-bench
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ordq "github.com/ordq/ordq/bindings/go"
)

var (
	jobs        = flag.Int("jobs", 50000, "jobs in the batched runs")
	perCallJobs = flag.Int("per-call-jobs", 10000, "jobs in the per-call runs")
	dirFlag     = flag.String("dir", os.TempDir(), "where the temporary databases go")
	only        = flag.String("only", "", "comma-separated scenarios (default all): enqueue-1g,enqueue-64g,enqueue-batch,enqueue-batch-4g,e2e-batched,e2e-per-call,e2e-worker")
	corePath    = flag.String("core", "", "path of ordq-bench: also run its e2e-batched scenario")
	brokerPath  = flag.String("broker", "", "path of the ordq binary: run every scenario through a fresh `ordq serve` (unix socket) instead of on a file")
)

const (
	keys      = 1000
	batchSize = 100
)

var payload = make([]byte, 256)

func key(i int) string { return fmt.Sprintf("key-%04d", i%keys) }

func fresh() (*ordq.DB, *ordq.Queue, func()) {
	dir, err := os.MkdirTemp(*dirFlag, "ordq-go-bench")
	if err != nil {
		log.Fatal(err)
	}
	file := filepath.Join(dir, "bench.ordq")
	target, stopBroker := file, func() {}
	if *brokerPath != "" {
		target, stopBroker = serve(dir, file)
	}
	db, err := ordq.Open(target)
	if err != nil {
		log.Fatal(err)
	}
	q, err := db.CreateQueue(context.Background(), "bench", ordq.QueueConfig{})
	if err != nil {
		log.Fatal(err)
	}
	return db, q, func() { db.Close(); stopBroker(); os.RemoveAll(dir) }
}

// serve starts `ordq serve` on file and returns its unix:// address and a
// function that stops it (SIGTERM, then wait).
func serve(dir, file string) (string, func()) {
	sock := filepath.Join(dir, "ordq.sock")
	cmd := exec.Command(*brokerPath, "serve", "--db", file, "--listen", "unix://"+sock)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 500 {
			log.Fatalf("ordq serve did not create %s", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "unix://" + sock, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

func report(name string, n int, d time.Duration, extra string) {
	fmt.Printf("%-18s %10.0f jobs/s   (%d jobs in %.2fs)%s\n", name, float64(n)/d.Seconds(), n, d.Seconds(), extra)
}

func check(q *ordq.Queue, enq, completed uint64) {
	st, err := q.Stats(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	if st.Totals.Enqueued != enq || st.Totals.Completed != completed {
		log.Fatalf("totals disagree: enqueued %d (want %d), completed %d (want %d)", st.Totals.Enqueued, enq, st.Totals.Completed, completed)
	}
}

// enqueueSingle: goroutines enqueue one task per call, stopping after 5 s.
func enqueueSingle(name string, goroutines, n int) {
	db, q, done := fresh()
	defer done()
	_ = db
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || time.Now().After(deadline) {
					return
				}
				if _, err := q.Enqueue(ctx, key(i), payload, nil); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	st, _ := q.Stats(ctx)
	report(name, int(st.Totals.Enqueued), d, "")
}

func batchItems(from, n int) []ordq.EnqueueItem {
	items := make([]ordq.EnqueueItem, n)
	for i := range items {
		items[i] = ordq.EnqueueItem{Key: key(from + i), Payload: payload}
	}
	return items
}

// enqueueBatch: goroutines enqueue batches of 100.
func enqueueBatch(name string, goroutines, n int) {
	_, q, done := fresh()
	defer done()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(batchSize)) - batchSize
				if from >= n {
					return
				}
				if _, err := q.EnqueueBatch(ctx, batchItems(from, min(batchSize, n-from))); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	report(name, n, time.Since(start), "")
	check(q, uint64(n), 0)
}

// producer enqueues n jobs in batches of 100 from one goroutine.
func producer(q *ordq.Queue, n int, wg *sync.WaitGroup) {
	defer wg.Done()
	for from := 0; from < n; from += batchSize {
		if _, err := q.EnqueueBatch(context.Background(), batchItems(from, min(batchSize, n-from))); err != nil {
			log.Fatal(err)
		}
	}
}

// e2e: one batched producer and `workers` goroutines claiming up to max
// and completing (CompleteBatch when max > 1).
func e2e(name string, n, workers, max int) {
	_, q, done := fresh()
	defer done()
	ctx := context.Background()
	var completed, claims, empty atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go producer(q, n, &wg)
	result := []byte("ok")
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("w", w)
			for completed.Load() < int64(n) {
				ls, err := q.Claim(ctx, ordq.ClaimOpts{Worker: id, Max: max, Wait: 20 * time.Millisecond})
				if err != nil {
					log.Fatal(err)
				}
				claims.Add(1)
				if len(ls) == 0 {
					empty.Add(1)
					continue
				}
				if max == 1 {
					if _, err := ls[0].Complete(ctx, result); err != nil {
						log.Fatal(err)
					}
				} else {
					items := make([]ordq.CompleteItem, len(ls))
					for i, l := range ls {
						items[i] = ordq.CompleteItem{Lease: l, Result: result}
					}
					out, err := q.CompleteBatch(ctx, items)
					if err != nil {
						log.Fatal(err)
					}
					for _, o := range out {
						if o.Err != nil {
							log.Fatal(o.Err)
						}
					}
				}
				completed.Add(int64(len(ls)))
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	report(name, n, d, fmt.Sprintf("  claims %d (empty %d)", claims.Load(), empty.Load()))
	check(q, uint64(n), uint64(n))
}

// e2eWorker: the batched producer and an ordq.Worker with 64 handlers.
func e2eWorker(name string, n int) {
	_, q, done := fresh()
	defer done()
	var completed atomic.Int64
	finished := make(chan struct{})
	w := ordq.NewWorker(q, func(ctx context.Context, l *ordq.Lease) error {
		if completed.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	}, ordq.WorkerOptions{Concurrency: 64, Prefetch: 64, PollWait: 20 * time.Millisecond})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go producer(q, n, &wg)
	go func() { _ = w.Run(context.Background()) }()
	<-finished
	_ = w.Stop(context.Background())
	d := time.Since(start)
	wg.Wait()
	report(name, n, d, "  (handler returns nil; 64 handlers; the Worker commits results that finish together in one CompleteBatch)")
	check(q, uint64(n), uint64(n))
}

func enabled(name string) bool {
	if *only == "" {
		return true
	}
	for _, s := range strings.Split(*only, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

func main() {
	flag.Parse()
	via := "on a file"
	if *brokerPath != "" {
		via = "through " + *brokerPath + " serve"
	}
	fmt.Printf("ordq Go binding bench: %d batched jobs, %d per-call jobs, durable, %s, dir %s\n", *jobs, *perCallJobs, via, *dirFlag)
	if enabled("enqueue-1g") {
		enqueueSingle("enqueue-1g", 1, *perCallJobs)
	}
	if enabled("enqueue-64g") {
		enqueueSingle("enqueue-64g", 64, *perCallJobs)
	}
	if enabled("enqueue-batch") {
		enqueueBatch("enqueue-batch", 1, *jobs)
	}
	if enabled("enqueue-batch-4g") {
		enqueueBatch("enqueue-batch-4g", 4, *jobs)
	}
	if enabled("e2e-batched") {
		e2e("e2e-batched", *jobs, 4, 100)
	}
	if enabled("e2e-per-call") {
		e2e("e2e-per-call", *perCallJobs, 64, 1)
	}
	if enabled("e2e-worker") {
		e2eWorker("e2e-worker", *perCallJobs)
	}
	if *corePath != "" {
		fmt.Println("--- core (ordq-bench --only e2e-batched), same run:")
		cmd := exec.Command(*corePath, "--only", "e2e-batched", "--jobs", fmt.Sprint(*jobs), "--dir", *dirFlag)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatal(err)
		}
	}
}
