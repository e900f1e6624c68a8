package password

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func small() Params { return Params{MemoryKiB: 256, Time: 1, Threads: 1} }

func TestHashVerify(t *testing.T) {
	h := New(small(), 2, 2)
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=256,t=1,p=1$") {
		t.Errorf("phc = %q", phc)
	}
	p, salt, key, err := Decode(phc)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if diff := cmp.Diff(Params{MemoryKiB: 256, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, p); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if Encode(p, salt, key) != phc {
		t.Errorf("encode(decode(phc)) differs")
	}
	tests := []struct {
		pw     string
		ok     bool
		hasher *Hasher
		rehash bool
	}{
		{"correct horse battery staple", true, h, false},
		{"correct horse battery stapl", false, h, false},
		{"Correct horse battery staple", false, h, false},
		{"correct horse battery staple", true, New(Params{MemoryKiB: 512, Time: 1, Threads: 1}, 1, 1), true},
		{"correct horse battery staple", true, New(Params{MemoryKiB: 256, Time: 2, Threads: 1}, 1, 1), true},
		{"correct horse battery staple", true, New(Params{MemoryKiB: 128, Time: 1, Threads: 1}, 1, 1), false},
	}
	for _, tt := range tests {
		ok, rehash, err := tt.hasher.Verify(ctx, tt.pw, phc)
		if err != nil || ok != tt.ok || rehash != tt.rehash {
			t.Errorf("Verify(%q) with %+v = %v, %v, %v; want %v, %v", tt.pw, tt.hasher.Params(), ok, rehash, err, tt.ok, tt.rehash)
		}
	}
}

func TestDefaults(t *testing.T) {
	got := New(Params{}, 0, 0).Params()
	if diff := cmp.Diff(Params{MemoryKiB: 65536, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	for _, phc := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=16$m=256,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=256,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=256,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=256,t=1,p=1,x=2$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
	} {
		if _, _, _, err := Decode(phc); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Decode(%q) err = %v, want ErrMalformedHash", phc, err)
		}
	}
}

// TestQueueBound fills the only hashing slot and the queue, so the next hash is
// refused at once with ErrBusy, and a waiter gives up with its context.
func TestQueueBound(t *testing.T) {
	h := New(small(), 1, 1)
	ctx := context.Background()
	if err := h.acquire(ctx); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	waiterDone := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := h.Hash(wctx, "waits for the slot")
		waiterDone <- err
	}()
	for h.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := h.Hash(ctx, "one too many"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash beyond the queue: %v, want ErrBusy", err)
	}
	if _, _, err := h.Verify(ctx, "one too many", "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"); !errors.Is(err, ErrBusy) {
		t.Errorf("Verify beyond the queue: %v, want ErrBusy", err)
	}
	cancel()
	if err := <-waiterDone; !errors.Is(err, context.Canceled) {
		t.Errorf("waiter: %v, want context.Canceled", err)
	}
	h.release()
	if _, err := h.Hash(ctx, "now there is room"); err != nil {
		t.Errorf("Hash after release: %v", err)
	}
}
