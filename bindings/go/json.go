package ordq

import (
	"context"
	"encoding/json"
	"fmt"
)

// JSONHandler returns a Handler for tasks whose payload is a JSON
// document of type T (as EnqueueJSON writes them): it decodes the payload
// with encoding/json and calls fn with the value. A payload that does not
// decode fails the task non-retryably, since no retry can fix it: the
// task is dead-lettered at once, with the decode error as its fault's
// text, and fn is not called. fn's own return value is handled as a
// Handler's is.
//
//	type Email struct{ To, Subject string }
//	w := ordq.NewWorker(q, ordq.JSONHandler(func(ctx context.Context, l *ordq.Lease, e Email) error {
//		return send(ctx, e.To, e.Subject)
//	}), ordq.WorkerOptions{})
func JSONHandler[T any](fn func(ctx context.Context, lease *Lease, payload T) error) Handler {
	return func(ctx context.Context, l *Lease) error {
		var v T
		if err := json.Unmarshal(l.Payload, &v); err != nil {
			return NonRetryable(fmt.Errorf("ordq: payload does not decode as %T: %w", v, err))
		}
		return fn(ctx, l, v)
	}
}

// EnqueueJSON enqueues v, encoded with encoding/json, as the payload of a
// task with the given key; opts may be nil. It is Queue.Enqueue with a
// typed payload (Go methods cannot have type parameters). A value that
// does not encode is an error wrapping encoding/json's, and nothing is
// enqueued.
func EnqueueJSON[T any](ctx context.Context, q *Queue, key string, v T, opts *EnqueueOpts) (Receipt, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return Receipt{}, fmt.Errorf("ordq: payload of type %T does not encode as JSON: %w", v, err)
	}
	return q.Enqueue(ctx, key, payload, opts)
}
