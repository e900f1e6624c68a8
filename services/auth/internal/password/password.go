// Package password hashes and checks passwords with argon2id, stored as PHC strings
// ($argon2id$v=19$m=65536,t=3,p=4$salt$hash). Each hash takes tens of MiB of memory and
// tens of milliseconds of CPU, so a Hasher bounds how many run at once and refuses work
// beyond a queue bound instead of letting memory grow with the load.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// ErrBusy means too many hashes are already running or waiting; the caller should ask
// the client to retry shortly.
var ErrBusy = errors.New("too many password hashes in progress")

// ErrMalformedHash means a stored hash is not an argon2id PHC string this package reads.
var ErrMalformedHash = errors.New("malformed password hash")

// Params are argon2id parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   uint32
	KeyLen    uint32
}

// DefaultParams are RFC 9106's second recommended option: m=64 MiB, t=3, p=4, with a
// 128-bit salt and a 256-bit key.
func DefaultParams() Params {
	return Params{MemoryKiB: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}
}

// Hasher hashes and verifies passwords with at most a fixed number of hashes running
// at once.
type Hasher struct {
	params  Params
	sem     chan struct{}
	queue   int64
	waiting atomic.Int64
}

// New returns a Hasher using p (zero fields take DefaultParams' values) that runs at
// most concurrency hashes at once (runtime.NumCPU() when <= 0) and lets at most queue
// more wait for a slot; beyond that Hash and Verify return ErrBusy at once.
func New(p Params, concurrency, queue int) *Hasher {
	d := DefaultParams()
	if p.MemoryKiB == 0 {
		p.MemoryKiB = d.MemoryKiB
	}
	if p.Time == 0 {
		p.Time = d.Time
	}
	if p.Threads == 0 {
		p.Threads = d.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = d.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = d.KeyLen
	}
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	if queue < 0 {
		queue = 0
	}
	return &Hasher{params: p, sem: make(chan struct{}, concurrency), queue: int64(queue)}
}

// Params returns the parameters new hashes use.
func (h *Hasher) Params() Params { return h.params }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return ErrBusy
	}
	defer h.waiting.Add(-1)
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the PHC string of password with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, h.params.KeyLen)
	h.release()
	return Encode(h.params, salt, key), nil
}

// Verify reports whether password matches the PHC string phc (compared in constant
// time), and whether phc was made with weaker parameters than the Hasher's, so that the
// caller should store a new hash.
func (h *Hasher) Verify(ctx context.Context, password, phc string) (ok, rehash bool, err error) {
	p, salt, want, err := Decode(phc)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	h.release()
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	cur := h.params
	rehash = p.MemoryKiB < cur.MemoryKiB || p.Time < cur.Time || p.Threads != cur.Threads ||
		p.KeyLen < cur.KeyLen || p.SaltLen < cur.SaltLen
	return true, rehash, nil
}

// Encode formats a PHC string.
func Encode(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Decode parses a PHC string made by Encode. It refuses parameters far outside what
// this service would ever configure, so a corrupted row cannot make it allocate
// without bound.
func Decode(phc string) (Params, []byte, []byte, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, ErrMalformedHash
	}
	var p Params
	for _, kv := range strings.Split(parts[3], ",") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return Params{}, nil, nil, ErrMalformedHash
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return Params{}, nil, nil, ErrMalformedHash
		}
		switch name {
		case "m":
			p.MemoryKiB = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, nil, nil, ErrMalformedHash
			}
			p.Threads = uint8(n)
		default:
			return Params{}, nil, nil, ErrMalformedHash
		}
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return Params{}, nil, nil, ErrMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return Params{}, nil, nil, ErrMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if p.Threads == 0 || p.Time == 0 || p.Time > 64 || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > 4<<20 ||
		p.SaltLen < 8 || p.SaltLen > 64 || p.KeyLen < 16 || p.KeyLen > 128 {
		return Params{}, nil, nil, ErrMalformedHash
	}
	return p, salt, key, nil
}
