package transport

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// pingTimeout bounds each readiness probe.
const pingTimeout = time.Second

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// healthz says the process is alive.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether this replica can serve requests: NATS connected, token keys and
// the revocation list loaded. Whether auth, chat and inference answer their micro ping,
// and whether the chat event reader runs (it needs the stream chat creates), are
// reported too but count only with ?deps=1 (start-up scripts and tests wait for the
// whole product that way): a load balancer's probe must not take every gateway out at
// once because a service behind all of them is down — the gateway then still answers,
// with 503 unavailable and Retry-After, which clients understand.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	checks := map[string]string{}
	var mu sync.Mutex
	set := func(name, v string) {
		mu.Lock()
		checks[name] = v
		mu.Unlock()
	}
	if s.nc == nil || !s.nc.IsConnected() {
		set("nats", "disconnected")
	} else {
		set("nats", "ok")
		if err := s.guard.Ready(); err != nil {
			set("tokens", err.Error())
		} else {
			set("tokens", "ok")
		}
		if s.chats != nil {
			if s.chats.reading() {
				set("chat_events", "ok")
			} else {
				set("chat_events", "not reading")
			}
		}
		var wg sync.WaitGroup
		for _, svc := range []string{events.AuthService, events.ChatService, events.InferenceService} {
			wg.Go(func() { set(svc, s.ping(r.Context(), svc)) })
		}
		wg.Wait()
	}
	res := readiness{Status: "ready", Checks: checks}
	status := http.StatusOK
	deps := r.URL.Query().Get("deps") == "1"
	for name, v := range checks {
		own := name == "nats" || name == "tokens"
		if v != "ok" && (own || deps) {
			res.Status, status = "not_ready", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, res)
}

// ping asks one micro service for $SRV.PING.<name>.
func (s *Server) ping(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := s.nc.RequestWithContext(ctx, "$SRV.PING."+name, nil); err != nil {
		return "not answering"
	}
	return "ok"
}
