package sse

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Event
		wantErr error
	}{
		{
			name: "gateway stream",
			in: ": keepalive\n\nid: 1\nevent: delta\ndata: {\"seq\":1,\"text\":\"a\"}\n\n" +
				"id: 2\nevent: done\ndata: {\"message\":{}}\n\n",
			want: []Event{
				{ID: "1", Type: "delta", Data: []byte(`{"seq":1,"text":"a"}`)},
				{ID: "2", Type: "done", Data: []byte(`{"message":{}}`)},
			},
			wantErr: io.EOF,
		},
		{
			name:    "provider chunks, CRLF, multi-line data",
			in:      "data: {\"x\":1}\r\n\r\ndata:a\ndata:b\n\ndata: [DONE]\n\n",
			want:    []Event{{Type: "message", Data: []byte(`{"x":1}`)}, {Type: "message", Data: []byte("a\nb")}, {Type: "message", Data: []byte("[DONE]")}},
			wantErr: io.EOF,
		},
		{
			name:    "cut in the middle of an event",
			in:      "event: delta\ndata: x\n",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "long line",
			in:      "data: " + strings.Repeat("z", 40000) + "\n\n",
			want:    []Event{{Type: "message", Data: []byte(strings.Repeat("z", 40000))}},
			wantErr: io.EOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			var got []Event
			var err error
			for {
				var ev Event
				if ev, err = r.Next(); err != nil {
					break
				}
				got = append(got, ev)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
