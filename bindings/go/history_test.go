package ordq

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// historyWork enqueues 20 tasks over 3 keys and completes them all.
func historyWork(t *testing.T, q *Queue) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := q.Enqueue(ctx, fmt.Sprintf("k%d", i%3), []byte("p"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ls, err := q.Claim(ctx, ClaimOpts{Worker: "w", Max: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 0 {
			return
		}
		for _, l := range ls {
			if _, err := l.Complete(ctx, []byte("ok")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCheckpointVerifyAudit(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	q := mustQueue(t, db, "q", QueueConfig{})
	historyWork(t, q)
	info, err := db.Checkpoint(ctx)
	if err != nil || info.CheckpointLSN != info.NextLSN || info.NextLSN == 0 {
		t.Fatalf("checkpoint: %+v %v", info, err)
	}
	r, err := db.Verify(ctx, nil)
	if err != nil || !r.OK || !r.StateChecked || r.Checkpoints < 1 {
		t.Fatalf("verify: %+v %v", r, err)
	}
	if len(r.Queues) != 1 || r.Queues[0].LogRecords != 20 {
		t.Fatalf("verify queues: %+v", r.Queues)
	}
	// With a public key given, the unsigned checkpoints are problems.
	r, err = db.Verify(ctx, make([]byte, 32))
	if err != nil || r.OK || r.Problems[0].Class != "signature" {
		t.Fatalf("verify with a key: %+v %v", r, err)
	}
	if _, err := db.Verify(ctx, []byte{1}); err == nil {
		t.Fatal("a short key was accepted")
	}
	a, err := db.Audit(ctx, "q")
	if err != nil || !a.OK || a.LaneCount != 3 {
		t.Fatalf("audit: %+v %v", a, err)
	}
	var done uint64
	for _, l := range a.Lanes {
		done += l.Done
	}
	if done != 20 {
		t.Fatalf("audit counted %d done", done)
	}
	one, err := db.AuditKey(ctx, "q", "k1")
	if err != nil || one.LaneCount != 1 || one.Key == nil || *one.Key != "k1" {
		t.Fatalf("audit key: %+v %v", one, err)
	}
	none, err := db.AuditKey(ctx, "q", "")
	if err != nil || none.LaneCount != 0 {
		t.Fatalf("audit of the empty key: %+v %v", none, err)
	}
	var e *Error
	if _, err := db.Audit(ctx, "nope"); !errors.As(err, &e) || e.Code != CodeNotFound {
		t.Fatalf("audit of an unknown queue: %v", err)
	}
}
