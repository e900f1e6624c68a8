package app

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestThrottleDelays(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var st ThrottleState
	var delays []time.Duration
	now := t0
	for range 20 {
		st = st.withFailure(now)
		delays = append(delays, st.blockedFor(now))
		now = now.Add(time.Second) // failures keep coming within the memory window
	}
	want := []time.Duration{0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second,
		512 * time.Second, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
}

func TestThrottleForgetsAndCaps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var st ThrottleState
	for range 4 {
		st = st.withFailure(t0)
	}
	// An hour and more later the consecutive count starts again.
	later := t0.Add(failureMemory + time.Minute)
	st = st.withFailure(later)
	if st.Failures != 1 || st.blockedFor(later) != 0 {
		t.Errorf("after a quiet hour: failures %d blocked %s, want 1 and 0", st.Failures, st.blockedFor(later))
	}
	// The hourly cap blocks until the window ends, even when consecutive counting is low.
	st = ThrottleState{WindowStart: t0, WindowFailures: hourlyCap - 1, UpdatedAt: t0.Add(-2 * time.Hour)}
	at := t0.Add(30 * time.Minute)
	st = st.withFailure(at)
	if got := st.blockedFor(at); got != 30*time.Minute {
		t.Errorf("blocked for %s at the hourly cap, want 30m", got)
	}
}

func TestAccountHourlyCap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var st ThrottleState
	at := t0
	for i := range hourlyCap - 1 {
		st = st.withAccountFailure(at)
		if st.blockedFor(at) != 0 {
			t.Fatalf("account blocked after %d failures, want only at %d", i+1, hourlyCap)
		}
		at = at.Add(time.Second)
	}
	st = st.withAccountFailure(at)
	if got, want := st.blockedFor(at), time.Hour-time.Duration(hourlyCap-1)*time.Second; got != want {
		t.Errorf("blocked for %s at the cap, want %s (until the window ends)", got, want)
	}
	// A new window starts the count again.
	later := t0.Add(time.Hour)
	if st = st.withAccountFailure(later); st.WindowFailures != 1 || st.blockedFor(later) != 0 {
		t.Errorf("new window: %+v", st)
	}
	if a, b := clientKey(accountKey("u", ""), "192.0.2.1"), clientKey(accountKey("u", ""), "192.0.2.2"); string(a) == string(b) {
		t.Error("two addresses share a client key")
	}
}

func TestRetrySeconds(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, time.Millisecond: time.Second, time.Second: time.Second,
		1001 * time.Millisecond: 2 * time.Second, 15 * time.Minute: 15 * time.Minute,
	} {
		if got := retrySeconds(in); got != want {
			t.Errorf("retrySeconds(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestIPLimiter(t *testing.T) {
	l := newIPLimiter(60, 2) // one a second, burst two
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var got []bool
	for _, at := range []time.Duration{0, 0, 0, 500 * time.Millisecond, 1000 * time.Millisecond, 1100 * time.Millisecond} {
		ok, _ := l.allow("203.0.113.1", t0.Add(at))
		got = append(got, ok)
	}
	if diff := cmp.Diff([]bool{true, true, false, false, true, false}, got); diff != "" {
		t.Errorf("allowed (-want +got):\n%s", diff)
	}
	if ok, wait := l.allow("203.0.113.1", t0.Add(1100*time.Millisecond)); ok || wait <= 0 || wait > time.Second {
		t.Errorf("allow = %v, wait %s; want refused with a wait up to 1s", ok, wait)
	}
	if ok, _ := l.allow("203.0.113.2", t0); !ok {
		t.Errorf("another ip was refused")
	}
	if ok, _ := l.allow("", t0); !ok {
		t.Errorf("an empty ip is not limited")
	}
	if ok, _ := (*ipLimiter)(nil).allow("x", t0); !ok {
		t.Errorf("a nil limiter refuses")
	}
}

func TestValidEmail(t *testing.T) {
	tests := map[string]bool{
		"a@example.com":                          true,
		"first.last+tag@sub.ex.io":               true,
		"Alice@Example.COM":                      true,
		"":                                       false,
		"a":                                      false,
		"a@b":                                    false,
		"@example.com":                           false,
		"a@@example.com":                         false,
		"a@example.com.":                         false,
		"a @example.com":                         false,
		"<a@example.com>":                        false,
		"A <a@example.com>":                      false,
		"a@example.com, b@ex.com":                false,
		"a@[127.0.0.1]":                          false,
		"\"a b\"@example.com":                    false,
		"a@example.com\n":                        false,
		strings.Repeat("a", 65) + "@example.com": false,
	}
	for in, want := range tests {
		if got := validEmail(in); got != want {
			t.Errorf("validEmail(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestWeakPassword(t *testing.T) {
	s := &Service{common: commonPasswords()}
	if n := len(s.common); n < 10000 {
		t.Fatalf("common password list has %d entries", n)
	}
	tests := map[string]bool{
		"1qaz2wsx3edc":              true,
		"Qwertyuiop123":             true,
		"sunshine2024!":             true,
		"password123456":            true,
		"zzzzzzzzzzzzzz":            true,
		"myusername77":              true,
		"MyUsername":                true,
		"mailbox.user":              true,
		"a long unusual passphrase": false,
		"correct horse battery":     false,
		"Tr0ub4dor&3xyz":            false,
		"sunshine-on-a-cloudy-day":  false,
	}
	for pw, want := range tests {
		if got := s.weakPassword(pw, "MyUsername", "mailbox.user@example.com"); got != want {
			t.Errorf("weakPassword(%q) = %v, want %v", pw, got, want)
		}
	}
}

func TestSuccessorIsStable(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	a := successorOf(secret, "token-one")
	if a != successorOf(secret, "token-one") || a == successorOf(secret, "token-two") ||
		a == successorOf([]byte(strings.Repeat("j", 32)), "token-one") {
		t.Errorf("successor is not a keyed function of the token")
	}
	if !wellFormedRefresh(a) {
		t.Errorf("successor %q is not a well-formed refresh token", a)
	}
}
