package provider_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/services/inference/internal/provider"
)

// TestSlowStreamLongerThanIdleTimeout: lines arriving closer together than the idle
// timeout keep a call alive however long it runs in total.
func TestSlowStreamLongerThanIdleTimeout(t *testing.T) {
	f := newFake(t, fakehf.Options{TokenDelay: 40 * time.Millisecond, FirstTokenDelay: 50 * time.Millisecond})
	c := newClient(f, f.Token(), func(o *provider.Options) {
		o.FirstByteTimeout = 150 * time.Millisecond
		o.IdleTimeout = 150 * time.Millisecond
	})
	start := time.Now()
	text, _, err := stream(t, c, request("a b c d e f g h i j k l m n o p"))
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("the stream took %s, not longer than two idle timeouts: the test proves nothing", took)
	}
	if !strings.Contains(text, "a b c d e f g h i j k l m n o p") {
		t.Errorf("text = %q", text)
	}
}

// TestIdleConnectionsKeptForEveryCall: with MaxIdleConnsPerHost set to the number of
// calls made at once, a second round of as many concurrent calls dials no new
// connection.
func TestIdleConnectionsKeptForEveryCall(t *testing.T) {
	const calls = 40 // more than the transport's old fixed 32
	var dials atomic.Int64
	var mu sync.Mutex
	var arrived *sync.WaitGroup
	var release chan struct{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold every call until all are open at once.
		mu.Lock()
		a, rel := arrived, release
		mu.Unlock()
		a.Done()
		<-rel
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := provider.New(provider.Options{Name: "test", BaseURL: srv.URL, MaxIdleConnsPerHost: calls,
		FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second})

	run := func() {
		mu.Lock()
		arrived, release = new(sync.WaitGroup), make(chan struct{})
		arrived.Add(calls)
		a, rel := arrived, release
		mu.Unlock()
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if _, err := c.Stream(context.Background(), request("hi"), func(string) {}); err != nil {
					t.Errorf("stream: %v", err)
				}
			})
		}
		a.Wait()
		close(rel)
		wg.Wait()
	}
	run()
	if got := dials.Load(); got != calls {
		t.Fatalf("first round dialed %d connections, want %d", got, calls)
	}
	run()
	if got := dials.Load(); got != calls {
		t.Errorf("after the second round %d connections were dialed, want %d (idle ones were closed)", got, calls)
	}
}
