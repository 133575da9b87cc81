package ordq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func runWorker(t *testing.T, w *Worker) (stop func(context.Context) error, runErr <-chan error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(context.Background()) }()
	return w.Stop, errc
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorkerCompletesFailsAndDeadLetters(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone, MaxAttempts: 3, BackoffInitial: time.Millisecond, BackoffMax: time.Millisecond, NoJitter: true})
	for i := range 30 {
		if _, err := q.Enqueue(ctx, fmt.Sprint(i), []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var flaky atomic.Int32
	var running, maxRunning atomic.Int32
	w := NewWorker(q, func(ctx context.Context, l *Lease) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		switch string(l.Payload) {
		case "0":
			return NonRetryable(errors.New("permanent"))
		case "1":
			if flaky.Add(1) == 1 {
				return errors.New("transient")
			}
		}
		l.SetResult([]byte("r" + string(l.Payload)))
		return nil
	}, WorkerOptions{Concurrency: 4, Prefetch: 2, WorkerID: "gw", PollWait: 50 * time.Millisecond})
	if w.ID() != "gw" {
		t.Fatal(w.ID())
	}
	stop, errc := runWorker(t, w)
	waitFor(t, "all tasks finished", func() bool {
		st, err := q.Stats(ctx)
		return err == nil && st.Done == 29 && st.Dead == 1
	})
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	if m := maxRunning.Load(); m > 4 || m < 2 {
		t.Fatalf("max concurrent handlers %d, want 2..4", m)
	}
	d, err := q.DeadLetter(ctx, 0)
	if err != nil || len(d.Faults) != 1 || d.Faults[0].Error != "permanent" || d.Faults[0].Retryable || d.Faults[0].Worker != "gw" {
		t.Fatalf("dead letter: %+v %v", d, err)
	}
	task, _ := q.Task(ctx, 1)
	if task.Attempt != 2 || string(task.Result) != "r1" {
		t.Fatalf("flaky task: %+v", task)
	}
	faults, _ := q.Faults(ctx, 1)
	if len(faults) != 1 || faults[0].Error != "transient" || !faults[0].Retryable {
		t.Fatalf("flaky faults: %+v", faults)
	}
	if err := w.Run(ctx); err == nil {
		t.Fatal("second Run should fail")
	}
}

func TestWorkerPanicRecorded(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{MaxAttempts: 1})
	if _, err := q.Enqueue(ctx, "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	w := NewWorker(q, func(ctx context.Context, l *Lease) error {
		panic("boom")
	}, WorkerOptions{PollWait: 20 * time.Millisecond})
	stop, errc := runWorker(t, w)
	waitFor(t, "dead letter", func() bool {
		st, _ := q.Stats(ctx)
		return st != nil && st.Dead == 1
	})
	_ = stop(ctx)
	<-errc
	f, err := q.Faults(ctx, 0)
	if err != nil || len(f) != 1 {
		t.Fatalf("faults: %+v %v", f, err)
	}
	if !strings.HasPrefix(f[0].Error, "panic: boom") || !strings.Contains(f[0].Error, "worker_test.go") || !f[0].Retryable {
		t.Fatalf("panic not recorded with its stack: %q", f[0].Error)
	}
}

func TestWorkerLeaseLossCancelsHandler(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	if _, err := q.Enqueue(ctx, "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	var lostErr atomic.Value
	cause := make(chan error, 1)
	w := NewWorker(q, func(hctx context.Context, l *Lease) error {
		// Steal the lease: after a release the worker's token is stale,
		// so its next heartbeat gets LEASE_LOST.
		if err := l.Release(ctx); err != nil {
			return err
		}
		select {
		case <-hctx.Done():
			cause <- context.Cause(hctx)
		case <-time.After(5 * time.Second):
			cause <- errors.New("handler context not cancelled")
		}
		return hctx.Err()
	}, WorkerOptions{Lease: 150 * time.Millisecond, PollWait: 20 * time.Millisecond, Concurrency: 1,
		OnError: func(l *Lease, err error) { lostErr.Store(err) }})
	stop, errc := runWorker(t, w)
	got := <-cause
	if !errors.Is(got, ErrLeaseLost) {
		t.Fatalf("cause: %v", got)
	}
	// Stop quickly: the released task would otherwise be claimed again.
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-errc
	if e, _ := lostErr.Load().(error); !errors.Is(e, ErrLeaseLost) {
		t.Fatalf("OnError got %v", e)
	}
	st, _ := q.Stats(ctx)
	if st.Totals.Failed != 0 || st.Totals.Completed != 0 {
		t.Fatalf("a lost lease must not record an outcome: %+v", st.Totals)
	}
}

func TestWorkerHeartbeatsKeepLease(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	if _, err := q.Enqueue(ctx, "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	w := NewWorker(q, func(hctx context.Context, l *Lease) error {
		// Run for 4 lease lengths; Sync processes expiry timers.
		for range 8 {
			time.Sleep(50 * time.Millisecond)
			if err := db.Sync(ctx); err != nil {
				return err
			}
		}
		if hctx.Err() != nil {
			return hctx.Err()
		}
		done.Store(true)
		return nil
	}, WorkerOptions{Lease: 100 * time.Millisecond, PollWait: 20 * time.Millisecond})
	stop, errc := runWorker(t, w)
	waitFor(t, "completion", func() bool {
		st, _ := q.Stats(ctx)
		return st != nil && st.Done == 1
	})
	_ = stop(ctx)
	<-errc
	st, _ := q.Stats(ctx)
	if !done.Load() || st.Totals.LeaseExpired != 0 {
		t.Fatalf("lease expired despite heartbeats: %+v", st.Totals)
	}
}

func TestWorkerGracefulStopFinishesInFlight(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone})
	for i := range 3 {
		_, _ = q.Enqueue(ctx, fmt.Sprint(i), nil, nil)
	}
	started := make(chan struct{}, 3)
	var finished atomic.Int32
	w := NewWorker(q, func(hctx context.Context, l *Lease) error {
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		if hctx.Err() != nil {
			return hctx.Err()
		}
		finished.Add(1)
		return nil
	}, WorkerOptions{Concurrency: 3, PollWait: 20 * time.Millisecond})
	_, errc := runWorker(t, w)
	for range 3 {
		<-started
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st, _ := q.Stats(ctx)
	if finished.Load() != 3 || st.Done != 3 {
		t.Fatalf("in-flight work not finished: %d, %+v", finished.Load(), st)
	}
}

func TestWorkerStopTimeoutReleases(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	_, _ = q.Enqueue(ctx, "k", nil, nil)
	started := make(chan struct{})
	var cause atomic.Value
	w := NewWorker(q, func(hctx context.Context, l *Lease) error {
		close(started)
		<-hctx.Done()
		cause.Store(context.Cause(hctx))
		return hctx.Err()
	}, WorkerOptions{PollWait: 20 * time.Millisecond})
	_, errc := runWorker(t, w)
	<-started
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Stop(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop: %v", err)
	}
	<-errc
	if c, _ := cause.Load().(error); !errors.Is(c, ErrWorkerStopped) {
		t.Fatalf("cause: %v", c)
	}
	st, _ := q.Stats(ctx)
	if st.Ready != 1 || st.Totals.Released != 1 || st.Totals.Failed != 0 {
		t.Fatalf("task not released: %+v", st)
	}
}

func TestWorkerRunContextCancel(t *testing.T) {
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	w := NewWorker(q, func(context.Context, *Lease) error { return nil }, WorkerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := w.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("Run did not honour cancellation promptly")
	}
	// Closing the DB ends Run with ErrClosed.
	w2 := NewWorker(q, func(context.Context, *Lease) error { return nil }, WorkerOptions{PollWait: 20 * time.Millisecond})
	go func() { time.Sleep(50 * time.Millisecond); _ = db.Close() }()
	wantCode(t, w2.Run(context.Background()), ErrClosed)
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone})
	for i := range 5 {
		_, _ = q.Enqueue(ctx, fmt.Sprint(i), []byte{byte(i)}, nil)
	}
	sctx, cancel := context.WithCancel(ctx)
	ch := q.Subscribe(sctx, ClaimOpts{Worker: "sub", Max: 3, Wait: 20 * time.Millisecond})
	var got []uint64
	for l := range ch {
		got = append(got, l.Offset)
		if _, err := l.Complete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if len(got) == 4 {
			cancel()
			break
		}
	}
	for range ch { // drain until closed
	}
	cancel()
	// The undelivered lease was released.
	waitFor(t, "release", func() bool {
		st, _ := q.Stats(ctx)
		return st != nil && st.Done == 4 && st.Leased == 0
	})
	if len(got) != 4 {
		t.Fatalf("got %v", got)
	}
}

func TestWorkerConcurrentWorkersShareDB(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	var mu sync.Mutex
	perKey := map[string][]int{}
	var ws []*Worker
	var errcs []<-chan error
	for i := range 3 {
		w := NewWorker(q, func(ctx context.Context, l *Lease) error {
			mu.Lock()
			perKey[l.Key] = append(perKey[l.Key], int(l.Payload[0]))
			mu.Unlock()
			return nil
		}, WorkerOptions{Concurrency: 4, WorkerID: fmt.Sprint("w", i), PollWait: 20 * time.Millisecond})
		_, errc := runWorker(t, w)
		ws = append(ws, w)
		errcs = append(errcs, errc)
	}
	for i := range 100 {
		if _, err := q.Enqueue(ctx, fmt.Sprint("key", i%5), []byte{byte(i / 5)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all done", func() bool {
		st, _ := q.Stats(ctx)
		return st != nil && st.Done == 100
	})
	for i, w := range ws {
		if err := w.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-errcs[i]; err != nil {
			t.Fatal(err)
		}
	}
	for k, seq := range perKey {
		for i, v := range seq {
			if v != i {
				t.Fatalf("key %s ran out of order: %v", k, seq)
			}
		}
	}
}

// Handlers that finish together have their results committed together; a
// result over the size limit fails only its own lease, not the others
// committed with it.
func TestWorkerCommitsResultsTogetherWithOwnOutcomes(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone})
	const n, conc = 48, 16
	for i := range n {
		if _, err := q.Enqueue(ctx, fmt.Sprint(i), []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	huge := make([]byte, 1<<20+1) // over the default 1 MiB result limit
	var mu sync.Mutex
	failed := map[uint64]error{}
	var arrived atomic.Int32
	gate := make(chan struct{})
	w := NewWorker(q, func(ctx context.Context, l *Lease) error {
		// The first conc handlers start together and finish together.
		if arrived.Add(1) == conc {
			close(gate)
		}
		<-gate
		if string(l.Payload) == "7" {
			l.SetResult(huge)
		} else {
			l.SetResult([]byte("r" + string(l.Payload)))
		}
		return nil
	}, WorkerOptions{Concurrency: conc, WorkerID: "gb", PollWait: 50 * time.Millisecond,
		OnError: func(l *Lease, err error) {
			mu.Lock()
			failed[l.Offset] = err
			mu.Unlock()
		}})
	stop, errc := runWorker(t, w)
	waitFor(t, "all other tasks done", func() bool {
		st, err := q.Stats(ctx)
		return err == nil && st.Done == n-1
	})
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || !errors.Is(failed[7], ErrTooLarge) {
		t.Fatalf("want only task 7 to fail with ErrTooLarge, got %v", failed)
	}
	for i := range uint64(n) {
		task, err := q.Task(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 7 && task.State == StateDone:
			t.Fatal("task 7 completed with a result over the limit")
		case i != 7 && (task.State != StateDone || string(task.Result) != fmt.Sprint("r", i) || *task.Worker != "gb"):
			t.Fatalf("task %d: %+v", i, task)
		}
	}
}

// Drain: Run returns nil once everything is done, waiting for a task that
// failed once through its retry backoff.
func TestWorkerDrainWaitsForRetries(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	const backoff = 300 * time.Millisecond
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone, MaxAttempts: 3, BackoffInitial: backoff, BackoffMax: backoff, NoJitter: true})
	for i := range 5 {
		if _, err := q.Enqueue(ctx, fmt.Sprint(i), []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var calls atomic.Int32
	w := NewWorker(q, func(ctx context.Context, l *Lease) error {
		calls.Add(1)
		if string(l.Payload) == "2" && l.Attempt == 1 {
			return errors.New("transient")
		}
		return nil
	}, WorkerOptions{Concurrency: 2, PollWait: 20 * time.Millisecond, Drain: true})
	if err := w.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != 5 || st.Unfinished != 0 || st.Leased != 0 || st.RetryWait != 0 || st.Totals.Retried != 1 || calls.Load() != 6 {
		t.Fatalf("drain returned early: %d calls, %+v", calls.Load(), st)
	}
	task, err := q.Task(ctx, 2)
	if err != nil || task.State != StateDone || task.Attempt != 2 {
		t.Fatalf("the retried task: %+v %v", task, err)
	}
}

// Drain on an empty queue returns nil after one empty claim, without
// calling the handler.
func TestWorkerDrainEmptyQueue(t *testing.T) {
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	var calls atomic.Int32
	const poll = 100 * time.Millisecond
	w := NewWorker(q, func(context.Context, *Lease) error {
		calls.Add(1)
		return nil
	}, WorkerOptions{PollWait: poll, Drain: true})
	start := time.Now()
	if err := w.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(start); d > poll+2*time.Second || calls.Load() != 0 {
		t.Fatalf("drain of an empty queue took %v and called the handler %d times", d, calls.Load())
	}
}

// Drain waits for a task leased by another worker: it may come back (here
// it is released) and must then be run.
func TestWorkerDrainWaitsForOtherWorkersLeases(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone})
	for _, p := range []string{"elsewhere", "here"} {
		if _, err := q.Enqueue(ctx, p, []byte(p), nil); err != nil {
			t.Fatal(err)
		}
	}
	held, err := q.Claim(ctx, ClaimOpts{Worker: "other", Max: 1})
	if err != nil || len(held) != 1 || string(held[0].Payload) != "elsewhere" {
		t.Fatalf("claim: %v %v", held, err)
	}
	var mu sync.Mutex
	var ran []string
	w := NewWorker(q, func(ctx context.Context, l *Lease) error {
		mu.Lock()
		ran = append(ran, string(l.Payload))
		mu.Unlock()
		return nil
	}, WorkerOptions{PollWait: 20 * time.Millisecond, WorkerID: "drainer", Drain: true})
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	waitFor(t, "the free task done", func() bool {
		st, err := q.Stats(ctx)
		return err == nil && st.Done == 1
	})
	// No condition to wait on: give a wrongly returning drain several
	// empty claims' time to return before the held task comes back.
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("drain returned (%v) while a task was leased elsewhere", err)
	default:
	}
	if err := held[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	task, err := q.Task(ctx, 0)
	if err != nil || task.State != StateDone || *task.Worker != "drainer" || !slices.Equal(ran, []string{"here", "elsewhere"}) {
		t.Fatalf("the released task was not run by the draining worker: %+v %v, ran %v", task, err, ran)
	}
}

// A claim that returns leases after Stop was called has them released
// unstarted: no handler runs once stopping began. (The claim must be
// blocked waiting when Stop comes; the test retries until that happened.)
func TestWorkerStopReleasesLateClaim(t *testing.T) {
	ctx := context.Background()
	for try := 1; ; try++ {
		db := openTemp(t, WithDurability(DurabilityNone))
		q := mustQueue(t, db, "q", QueueConfig{})
		var calls atomic.Int32
		w := NewWorker(q, func(context.Context, *Lease) error {
			calls.Add(1)
			return nil
		}, WorkerOptions{PollWait: time.Minute})
		errc := make(chan error, 1)
		go func() { errc <- w.Run(ctx) }()
		time.Sleep(30 * time.Millisecond) // let Run block in its claim
		w.stopOnce.Do(func() { close(w.stopping) })
		if _, err := q.Enqueue(ctx, "k", nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("run: %v", err)
		}
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 0 || st.Leased != 0 || st.Ready != 1 || st.Totals.Completed != 0 {
			t.Fatalf("a task enqueued after Stop was run: %d calls, %+v", calls.Load(), st)
		}
		if st.Totals.Released == 1 {
			return // the claim returned the lease after Stop, and it was released
		}
		if try == 10 {
			t.Fatal("the claim never returned a lease after Stop in 10 tries")
		}
	}
}
