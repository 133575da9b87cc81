package ordq

/*
#include <stdlib.h>
#include "ordq.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"runtime"
	"time"
	"unsafe"
)

// Queue is a handle on one queue of a DB (from DB.Queue or
// DB.CreateQueue). It is a small value safe for concurrent use.
type Queue struct {
	db   *DB
	name string
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// DB returns the database the queue belongs to.
func (q *Queue) DB() *DB { return q.db }

// EnqueueOpts are per-task options; a nil *EnqueueOpts means defaults.
type EnqueueOpts struct {
	// Priority: higher runs first (default 0).
	Priority int32
	// MaxAttempts overrides the queue's (0 = the queue's).
	MaxAttempts uint32
	// NotBefore is the earliest run time (zero = none; wins over Delay).
	NotBefore time.Time
	// Delay postpones the task (0 = none).
	Delay time.Duration
	// IdempotencyKey makes a repeat enqueue return the first receipt with
	// Duplicate set ("" = none).
	IdempotencyKey string
	// Headers are name/value pairs carried with the task (names non-empty).
	Headers map[string]string
}

// Receipt is the answer to an enqueue.
type Receipt struct {
	Offset    uint64 // queue-wide offset, from 0
	Shard     uint32 // shard the key hashes to
	ID        string // task id, 32 hex characters
	Duplicate bool   // the idempotency key matched an earlier enqueue
}

func receiptFromC(r *C.ordq_receipt) Receipt {
	return Receipt{
		Offset:    uint64(r.offset),
		Shard:     uint32(r.shard),
		ID:        C.GoString(&r.id[0]),
		Duplicate: bool(r.duplicate),
	}
}

// needsArena reports whether the options carry pointers (and so must be
// built in C memory).
func (o *EnqueueOpts) needsArena() bool {
	return o != nil && (o.IdempotencyKey != "" || len(o.Headers) > 0)
}

// arenaSize is the arena space the options need beyond the struct.
func (o *EnqueueOpts) arenaSize() uintptr {
	if o == nil {
		return 0
	}
	n := roundUp8(len(o.IdempotencyKey)) + uintptr(len(o.Headers))*unsafe.Sizeof(C.ordq_header{})
	for k, v := range o.Headers {
		n += roundUp8(len(k)) + roundUp8(len(v))
	}
	return n + 8
}

// fill writes the options into c, copying pointer data into a (which may
// be nil when needsArena is false).
func (o *EnqueueOpts) fill(c *C.ordq_enqueue_options, a *arena) {
	C.ordq_enqueue_options_init(c)
	if o == nil {
		return
	}
	c.priority = C.int32_t(o.Priority)
	c.max_attempts = C.uint32_t(o.MaxAttempts)
	if !o.NotBefore.IsZero() {
		ms := o.NotBefore.UnixMilli()
		if ms < 1 {
			ms = 1
		}
		c.not_before_ms = C.uint64_t(ms)
	}
	c.delay_ms = C.uint64_t(durationMs(o.Delay))
	if o.IdempotencyKey != "" {
		c.idempotency_key = a.str(o.IdempotencyKey)
		c.idempotency_key_len = C.size_t(len(o.IdempotencyKey))
	}
	if len(o.Headers) > 0 {
		hs := unsafe.Slice((*C.ordq_header)(a.alloc(uintptr(len(o.Headers))*unsafe.Sizeof(C.ordq_header{}))), len(o.Headers))
		i := 0
		for k, v := range o.Headers {
			hs[i] = C.ordq_header{name: a.str(k), name_len: C.size_t(len(k)), value: a.str(v), value_len: C.size_t(len(v))}
			i++
		}
		c.headers = &hs[0]
		c.headers_len = C.size_t(len(hs))
	}
}

// Enqueue adds a task with the given key and payload. opts may be nil.
// Size limits are ErrTooLarge; a missing queue is ErrNotFound.
func (q *Queue) Enqueue(ctx context.Context, key string, payload []byte, opts *EnqueueOpts) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	p, err := q.db.acquire()
	if err != nil {
		return Receipt{}, err
	}
	defer q.db.mu.RUnlock()
	var (
		r    C.ordq_receipt
		cerr *C.ordq_error
		st   C.ordq_status
	)
	switch {
	case opts == nil:
		st = C.ordq_enqueue(p, strPtr(q.name), C.size_t(len(q.name)), strPtr(key), C.size_t(len(key)),
			bytesPtr(payload), C.size_t(len(payload)), nil, &r, &cerr)
	case !opts.needsArena():
		var co C.ordq_enqueue_options
		opts.fill(&co, nil)
		st = C.ordq_enqueue(p, strPtr(q.name), C.size_t(len(q.name)), strPtr(key), C.size_t(len(key)),
			bytesPtr(payload), C.size_t(len(payload)), &co, &r, &cerr)
	default:
		a := newArena(unsafe.Sizeof(C.ordq_enqueue_options{}) + opts.arenaSize())
		defer a.free()
		co := (*C.ordq_enqueue_options)(a.alloc(unsafe.Sizeof(C.ordq_enqueue_options{})))
		opts.fill(co, a)
		st = C.ordq_enqueue(p, strPtr(q.name), C.size_t(len(q.name)), strPtr(key), C.size_t(len(key)),
			bytesPtr(payload), C.size_t(len(payload)), co, &r, &cerr)
	}
	runtime.KeepAlive(q.db)
	runtime.KeepAlive(payload)
	if err := takeError(st, cerr); err != nil {
		return Receipt{}, err
	}
	return receiptFromC(&r), nil
}

// EnqueueItem is one task of an EnqueueBatch.
type EnqueueItem struct {
	Key     string       // ordering key
	Payload []byte       // task payload
	Opts    *EnqueueOpts // nil = defaults
}

// EnqueueBatch adds tasks in one commit: all or nothing, receipts in
// order. An argument error names the item ("items[3].key").
func (q *Queue) EnqueueBatch(ctx context.Context, items []EnqueueItem) ([]Receipt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []Receipt{}, nil
	}
	itemSize := unsafe.Sizeof(C.ordq_enqueue_item{})
	optSize := unsafe.Sizeof(C.ordq_enqueue_options{})
	size := uintptr(len(items)) * itemSize
	for i := range items {
		size += roundUp8(len(items[i].Key)) + roundUp8(len(items[i].Payload))
		if items[i].Opts != nil {
			size += optSize + items[i].Opts.arenaSize() + 8
		}
	}
	a := newArena(size + 8)
	defer a.free()
	cItems := unsafe.Slice((*C.ordq_enqueue_item)(a.alloc(uintptr(len(items))*itemSize)), len(items))
	for i := range items {
		it := &items[i]
		ci := &cItems[i]
		ci.key = a.str(it.Key)
		ci.key_len = C.size_t(len(it.Key))
		ci.payload = a.bytes(it.Payload)
		ci.payload_len = C.size_t(len(it.Payload))
		ci.opts = nil
		if it.Opts != nil {
			co := (*C.ordq_enqueue_options)(a.alloc(optSize))
			it.Opts.fill(co, a)
			ci.opts = co
		}
	}
	receipts := make([]C.ordq_receipt, len(items))
	p, err := q.db.acquire()
	if err != nil {
		return nil, err
	}
	defer q.db.mu.RUnlock()
	var cerr *C.ordq_error
	st := C.ordq_enqueue_batch(p, strPtr(q.name), C.size_t(len(q.name)), &cItems[0], C.size_t(len(items)), &receipts[0], &cerr)
	runtime.KeepAlive(q.db)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	out := make([]Receipt, len(items))
	for i := range receipts {
		out[i] = receiptFromC(&receipts[i])
	}
	return out, nil
}

// ClaimOpts are the options of Claim and Subscribe.
type ClaimOpts struct {
	// Worker names the claimer (1..=256 bytes; required).
	Worker string
	// Max is the most tasks to claim (default 1, at most 10000).
	Max int
	// Lease is the lease duration (0 = the queue's).
	Lease time.Duration
	// Wait blocks up to this long for work when none is ready (0 = don't
	// block). The wait is done in bounded slices so ctx cancellation is
	// honoured within about 100 ms.
	Wait time.Duration
	// Shards restricts the claim to these shards (nil = every shard).
	Shards []uint32
}

// waitSlice bounds each blocking C call so Claim can notice ctx.Done.
const waitSlice = 100 * time.Millisecond

// Claim leases up to opts.Max ready tasks. Only lane heads are claimable
// (at most one task per lane in flight); higher priority first, then
// lower offset. With opts.Wait > 0 it blocks until work arrives, the wait
// ends (returning an empty slice) or ctx is done (returning ctx.Err()).
func (q *Queue) Claim(ctx context.Context, opts ClaimOpts) ([]*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Max < 0 || opts.Max > 1<<31 {
		return nil, errorf(CodeInvalidArgument, "claim max %d is out of range", opts.Max)
	}
	var co C.ordq_claim_options
	C.ordq_claim_options_init(&co)
	if opts.Max != 0 {
		co.max = C.uint32_t(opts.Max)
	}
	co.lease_ms = C.uint64_t(durationMs(opts.Lease))
	var shards *C.uint32_t
	if len(opts.Shards) > 0 {
		shards = (*C.uint32_t)(C.malloc(C.size_t(4 * len(opts.Shards))))
		defer C.free(unsafe.Pointer(shards))
		s := unsafe.Slice(shards, len(opts.Shards))
		for i, v := range opts.Shards {
			s[i] = C.uint32_t(v)
		}
		co.shards = shards
		co.shards_len = C.size_t(len(opts.Shards))
	}
	// co holds only a C pointer, so &co may be passed as Go memory.
	if opts.Wait <= 0 {
		return q.claimOnce(&co, opts.Worker)
	}
	deadline := time.Now().Add(opts.Wait)
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return []*Lease{}, nil
		}
		co.wait_ms = C.uint64_t(durationMs(min(remaining, waitSlice)))
		leases, err := q.claimOnce(&co, opts.Worker)
		if err != nil || len(leases) > 0 {
			return leases, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
	}
}

// claimOnce does one ordq_claim and copies every lease into Go memory.
func (q *Queue) claimOnce(co *C.ordq_claim_options, worker string) ([]*Lease, error) {
	p, err := q.db.acquire()
	if err != nil {
		return nil, err
	}
	defer q.db.mu.RUnlock()
	var (
		list *C.ordq_lease_list
		cerr *C.ordq_error
	)
	st := C.ordq_claim(p, strPtr(q.name), C.size_t(len(q.name)), strPtr(worker), C.size_t(len(worker)), co, &list, &cerr)
	runtime.KeepAlive(q.db)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	defer C.ordq_lease_list_free(list)
	n := int(C.ordq_lease_list_len(list))
	out := make([]*Lease, n)
	var info C.ordq_lease_info
	for i := range n {
		cl := C.ordq_lease_list_get(list, C.size_t(i))
		st := C.ordq_lease_get_info(cl, &info, &cerr)
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
		l := &Lease{
			queue:       q,
			worker:      worker,
			token:       info.token,
			Offset:      uint64(info.offset),
			Shard:       uint32(info.shard),
			Priority:    int32(info.priority),
			Attempt:     uint32(info.attempt),
			MaxAttempts: uint32(info.max_attempts),
			EnqueuedAt:  msTime(uint64(info.enqueued_at)),
			LeasedAt:    msTime(uint64(info.leased_at)),
			ExpiresAt:   msTime(uint64(info.expires_at)),
			ID:          C.GoStringN(info.id, C.int(info.id_len)),
			Key:         C.GoStringN(info.key, C.int(info.key_len)),
			Payload:     C.GoBytes(unsafe.Pointer(info.payload), C.int(info.payload_len)),
		}
		if hc := int(info.header_count); hc > 0 {
			l.Headers = make(map[string]string, hc)
			for h := range hc {
				var (
					name, value       *C.char
					nameLen, valueLen C.size_t
				)
				st := C.ordq_lease_header_get(cl, C.size_t(h), &name, &nameLen, &value, &valueLen, &cerr)
				if err := takeError(st, cerr); err != nil {
					return nil, err
				}
				l.Headers[C.GoStringN(name, C.int(nameLen))] = C.GoStringN(value, C.int(valueLen))
			}
		}
		out[i] = l
	}
	return out, nil
}

// CompleteItem is one completion of CompleteBatch.
type CompleteItem struct {
	Lease  *Lease // the lease to complete
	Result []byte // its result (may be nil)
}

// CompleteResult is the per-item outcome of CompleteBatch: Err is nil and
// Completion set on success (ErrLeaseLost for a stale lease).
type CompleteResult struct {
	Completion Completion // set when Err is nil
	Err        error      // this item's error (ErrLeaseLost for a stale lease)
}

// CompleteBatch completes many leases in one commit with per-item
// outcomes. The returned error is for the call as a whole (a result over
// the limit fails everything with ErrTooLarge).
func (q *Queue) CompleteBatch(ctx context.Context, items []CompleteItem) ([]CompleteResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []CompleteResult{}, nil
	}
	itemSize := unsafe.Sizeof(C.ordq_complete_item{})
	size := uintptr(len(items)) * itemSize
	for i := range items {
		size += roundUp8(len(items[i].Result))
	}
	a := newArena(size + 8)
	defer a.free()
	cItems := unsafe.Slice((*C.ordq_complete_item)(a.alloc(uintptr(len(items))*itemSize)), len(items))
	for i := range items {
		if items[i].Lease == nil {
			return nil, errorf(CodeInvalidArgument, "items[%d].Lease is nil", i)
		}
		cItems[i] = C.ordq_complete_item{token: items[i].Lease.token, result: a.bytes(items[i].Result), result_len: C.size_t(len(items[i].Result))}
	}
	comps := make([]C.ordq_completion, len(items))
	stats := make([]C.ordq_status, len(items))
	p, err := q.db.acquire()
	if err != nil {
		return nil, err
	}
	defer q.db.mu.RUnlock()
	var cerr *C.ordq_error
	st := C.ordq_complete_batch(p, &cItems[0], C.size_t(len(items)), &comps[0], &stats[0], &cerr)
	runtime.KeepAlive(q.db)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	out := make([]CompleteResult, len(items))
	for i := range items {
		if stats[i] == 0 {
			out[i].Completion = completionFromC(&comps[i])
		} else {
			out[i].Err = &Error{Code: Code(stats[i]), Message: "complete_batch item " + itoa(i) + ": " + Code(stats[i]).String()}
		}
	}
	return out, nil
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// jsonCall runs an ordq_*_json call and decodes the document into v.
func (q *Queue) jsonCall(ctx context.Context, v any, call func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status) error {
	return q.db.jsonCall(ctx, v, call)
}

// Stats returns the queue's counts and lifetime totals.
func (q *Queue) Stats(ctx context.Context) (*QueueStats, error) {
	var s QueueStats
	err := q.jsonCall(ctx, &s, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_queue_stats_json(p, strPtr(q.name), C.size_t(len(q.name)), out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Info returns the queue's configuration and creation time.
func (q *Queue) Info(ctx context.Context) (*QueueInfo, error) {
	var s QueueInfo
	err := q.jsonCall(ctx, &s, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_queue_get_json(p, strPtr(q.name), C.size_t(len(q.name)), out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Task returns the task at offset (ErrNotFound if there is none).
func (q *Queue) Task(ctx context.Context, offset uint64) (*Task, error) {
	var t Task
	err := q.jsonCall(ctx, &t, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_task_get_json(p, strPtr(q.name), C.size_t(len(q.name)), C.uint64_t(offset), out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Faults returns the task's failures and lease expiries, oldest first.
func (q *Queue) Faults(ctx context.Context, offset uint64) ([]Fault, error) {
	var f []Fault
	err := q.jsonCall(ctx, &f, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_task_faults_json(p, strPtr(q.name), C.size_t(len(q.name)), C.uint64_t(offset), out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Pending lists up to limit unfinished tasks (ready, delayed, waiting for
// a retry, or leased) in offset order, starting after the offset *after
// (nil = from the start). Offset order is not claim order, which also
// weighs priority and lane heads; nothing is leased. A task that finishes
// while the list is read is left out, so a page may hold fewer than limit
// while more are pending: page on from the last offset until a page is
// empty.
func (q *Queue) Pending(ctx context.Context, after *uint64, limit int) ([]Task, error) {
	return q.taskList(ctx, after, limit, func(p *C.ordq_db, name *C.char, n C.size_t, hasAfter C.bool, a C.uint64_t, lim C.size_t, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_queue_pending_json(p, name, n, hasAfter, a, lim, out, cerr)
	})
}

// DeadLetters lists up to limit held dead letters in offset order,
// starting after the offset *after (nil = from the start).
func (q *Queue) DeadLetters(ctx context.Context, after *uint64, limit int) ([]Task, error) {
	return q.taskList(ctx, after, limit, func(p *C.ordq_db, name *C.char, n C.size_t, hasAfter C.bool, a C.uint64_t, lim C.size_t, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_dlq_list_json(p, name, n, hasAfter, a, lim, out, cerr)
	})
}

// taskList runs a paged task-list call (ordq_queue_pending_json,
// ordq_dlq_list_json) for this queue.
func (q *Queue) taskList(ctx context.Context, after *uint64, limit int,
	list func(p *C.ordq_db, name *C.char, n C.size_t, hasAfter C.bool, a C.uint64_t, lim C.size_t, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status) ([]Task, error) {
	if limit < 0 {
		return nil, errorf(CodeInvalidArgument, "limit %d is negative", limit)
	}
	var ts []Task
	hasAfter, a := false, uint64(0)
	if after != nil {
		hasAfter, a = true, *after
	}
	err := q.jsonCall(ctx, &ts, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return list(p, strPtr(q.name), C.size_t(len(q.name)), C.bool(hasAfter), C.uint64_t(a), C.size_t(limit), out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return ts, nil
}

// DeadLetter returns a held dead letter with its fault history
// (ErrNotFound if the task is not one).
func (q *Queue) DeadLetter(ctx context.Context, offset uint64) (*DeadLetter, error) {
	var d DeadLetter
	err := q.jsonCall(ctx, &d, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_dlq_get_json(p, strPtr(q.name), C.size_t(len(q.name)), C.uint64_t(offset), out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// RedriveMode says where a redriven dead letter goes.
type RedriveMode int32

const (
	// RedriveHead puts the task back at its lane's head, at its original
	// offset, with its attempts reset.
	RedriveHead RedriveMode = C.ORDQ_REDRIVE_HEAD
	// RedriveNewOffset re-enqueues the task at the tail; the receipt has
	// the new offset.
	RedriveNewOffset RedriveMode = C.ORDQ_REDRIVE_NEW_OFFSET
)

// Redrive makes a dead letter runnable again. A task that is not a held
// dead letter is ErrInvalidState; an unknown offset is ErrNotFound.
func (q *Queue) Redrive(ctx context.Context, offset uint64, mode RedriveMode) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	p, err := q.db.acquire()
	if err != nil {
		return Receipt{}, err
	}
	defer q.db.mu.RUnlock()
	var (
		r    C.ordq_receipt
		cerr *C.ordq_error
	)
	st := C.ordq_dlq_redrive(p, strPtr(q.name), C.size_t(len(q.name)), C.uint64_t(offset), C.int32_t(mode), &r, &cerr)
	runtime.KeepAlive(q.db)
	if err := takeError(st, cerr); err != nil {
		return Receipt{}, err
	}
	return receiptFromC(&r), nil
}

// Purge deletes one held dead letter and returns the count purged (1).
func (q *Queue) Purge(ctx context.Context, offset uint64) (uint64, error) {
	return q.purge(ctx, false, offset)
}

// PurgeAll deletes every held dead letter and returns how many.
func (q *Queue) PurgeAll(ctx context.Context) (uint64, error) {
	return q.purge(ctx, true, 0)
}

func (q *Queue) purge(ctx context.Context, all bool, offset uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := q.db.acquire()
	if err != nil {
		return 0, err
	}
	defer q.db.mu.RUnlock()
	var (
		n    C.uint64_t
		cerr *C.ordq_error
	)
	st := C.ordq_dlq_purge(p, strPtr(q.name), C.size_t(len(q.name)), C.bool(all), C.uint64_t(offset), &n, &cerr)
	runtime.KeepAlive(q.db)
	if err := takeError(st, cerr); err != nil {
		return 0, err
	}
	return uint64(n), nil
}
