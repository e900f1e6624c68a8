package app

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"
)

// Login throttling (security-bar §1.4), in two layers whose state lives in MySQL
// (login_throttle), so every replica sees the same counts and a restart forgets nothing:
//
//   - per account and client address: after 5 consecutive failures each failure blocks
//     that account from that address for 1 s, doubling up to 15 min. An attacker at one
//     address therefore cannot lock the owner, coming from elsewhere, out of the account.
//   - per account: at most 100 failures an hour from all addresses together (ASVS
//     4.0.3 2.2.1); beyond that the account is blocked until the hour is over.
//
// Only failures count; a successful login clears the address's state; while blocked no
// password is checked and nothing is counted, so hammering does not extend a block.
const (
	// freeFailures is how many consecutive failures are allowed before delays start.
	freeFailures = 5
	baseDelay    = time.Second
	maxDelay     = 15 * time.Minute
	// hourlyCap is the most failures per account in one hour (ASVS 4.0.3 2.2.1).
	hourlyCap = 100
	// failureMemory forgets consecutive failures after this long without one.
	failureMemory = time.Hour
)

// accountKey is the throttle key of a login: the user id when the account exists, the
// lowercased login name otherwise, so an unknown name is throttled exactly like a
// real account.
func accountKey(userID, login string) []byte {
	var k [32]byte
	if userID != "" {
		k = sha256.Sum256([]byte("user:" + userID))
	} else {
		k = sha256.Sum256([]byte("name:" + strings.ToLower(login)))
	}
	return k[:]
}

// clientKey is the throttle key of an account from one client address (callers that
// send no address share one key per account).
func clientKey(account []byte, clientIP string) []byte {
	k := sha256.Sum256(append(append([]byte("client:"), account...), clientIP...))
	return k[:]
}

// withAccountFailure records one failed login at now in an account's hourly window:
// it blocks only at the hourly cap, until the window ends.
func (t ThrottleState) withAccountFailure(now time.Time) ThrottleState {
	if t.WindowStart.IsZero() || now.Sub(t.WindowStart) >= time.Hour {
		t.WindowStart, t.WindowFailures = now, 0
	}
	t.WindowFailures++
	t.UpdatedAt = now
	if t.WindowFailures >= hourlyCap {
		if end := t.WindowStart.Add(time.Hour); end.After(t.BlockedUntil) {
			t.BlockedUntil = end
		}
	}
	return t
}

// blockedFor returns how long the account is still blocked at now.
func (t ThrottleState) blockedFor(now time.Time) time.Duration {
	if d := t.BlockedUntil.Sub(now); d > 0 {
		return d
	}
	return 0
}

// withFailure records one failed login at now.
func (t ThrottleState) withFailure(now time.Time) ThrottleState {
	if !t.UpdatedAt.IsZero() && now.Sub(t.UpdatedAt) > failureMemory {
		t.Failures = 0
	}
	t.Failures++
	if t.WindowStart.IsZero() || now.Sub(t.WindowStart) >= time.Hour {
		t.WindowStart, t.WindowFailures = now, 0
	}
	t.WindowFailures++
	t.UpdatedAt = now
	if t.Failures >= freeFailures {
		delay := maxDelay
		if shift := t.Failures - freeFailures; shift < 20 {
			delay = min(baseDelay<<shift, maxDelay)
		}
		t.BlockedUntil = now.Add(delay)
	}
	if t.WindowFailures >= hourlyCap {
		if end := t.WindowStart.Add(time.Hour); end.After(t.BlockedUntil) {
			t.BlockedUntil = end
		}
	}
	return t
}

// retrySeconds rounds a wait up to whole seconds, at least one.
func retrySeconds(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}

// ipLimiter is a token bucket per client IP, kept in this process's memory: each
// replica limits on its own (the per-account limits, in MySQL, are the shared ones).
type ipLimiter struct {
	mu        sync.Mutex
	perSecond float64
	burst     float64
	buckets   map[string]*bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newIPLimiter(perMinute, burst int) *ipLimiter {
	if perMinute <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = perMinute
	}
	return &ipLimiter{perSecond: float64(perMinute) / 60, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes one token for ip, or says how long until one is there. An empty ip (a
// caller that sent none) is not limited here.
func (l *ipLimiter) allow(ip string, now time.Time) (bool, time.Duration) {
	if l == nil || ip == "" {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	full := time.Duration(l.burst / l.perSecond * float64(time.Second))
	if now.Sub(l.lastPrune) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.last) > full {
				delete(l.buckets, k)
			}
		}
		l.lastPrune = now
	}
	b, ok := l.buckets[ip]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.perSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
	return false, wait
}
