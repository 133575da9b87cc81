package ordq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// Handler processes one claimed task. Returning nil completes the task
// (with the result set by Lease.SetResult, if any); returning an error
// fails it — retried after the queue's backoff, or dead-lettered at once
// when the error is wrapped with NonRetryable. A panic is recovered and
// recorded as a (retryable) failure whose text holds the panic value and
// the goroutine's stack.
//
// ctx is cancelled when the lease is lost (context.Cause(ctx) is then an
// error matching ErrLeaseLost) or when the worker is stopped without
// enough time to finish (the cause is ErrWorkerStopped; the task is then
// released, without counting an attempt).
type Handler func(ctx context.Context, lease *Lease) error

// ErrWorkerStopped is the cause of a handler context cancelled because
// its worker stopped.
var ErrWorkerStopped = errors.New("ordq: worker stopped")

// PanicError is the error a Worker records for a handler panic.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the handler goroutine's stack at the panic
}

// Error returns "panic: VALUE" followed by the stack.
func (p *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", p.Value, p.Stack)
}

// WorkerOptions configure NewWorker. Zero fields take the defaults shown.
type WorkerOptions struct {
	// Concurrency is how many handlers run at once (default 1).
	Concurrency int
	// Lease is the lease duration to claim with and extend by (0 = the
	// queue's). Heartbeats are sent every third of it.
	Lease time.Duration
	// Prefetch is the most tasks claimed per call (default Concurrency;
	// never more than the free handler slots).
	Prefetch int
	// WorkerID names this worker in leases and faults (default
	// "HOSTNAME-PID").
	WorkerID string
	// PollWait is how long one claim blocks waiting for work (default 1s;
	// cancellation is still noticed within about 100 ms).
	PollWait time.Duration
	// Drain makes Run return nil once the queue is drained: a claim found
	// nothing, none of this worker's handlers is running or committing,
	// and the queue's stats say nothing is unfinished (QueueStats.
	// Unfinished == 0: no task ready, delayed, leased or waiting for a
	// retry). So a draining worker waits for tasks in retry backoff and
	// for tasks leased by other workers (they come back if their lease
	// expires); dead letters do not count, but a lane blocked by a dead
	// letter under DLQBlock keeps its tasks unfinished, and the worker
	// waiting, until the dead letter is redriven or purged. For batch
	// jobs, tests and scripts: "process everything, then exit".
	Drain bool
	// OnError, if set, is called (from any goroutine) with errors the
	// worker cannot return: a failed complete, fail, release or
	// heartbeat, including ErrLeaseLost.
	OnError func(lease *Lease, err error)
}

// Worker runs a Handler over a queue's tasks with bounded concurrency,
// automatic heartbeats and graceful shutdown. Results of handlers that
// finish while an earlier result is being committed are committed
// together, with one CompleteBatch (one round trip and one commit), and
// each lease still gets its own outcome; a handler's slot stays taken
// until its result is durable.
type Worker struct {
	q       *Queue
	handler Handler
	opts    WorkerOptions

	stopOnce sync.Once
	stopping chan struct{} // closed by Stop
	done     chan struct{} // closed when Run returns
	runOnce  sync.Once

	handlerCtx     context.Context
	cancelHandlers context.CancelCauseFunc

	finished chan finished // handlers' results, to the completer
}

// NewWorker returns a worker that runs handler over q's tasks. Start it
// with Run.
func NewWorker(q *Queue, handler Handler, opts WorkerOptions) *Worker {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Prefetch <= 0 || opts.Prefetch > opts.Concurrency {
		opts.Prefetch = opts.Concurrency
	}
	if opts.WorkerID == "" {
		host, _ := os.Hostname()
		opts.WorkerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.PollWait <= 0 {
		opts.PollWait = time.Second
	}
	hctx, cancel := context.WithCancelCause(context.Background())
	return &Worker{
		q: q, handler: handler, opts: opts,
		stopping: make(chan struct{}), done: make(chan struct{}),
		handlerCtx: hctx, cancelHandlers: cancel,
		finished: make(chan finished, opts.Concurrency),
	}
}

// ID returns the worker id used in claims.
func (w *Worker) ID() string { return w.opts.WorkerID }

// Run claims and handles tasks until Stop is called (then it waits for
// the running handlers and returns nil), the queue is drained with
// WorkerOptions.Drain (it returns nil), or ctx is done (then it cancels
// the running handlers' contexts, releases their tasks, waits for them
// and returns ctx.Err()). Leases of a claim that returns after stopping
// began are released unstarted. A claim or stats error such as ErrClosed
// or ErrNotFound also ends Run (after the running handlers finish) and is
// returned. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	err := errors.New("ordq: Worker.Run called twice")
	w.runOnce.Do(func() { err = w.run(ctx) })
	return err
}

func (w *Worker) run(ctx context.Context) error {
	defer close(w.done)
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		w.completer(w.finished)
	}()
	// Every handler has its outcome before the completer is told to end.
	defer func() {
		close(w.finished)
		<-completerDone
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, w.opts.Concurrency)
	claimCtx, cancelClaim := context.WithCancel(ctx)
	defer cancelClaim()
	go func() {
		select {
		case <-w.stopping:
			cancelClaim()
		case <-claimCtx.Done():
		}
	}()
	var runErr error
loop:
	for {
		select {
		case sem <- struct{}{}:
		case <-claimCtx.Done():
			break loop
		}
		slots := 1
		for slots < w.opts.Prefetch {
			select {
			case sem <- struct{}{}:
				slots++
				continue
			default:
			}
			break
		}
		leases, err := w.q.Claim(claimCtx, ClaimOpts{Worker: w.opts.WorkerID, Max: slots, Lease: w.opts.Lease, Wait: w.opts.PollWait})
		if claimCtx.Err() != nil || w.stopRequested() {
			// Stopping began during the claim: give its leases back unstarted.
			for _, l := range leases {
				w.report(l, l.Release(context.Background()))
			}
			for range slots {
				<-sem
			}
			break loop
		}
		for range slots - len(leases) {
			<-sem
		}
		if err == nil && len(leases) == 0 && w.opts.Drain && len(sem) == 0 {
			// No slot is taken (only this loop takes them), so none of this
			// worker's handlers is running or committing (their tasks would
			// still be leased, hence unfinished): ask the engine whether
			// anything is unfinished.
			st, serr := w.q.Stats(claimCtx)
			if serr != nil {
				err = serr
			} else if st.Unfinished == 0 {
				break loop
			}
		}
		for _, l := range leases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				w.process(l)
			}()
		}
		if err != nil {
			if claimCtx.Err() == nil {
				runErr = err
			}
			break loop
		}
	}
	if ctx.Err() != nil {
		w.cancelHandlers(ErrWorkerStopped)
	}
	wg.Wait()
	w.cancelHandlers(ErrWorkerStopped)
	if runErr != nil {
		return runErr
	}
	return ctx.Err()
}

// Stop stops claiming and waits for the running handlers to finish and
// commit. If ctx ends first, the handlers' contexts are cancelled with
// cause ErrWorkerStopped (the task of a handler that then returns an
// error is released, without counting an attempt; one that returns nil
// is completed), Stop waits for them to return, and returns ctx.Err().
// Stop before Run makes Run return at once. See StopOnSignals for
// stopping on SIGINT and SIGTERM.
func (w *Worker) Stop(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stopping) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.cancelHandlers(ErrWorkerStopped)
		<-w.done
		return ctx.Err()
	}
}

// stopRequested reports whether Stop was called (claimCtx is cancelled
// a moment later, by another goroutine).
func (w *Worker) stopRequested() bool {
	select {
	case <-w.stopping:
		return true
	default:
		return false
	}
}

func (w *Worker) report(l *Lease, err error) {
	if err != nil && w.opts.OnError != nil {
		w.opts.OnError(l, err)
	}
}

// process runs the handler for one lease with heartbeats and records the
// outcome.
func (w *Worker) process(l *Lease) {
	bg := context.Background()
	if w.handlerCtx.Err() != nil {
		w.report(l, l.Release(bg))
		return
	}
	hctx, cancel := context.WithCancelCause(w.handlerCtx)
	defer cancel(nil)

	interval := l.ExpiresAt.Sub(l.LeasedAt) / 3
	if interval < 5*time.Millisecond {
		interval = 5 * time.Millisecond
	}
	hbDone := make(chan struct{})
	var hbWG sync.WaitGroup
	hbWG.Add(1)
	go func() {
		defer hbWG.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-hbDone:
				return
			case <-t.C:
				if _, err := l.Heartbeat(bg, w.opts.Lease); err != nil {
					cancel(err)
					w.report(l, err)
					return
				}
			}
		}
	}()

	err := w.call(hctx, l)
	close(hbDone)
	hbWG.Wait()

	if cause := context.Cause(hctx); cause != nil && hctx.Err() != nil {
		switch {
		case errors.Is(cause, ErrWorkerStopped):
			if err != nil {
				w.report(l, l.Release(bg))
				return
			}
			// The handler finished anyway: record its success below.
		default:
			// Lease lost (or the database closed): nothing can be recorded.
			return
		}
	}
	if err == nil {
		// Committed by the completer together with the results of other
		// handlers that finished meanwhile; this handler's slot stays
		// taken until its result is durable.
		done := make(chan error, 1)
		w.finished <- finished{lease: l, result: l.getResult(), done: done}
		w.report(l, <-done)
		return
	}
	_, ferr := l.Fail(bg, err.Error(), !IsNonRetryable(err))
	w.report(l, ferr)
}

// call runs the handler, turning a panic into a *PanicError.
func (w *Worker) call(ctx context.Context, l *Lease) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return w.handler(ctx, l)
}

// Subscribe claims tasks in the background and delivers them one at a
// time on the returned channel, which is closed when ctx is done or a
// claim fails (for example with ErrClosed). The receiver must finish
// every lease it takes (Complete, Fail or Release). Leases claimed but
// not yet delivered when ctx ends are released. A zero opts.Wait waits
// 1 s per claim.
func (q *Queue) Subscribe(ctx context.Context, opts ClaimOpts) <-chan *Lease {
	if opts.Wait <= 0 {
		opts.Wait = time.Second
	}
	ch := make(chan *Lease)
	go func() {
		defer close(ch)
		for {
			leases, err := q.Claim(ctx, opts)
			if err != nil {
				return
			}
			for i, l := range leases {
				select {
				case ch <- l:
				case <-ctx.Done():
					for _, rest := range leases[i:] {
						_ = rest.Release(context.Background())
					}
					return
				}
			}
		}
	}()
	return ch
}
