package ordq

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateQueueIfNotExists(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	cfg := QueueConfig{Shards: 4}
	if _, err := db.CreateQueueIfNotExists(ctx, "q", cfg); err != nil {
		t.Fatal(err)
	}
	q, err := db.CreateQueueIfNotExists(ctx, "q", cfg)
	if err != nil {
		t.Fatalf("same config again: %v", err)
	}
	info, err := q.Info(ctx)
	if err != nil || info.Config.Shards != 4 {
		t.Fatalf("info %+v, %v", info, err)
	}
	other := cfg
	other.MaxAttempts = 2
	_, err = db.CreateQueueIfNotExists(ctx, "q", other)
	wantCode(t, err, ErrAlreadyExists)
	if !strings.Contains(err.Error(), "max_attempts=2 (exists with 10)") {
		t.Fatalf("the difference is not named: %v", err)
	}
	_, err = db.CreateQueue(ctx, "q", cfg)
	wantCode(t, err, ErrAlreadyExists)
	names, err := db.ListQueues(ctx)
	if err != nil || len(names) != 1 {
		t.Fatalf("queues %v, %v", names, err)
	}
}

func TestMustExistAndSigningKey(t *testing.T) {
	skipInBrokerMode(t, "file options")
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.ordq")
	_, err := Open(path, WithMustExist())
	wantCode(t, err, ErrNotFound)
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Fatalf("must-exist created %s", path)
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	db, err := Open(path, WithSigningKey(seed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := db.Verify(ctx, nil)
	if err != nil || r.Signed == 0 || r.Unsigned != 0 {
		t.Fatalf("verify %+v, %v", r, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, WithMustExist())
	if err != nil {
		t.Fatalf("an existing file with must-exist: %v", err)
	}
	_ = db.Close()
}
