package ordq

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

type email struct {
	To      string   `json:"to"`
	Subject string   `json:"subject"`
	Tags    []string `json:"tags"`
}

// EnqueueJSON stores the value's JSON with the options given; JSONHandler
// decodes it for the typed function, and dead-letters a payload that does
// not decode, with the decode error as the fault, without calling it.
func TestEnqueueJSONAndJSONHandler(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "mail", QueueConfig{Ordering: OrderingNone, MaxAttempts: 5})
	want := email{To: "ada@example.com", Subject: "hello", Tags: []string{"a", "b"}}
	r, err := EnqueueJSON(ctx, q, "user-1", want, &EnqueueOpts{Headers: map[string]string{"kind": "welcome"}})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := q.Task(ctx, r.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(want); string(stored.Payload) != string(b) || stored.Key != "user-1" || stored.Headers["kind"] != "welcome" {
		t.Fatalf("stored task: %+v", stored)
	}
	bad, err := q.Enqueue(ctx, "user-2", []byte(`{"to": 42}`), nil)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []email
	w := NewWorker(q, JSONHandler(func(ctx context.Context, l *Lease, e email) error {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
		l.SetResult([]byte("sent to " + e.To))
		return nil
	}), WorkerOptions{PollWait: 20 * time.Millisecond, Drain: true})
	if err := w.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(got) != 1 || got[0].To != want.To || got[0].Subject != want.Subject || strings.Join(got[0].Tags, ",") != "a,b" {
		t.Fatalf("decoded payloads: %+v", got)
	}
	done, _ := q.Task(ctx, r.Offset)
	if done.State != StateDone || string(done.Result) != "sent to ada@example.com" {
		t.Fatalf("good task: %+v", done)
	}
	d, err := q.DeadLetter(ctx, bad.Offset)
	if err != nil {
		t.Fatalf("the bad payload was not dead-lettered: %v", err)
	}
	if len(d.Faults) != 1 || d.Faults[0].Retryable || d.Task.Attempt != 1 ||
		!strings.Contains(d.Faults[0].Error, "payload does not decode as ordq.email") ||
		!strings.Contains(d.Faults[0].Error, "cannot unmarshal number into Go struct field email.to of type string") {
		t.Fatalf("dead letter of the bad payload: %+v", d)
	}
}

// A value encoding/json cannot encode is an error wrapping its error, and
// nothing is enqueued.
func TestEnqueueJSONEncodeError(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t, WithDurability(DurabilityNone))
	q := mustQueue(t, db, "q", QueueConfig{})
	_, err := EnqueueJSON(ctx, q, "k", map[string]any{"f": func() {}}, nil)
	var ute *json.UnsupportedTypeError
	if !errors.As(err, &ute) || !strings.Contains(err.Error(), "does not encode as JSON") {
		t.Fatalf("want a wrapped *json.UnsupportedTypeError, got %v", err)
	}
	st, err := q.Stats(ctx)
	if err != nil || st.NextOffset != 0 {
		t.Fatalf("something was enqueued: %+v %v", st, err)
	}
}
