package ordq

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// brokerMode reports whether ORDQ_TEST_MODE=broker: then openTemp serves
// each test database with its own `ordq serve` on a Unix socket and opens
// it by address, so the same tests cover remote mode.
func brokerMode(t testing.TB) bool {
	switch m := os.Getenv("ORDQ_TEST_MODE"); m {
	case "", "embedded":
		return false
	case "broker":
		return true
	default:
		t.Fatalf("ORDQ_TEST_MODE must be embedded or broker, not %q", m)
		return false
	}
}

// skipInBrokerMode skips a test about the local database file.
func skipInBrokerMode(t testing.TB, why string) {
	t.Helper()
	if brokerMode(t) {
		t.Skip("embedded mode only: " + why)
	}
}

// ordqBin is the ordq binary: ORDQ_BIN, else the release or debug build.
func ordqBin(t testing.TB) string {
	if b := os.Getenv("ORDQ_BIN"); b != "" {
		return b
	}
	for _, build := range []string{"release", "debug"} {
		p, _ := filepath.Abs(filepath.Join("..", "..", "target", build, "ordq"))
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no ordq binary: run `cargo build -p ordq-cli` or set ORDQ_BIN")
	return ""
}

// startBroker runs `ordq serve` on a fresh database in a private directory
// and returns its unix:// address. Cleanup SIGTERMs it and requires exit 0;
// register it before the handle's Close so it runs after it.
func startBroker(t testing.TB) string {
	t.Helper()
	// Short path (socket path limit), 0700: the broker refuses group/world-writable dirs.
	dir, err := os.MkdirTemp("", "ordq-go-broker-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	uri := "unix://" + sock
	var stderr bytes.Buffer
	cmd := exec.Command(ordqBin(t), "--db", filepath.Join(dir, "q.ordq"), "serve", "--listen", uri)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ordq serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		defer os.RemoveAll(dir)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("ordq serve: %v; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("ordq serve did not stop within 30s of SIGTERM")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("ordq serve exited early: %v; stderr:\n%s", err, stderr.String())
		default:
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return uri
		}
		if time.Now().After(deadline) {
			t.Fatalf("ordq serve did not listen on %s in time", sock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
