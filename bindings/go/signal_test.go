package ordq

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnv, when set, makes the test binary run signalChild (configured
// by the variable's JSON value) instead of the tests: the tests of
// StopOnSignals signal a real worker process.
const childEnv = "ORDQ_GO_TEST_SIGNAL_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(signalChild(spec))
	}
	os.Exit(m.Run())
}

// signalQueue is the queue the child works on: the payloads of its tasks,
// in offset order. With concurrency 2 the child runs offsets 0 and 1.
const signalQueue = "sig"

var signalPayloads = []string{"short", "long", "short", "short", "short"}

// childConfig configures signalChild.
type childConfig struct {
	URI     string `json:"uri"`      // database to open
	GraceMs int64  `json:"grace_ms"` // StopOnSignals grace
	ShortMs int64  `json:"short_ms"` // how long a short handler works on after the signal
	// Uninstall uninstalls the signal handlers at once (and the child does
	// not watch the signals itself), so a signal has its default effect.
	Uninstall bool `json:"uninstall"`
}

// childEvent is one line the child prints on stdout.
type childEvent struct {
	Event  string       `json:"event"` // started, signal, uninstalled, report
	Offset uint64       `json:"offset,omitempty"`
	Signal string       `json:"signal,omitempty"`
	Report *childReport `json:"report,omitempty"`
}

// childReport is what the child counted, printed once Run returned.
type childReport struct {
	Started   int      `json:"started"`   // handlers started
	Completed int      `json:"completed"` // handlers that returned nil
	Stopped   int      `json:"stopped"`   // handlers cancelled with cause ErrWorkerStopped
	OnErrors  []string `json:"on_errors"` // errors passed to OnError
	RunErr    string   `json:"run_err"`   // Run's error ("" for nil)
}

// signalChild is the child process: a worker with concurrency 2 on
// signalQueue whose "short" handlers work until the process gets a signal
// and then ShortMs more, and whose "long" handlers work until their
// context is cancelled. It exits 0 when Run returns nil, 3 when Run
// fails, 2 on a set-up error.
func signalChild(spec string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	db, err := Open(cfg.URI)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	defer db.Close()

	var mu sync.Mutex // guards rep and stdout
	var rep childReport
	enc := json.NewEncoder(os.Stdout)
	emit := func(e childEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	count := func(n *int) {
		mu.Lock()
		*n++
		mu.Unlock()
	}
	signalled := make(chan struct{})
	if !cfg.Uninstall {
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		go func() {
			s := <-sigs
			emit(childEvent{Event: "signal", Signal: s.String()})
			close(signalled)
		}()
	}
	w := NewWorker(db.Queue(signalQueue), func(ctx context.Context, l *Lease) error {
		count(&rep.Started)
		emit(childEvent{Event: "started", Offset: l.Offset})
		stopped := func() error {
			if errors.Is(context.Cause(ctx), ErrWorkerStopped) {
				count(&rep.Stopped)
			}
			return context.Cause(ctx)
		}
		if string(l.Payload) == "long" {
			<-ctx.Done()
			return stopped()
		}
		select {
		case <-signalled:
		case <-ctx.Done():
			return stopped()
		}
		select {
		case <-time.After(time.Duration(cfg.ShortMs) * time.Millisecond):
		case <-ctx.Done():
			return stopped()
		}
		count(&rep.Completed)
		l.SetResult([]byte("short done"))
		return nil
	}, WorkerOptions{Concurrency: 2, WorkerID: "sig-child", PollWait: 50 * time.Millisecond,
		OnError: func(l *Lease, err error) {
			mu.Lock()
			rep.OnErrors = append(rep.OnErrors, fmt.Sprintf("offset %d: %v", l.Offset, err))
			mu.Unlock()
		}})
	uninstall := w.StopOnSignals(time.Duration(cfg.GraceMs) * time.Millisecond)
	if cfg.Uninstall {
		uninstall()
		emit(childEvent{Event: "uninstalled"})
	}
	defer uninstall()
	runErr := w.Run(context.Background())
	mu.Lock()
	if runErr != nil {
		rep.RunErr = runErr.Error()
	}
	r := rep
	mu.Unlock()
	emit(childEvent{Event: "report", Report: &r})
	if runErr != nil {
		return 3
	}
	return 0
}

// child is a running signalChild process.
type child struct {
	cmd    *exec.Cmd
	events chan childEvent // closed at the child's end of stdout
	stderr *bytes.Buffer
	bad    chan string // stdout lines that are not events
}

// signalURI is where the child's database lives: a file (the parent
// closes it before the child runs) or, in broker mode, a broker address.
func signalURI(t *testing.T) string {
	if brokerMode(t) {
		return startBroker(t)
	}
	return filepath.Join(t.TempDir(), "sig.ordq")
}

// prepareSignalQueue creates signalQueue with signalPayloads.
func prepareSignalQueue(t *testing.T, uri string) {
	t.Helper()
	db, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := mustQueue(t, db, signalQueue, QueueConfig{Ordering: OrderingNone})
	for i, p := range signalPayloads {
		if _, err := q.Enqueue(context.Background(), fmt.Sprint("k", i), []byte(p), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func startChild(t *testing.T, cfg childConfig) *child {
	t.Helper()
	spec, _ := json.Marshal(cfg)
	c := &child{cmd: exec.Command(os.Args[0]), events: make(chan childEvent, 16), stderr: &bytes.Buffer{}, bad: make(chan string, 16)}
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	c.cmd.Stderr = c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill() })
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e childEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				c.bad <- sc.Text()
				continue
			}
			c.events <- e
		}
	}()
	return c
}

// next returns the child's next event, failing on a line that is not one
// or if stdout ends (ok false) first.
func (c *child) next(t *testing.T) (childEvent, bool) {
	t.Helper()
	select {
	case e, ok := <-c.events:
		return e, ok
	case line := <-c.bad:
		t.Fatalf("child printed %q", line)
	case <-time.After(60 * time.Second):
		t.Fatalf("no event from the child within 60s; stderr:\n%s", c.stderr)
	}
	return childEvent{}, false
}

// expect waits for the named events (in any order), failing on others,
// and returns them.
func (c *child) expect(t *testing.T, names ...string) []childEvent {
	t.Helper()
	var got []childEvent
	for range names {
		e, ok := c.next(t)
		if !ok {
			t.Fatalf("child ended before %v; got %+v; stderr:\n%s", names, got, c.stderr)
		}
		if !slices.Contains(names, e.Event) {
			t.Fatalf("unexpected child event %+v while waiting for %v", e, names)
		}
		got = append(got, e)
	}
	return got
}

// finish collects the events up to the end of stdout and waits for the
// process.
func (c *child) finish(t *testing.T) ([]childEvent, *os.ProcessState) {
	t.Helper()
	var rest []childEvent
	for {
		e, ok := c.next(t)
		if !ok {
			break
		}
		rest = append(rest, e)
	}
	err := c.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return rest, c.cmd.ProcessState
}

// startedOffsets waits for the two handlers to start and returns their
// offsets, sorted.
func (c *child) startedOffsets(t *testing.T) []uint64 {
	t.Helper()
	var offs []uint64
	for _, e := range c.expect(t, "started", "started") {
		offs = append(offs, e.Offset)
	}
	slices.Sort(offs)
	return offs
}

// One SIGINT or SIGTERM while both handlers run: the short one finishes
// within the grace and is completed, the long one is cancelled when the
// grace runs out and its task released (no attempt counted), the
// unclaimed tasks stay ready, nothing stays leased, and the process exits
// 0 with Run's nil.
func TestStopOnSignalsGraceful(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			const grace = 2 * time.Second
			uri := signalURI(t)
			prepareSignalQueue(t, uri)
			c := startChild(t, childConfig{URI: uri, GraceMs: grace.Milliseconds(), ShortMs: 100})
			if offs := c.startedOffsets(t); !slices.Equal(offs, []uint64{0, 1}) {
				t.Fatalf("started offsets %v, want [0 1]", offs)
			}
			signalledAt := time.Now()
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			events, ps := c.finish(t)
			elapsed := time.Since(signalledAt)
			if ps.ExitCode() != 0 {
				t.Fatalf("exit %v, want 0; events %+v; stderr:\n%s", ps, events, c.stderr)
			}
			if elapsed < grace {
				t.Fatalf("exited %v after the signal: the long handler was not given the %v grace", elapsed, grace)
			}
			if len(events) != 2 || events[0].Event != "signal" || events[1].Event != "report" {
				t.Fatalf("events after the starts: %+v, want signal then report", events)
			}
			rep := events[1].Report
			if rep.Started != 2 || rep.Completed != 1 || rep.Stopped != 1 || len(rep.OnErrors) != 0 || rep.RunErr != "" {
				t.Fatalf("child report %+v", rep)
			}

			db, err := Open(uri)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			ctx := context.Background()
			q := db.Queue(signalQueue)
			st, err := q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tot := st.Totals
			if st.Leased != 0 || st.Done != 1 || st.Ready != 4 || st.Unfinished != 4 || st.RetryWait != 0 || st.Dead != 0 ||
				tot.Completed != 1 || tot.Released != 1 || tot.Failed != 0 || tot.LeaseExpired != 0 {
				t.Fatalf("stats after the stop: %+v", st)
			}
			short, err := q.Task(ctx, 0)
			if err != nil || short.State != StateDone || string(short.Result) != "short done" || short.Worker == nil || *short.Worker != "sig-child" {
				t.Fatalf("the running short task was not completed: %+v %v", short, err)
			}
			long, err := q.Task(ctx, 1)
			if err != nil || long.State != StateReady || long.Attempt != 0 {
				t.Fatalf("the long task was not released without counting an attempt: %+v %v", long, err)
			}
			for off := uint64(2); off < uint64(len(signalPayloads)); off++ {
				task, err := q.Task(ctx, off)
				if err != nil || task.State != StateReady || task.Attempt != 0 || task.Fence != 0 {
					t.Fatalf("task %d was claimed after the signal: %+v %v", off, task, err)
				}
			}
		})
	}
}

// A second signal while stopping ends the process at once with exit 1,
// long before the grace (here 60s) and without committing anything.
func TestStopOnSignalsSecondSignalExits(t *testing.T) {
	uri := signalURI(t)
	prepareSignalQueue(t, uri)
	c := startChild(t, childConfig{URI: uri, GraceMs: 60_000, ShortMs: 60_000})
	c.startedOffsets(t)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The child saw the first signal (so did the worker: os/signal
	// delivers it to every channel at once).
	c.expect(t, "signal")
	second := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	events, ps := c.finish(t)
	if ps.ExitCode() != 1 || len(events) != 0 {
		t.Fatalf("exit %v with events %+v, want exit 1 and no report; stderr:\n%s", ps, events, c.stderr)
	}
	if d := time.Since(second); d > 20*time.Second {
		t.Fatalf("the second signal took %v to end the process", d)
	}
	db, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st, err := db.Queue(signalQueue).Stats(context.Background())
	if err != nil || st.Done != 0 || st.Totals.Completed != 0 || st.Totals.Failed != 0 {
		t.Fatalf("stats: %+v %v", st, err)
	}
}

// The func StopOnSignals returns uninstalls the handlers: a SIGTERM then
// has its default effect (the process is killed by it).
func TestStopOnSignalsUninstall(t *testing.T) {
	uri := signalURI(t)
	prepareSignalQueue(t, uri)
	c := startChild(t, childConfig{URI: uri, GraceMs: 60_000, ShortMs: 60_000, Uninstall: true})
	c.expect(t, "uninstalled", "started", "started")
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	events, ps := c.finish(t)
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM || len(events) != 0 {
		t.Fatalf("want the child killed by SIGTERM with no report, got %v, events %+v; stderr:\n%s", ps, events, c.stderr)
	}
}
