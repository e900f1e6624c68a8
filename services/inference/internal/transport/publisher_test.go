package transport

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
)

// genStream starts NATS with the GENERATIONS stream.
func genStream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	ns := testnats.New(t)
	nc := testnats.Connect(t, ns.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.CreateOrUpdateStream(ctx, events.GenerationsStream(1))
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return js, stream
}

type storedEvent struct {
	ev     events.GenerationEvent
	at     time.Time
	header string
}

// subjectEvents reads everything on a message's generation subject.
func subjectEvents(t *testing.T, js jetstream.JetStream, messageID string) []storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.StreamGenerations, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectGeneration(messageID)},
	})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var out []storedEvent
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		if info.NumPending == 0 {
			return out
		}
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		md, _ := msg.Metadata()
		var ev events.GenerationEvent
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, storedEvent{ev: ev, at: md.Timestamp, header: msg.Headers().Get(HeaderJobState)})
	}
}

func TestPublisherCoalescesByTime(t *testing.T) {
	js, stream := genStream(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name     string
		coalesce time.Duration
		// most is the most delta events 40 chunks 5 ms apart may make.
		most int
	}{
		{name: "100ms window", coalesce: 100 * time.Millisecond, most: 5},
		{name: "off", coalesce: 0, most: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.Must(uuid.NewV7()).String()
			p := newPublisher(js, stream, id, tt.coalesce, log, lastEvent{})
			ctx := context.Background()
			if err := p.begin(ctx); err != nil {
				t.Fatalf("begin: %v", err)
			}
			p.Attempt(ctx, 1, time.Time{})
			start := time.Now()
			var want strings.Builder
			for i := range 40 {
				tok := "t" + string(rune('a'+i%26)) + " "
				want.WriteString(tok)
				p.Delta(ctx, tok)
				if i == 0 {
					// The first token is not held back by the window.
					dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					p.drain(dctx)
					cancel()
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := p.finish(ctx, events.GenerationEvent{Type: events.GenDone}); err != nil {
				t.Fatalf("finish: %v", err)
			}
			evs := subjectEvents(t, js, id)
			var text strings.Builder
			deltas := 0
			for i, e := range evs {
				if e.ev.Seq != int64(i+1) {
					t.Fatalf("event %d has seq %d", i, e.ev.Seq)
				}
				if e.header == "" {
					t.Errorf("event %d has no job state header", i)
				}
				if e.ev.Type == events.GenDelta {
					deltas++
					text.WriteString(e.ev.Text)
				}
			}
			if text.String() != want.String() {
				t.Errorf("text = %q, want %q", text.String(), want.String())
			}
			if evs[0].ev.Type != events.GenDelta || evs[0].ev.Text != "ta " {
				t.Errorf("first event = %+v, want the first token alone", evs[0].ev)
			}
			if d := evs[0].at.Sub(start); d > 80*time.Millisecond && tt.coalesce > 0 {
				t.Errorf("first token stored %s after it came, want at once", d)
			}
			if deltas > tt.most {
				t.Errorf("%d delta events, want at most %d", deltas, tt.most)
			}
			if tt.coalesce > 0 && deltas < 2 {
				t.Errorf("%d delta events, want the text spread over several", deltas)
			}
			if p.finishFast != 1 {
				t.Errorf("terminal event sent after reading the subject, want it sent right after the known last event")
			}
			// The state changed twice (attempt 1, then dirty): encoded twice, not per event.
			if p.encodes > 3 {
				t.Errorf("job state header encoded %d times for %d events", p.encodes, len(evs))
			}
		})
	}
}

func TestPublisherResetSendsNextTextAtOnce(t *testing.T) {
	js, stream := genStream(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	id := uuid.Must(uuid.NewV7()).String()
	p := newPublisher(js, stream, id, time.Hour, log, lastEvent{})
	ctx := context.Background()
	if err := p.begin(ctx); err != nil {
		t.Fatalf("begin: %v", err)
	}
	p.Delta(ctx, "one")
	p.Delta(ctx, "two") // held: within the window
	p.Reset(ctx)
	p.Delta(ctx, "three") // a new attempt's first text: at once
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p.mu.Lock()
	timer := p.timer
	p.mu.Unlock()
	if timer != nil {
		t.Fatal("the first text after a reset waits for the window")
	}
	p.drain(dctx)
	var got []string
	for _, e := range subjectEvents(t, js, id) {
		got = append(got, e.ev.Type+":"+e.ev.Text)
	}
	want := "delta:one reset: delta:three"
	if strings.Join(got, " ") != want {
		t.Errorf("events = %q, want %q", strings.Join(got, " "), want)
	}
}
