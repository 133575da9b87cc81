package ordq

import (
	"strings"
	"testing"
	"time"
)

func TestRemoteOpenOptions(t *testing.T) {
	var o openOptions
	WithToken("s3cret")(&o)
	WithTimeout(1500 * time.Millisecond)(&o)
	if o.token == nil || *o.token != "s3cret" {
		t.Fatalf("token not set: %v", o.token)
	}
	if uint64(o.c.timeout_ms) != 1500 {
		t.Fatalf("timeout_ms = %d, want 1500", uint64(o.c.timeout_ms))
	}
	WithTimeout(time.Microsecond)(&o)
	if uint64(o.c.timeout_ms) != 1 {
		t.Fatalf("a tiny timeout must round up to 1 ms, got %d", uint64(o.c.timeout_ms))
	}

	// Nothing listens on port 1: the options pass the ABI's checks (token
	// and client strings copied to C memory) and the broker is not there.
	start := time.Now()
	_, err := Open("tcp://127.0.0.1:1", WithToken("s3cret"), WithTimeout(500*time.Millisecond))
	wantCode(t, err, ErrUnavailable)
	if !strings.Contains(err.Error(), "cannot reach the broker") {
		t.Fatalf("unexpected message: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("open took %v", time.Since(start))
	}
	_, err = Open("tcp://127.0.0.1:1", WithToken(""))
	wantCode(t, err, ErrUnavailable)
	_, err = Open("tcp://127.0.0.1")
	wantCode(t, err, ErrInvalidArgument)
}
