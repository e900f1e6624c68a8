package transport

import (
	"sync"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// Limits of sentAnswers.
const (
	// sentTTL is how long an answer asked for through this replica stays known: long
	// enough for its client to open the stream (and reconnect once or twice).
	sentTTL = time.Minute
	// sentMax bounds the entries (about 300 bytes each).
	sentMax = 100_000
)

// sentAnswers remembers, for a short while, the answers users asked for through this
// replica: the assistant message of their send or regenerate reply, which chat made
// for that user. When the client then opens the answer's stream here, its owner is
// known without asking chat again. Only unfinished answers are kept; a stream that
// finds the answer finished asks chat anyway (the stored state, and whether the
// answer still exists). It is safe for concurrent use.
type sentAnswers struct {
	mu sync.Mutex
	m  map[string]sentAnswer // message id -> answer
}

type sentAnswer struct {
	userID string
	msg    events.Message
	at     time.Time
}

func newSentAnswers() *sentAnswers { return &sentAnswers{m: make(map[string]sentAnswer)} }

// add records the answer m that chat made for userID.
func (s *sentAnswers) add(userID string, m events.Message) {
	if s == nil || userID == "" || m.ID == "" || events.Terminal(m.Status) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= sentMax {
		s.evict(now)
	}
	s.m[m.ID] = sentAnswer{userID: userID, msg: m, at: now}
}

// evict drops expired entries and, if that is not enough, arbitrary ones, down to
// 90 % of sentMax. s.mu is held.
func (s *sentAnswers) evict(now time.Time) {
	for id, a := range s.m {
		if now.Sub(a.at) >= sentTTL {
			delete(s.m, id)
		}
	}
	for id := range s.m {
		if len(s.m) < sentMax*9/10 {
			break
		}
		delete(s.m, id)
	}
}

// lookup returns the answer id if userID asked for it through this replica within
// sentTTL.
func (s *sentAnswers) lookup(userID, id string) (events.Message, bool) {
	if s == nil {
		return events.Message{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok {
		return events.Message{}, false
	}
	if time.Since(a.at) >= sentTTL {
		delete(s.m, id)
		return events.Message{}, false
	}
	if a.userID != userID {
		return events.Message{}, false
	}
	return a.msg, true
}
