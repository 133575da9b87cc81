package ordq

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// StopOnSignals makes SIGINT (Ctrl-C) and SIGTERM (systemd, Docker,
// Kubernetes) stop the worker gracefully, as the Rust binding's
// StopHandle::on_signals and the Python Worker.run(grace) do: no task is
// claimed any more, the running handlers get up to grace to finish and
// commit, then their contexts are cancelled with cause ErrWorkerStopped,
// so the task of a handler that then returns an error is released
// (without counting an attempt) to run again at once elsewhere. Run then
// returns nil. A grace of 0 or less waits for the handlers without limit.
// This is Stop with a grace-long context, started by the signal.
//
// A second SIGINT or SIGTERM while stopping ends the process at once with
// exit status 1, without running deferred calls; the tasks still leased
// then run again when their leases expire.
//
// The returned func uninstalls the handlers, restoring the signals'
// previous behaviour (unless other os/signal.Notify channels remain); it
// may be called more than once. They are also uninstalled when Run
// returns. Typical use, in main:
//
//	w := ordq.NewWorker(q, handler, ordq.WorkerOptions{Concurrency: 8})
//	defer w.StopOnSignals(30 * time.Second)()
//	if err := w.Run(context.Background()); err != nil {
//		log.Fatal(err)
//	}
func (w *Worker) StopOnSignals(grace time.Duration) (uninstall func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	var once sync.Once
	uninstall = func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(quit)
		})
	}
	go func() {
		defer uninstall()
		select {
		case <-sigs:
		case <-w.done:
			return
		case <-quit:
			return
		}
		go func() {
			ctx := context.Background()
			if grace > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, grace)
				defer cancel()
			}
			// Run reports the outcome; Stop's own error only says that the
			// grace ran out.
			_ = w.Stop(ctx)
		}()
		select {
		case <-sigs:
			os.Exit(1)
		case <-w.done:
		case <-quit:
		}
	}()
	return uninstall
}
