package ordq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// openTemp opens a fresh database, closed at cleanup: a file in a
// temporary directory, or with ORDQ_TEST_MODE=broker a broker's address
// (file options then have no effect: the broker's own apply).
func openTemp(t testing.TB, opts ...Option) *DB {
	t.Helper()
	uri := ""
	if brokerMode(t) {
		uri = startBroker(t)
	} else {
		uri = filepath.Join(t.TempDir(), "q.ordq")
	}
	db, err := Open(uri, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustQueue(t testing.TB, db *DB, name string, cfg QueueConfig) *Queue {
	t.Helper()
	q, err := db.CreateQueue(context.Background(), name, cfg)
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	return q
}

func wantCode(t testing.TB, err error, sentinel *Error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("want %v, got %v", sentinel.Code, err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != sentinel.Code || e.Message == "" {
		t.Fatalf("want *Error with code %v and a message, got %#v", sentinel.Code, err)
	}
}

func TestOpenCloseIdempotent(t *testing.T) {
	skipInBrokerMode(t, "AlreadyOpen from the file lock and reopening the same file")
	path := filepath.Join(t.TempDir(), "a.ordq")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	wantCode(t, err, ErrAlreadyOpen)
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err = db.CreateQueue(context.Background(), "x", QueueConfig{})
	wantCode(t, err, ErrClosed)
	_, err = db.Queue("x").Enqueue(context.Background(), "k", nil, nil)
	wantCode(t, err, ErrClosed)
	// The file lock is released: it opens again.
	db2, err := Open("file://" + path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db2.Close()
	if Version() == "" {
		t.Fatal("empty version")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open("unix:///tmp/ordq.sock")
	wantCode(t, err, ErrUnavailable)
	_, err = Open("tcp://127.0.0.1:1")
	wantCode(t, err, ErrUnavailable)
	_, err = Open("gopher://x")
	wantCode(t, err, ErrInvalidArgument)
	_, err = Open(filepath.Join(t.TempDir(), "missing-dir", "x", "q.ordq"))
	wantCode(t, err, ErrIO)
}

func TestQueues(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	mustQueue(t, db, "b", QueueConfig{Shards: 4, Ordering: OrderingShard, MaxAttempts: 3, DLQPolicy: DLQBlock, Lease: 5 * time.Second, NoJitter: true})
	mustQueue(t, db, "a", QueueConfig{})
	_, err := db.CreateQueue(ctx, "a", QueueConfig{})
	wantCode(t, err, ErrAlreadyExists)
	_, err = db.CreateQueue(ctx, "-bad", QueueConfig{})
	wantCode(t, err, ErrInvalidArgument)
	names, err := db.ListQueues(ctx)
	if err != nil || fmt.Sprint(names) != "[a b]" {
		t.Fatalf("list: %v %v", names, err)
	}
	info, err := db.Queue("b").Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if info.Name != "b" || c.Shards != 4 || c.Ordering != "shard" || c.MaxAttempts != 3 || c.DLQPolicy != "block" || c.LeaseMs != 5000 || c.Backoff.Jitter != 0 {
		t.Fatalf("info: %+v", info)
	}
	if err := db.DeleteQueue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, db.DeleteQueue(ctx, "a"), ErrNotFound)
	_, err = db.Queue("a").Stats(ctx)
	wantCode(t, err, ErrNotFound)
	_, err = db.Queue("nope").Enqueue(ctx, "k", nil, nil)
	wantCode(t, err, ErrNotFound)
}

func TestEnqueueClaimComplete(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "jobs", QueueConfig{})
	r, err := q.Enqueue(ctx, "user-1", []byte("hello"), &EnqueueOpts{
		Priority: 5, Headers: map[string]string{"b": "2", "a": "1"}, IdempotencyKey: "idem-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset != 0 || len(r.ID) != 32 || r.Duplicate {
		t.Fatalf("receipt: %+v", r)
	}
	r2, err := q.Enqueue(ctx, "user-1", []byte("other"), &EnqueueOpts{IdempotencyKey: "idem-1"})
	if err != nil || !r2.Duplicate || r2.Offset != 0 || r2.ID != r.ID {
		t.Fatalf("duplicate: %+v %v", r2, err)
	}
	r3, err := q.Enqueue(ctx, "user-2", nil, &EnqueueOpts{Priority: 1})
	if err != nil || r3.Offset != 1 {
		t.Fatalf("second: %+v %v", r3, err)
	}
	leases, err := q.Claim(ctx, ClaimOpts{Worker: "w1", Max: 10})
	if err != nil || len(leases) != 2 {
		t.Fatalf("claim: %v %v", len(leases), err)
	}
	l := leases[0]
	if l.Key != "user-1" || !bytes.Equal(l.Payload, []byte("hello")) || l.Priority != 5 || l.Attempt != 1 ||
		l.MaxAttempts != 10 || l.ID != r.ID || l.Offset != 0 || l.Headers["a"] != "1" || l.Headers["b"] != "2" ||
		l.Worker() != "w1" || l.Queue() != q || l.Fence() == 0 || l.ExpiresAt.Before(l.LeasedAt) || l.EnqueuedAt.IsZero() {
		t.Fatalf("lease: %+v", l)
	}
	if leases[1].Key != "user-2" || len(leases[1].Payload) != 0 || leases[1].Headers != nil {
		t.Fatalf("lease 2: %+v", leases[1])
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exp, err := l.Heartbeat(ctx, time.Minute)
	if err != nil || time.Until(exp) < 50*time.Second {
		t.Fatalf("heartbeat: %v %v", exp, err)
	}
	c, err := l.Complete(ctx, []byte("done"))
	if err != nil || c.Offset != 0 || c.Duplicate || c.CommittedAt.IsZero() {
		t.Fatalf("complete: %+v %v", c, err)
	}
	c2, err := l.Complete(ctx, []byte("again"))
	if err != nil || !c2.Duplicate || c2.CommittedAt != c.CommittedAt {
		t.Fatalf("duplicate complete: %+v %v", c2, err)
	}
	_, err = l.Heartbeat(ctx, 0)
	wantCode(t, err, ErrLeaseLost)
	_, err = l.Fail(ctx, "x", true)
	wantCode(t, err, ErrLeaseLost)
	wantCode(t, l.Release(ctx), ErrLeaseLost)
	wantCode(t, l.Start(ctx), ErrLeaseLost)
	// Of the refusals, only the Fail (an outcome) is a rollback.
	if st, err := q.Stats(ctx); err != nil || st.Totals.Rollbacks != 1 {
		t.Fatalf("rollbacks after a refused Fail: %+v %v", st, err)
	}

	task, err := q.Task(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if task.State != StateDone || string(task.Result) != "done" || string(task.Payload) != "hello" ||
		task.Worker == nil || *task.Worker != "w1" || task.StartedAt == 0 || task.Headers["a"] != "1" ||
		task.IdempotencyKey == nil || *task.IdempotencyKey != "idem-1" {
		t.Fatalf("task: %+v", task)
	}
	_, err = q.Task(ctx, 99)
	wantCode(t, err, ErrNotFound)

	// Release: the attempt is not counted.
	if err := leases[1].Release(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := q.Claim(ctx, ClaimOpts{Worker: "w2"})
	if err != nil || len(again) != 1 || again[0].Offset != 1 || again[0].Attempt != 1 {
		t.Fatalf("reclaim: %+v %v", again, err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != 1 || st.Leased != 1 || st.NextOffset != 2 || st.Totals.Enqueued != 2 || st.Totals.Completed != 1 ||
		st.Totals.Released != 1 || len(st.Shards) != 16 || st.Queue != "jobs" {
		t.Fatalf("stats: %+v", st)
	}
}

func TestEnqueueErrors(t *testing.T) {
	skipInBrokerMode(t, "the limits are file options (WithMaxPayload, ...); a broker applies its own")
	ctx := context.Background()
	db := openTemp(t, WithMaxPayload(8), WithMaxKey(4), WithMaxHeaders(4), WithMaxResult(2))
	q := mustQueue(t, db, "q", QueueConfig{})
	_, err := q.Enqueue(ctx, "k", make([]byte, 9), nil)
	wantCode(t, err, ErrTooLarge)
	_, err = q.Enqueue(ctx, "kkkkk", nil, nil)
	wantCode(t, err, ErrTooLarge)
	_, err = q.Enqueue(ctx, "k", nil, &EnqueueOpts{Headers: map[string]string{"abc": "de"}})
	wantCode(t, err, ErrTooLarge)
	_, err = q.Enqueue(ctx, "k", nil, &EnqueueOpts{Headers: map[string]string{"": "x"}})
	wantCode(t, err, ErrInvalidArgument)
	_, err = q.Enqueue(ctx, "k\xff", nil, nil)
	wantCode(t, err, ErrInvalidArgument)
	_, err = q.EnqueueBatch(ctx, []EnqueueItem{{Key: "a"}, {Key: "b", Payload: make([]byte, 9)}})
	wantCode(t, err, ErrTooLarge)
	st, _ := q.Stats(ctx)
	if st.NextOffset != 0 {
		t.Fatalf("batch was not all-or-nothing: %+v", st)
	}
	_, err = q.Claim(ctx, ClaimOpts{Worker: ""})
	wantCode(t, err, ErrInvalidArgument)
	_, err = q.Claim(ctx, ClaimOpts{Worker: "w", Max: 10001})
	wantCode(t, err, ErrInvalidArgument)
	_, err = q.Claim(ctx, ClaimOpts{Worker: "w", Shards: []uint32{16}})
	wantCode(t, err, ErrInvalidArgument)
	if _, err := q.Enqueue(ctx, "k", nil, nil); err != nil {
		t.Fatal(err)
	}
	ls, err := q.Claim(ctx, ClaimOpts{Worker: "w"})
	if err != nil || len(ls) != 1 {
		t.Fatal(err)
	}
	_, err = ls[0].Complete(ctx, []byte("abc"))
	wantCode(t, err, ErrTooLarge)
	_, err = q.CompleteBatch(ctx, []CompleteItem{{Lease: ls[0], Result: []byte("abc")}})
	wantCode(t, err, ErrTooLarge)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = q.Enqueue(cctx, "k", nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestBatchAndCompleteBatch(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone})
	items := make([]EnqueueItem, 50)
	for i := range items {
		items[i] = EnqueueItem{Key: fmt.Sprintf("k%d", i), Payload: []byte(fmt.Sprint(i))}
	}
	items[3].Opts = &EnqueueOpts{Headers: map[string]string{"h": "v"}, IdempotencyKey: "i3"}
	rs, err := q.EnqueueBatch(ctx, items)
	if err != nil || len(rs) != 50 {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Offset != uint64(i) {
			t.Fatalf("receipt %d: %+v", i, r)
		}
	}
	ls, err := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 100})
	if err != nil || len(ls) != 50 {
		t.Fatalf("claim: %d %v", len(ls), err)
	}
	if ls[3].Headers["h"] != "v" || string(ls[7].Payload) != "7" {
		t.Fatalf("lease data: %+v", ls[3])
	}
	// Make one stale: release it first.
	if err := ls[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	ci := make([]CompleteItem, len(ls))
	for i, l := range ls {
		ci[i] = CompleteItem{Lease: l, Result: []byte("r")}
	}
	out, err := q.CompleteBatch(ctx, ci)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, out[0].Err, ErrLeaseLost)
	for i := 1; i < len(out); i++ {
		if out[i].Err != nil || out[i].Completion.Offset != ls[i].Offset {
			t.Fatalf("item %d: %+v", i, out[i])
		}
	}
}

func TestClaimWaitAndCancel(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{})
	start := time.Now()
	ls, err := q.Claim(ctx, ClaimOpts{Worker: "w", Wait: 250 * time.Millisecond})
	if err != nil || len(ls) != 0 || time.Since(start) < 240*time.Millisecond {
		t.Fatalf("empty wait: %v %v %v", ls, err, time.Since(start))
	}
	// Cancellation ends a long wait promptly.
	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = q.Claim(cctx, ClaimOpts{Worker: "w", Wait: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
	// Work arriving wakes a waiting claim.
	go func() {
		time.Sleep(150 * time.Millisecond)
		_, _ = q.Enqueue(ctx, "k", []byte("x"), nil)
	}()
	ls, err = q.Claim(ctx, ClaimOpts{Worker: "w", Wait: 10 * time.Second})
	if err != nil || len(ls) != 1 {
		t.Fatalf("woken: %v %v", ls, err)
	}
	// Close ends a blocked claim with ErrClosed.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = db.Close()
	}()
	_, err = q.Claim(ctx, ClaimOpts{Worker: "w", Wait: time.Hour})
	wantCode(t, err, ErrClosed)
}

func TestFailRetryDeadLetters(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{MaxAttempts: 2, BackoffInitial: time.Millisecond, BackoffMax: time.Millisecond, NoJitter: true})
	for i := range 3 {
		if _, err := q.Enqueue(ctx, fmt.Sprintf("k%d", i), []byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ls, _ := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 3})
	o, err := ls[0].Fail(ctx, "smtp timeout", true)
	if err != nil || o.Dead || o.Attempt != 1 || o.NotBefore.IsZero() {
		t.Fatalf("retry: %+v %v", o, err)
	}
	o, err = ls[1].Fail(ctx, "bad input", false)
	if err != nil || !o.Dead || o.Attempt != 1 || !o.NotBefore.IsZero() {
		t.Fatalf("dead: %+v %v", o, err)
	}
	o, err = ls[2].Fail(ctx, "bad \xff utf8", false)
	if err != nil || !o.Dead {
		t.Fatalf("dead 2: %+v %v", o, err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ls, err = q.Claim(ctx, ClaimOpts{Worker: "w2"})
	if err != nil || len(ls) != 1 || ls[0].Attempt != 2 || ls[0].Offset != 0 {
		t.Fatalf("retry claim: %+v %v", ls, err)
	}
	o, err = ls[0].Fail(ctx, "again", true)
	if err != nil || !o.Dead || o.Attempt != 2 {
		t.Fatalf("spent: %+v %v", o, err)
	}
	faults, err := q.Faults(ctx, 0)
	if err != nil || len(faults) != 2 || faults[0].Error != "smtp timeout" || faults[0].Kind != FaultFailed ||
		!faults[0].Retryable || faults[0].Worker != "w" || faults[1].Worker != "w2" {
		t.Fatalf("faults: %+v %v", faults, err)
	}
	dl, err := q.DeadLetters(ctx, nil, 10)
	if err != nil || len(dl) != 3 || dl[0].State != StateDead || dl[1].Payload[0] != 1 {
		t.Fatalf("dlq list: %+v %v", dl, err)
	}
	after := uint64(0)
	dl, _ = q.DeadLetters(ctx, &after, 1)
	if len(dl) != 1 || dl[0].Offset != 1 {
		t.Fatalf("dlq page: %+v", dl)
	}
	d, err := q.DeadLetter(ctx, 2)
	if err != nil || d.Task.Offset != 2 || len(d.Faults) != 1 || d.Faults[0].Error != "bad \uFFFD utf8" || d.Faults[0].Retryable {
		t.Fatalf("dlq get: %+v %v", d, err)
	}
	_, err = q.DeadLetter(ctx, 77)
	wantCode(t, err, ErrNotFound)
	// Redrive head: same offset, attempts reset.
	r, err := q.Redrive(ctx, 0, RedriveHead)
	if err != nil || r.Offset != 0 {
		t.Fatalf("redrive head: %+v %v", r, err)
	}
	_, err = q.Redrive(ctx, 0, RedriveHead)
	wantCode(t, err, ErrInvalidState)
	_, err = q.Redrive(ctx, 99, RedriveHead)
	wantCode(t, err, ErrNotFound)
	_, err = q.Redrive(ctx, 1, RedriveMode(9))
	wantCode(t, err, ErrInvalidArgument)
	r, err = q.Redrive(ctx, 1, RedriveNewOffset)
	if err != nil || r.Offset != 3 {
		t.Fatalf("redrive new: %+v %v", r, err)
	}
	old, _ := q.Task(ctx, 1)
	if old.RedrivenTo == nil || *old.RedrivenTo != 3 {
		t.Fatalf("redriven_to: %+v", old)
	}
	n, err := q.Purge(ctx, 2)
	if err != nil || n != 1 {
		t.Fatalf("purge: %v %v", n, err)
	}
	_, err = q.Purge(ctx, 0)
	wantCode(t, err, ErrInvalidState)
	n, err = q.PurgeAll(ctx)
	if err != nil || n != 0 {
		t.Fatalf("purge all: %v %v", n, err)
	}
	st, _ := q.Stats(ctx)
	if st.Totals.Redriven != 2 || st.Totals.Purged != 1 || st.Totals.DeadLettered != 3 {
		t.Fatalf("stats: %+v", st.Totals)
	}
}

func TestPending(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone, MaxAttempts: 3, BackoffInitial: 10 * time.Minute, BackoffMax: 10 * time.Minute, NoJitter: true})
	offsets := func(ts []Task) []uint64 {
		out := []uint64{}
		for _, t := range ts {
			out = append(out, t.Offset)
		}
		return out
	}
	ts, err := q.Pending(ctx, nil, 100)
	if err != nil || len(ts) != 0 {
		t.Fatalf("empty queue: %+v %v", ts, err)
	}
	for i := range 4 {
		if _, err := q.Enqueue(ctx, fmt.Sprintf("k%d", i), []byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 4})
	if err != nil || len(ls) != 4 {
		t.Fatalf("claim: %+v %v", ls, err)
	}
	byOffset := map[uint64]*Lease{}
	for _, l := range ls {
		byOffset[l.Offset] = l
	}
	// 0 done, 1 leased, 2 waiting for its retry, 3 dead; then 4 ready and
	// 5 delayed.
	if _, err := byOffset[0].Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if o, err := byOffset[2].Fail(ctx, "again", true); err != nil || o.Dead {
		t.Fatalf("retry: %+v %v", o, err)
	}
	if o, err := byOffset[3].Fail(ctx, "never", false); err != nil || !o.Dead {
		t.Fatalf("dead: %+v %v", o, err)
	}
	if _, err := q.Enqueue(ctx, "k4", []byte{4}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, "k5", []byte{5}, &EnqueueOpts{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ts, err = q.Pending(ctx, nil, 100)
	if err != nil || !slices.Equal(offsets(ts), []uint64{1, 2, 4, 5}) {
		t.Fatalf("pending: %v %v", offsets(ts), err)
	}
	if ts[0].State != StateLeased || ts[0].Worker == nil || *ts[0].Worker != "w" ||
		ts[1].State != StateRetryWait || ts[1].Attempt != 1 ||
		ts[2].State != StateReady || ts[2].Key != "k4" || !bytes.Equal(ts[2].Payload, []byte{4}) ||
		ts[3].State != StateReady || ts[3].NotBefore < uint64(time.Now().Add(50*time.Minute).UnixMilli()) {
		t.Fatalf("pending tasks: %+v", ts)
	}
	// Paging.
	after := uint64(1)
	ts, err = q.Pending(ctx, &after, 2)
	if err != nil || !slices.Equal(offsets(ts), []uint64{2, 4}) {
		t.Fatalf("page after 1: %v %v", offsets(ts), err)
	}
	ts, _ = q.Pending(ctx, nil, 1)
	if !slices.Equal(offsets(ts), []uint64{1}) {
		t.Fatalf("page of 1: %v", offsets(ts))
	}
	after = 5
	ts, err = q.Pending(ctx, &after, 100)
	if err != nil || len(ts) != 0 {
		t.Fatalf("page after 5: %v %v", offsets(ts), err)
	}
	ts, err = q.Pending(ctx, nil, 0)
	if err != nil || len(ts) != 0 {
		t.Fatalf("limit 0: %v %v", offsets(ts), err)
	}
	// Listing leased nothing: 4 is still the one claimable task.
	ls, err = q.Claim(ctx, ClaimOpts{Worker: "w2", Max: 10})
	if err != nil || len(ls) != 1 || ls[0].Offset != 4 {
		t.Fatalf("claim after listing: %+v %v", ls, err)
	}
	if _, err := ls[0].Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := byOffset[1].Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ts, _ = q.Pending(ctx, nil, 100)
	if !slices.Equal(offsets(ts), []uint64{2, 5}) {
		t.Fatalf("after completing: %v", offsets(ts))
	}
	_, err = q.Pending(ctx, nil, -1)
	wantCode(t, err, ErrInvalidArgument)
	_, err = db.Queue("nope").Pending(ctx, nil, 10)
	wantCode(t, err, ErrNotFound)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := q.Pending(cctx, nil, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = q.Pending(ctx, nil, 10)
	wantCode(t, err, ErrClosed)
}

func TestCodeNamesAndIs(t *testing.T) {
	all := []*Error{ErrInvalidArgument, ErrNotFound, ErrAlreadyExists, ErrAlreadyOpen, ErrLeaseLost, ErrTooLarge,
		ErrInvalidState, ErrFormatTooNew, ErrCorrupt, ErrIO, ErrClosed, ErrUnavailable, ErrNullPointer, ErrPanic}
	names := "INVALID_ARGUMENT NOT_FOUND ALREADY_EXISTS ALREADY_OPEN LEASE_LOST TOO_LARGE INVALID_STATE FORMAT_TOO_NEW CORRUPT IO CLOSED UNAVAILABLE NULL_POINTER PANIC"
	var got []string
	for i, e := range all {
		got = append(got, e.Code.String())
		for j, f := range all {
			if errors.Is(fmt.Errorf("wrapped: %w", &Error{Code: e.Code, Message: "m"}), f) != (i == j) {
				t.Fatalf("Is(%v, %v) wrong", e.Code, f.Code)
			}
		}
	}
	if fmt.Sprint(got) != "["+names+"]" {
		t.Fatalf("names: %v", got)
	}
	if Code(55).String() != "UNKNOWN" {
		t.Fatal("unknown code name")
	}
	if errors.Is(errors.New("x"), ErrNotFound) {
		t.Fatal("plain error matched")
	}
	e := &Error{Code: CodeLeaseLost, Message: "stale"}
	if e.Error() != "ordq: LEASE_LOST: stale" {
		t.Fatal(e.Error())
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	const producers, perProducer = 16, 50
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				if _, err := q.Enqueue(ctx, fmt.Sprintf("p%d-%d", p, i%5), []byte("x"), nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idle := 0
			for idle < 5 {
				ls, err := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 7, Wait: 50 * time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				if len(ls) == 0 {
					idle++
					continue
				}
				idle = 0
				for _, l := range ls {
					if _, err := l.Complete(ctx, nil); err != nil {
						t.Error(err)
					}
					mu.Lock()
					if seen[l.Offset] {
						t.Errorf("offset %d completed twice", l.Offset)
					}
					seen[l.Offset] = true
					mu.Unlock()
				}
				_, _ = q.Stats(ctx)
			}
		}()
	}
	wg.Wait()
	if len(seen) != producers*perProducer {
		t.Fatalf("completed %d of %d", len(seen), producers*perProducer)
	}
	st, _ := q.Stats(ctx)
	if st.Done != producers*perProducer || st.Totals.Completed != producers*perProducer {
		t.Fatalf("stats: %+v", st)
	}
}

func TestCloseRacesWithCalls(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := q.Enqueue(ctx, "k", []byte("x"), nil)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("unexpected: %v", err)
					}
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
