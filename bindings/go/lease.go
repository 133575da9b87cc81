package ordq

/*
#include "ordq.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Lease is a claimed task: its data, copied into Go memory at claim time,
// and the token that the lease operations present. A Lease holds no C
// memory; it stays valid until its lease is finished or lost.
type Lease struct {
	queue  *Queue
	worker string
	token  C.ordq_token

	ID          string            // task id (32 hex)
	Key         string            // task key
	Offset      uint64            // queue-wide offset
	Shard       uint32            // shard of the key
	Priority    int32             // higher runs first
	Attempt     uint32            // this attempt, from 1
	MaxAttempts uint32            // attempts allowed
	Payload     []byte            // the task's payload
	Headers     map[string]string // nil when none
	EnqueuedAt  time.Time         // when the task was enqueued
	LeasedAt    time.Time         // when this lease was granted
	ExpiresAt   time.Time         // expiry at claim time (Heartbeat returns later ones)

	mu     sync.Mutex
	result []byte // set by SetResult, used by Worker
}

// Queue returns the queue the lease belongs to.
func (l *Lease) Queue() *Queue { return l.queue }

// Worker returns the worker name the lease was claimed with.
func (l *Lease) Worker() string { return l.worker }

// Fence returns the lease's fencing value (it grows with every lease of
// the task).
func (l *Lease) Fence() uint64 { return uint64(l.token.fence) }

// SetResult sets the result a Worker stores when the handler returns nil.
func (l *Lease) SetResult(result []byte) {
	l.mu.Lock()
	l.result = result
	l.mu.Unlock()
}

func (l *Lease) getResult() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.result
}

// Completion is the answer to Complete.
type Completion struct {
	Offset      uint64    // the completed offset
	CommittedAt time.Time // commit time of the (first) completion
	// Duplicate is set when this lease had completed the task already
	// (the first outcome is returned).
	Duplicate bool
}

func completionFromC(c *C.ordq_completion) Completion {
	return Completion{Offset: uint64(c.offset), CommittedAt: msTime(uint64(c.committed_at)), Duplicate: bool(c.duplicate)}
}

// FailOutcome is what Fail led to.
type FailOutcome struct {
	Dead      bool      // dead-lettered; otherwise a retry is scheduled
	Attempt   uint32    // attempts made so far
	NotBefore time.Time // retry time (zero when Dead)
}

// Complete finishes the task with result (may be nil). A stale lease is
// ErrLeaseLost; completing twice returns the first Completion with
// Duplicate set.
func (l *Lease) Complete(ctx context.Context, result []byte) (Completion, error) {
	if err := ctx.Err(); err != nil {
		return Completion{}, err
	}
	db := l.queue.db
	p, err := db.acquire()
	if err != nil {
		return Completion{}, err
	}
	defer db.mu.RUnlock()
	var (
		c    C.ordq_completion
		cerr *C.ordq_error
	)
	st := C.ordq_complete(p, l.token, bytesPtr(result), C.size_t(len(result)), &c, &cerr)
	runtime.KeepAlive(db)
	runtime.KeepAlive(result)
	if err := takeError(st, cerr); err != nil {
		return Completion{}, err
	}
	return completionFromC(&c), nil
}

// Fail records a failed attempt with an error text. With retryable false,
// or when the attempts are spent, the task is dead-lettered; otherwise a
// retry is scheduled after the queue's backoff.
func (l *Lease) Fail(ctx context.Context, errText string, retryable bool) (FailOutcome, error) {
	if err := ctx.Err(); err != nil {
		return FailOutcome{}, err
	}
	db := l.queue.db
	p, err := db.acquire()
	if err != nil {
		return FailOutcome{}, err
	}
	defer db.mu.RUnlock()
	var (
		o    C.ordq_fail_outcome
		cerr *C.ordq_error
	)
	st := C.ordq_fail(p, l.token, strPtr(errText), C.size_t(len(errText)), C.bool(retryable), &o, &cerr)
	runtime.KeepAlive(db)
	runtime.KeepAlive(errText)
	if err := takeError(st, cerr); err != nil {
		return FailOutcome{}, err
	}
	return FailOutcome{Dead: bool(o.dead), Attempt: uint32(o.attempt), NotBefore: msTime(uint64(o.not_before))}, nil
}

// Heartbeat extends the lease by d (0 = the queue's lease duration) and
// returns the new expiry. It does not change ExpiresAt, which stays the
// claim-time value so the Lease can be read without locking.
func (l *Lease) Heartbeat(ctx context.Context, d time.Duration) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	db := l.queue.db
	p, err := db.acquire()
	if err != nil {
		return time.Time{}, err
	}
	defer db.mu.RUnlock()
	var (
		exp  C.uint64_t
		cerr *C.ordq_error
	)
	st := C.ordq_heartbeat(p, l.token, C.uint64_t(durationMs(d)), &exp, &cerr)
	runtime.KeepAlive(db)
	if err := takeError(st, cerr); err != nil {
		return time.Time{}, err
	}
	return msTime(uint64(exp)), nil
}

// Start records that work on the task has begun (visible as StartedAt).
func (l *Lease) Start(ctx context.Context) error {
	return l.tokenCall(ctx, func(p *C.ordq_db, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_start(p, l.token, cerr)
	})
}

// Release gives the task back without counting an attempt.
func (l *Lease) Release(ctx context.Context) error {
	return l.tokenCall(ctx, func(p *C.ordq_db, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_release(p, l.token, cerr)
	})
}

func (l *Lease) tokenCall(ctx context.Context, call func(p *C.ordq_db, cerr **C.ordq_error) C.ordq_status) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db := l.queue.db
	p, err := db.acquire()
	if err != nil {
		return err
	}
	defer db.mu.RUnlock()
	var cerr *C.ordq_error
	st := call(p, &cerr)
	runtime.KeepAlive(db)
	return takeError(st, cerr)
}
