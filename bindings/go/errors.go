package ordq

/*
#include "ordq.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Code is a stable ordq status code (the values of ordq_status in
// include/ordq.h). Values never change meaning; new ones are only appended.
type Code int32

// The status codes. 1–12 are the engine's error codes; 100 and 101 come
// from the C ABI itself.
const (
	CodeInvalidArgument Code = 1
	CodeNotFound        Code = 2
	CodeAlreadyExists   Code = 3
	CodeAlreadyOpen     Code = 4
	CodeLeaseLost       Code = 5
	CodeTooLarge        Code = 6
	CodeInvalidState    Code = 7
	CodeFormatTooNew    Code = 8
	CodeCorrupt         Code = 9
	CodeIO              Code = 10
	CodeClosed          Code = 11
	CodeUnavailable     Code = 12
	CodeNullPointer     Code = 100
	CodePanic           Code = 101
)

// String returns the stable name of the code ("LEASE_LOST"), or "UNKNOWN".
func (c Code) String() string {
	return C.GoString(C.ordq_status_name(C.int32_t(c)))
}

// Sentinel errors, one per code. Every error returned by this package for
// a failed ordq call is an *Error, and errors.Is(err, ErrX) reports whether
// its code is X's.
var (
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument, Message: "invalid argument"}
	ErrNotFound        = &Error{Code: CodeNotFound, Message: "not found"}
	ErrAlreadyExists   = &Error{Code: CodeAlreadyExists, Message: "already exists"}
	ErrAlreadyOpen     = &Error{Code: CodeAlreadyOpen, Message: "already open"}
	ErrLeaseLost       = &Error{Code: CodeLeaseLost, Message: "lease lost"}
	ErrTooLarge        = &Error{Code: CodeTooLarge, Message: "too large"}
	ErrInvalidState    = &Error{Code: CodeInvalidState, Message: "invalid state"}
	ErrFormatTooNew    = &Error{Code: CodeFormatTooNew, Message: "format too new"}
	ErrCorrupt         = &Error{Code: CodeCorrupt, Message: "corrupt"}
	ErrIO              = &Error{Code: CodeIO, Message: "i/o error"}
	ErrClosed          = &Error{Code: CodeClosed, Message: "closed"}
	ErrUnavailable     = &Error{Code: CodeUnavailable, Message: "unavailable"}
	ErrNullPointer     = &Error{Code: CodeNullPointer, Message: "null pointer"}
	ErrPanic           = &Error{Code: CodePanic, Message: "panic inside ordq"}
)

// Error is an error reported by ordq: the stable Code and a one-line
// message.
type Error struct {
	Code    Code   // the stable status code
	Message string // one line describing the failure
}

// Error implements the error interface: "ordq: LEASE_LOST: message".
func (e *Error) Error() string {
	return fmt.Sprintf("ordq: %s: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ordq.ErrLeaseLost) works for every lease-lost error.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// takeError converts (and frees) an ordq_error returned with status st.
func takeError(st C.ordq_status, cerr *C.ordq_error) error {
	if st == 0 {
		return nil
	}
	e := &Error{Code: Code(st)}
	if cerr != nil {
		e.Message = C.GoString(C.ordq_error_message(cerr))
		C.ordq_error_free(cerr)
	} else {
		e.Message = e.Code.String()
	}
	return e
}

// errorf builds an *Error for a check done on the Go side.
func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NonRetryable marks err as permanent: a Worker that gets it from a
// handler dead-letters the task at once instead of scheduling a retry.
// NonRetryable(nil) is nil.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetryable{err}
}

type nonRetryable struct{ err error }

func (n *nonRetryable) Error() string { return n.err.Error() }
func (n *nonRetryable) Unwrap() error { return n.err }

// IsNonRetryable reports whether err (or an error it wraps) was marked
// with NonRetryable.
func IsNonRetryable(err error) bool {
	var n *nonRetryable
	return errors.As(err, &n)
}
