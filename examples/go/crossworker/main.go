// Command crossworker is the Go worker of the cross-language scenario
// (make test-cross, make demo; driven by tests/cross/scenario.py). Run
// beside the Rust and Python workers on one queue of a broker
// (-db unix:///path/ordq.sock), it claims in batches and treats each task
// as its JSON payload says ({"b":"ok"|"once"|"always",...}, written by the
// Rust cross_producer): ok completes, once fails (retryable) on attempt 1
// and completes later, always fails every attempt until dead-lettered.
// Completions go in one CompleteBatch per claim with the result
// {"w":"<worker id>","f":<fence>}.
//
//	crossworker -db unix:///tmp/x/ordq.sock -id go-1 -ctl /tmp/x/ctl -report /tmp/x/workers/go-1.0.json
//
// With -zombies N it also proves fencing end to end, N times: it keeps one
// lease of a batch aside without finishing it, waits until the lease has
// expired and another worker has leased the task (its fence changed; should
// this worker claim the task again itself, it releases it), then tries to
// complete it with the stale token, which must be refused with
// ErrLeaseLost. Each try is recorded in the report.
//
// Control files in -ctl: once producer-done exists and the queue has
// nothing ready, leased or waiting for a retry, the worker exits 0.
// -report is rewritten every 250 ms and at exit with the worker's counts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	ordq "github.com/ordq/ordq/bindings/go"
)

// zombieTry is one stale-token completion attempt, as reported.
type zombieTry struct {
	Offset     uint64 `json:"offset"`
	StaleFence uint64 `json:"stale_fence"`
	NewFence   uint64 `json:"new_fence"`
	NewWorker  string `json:"new_worker"`
	NewState   string `json:"new_state"`
	HeldMs     int64  `json:"held_ms"`
	Refused    bool   `json:"refused"` // refused with ErrLeaseLost
	Error      string `json:"error"`
}

// report is what -report holds.
type report struct {
	ID        string      `json:"id"`
	Runtime   string      `json:"runtime"`
	Pid       int         `json:"pid"`
	Claims    uint64      `json:"claims"`
	Claimed   uint64      `json:"claimed"`
	Completed uint64      `json:"completed"`
	Failed    uint64      `json:"failed"`
	Dead      uint64      `json:"dead"`
	LeaseLost uint64      `json:"lease_lost"`
	Released  uint64      `json:"released"` // own re-claims of tasks kept aside
	Zombies   []zombieTry `json:"zombies"`
	Final     bool        `json:"final"`
}

// aside is a lease kept past its expiry on purpose.
type aside struct {
	lease *ordq.Lease
	since time.Time
}

type worker struct {
	q           *ordq.Queue
	id          string
	ctl         string
	reportPath  string
	rep         report
	lastReport  time.Time
	zombies     int
	zombieEvery uint64
	held        []aside
}

func main() {
	dbURI := flag.String("db", "", "database: a broker address (unix:///..., tcp://...) or a file")
	queue := flag.String("queue", "cross", "queue name")
	id := flag.String("id", "", "worker id (e.g. go-1)")
	ctl := flag.String("ctl", "", "control directory")
	reportPath := flag.String("report", "", "report file (JSON), rewritten while running")
	max := flag.Int("max", 32, "most leases per claim")
	wait := flag.Duration("wait", 500*time.Millisecond, "claim wait when nothing is ready")
	zombies := flag.Int("zombies", 0, "stale-token completions to try (fencing proof)")
	zombieEvery := flag.Uint64("zombie-every", 10, "claims between two leases kept aside")
	flag.Parse()
	if *dbURI == "" || *id == "" || *ctl == "" {
		fmt.Fprintln(os.Stderr, "crossworker: -db, -id and -ctl are required")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	db, err := ordq.Open(*dbURI)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crossworker %s: %v\n", *id, err)
		os.Exit(1)
	}
	defer db.Close()
	w := &worker{
		q: db.Queue(*queue), id: *id, ctl: *ctl, reportPath: *reportPath,
		rep:     report{ID: *id, Runtime: "go", Pid: os.Getpid(), Zombies: []zombieTry{}},
		zombies: *zombies, zombieEvery: max1(*zombieEvery),
	}
	err = w.run(ctx, ordq.ClaimOpts{Worker: *id, Max: *max, Wait: *wait})
	w.rep.Final = err == nil
	if werr := w.writeReport(); err == nil {
		err = werr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "crossworker %s: %v\n", *id, err)
		os.Exit(1)
	}
}

func max1(v uint64) uint64 { return max(v, 1) }

func (w *worker) writeReport() error {
	w.lastReport = time.Now()
	if w.reportPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(&w.rep, "", "  ")
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp%d", w.reportPath, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, w.reportPath)
}

// drained is true once the producer is done and nothing is left to run.
func (w *worker) drained(ctx context.Context) (bool, error) {
	if _, err := os.Stat(filepath.Join(w.ctl, "producer-done")); err != nil {
		return false, nil
	}
	s, err := w.q.Stats(ctx)
	if err != nil {
		return false, err
	}
	return s.Unfinished == 0, nil
}

func (w *worker) run(ctx context.Context, opts ordq.ClaimOpts) error {
	for {
		if time.Since(w.lastReport) >= 250*time.Millisecond {
			if err := w.writeReport(); err != nil {
				return err
			}
		}
		if err := w.tryZombies(ctx); err != nil {
			return err
		}
		leases, err := w.q.Claim(ctx, opts)
		if err != nil {
			return err
		}
		if len(leases) == 0 {
			if len(w.held) > 0 {
				continue
			}
			done, err := w.drained(ctx)
			if err != nil || done {
				return err
			}
			continue
		}
		w.rep.Claims++
		w.rep.Claimed += uint64(len(leases))
		items := make([]ordq.CompleteItem, 0, len(leases))
		for _, l := range leases {
			if w.isHeld(l.Offset) {
				// Our own zombie's task: leave it to another worker.
				if err := l.Release(ctx); err != nil && !errors.Is(err, ordq.ErrLeaseLost) {
					return err
				}
				w.rep.Released++
				continue
			}
			b, err := behaviour(l.Payload)
			if err != nil {
				return fmt.Errorf("task %d: %w", l.Offset, err)
			}
			if b == "ok" && l.Attempt == 1 && w.takeZombie() {
				w.held = append(w.held, aside{lease: l, since: time.Now()})
				continue
			}
			if b == "always" || (b == "once" && l.Attempt == 1) {
				o, err := l.Fail(ctx, fmt.Sprintf("%s: injected failure, attempt %d", w.id, l.Attempt), true)
				switch {
				case errors.Is(err, ordq.ErrLeaseLost):
					w.rep.LeaseLost++
				case err != nil:
					return err
				case o.Dead:
					w.rep.Dead++
				default:
					w.rep.Failed++
				}
				continue
			}
			res, _ := json.Marshal(map[string]any{"w": w.id, "f": l.Fence()})
			items = append(items, ordq.CompleteItem{Lease: l, Result: res})
		}
		results, err := w.q.CompleteBatch(ctx, items)
		if err != nil {
			return err
		}
		for _, r := range results {
			switch {
			case r.Err == nil:
				w.rep.Completed++
			case errors.Is(r.Err, ordq.ErrLeaseLost):
				w.rep.LeaseLost++
			default:
				return r.Err
			}
		}
	}
}

// takeZombie says whether to keep this lease aside: one every zombieEvery
// claims until -zombies were taken.
func (w *worker) takeZombie() bool {
	taken := len(w.rep.Zombies) + len(w.held)
	return taken < w.zombies && w.rep.Claims >= uint64(taken+1)*w.zombieEvery
}

// isHeld says whether a lease of the task at offset is kept aside.
func (w *worker) isHeld(offset uint64) bool {
	for _, h := range w.held {
		if h.lease.Offset == offset {
			return true
		}
	}
	return false
}

// tryZombies completes, with its stale token, every lease kept aside whose
// task has been leased by another worker since.
func (w *worker) tryZombies(ctx context.Context) error {
	kept := w.held[:0]
	for _, h := range w.held {
		t, err := w.q.Task(ctx, h.lease.Offset)
		if err != nil {
			return err
		}
		byOther := t.Fence != h.lease.Fence() && t.Worker != nil && *t.Worker != w.id
		if !byOther && time.Since(h.since) < 60*time.Second {
			kept = append(kept, h) // not leased by another worker yet
			continue
		}
		try := zombieTry{Offset: h.lease.Offset, StaleFence: h.lease.Fence(), NewFence: t.Fence,
			NewState: string(t.State), HeldMs: time.Since(h.since).Milliseconds()}
		if t.Worker != nil {
			try.NewWorker = *t.Worker
		}
		res, _ := json.Marshal(map[string]any{"w": w.id, "f": h.lease.Fence(), "zombie": true})
		_, err = h.lease.Complete(ctx, res)
		try.Refused = errors.Is(err, ordq.ErrLeaseLost)
		if err != nil {
			try.Error = err.Error()
		} else {
			try.Error = "accepted"
		}
		w.rep.Zombies = append(w.rep.Zombies, try)
	}
	w.held = kept
	return nil
}

// behaviour reads the "b" field of a task payload.
func behaviour(payload []byte) (string, error) {
	var p struct {
		B string `json:"b"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", fmt.Errorf("payload is not JSON: %w", err)
	}
	switch p.B {
	case "ok", "once", "always":
		return p.B, nil
	}
	return "", fmt.Errorf("payload has no valid \"b\": %q", p.B)
}
