package spa

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServe(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", "<!doctype html><title>app</title>")
	write("assets/index-abc123.js", "console.log(1)")
	write("favicon.svg", "<svg/>")
	write(".env", "SECRET=1")
	outside := filepath.Join(filepath.Dir(dir), "outside-secret.txt")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(outside) })

	tests := []struct {
		name, method, path string
		status             int
		cache              string
		bodyHas            string
		contentType        string
	}{
		{"root", "GET", "/", 200, "no-cache", "<title>app</title>", "text/html"},
		{"index", "GET", "/index.html", 200, "no-cache", "<title>app</title>", "text/html"},
		{"hashed asset", "GET", "/assets/index-abc123.js", 200, "public, max-age=31536000, immutable", "console.log", "text/javascript"},
		{"other file", "GET", "/favicon.svg", 200, "no-cache", "<svg/>", "image/svg+xml"},
		{"deep link", "GET", "/chats/0190-abc", 200, "no-cache", "<title>app</title>", "text/html"},
		{"deep link nested", "GET", "/settings/profile/x", 200, "no-cache", "<title>app</title>", "text/html"},
		{"missing asset", "GET", "/assets/gone-999.js", 404, "no-cache", "", ""},
		{"dotfile", "GET", "/.env", 200, "no-cache", "<title>app</title>", "text/html"},
		{"traversal", "GET", "/../outside-secret.txt", 200, "no-cache", "<title>app</title>", "text/html"},
		{"encoded traversal", "GET", "/%2e%2e/outside-secret.txt", 200, "no-cache", "<title>app</title>", "text/html"},
		{"head", "HEAD", "/", 200, "no-cache", "", "text/html"},
	}
	h := New(dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://x"+tt.path, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d", w.Code, tt.status)
			}
			if got := w.Header().Get("Cache-Control"); got != tt.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.cache)
			}
			if !strings.Contains(string(body), tt.bodyHas) {
				t.Errorf("body %q does not contain %q", body, tt.bodyHas)
			}
			if strings.Contains(string(body), "secret") || strings.Contains(string(body), "SECRET") {
				t.Errorf("served a file it must not: %q", body)
			}
			if tt.contentType != "" && !strings.HasPrefix(w.Header().Get("Content-Type"), tt.contentType) {
				t.Errorf("Content-Type = %q, want %q", w.Header().Get("Content-Type"), tt.contentType)
			}
		})
	}
}

func TestNotBuilt(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		h := New(dir)
		for _, path := range []string{"/", "/chats/1"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "make web") {
				t.Fatalf("%s %s: %d %q, want the not-built page", dir, path, w.Code, w.Body.String())
			}
		}
		if Built(dir) == nil {
			t.Errorf("Built(%s) = nil, want an error", dir)
		}
	}
}
