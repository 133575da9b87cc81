package ordq

/*
#include <stdlib.h>
#include "ordq.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Durability says when a write call returns.
type Durability int32

const (
	// DurabilityImmediate (the default) returns after the write's batch is
	// fsynced.
	DurabilityImmediate Durability = C.ORDQ_DURABILITY_IMMEDIATE
	// DurabilityNone returns after the commit without fsync: a crash may
	// lose recent writes but never corrupts the file.
	DurabilityNone Durability = C.ORDQ_DURABILITY_NONE
)

// openOptions is what Options set: the C struct, plus the remote-mode
// strings, which Open copies into C memory for the call (a C struct in Go
// memory may not hold Go pointers).
type openOptions struct {
	c          C.ordq_options
	token      *string
	signingKey *[32]byte
}

// Option configures Open. The file options (WithDurability ...
// WithCacheSize) apply to a database file and are ignored in remote mode,
// where the broker's own options apply; WithToken and WithTimeout apply to
// a broker address only.
type Option func(*openOptions)

// WithMustExist makes a missing database file ErrNotFound instead of a
// new, empty database (the default creates it crash-atomically): a typo in
// a path then fails loudly. Ignored in remote mode.
func WithMustExist() Option {
	return func(o *openOptions) { o.c.must_exist = C.bool(true) }
}

// WithSigningKey signs every checkpoint record with the Ed25519 key whose
// 32-byte seed is given (see `ordq keygen`); the database records its
// public key the first time. Ignored in remote mode (the broker's key
// signs).
func WithSigningKey(seed [32]byte) Option {
	return func(o *openOptions) { o.signingKey = &seed }
}

// WithDurability sets when writes return (default DurabilityImmediate).
func WithDurability(d Durability) Option {
	return func(o *openOptions) { o.c.durability = C.int32_t(d) }
}

// WithMaxPayload sets the largest payload in bytes (default 1 MiB).
func WithMaxPayload(n uint64) Option {
	return func(o *openOptions) { o.c.max_payload = C.uint64_t(n) }
}

// WithMaxResult sets the largest result in bytes (default 1 MiB).
func WithMaxResult(n uint64) Option {
	return func(o *openOptions) { o.c.max_result = C.uint64_t(n) }
}

// WithMaxKey sets the longest task key and idempotency key in bytes
// (default 1024).
func WithMaxKey(n uint64) Option {
	return func(o *openOptions) { o.c.max_key = C.uint64_t(n) }
}

// WithMaxHeaders sets the largest total of header names and values in
// bytes (default 64 KiB).
func WithMaxHeaders(n uint64) Option {
	return func(o *openOptions) { o.c.max_headers = C.uint64_t(n) }
}

// WithRetainDone sets how long payloads and results of done tasks are kept
// (default 24h; 0 prunes at the next retention pass).
func WithRetainDone(d time.Duration) Option {
	return func(o *openOptions) { o.c.retain_done_ms = C.uint64_t(durationMs(d)) }
}

// WithMaxBatch sets the largest batch (default 8192).
func WithMaxBatch(n uint64) Option {
	return func(o *openOptions) { o.c.max_batch = C.uint64_t(n) }
}

// WithCacheSize sets the storage cache in bytes (default 64 MiB).
func WithCacheSize(n uint64) Option {
	return func(o *openOptions) { o.c.cache_size = C.uint64_t(n) }
}

// WithToken sets the broker's access token (remote mode). Without it the
// ORDQ_TOKEN environment variable is used; WithToken("") sends no token.
func WithToken(token string) Option {
	return func(o *openOptions) { o.token = &token }
}

// WithTimeout sets the deadline of every call in remote mode (default
// 30s; a claim adds its wait). A call not answered in time fails with
// ErrUnavailable.
func WithTimeout(d time.Duration) Option {
	return func(o *openOptions) { o.c.timeout_ms = C.uint64_t(durationMs(d)) }
}

// cString copies s into C memory (never NULL, even when empty); free it
// with C.free.
func cString(s string) (*C.char, C.size_t) {
	p := C.malloc(C.size_t(len(s) + 1))
	copy(unsafe.Slice((*byte)(p), len(s)+1), s+"\x00")
	return (*C.char)(p), C.size_t(len(s))
}

// DB is an open ordq database. It is safe for concurrent use by many
// goroutines; Close it when done.
type DB struct {
	mu      sync.RWMutex // read-held by every call; write-held by Close to free
	ptr     *C.ordq_db   // nil once freed
	cleanup runtime.Cleanup
}

// checkABI refuses a library built for another ABI version.
func checkABI() error {
	v := uint32(C.ordq_abi_version())
	major, minor := v>>16, (v>>8)&0xff
	if major != C.ORDQ_ABI_VERSION_MAJOR || (C.ORDQ_ABI_VERSION_MAJOR == 0 && minor != C.ORDQ_ABI_VERSION_MINOR) {
		return errorf(CodeInvalidState, "libordq ABI %d.%d does not match the header's %d.%d",
			major, minor, C.ORDQ_ABI_VERSION_MAJOR, C.ORDQ_ABI_VERSION_MINOR)
	}
	return nil
}

// Version returns the library's version string (e.g. "0.4.0").
func Version() string { return C.GoString(C.ordq_version_string()) }

// Open opens (creating it crash-atomically if missing) the database at
// uri, a file path or file://PATH, or connects to a broker at
// unix:///path/to/ordq.sock or tcp://host:port (remote mode: the same API,
// every call goes to the broker; see WithToken and WithTimeout). A file
// held by another handle or process is ErrAlreadyOpen; a broker that
// cannot be reached is ErrUnavailable.
func Open(uri string, opts ...Option) (*DB, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	var o openOptions
	C.ordq_options_init(&o.c)
	for _, opt := range opts {
		opt(&o)
	}
	if o.token != nil {
		p, n := cString(*o.token)
		defer C.free(unsafe.Pointer(p))
		o.c.token, o.c.token_len = p, n
	}
	if o.signingKey != nil {
		k := C.CBytes(o.signingKey[:])
		defer C.free(k)
		o.c.signing_key, o.c.signing_key_len = (*C.uint8_t)(k), 32
	}
	client, clientLen := cString("ordq-go/" + Version())
	defer C.free(unsafe.Pointer(client))
	rt, rtLen := cString(runtime.Version())
	defer C.free(unsafe.Pointer(rt))
	o.c.client, o.c.client_len = client, clientLen
	o.c.runtime, o.c.runtime_len = rt, rtLen
	var (
		ptr  *C.ordq_db
		cerr *C.ordq_error
	)
	st := C.ordq_open(strPtr(uri), C.size_t(len(uri)), &o.c, &ptr, &cerr)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	db := &DB{ptr: ptr}
	// Safety net only: a DB dropped without Close is freed by the GC.
	db.cleanup = runtime.AddCleanup(db, func(p *C.ordq_db) { C.ordq_db_free(p) }, ptr)
	return db, nil
}

// acquire read-locks the handle for one call; release with db.mu.RUnlock.
func (db *DB) acquire() (*C.ordq_db, error) {
	gcStress()
	db.mu.RLock()
	if db.ptr == nil {
		db.mu.RUnlock()
		return nil, errorf(CodeClosed, "database is closed")
	}
	return db.ptr, nil
}

// Close closes the database and frees its handle. It is idempotent;
// calls made after Close return ErrClosed, and calls blocked in Claim
// return promptly.
func (db *DB) Close() error {
	db.mu.RLock()
	p := db.ptr
	var cerr *C.ordq_error
	var err error
	if p != nil {
		// Close first without the write lock so in-flight waits end.
		err = takeError(C.ordq_db_close(p, &cerr), cerr)
	}
	db.mu.RUnlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.ptr != nil {
		db.cleanup.Stop()
		C.ordq_db_free(db.ptr)
		db.ptr = nil
	}
	runtime.KeepAlive(db)
	return err
}

// Sync waits until everything sent before is committed, and runs due
// timers (lease expiry, retry readiness) and retention now.
func (db *DB) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := db.acquire()
	if err != nil {
		return err
	}
	defer db.mu.RUnlock()
	var cerr *C.ordq_error
	st := C.ordq_db_sync(p, &cerr)
	runtime.KeepAlive(db)
	return takeError(st, cerr)
}

// Ordering says which tasks of a queue run one at a time, in order.
type Ordering int32

const (
	// OrderingKey (the default): tasks with the same key run in order.
	OrderingKey Ordering = C.ORDQ_ORDERING_KEY
	// OrderingShard: tasks of the same shard run in order.
	OrderingShard Ordering = C.ORDQ_ORDERING_SHARD
	// OrderingGlobal: the whole queue runs in order, one at a time.
	OrderingGlobal Ordering = C.ORDQ_ORDERING_GLOBAL
	// OrderingNone: no ordering; any ready task may run.
	OrderingNone Ordering = C.ORDQ_ORDERING_NONE
)

// DLQPolicy says what a dead letter does to its lane.
type DLQPolicy int32

const (
	// DLQSkip (the default): the lane moves on past a dead letter.
	DLQSkip DLQPolicy = C.ORDQ_DLQ_SKIP
	// DLQBlock: a dead letter blocks its lane until redriven or purged.
	DLQBlock DLQPolicy = C.ORDQ_DLQ_BLOCK
)

// QueueConfig configures a queue. Zero fields take the defaults shown.
type QueueConfig struct {
	Shards            uint32        // default 16
	Ordering          Ordering      // default OrderingKey
	MaxAttempts       uint32        // default 10
	DLQPolicy         DLQPolicy     // default DLQSkip
	Lease             time.Duration // default 30s
	BackoffInitial    time.Duration // default 1s
	BackoffMax        time.Duration // default 600s
	BackoffMultiplier float64       // default 2.0
	// BackoffJitter is the random fraction taken off a retry delay
	// (default 0.2). Set NoJitter for exactly 0.
	BackoffJitter float64
	// NoJitter sets the jitter to 0 (a zero BackoffJitter means default).
	NoJitter bool
}

func (c *QueueConfig) toC() C.ordq_queue_config {
	var cc C.ordq_queue_config
	C.ordq_queue_config_init(&cc)
	if c.Shards != 0 {
		cc.shards = C.uint32_t(c.Shards)
	}
	cc.ordering = C.int32_t(c.Ordering)
	if c.MaxAttempts != 0 {
		cc.max_attempts = C.uint32_t(c.MaxAttempts)
	}
	cc.dlq_policy = C.int32_t(c.DLQPolicy)
	if c.Lease != 0 {
		cc.lease_ms = C.uint64_t(durationMs(c.Lease))
	}
	if c.BackoffInitial != 0 {
		cc.backoff_initial_ms = C.uint64_t(durationMs(c.BackoffInitial))
	}
	if c.BackoffMax != 0 {
		cc.backoff_max_ms = C.uint64_t(durationMs(c.BackoffMax))
	}
	if c.BackoffMultiplier != 0 {
		cc.backoff_multiplier = C.double(c.BackoffMultiplier)
	}
	if c.BackoffJitter != 0 {
		cc.backoff_jitter = C.double(c.BackoffJitter)
	}
	if c.NoJitter {
		cc.backoff_jitter = 0
	}
	return cc
}

// CreateQueue creates a queue. Names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
// (else ErrInvalidArgument); an existing name is ErrAlreadyExists.
func (db *DB) CreateQueue(ctx context.Context, name string, cfg QueueConfig) (*Queue, error) {
	return db.createQueue(ctx, name, cfg, false)
}

// CreateQueueIfNotExists creates a queue unless one of that name exists
// with the same configuration, which is then returned (atomic under
// concurrent callers). Existing with another configuration is
// ErrAlreadyExists, its message naming the fields that differ.
func (db *DB) CreateQueueIfNotExists(ctx context.Context, name string, cfg QueueConfig) (*Queue, error) {
	return db.createQueue(ctx, name, cfg, true)
}

// createQueue is both creations; ifNotExists picks the ABI call.
func (db *DB) createQueue(ctx context.Context, name string, cfg QueueConfig, ifNotExists bool) (*Queue, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := db.acquire()
	if err != nil {
		return nil, err
	}
	defer db.mu.RUnlock()
	cc := cfg.toC()
	var cerr *C.ordq_error
	var st C.ordq_status
	if ifNotExists {
		st = C.ordq_queue_create_if_not_exists(p, strPtr(name), C.size_t(len(name)), &cc, &cerr)
	} else {
		st = C.ordq_queue_create(p, strPtr(name), C.size_t(len(name)), &cc, &cerr)
	}
	runtime.KeepAlive(db)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	return db.Queue(name), nil
}

// Queue returns a handle on the named queue. It does not check that the
// queue exists: calls on a missing queue return ErrNotFound.
func (db *DB) Queue(name string) *Queue {
	return &Queue{db: db, name: name}
}

// ListQueues returns the queue names, sorted.
func (db *DB) ListQueues(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := db.acquire()
	if err != nil {
		return nil, err
	}
	defer db.mu.RUnlock()
	var (
		list *C.ordq_string_list
		cerr *C.ordq_error
	)
	st := C.ordq_queue_list(p, &list, &cerr)
	runtime.KeepAlive(db)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	defer C.ordq_string_list_free(list)
	n := int(C.ordq_string_list_len(list))
	names := make([]string, n)
	for i := range n {
		names[i] = C.GoString(C.ordq_string_list_get(list, C.size_t(i)))
	}
	return names, nil
}

// DeleteQueue deletes a queue and all its tasks.
func (db *DB) DeleteQueue(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := db.acquire()
	if err != nil {
		return err
	}
	defer db.mu.RUnlock()
	var cerr *C.ordq_error
	st := C.ordq_queue_delete(p, strPtr(name), C.size_t(len(name)), &cerr)
	runtime.KeepAlive(db)
	return takeError(st, cerr)
}

// strPtr returns s's bytes for a (ptr, len) argument; nil when empty.
// ordq copies inputs before returning, so Go memory may be passed.
func strPtr(s string) *C.char {
	if len(s) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
}

// bytesPtr returns b's bytes for a (ptr, len) argument; nil when empty.
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b)))
}

// durationMs converts to whole milliseconds, rounding a positive
// sub-millisecond duration up to 1 ms and a negative one to 0.
func durationMs(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	ms := uint64(d / time.Millisecond)
	if ms == 0 {
		ms = 1
	}
	return ms
}

// msTime converts ms since the epoch to a time.Time (zero for 0).
func msTime(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

// arena is one C allocation holding the pointer-bearing structs and the
// bytes they point to, so no Go pointer is stored in memory passed to C
// (cgo's rule) without pinning.
type arena struct {
	base      unsafe.Pointer
	size, off uintptr
}

func newArena(size uintptr) *arena {
	if size == 0 {
		size = 1
	}
	return &arena{base: C.malloc(C.size_t(size)), size: size}
}

// alloc returns n bytes aligned to 8.
func (a *arena) alloc(n uintptr) unsafe.Pointer {
	a.off = (a.off + 7) &^ 7
	if a.off+n > a.size {
		panic(fmt.Sprintf("ordq: arena overflow (%d+%d > %d)", a.off, n, a.size))
	}
	p := unsafe.Add(a.base, a.off)
	a.off += n
	return p
}

// str copies s into the arena; nil when empty.
func (a *arena) str(s string) *C.char {
	if len(s) == 0 {
		return nil
	}
	p := a.alloc(uintptr(len(s)))
	copy(unsafe.Slice((*byte)(p), len(s)), s)
	return (*C.char)(p)
}

// bytes copies b into the arena; nil when empty.
func (a *arena) bytes(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	p := a.alloc(uintptr(len(b)))
	copy(unsafe.Slice((*byte)(p), len(b)), b)
	return (*C.uint8_t)(p)
}

func (a *arena) free() { C.free(a.base) }

// roundUp8 is the arena size of n bytes.
func roundUp8(n int) uintptr { return (uintptr(n) + 7) &^ 7 }
