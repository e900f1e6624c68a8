package session

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxCachedTokens bounds the verified-token cache (about 150 bytes an entry).
const maxCachedTokens = 50_000

// tokenCache keeps the principals of tokens whose signature and claims were verified,
// keyed by the token's SHA-256, until the token's exp: verifying an Ed25519 signature
// on every request costs far more than hashing the token. It holds no revocation
// state: Check still asks revoked() on every request. It is safe for concurrent use.
type tokenCache struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]Principal
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]Principal)}
}

func tokenKey(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// get returns the principal of a token verified before, unless it has expired by now.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Principal, bool) {
	c.mu.RLock()
	p, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || !now.Before(p.ExpiresAt) {
		return Principal{}, false
	}
	return p, true
}

// put remembers a verified token's principal; tokens without an expiry are not kept.
func (c *tokenCache) put(key [sha256.Size]byte, p Principal, now time.Time) {
	if p.ExpiresAt.IsZero() || !now.Before(p.ExpiresAt) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTokens {
		for k, q := range c.m {
			if !now.Before(q.ExpiresAt) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: drop arbitrary entries (they are verified again)
			if len(c.m) < maxCachedTokens*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = p
}

// clear forgets every entry (the key set changed: a token of a retired key must not
// stay accepted).
func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
