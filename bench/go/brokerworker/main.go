// Command brokerworker is the Go worker process of the broker bench
// (ordq-bench broker, bench/src/broker). It opens a broker by URI
// (ordq.Open("unix:///...")), then follows the driver's lines on stdin
// and answers on stdout, like the Rust worker (ordq-bench broker-worker):
//
//  1. it prints "ready" once connected;
//  2. "go" starts its claim loops (goroutines sharing one handle);
//  3. "done" (or end of input) says the producer has enqueued everything:
//     a loop stops once a claim it began after that, while the process
//     held no lease, came back empty;
//  4. it prints "result completed=N calls=N claims=N empty=N last_ns=N
//     cpu_s=F" and exits 0 (on an error: the message on stderr, exit 1).
//
// Modes: batched (Claim max 100 with a 20 ms wait, then CompleteBatch),
// per-call (Claim max 1, then Complete) and pipelined (batched, with the
// next claim in flight while the previous batch is completed).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ordq "github.com/ordq/ordq/bindings/go"
)

const claimWait = 20 * time.Millisecond

var result = []byte("ok")

// state is shared by the loops of this process.
type state struct {
	done      atomic.Bool  // the producer has enqueued everything
	failed    atomic.Bool  // a loop failed: the others stop too
	inflight  atomic.Int64 // leases claimed, not yet completed (pipelined)
	completed atomic.Uint64
	calls     atomic.Uint64
	claims    atomic.Uint64
	empty     atomic.Uint64
	lastNs    atomic.Int64
}

func (st *state) complete(n int) {
	st.completed.Add(uint64(n))
	now := time.Now().UnixNano()
	for {
		old := st.lastNs.Load()
		if now <= old || st.lastNs.CompareAndSwap(old, now) {
			return
		}
	}
}

func completeAll(ctx context.Context, q *ordq.Queue, ls []*ordq.Lease) error {
	items := make([]ordq.CompleteItem, len(ls))
	for i, l := range ls {
		items[i] = ordq.CompleteItem{Lease: l, Result: result}
	}
	out, err := q.CompleteBatch(ctx, items)
	if err != nil {
		return err
	}
	for _, o := range out {
		if o.Err != nil {
			return o.Err
		}
	}
	return nil
}

// claimLoop claims up to max and completes (CompleteBatch when max > 1)
// until a claim begun after "done" comes back empty.
func claimLoop(ctx context.Context, q *ordq.Queue, worker string, max int, st *state) error {
	for !st.failed.Load() {
		drainedIfEmpty := st.done.Load()
		ls, err := q.Claim(ctx, ordq.ClaimOpts{Worker: worker, Max: max, Wait: claimWait})
		if err != nil {
			return err
		}
		st.calls.Add(1)
		if len(ls) == 0 {
			st.empty.Add(1)
			if drainedIfEmpty {
				return nil
			}
			continue
		}
		st.claims.Add(1)
		if max == 1 {
			for _, l := range ls {
				if _, err := l.Complete(ctx, result); err != nil {
					return err
				}
				st.calls.Add(1)
			}
		} else {
			if err := completeAll(ctx, q, ls); err != nil {
				return err
			}
			st.calls.Add(1)
		}
		st.complete(len(ls))
	}
	return nil
}

// pipelined claims batches of 100 on one goroutine while another
// completes the previous batch; the claimer runs at most two batches
// ahead.
func pipelined(ctx context.Context, q *ordq.Queue, worker string, st *state) error {
	batches := make(chan []*ordq.Lease, 1)
	errc := make(chan error, 1)
	go func() {
		var err error
		for ls := range batches {
			if err != nil {
				continue // drain so the claimer never blocks
			}
			if err = completeAll(ctx, q, ls); err != nil {
				st.failed.Store(true)
				continue
			}
			st.calls.Add(1)
			st.complete(len(ls))
			st.inflight.Add(-int64(len(ls)))
		}
		errc <- err
	}()
	var claimErr error
	for !st.failed.Load() {
		// Only a claim begun after every earlier completion returned may
		// end the run: a completion can unblock the next task of its key.
		drainedIfEmpty := st.done.Load() && st.inflight.Load() == 0
		ls, err := q.Claim(ctx, ordq.ClaimOpts{Worker: worker, Max: 100, Wait: claimWait})
		if err != nil {
			claimErr = err
			break
		}
		st.calls.Add(1)
		if len(ls) == 0 {
			st.empty.Add(1)
			if drainedIfEmpty {
				break
			}
			continue
		}
		st.claims.Add(1)
		st.inflight.Add(int64(len(ls)))
		batches <- ls
	}
	close(batches)
	if err := <-errc; err != nil {
		return err
	}
	return claimErr
}

// followDriver waits for "go", then sets done on "done" or end of input.
func followDriver(st *state) error {
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return fmt.Errorf("the driver went away before \"go\"")
	}
	if l := strings.TrimSpace(in.Text()); l != "go" {
		return fmt.Errorf("expected \"go\" from the driver, got %q", l)
	}
	go func() {
		for in.Scan() {
			if strings.TrimSpace(in.Text()) == "done" {
				break
			}
		}
		st.done.Store(true)
	}()
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func run() error {
	uri := flag.String("uri", "", "broker URI, e.g. unix:///tmp/x/ordq.sock (required)")
	queue := flag.String("queue", "bench", "queue name")
	mode := flag.String("mode", "batched", "batched, per-call or pipelined")
	loops := flag.Int("loops", 1, "concurrent claim loops (goroutines) on the one handle")
	name := flag.String("name", "go-worker", "worker name prefix")
	flag.Parse()
	if *uri == "" {
		return fmt.Errorf("-uri is required")
	}
	if *loops < 1 {
		return fmt.Errorf("-loops must be at least 1")
	}
	var loop func(ctx context.Context, q *ordq.Queue, worker string, st *state) error
	switch *mode {
	case "batched":
		loop = func(ctx context.Context, q *ordq.Queue, w string, st *state) error {
			return claimLoop(ctx, q, w, 100, st)
		}
	case "per-call":
		loop = func(ctx context.Context, q *ordq.Queue, w string, st *state) error {
			return claimLoop(ctx, q, w, 1, st)
		}
	case "pipelined":
		loop = pipelined
	default:
		return fmt.Errorf("-mode must be batched, per-call or pipelined, not %q", *mode)
	}
	db, err := ordq.Open(*uri)
	if err != nil {
		return fmt.Errorf("open %s: %w", *uri, err)
	}
	defer db.Close()
	q := db.Queue(*queue)
	st := &state{}
	fmt.Println("ready")
	if err := followDriver(st); err != nil {
		return err
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, *loops)
	for i := range *loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(ctx, q, fmt.Sprintf("%s-%d", *name, i), st); err != nil {
				st.failed.Store(true)
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("result completed=%d calls=%d claims=%d empty=%d last_ns=%d cpu_s=%.3f\n",
		st.completed.Load(), st.calls.Load(), st.claims.Load(), st.empty.Load(), st.lastNs.Load(), cpuSeconds())
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "brokerworker:", err)
		os.Exit(1)
	}
}
