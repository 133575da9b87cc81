package ordq

// #include "ordq.h"
import "C"

import (
	"context"
	"encoding/json"
	"runtime"
	"unsafe"
)

// LogInfo is the extent of a database's segment log.
type LogInfo struct {
	Segments      int    `json:"segments"`
	Bytes         uint64 `json:"bytes"`
	FirstLSN      uint64 `json:"first_lsn"`
	NextLSN       uint64 `json:"next_lsn"`
	CheckpointLSN uint64 `json:"checkpoint_lsn"`
}

// Problem is one thing Verify found wrong: its class ("log", "chain",
// "checkpoint", "signature", "state"), where, and why.
type Problem struct {
	Class string `json:"class"`
	At    string `json:"at"`
	Why   string `json:"why"`
}

// VerifiedQueue is one queue's chains as Verify checked them.
type VerifiedQueue struct {
	Name       string `json:"name"`
	LogRecords uint64 `json:"log_records"`
	Events     uint64 `json:"events"`
}

// VerifyReport is the outcome of DB.Verify (docs/CLI.md, `ordq verify`).
type VerifyReport struct {
	OK           bool            `json:"ok"`
	Segments     int             `json:"segments"`
	FirstLSN     uint64          `json:"first_lsn"`
	EndLSN       uint64          `json:"end_lsn"`
	Frames       uint64          `json:"frames"`
	Records      uint64          `json:"records"`
	Checkpoints  uint64          `json:"checkpoints"`
	Signed       uint64          `json:"signed"`
	Unsigned     uint64          `json:"unsigned"`
	KeyID        *string         `json:"key_id"`
	StateChecked bool            `json:"state_checked"`
	Notes        []string        `json:"notes"`
	Queues       []VerifiedQueue `json:"queues"`
	Seconds      float64         `json:"seconds"`
	Problems     []Problem       `json:"problems"`
	ProblemCount uint64          `json:"problem_count"`
}

// AuditLane is one lane's summary in an AuditReport.
type AuditLane struct {
	Lane     uint64  `json:"lane"`
	Done     uint64  `json:"done"`
	Dead     uint64  `json:"dead"`
	LastDone *uint64 `json:"last_done"`
}

// Violation is a promise Audit found broken: Kind is "order", "fence" or
// "outcome".
type Violation struct {
	Kind   string `json:"kind"`
	Offset uint64 `json:"offset"`
	Why    string `json:"why"`
}

// AuditReport is the outcome of DB.Audit (docs/CLI.md, `ordq audit`).
type AuditReport struct {
	OK             bool        `json:"ok"`
	Queue          string      `json:"queue"`
	Key            *string     `json:"key"`
	FirstLSN       uint64      `json:"first_lsn"`
	Events         uint64      `json:"events"`
	Leases         uint64      `json:"leases"`
	Lanes          []AuditLane `json:"lanes"`
	LaneCount      uint64      `json:"lane_count"`
	Notes          []string    `json:"notes"`
	Violations     []Violation `json:"violations"`
	ViolationCount uint64      `json:"violation_count"`
}

// jsonCall runs an ordq_*_json call on the handle and decodes the
// document into v.
func (db *DB) jsonCall(ctx context.Context, v any, call func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := db.acquire()
	if err != nil {
		return err
	}
	defer db.mu.RUnlock()
	var (
		out  C.ordq_bytes
		cerr *C.ordq_error
	)
	st := call(p, &out, &cerr)
	runtime.KeepAlive(db)
	if err := takeError(st, cerr); err != nil {
		return err
	}
	defer C.ordq_bytes_free(&out)
	doc := unsafe.Slice((*byte)(unsafe.Pointer(out.ptr)), int(out.len))
	if err := json.Unmarshal(doc, v); err != nil {
		return errorf(CodeCorrupt, "decoding ordq JSON: %v", err)
	}
	return nil
}

// Checkpoint makes a state checkpoint now (a checkpoint record in the
// log) and returns the log's extent.
func (db *DB) Checkpoint(ctx context.Context) (*LogInfo, error) {
	var info LogInfo
	err := db.jsonCall(ctx, &info, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		return C.ordq_db_checkpoint(p, out, cerr)
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// Verify checks the database against its own history: every log frame,
// both hash chains of every queue, the checkpoint chain and its
// signatures (with pubkey, 32 bytes of an Ed25519 public key, or nil for
// the key the database recorded), and the state rebuilt from the log.
// Damage found is in the report (OK false), not an error. Through a
// broker, the broker verifies its database while it serves.
func (db *DB) Verify(ctx context.Context, pubkey []byte) (*VerifyReport, error) {
	if pubkey != nil && len(pubkey) != 32 {
		return nil, errorf(CodeInvalidArgument, "pubkey must be 32 bytes, not %d", len(pubkey))
	}
	var r VerifyReport
	err := db.jsonCall(ctx, &r, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		var key *C.uint8_t
		if pubkey != nil {
			key = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(pubkey)))
		}
		st := C.ordq_db_verify_json(p, key, out, cerr)
		runtime.KeepAlive(pubkey)
		return st
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Audit proves from the log alone that queue kept lane order, completed
// every task under its latest lease and gave each one outcome. Violations
// are in the report (OK false).
func (db *DB) Audit(ctx context.Context, queue string) (*AuditReport, error) {
	return db.audit(ctx, queue, nil)
}

// AuditKey is Audit restricted to the tasks of key.
func (db *DB) AuditKey(ctx context.Context, queue, key string) (*AuditReport, error) {
	return db.audit(ctx, queue, &key)
}

// emptyKey is a valid, non-NULL pointer for an empty key.
var emptyKey = [1]byte{0}

func (db *DB) audit(ctx context.Context, queue string, key *string) (*AuditReport, error) {
	var r AuditReport
	err := db.jsonCall(ctx, &r, func(p *C.ordq_db, out *C.ordq_bytes, cerr **C.ordq_error) C.ordq_status {
		var kp *C.char
		var kn C.size_t
		if key != nil {
			kp, kn = strPtr(*key), C.size_t(len(*key))
			if kp == nil {
				kp = (*C.char)(unsafe.Pointer(&emptyKey[0]))
			}
		}
		st := C.ordq_db_audit_json(p, strPtr(queue), C.size_t(len(queue)), kp, kn, out, cerr)
		runtime.KeepAlive(key)
		return st
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
