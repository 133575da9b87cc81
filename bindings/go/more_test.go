package ordq

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestOpenGarbageFile(t *testing.T) {
	skipInBrokerMode(t, "opening a file that is not a database")
	path := filepath.Join(t.TempDir(), "notes.txt")
	text := bytes.Repeat([]byte("these are my notes, not a database\n"), 200)
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if !(errorIsCode(err, CodeCorrupt) || errorIsCode(err, CodeIO)) {
		t.Fatalf("want CORRUPT or IO, got %v", err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, text) {
		t.Fatal("file was modified")
	}
}

func errorIsCode(err error, c Code) bool {
	e, ok := err.(*Error)
	return ok && e.Code == c && e.Message != ""
}

// A DB dropped without Close is freed by the GC cleanup (the file lock is
// released, so the file opens again).
func TestCleanupSafetyNet(t *testing.T) {
	skipInBrokerMode(t, "the GC cleanup releasing the file lock")
	path := filepath.Join(t.TempDir(), "leak.ordq")
	func() {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_ = db
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		db, err := Open(path)
		if err == nil {
			db.Close()
			return
		}
		wantCode(t, err, ErrAlreadyOpen)
		if time.Now().After(deadline) {
			t.Fatal("the cleanup never freed the dropped DB")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEnqueueOptionsAndShards(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{Ordering: OrderingNone, Shards: 4})
	// Priority first, then offset.
	_, _ = q.Enqueue(ctx, "low", nil, nil)
	_, _ = q.Enqueue(ctx, "high", nil, &EnqueueOpts{Priority: 9, MaxAttempts: 2})
	// Delayed and not-before tasks are not claimable yet.
	_, _ = q.Enqueue(ctx, "later", nil, &EnqueueOpts{Delay: time.Hour})
	_, _ = q.Enqueue(ctx, "tomorrow", nil, &EnqueueOpts{NotBefore: time.Now().Add(24 * time.Hour)})
	ls, err := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 10, Lease: 2 * time.Second})
	if err != nil || len(ls) != 2 || ls[0].Key != "high" || ls[1].Key != "low" || ls[0].MaxAttempts != 2 {
		t.Fatalf("claim: %+v %v", ls, err)
	}
	if d := ls[0].ExpiresAt.Sub(ls[0].LeasedAt); d != 2*time.Second {
		t.Fatalf("lease duration %v", d)
	}
	later, _ := q.Task(ctx, 2)
	if later.State != StateReady || later.NotBefore < uint64(time.Now().Add(59*time.Minute).UnixMilli()) {
		t.Fatalf("delay not applied: %+v", later)
	}
	// Shard filter: only tasks of the listed shard are claimed.
	r, _ := q.Enqueue(ctx, "s", nil, nil)
	other := (r.Shard + 1) % 4
	ls, err = q.Claim(ctx, ClaimOpts{Worker: "w", Shards: []uint32{other}})
	if err != nil || len(ls) != 0 {
		t.Fatalf("other shard: %+v %v", ls, err)
	}
	ls, err = q.Claim(ctx, ClaimOpts{Worker: "w", Shards: []uint32{other, r.Shard}})
	if err != nil || len(ls) != 1 || ls[0].Offset != r.Offset || ls[0].Shard != r.Shard {
		t.Fatalf("own shard: %+v %v", ls, err)
	}
}

func TestKeyOrderingOneInFlight(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{})
	for i := range 3 {
		_, _ = q.Enqueue(ctx, "same", []byte{byte(i)}, nil)
	}
	ls, _ := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 10})
	if len(ls) != 1 || ls[0].Payload[0] != 0 {
		t.Fatalf("key lane gave %d leases", len(ls))
	}
	_, _ = ls[0].Complete(ctx, nil)
	ls, _ = q.Claim(ctx, ClaimOpts{Worker: "w", Max: 10})
	if len(ls) != 1 || ls[0].Payload[0] != 1 {
		t.Fatalf("next in lane: %+v", ls)
	}
}
