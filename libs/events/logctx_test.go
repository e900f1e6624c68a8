package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestContextHandlerAddsRequestID(t *testing.T) {
	ctx := WithRequestID(context.Background(), "req-1")
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want []string // request_id values of the lines, "" for none
	}{
		{"context call", func(l *slog.Logger) { l.InfoContext(ctx, "x") }, []string{"req-1"}},
		{"no context call", func(l *slog.Logger) { l.Info("x") }, []string{""}},
		{"context without id", func(l *slog.Logger) { l.InfoContext(context.Background(), "x") }, []string{""}},
		{"explicit attribute wins", func(l *slog.Logger) { l.InfoContext(ctx, "x", "request_id", "other") }, []string{"other"}},
		{"logger With an id wins", func(l *slog.Logger) { l.With("request_id", "w").WarnContext(ctx, "x") }, []string{"w"}},
		{"With other attrs", func(l *slog.Logger) { l.With("service", "s").ErrorContext(ctx, "x") }, []string{"req-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := WithRequestIDLogging(slog.New(slog.NewJSONHandler(&buf, nil)))
			tt.log(l)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("not JSON: %q", line)
				}
				id, _ := m["request_id"].(string)
				if n := strings.Count(line, `"request_id"`); n > 1 {
					t.Errorf("request_id appears %d times: %s", n, line)
				}
				got = append(got, id)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("request ids %v, want %v (%s)", got, tt.want, buf.String())
			}
		})
	}
	if WithRequestIDLogging(nil) != nil {
		t.Error("nil logger should stay nil")
	}
	l := WithRequestIDLogging(slog.New(slog.DiscardHandler))
	if WithRequestIDLogging(l) != l {
		t.Error("wrapping twice should return the same logger")
	}
}
