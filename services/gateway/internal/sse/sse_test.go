package sse

import (
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriter(t *testing.T) {
	w := httptest.NewRecorder()
	sw, err := Start(w, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Event(3, "delta", map[string]any{"seq": 3, "text": "a\nb \"c\""}); err != nil {
		t.Fatal(err)
	}
	if err := sw.Comment("keepalive"); err != nil {
		t.Fatal(err)
	}
	if err := sw.Raw(9, "chat.updated", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	want := "id: 3\nevent: delta\ndata: {\"seq\":3,\"text\":\"a\\nb \\\"c\\\"\"}\n\n" +
		": keepalive\n\n" +
		"id: 9\nevent: chat.updated\ndata: {\"x\":1}\n\n"
	if diff := cmp.Diff(want, w.Body.String()); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !w.Flushed {
		t.Error("not flushed")
	}
}
