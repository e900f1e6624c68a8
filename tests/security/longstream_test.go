package security_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// longStream is an event stream held open across the whole TestSecurity run, to show
// that the server's 30 s WriteTimeout does not cut long SSE streams (each write gets
// its own deadline).
type longStream struct {
	done       chan struct{}
	status     int
	lastPulse  time.Duration // when the last keepalive arrived, after opening
	endedEarly error
	opened     time.Time
	hold       time.Duration
}

func startLongStream(t *testing.T, s *stack, hold time.Duration) *longStream {
	t.Helper()
	u := s.user("long_stream", false)
	c := u.CreateChat("long stream")
	ls := &longStream{done: make(chan struct{}), hold: hold}
	ctx, cancel := context.WithTimeout(context.Background(), hold)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/chats/"+c.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+u.Token)
	go func() {
		defer close(ls.done)
		defer cancel()
		ls.opened = time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			ls.endedEarly = err
			return
		}
		defer res.Body.Close()
		ls.status = res.StatusCode
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), ": keepalive") {
				ls.lastPulse = time.Since(ls.opened)
			}
		}
		if ctx.Err() == nil {
			ls.endedEarly = sc.Err()
			if ls.endedEarly == nil {
				ls.endedEarly = context.Canceled // the server closed it
			}
		}
	}()
	return ls
}

func (ls *longStream) check(t *testing.T) {
	t.Helper()
	<-ls.done
	if ls.status != http.StatusOK {
		t.Fatalf("stream status %d", ls.status)
	}
	if ls.endedEarly != nil {
		t.Fatalf("the stream ended after %v: %v", time.Since(ls.opened), ls.endedEarly)
	}
	if ls.lastPulse < 30*time.Second {
		t.Errorf("last keepalive after %v; none past the 30 s write timeout", ls.lastPulse)
	}
}
