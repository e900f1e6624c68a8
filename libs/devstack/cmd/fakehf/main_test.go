package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
)

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+fakehf.DefaultToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const chat = `{"model":"mistralai/Mistral-7B-Instruct-v0.3","stream":false,"messages":[{"role":"user","content":"hi"}]}`

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"defaults", nil, false},
		{"presets", []string{"-script", "429-retry-after,drop:3", "-always", "503", "-every", "3"}, false},
		{"unknown preset", []string{"-script", "nope"}, true},
		{"bad every", []string{"-every", "0"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parse(%v) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestScriptAndEvery(t *testing.T) {
	o, err := parse([]string{"-ttft", "0", "-gap", "0", "-tokens", "3", "-script", "401", "-always", "503", "-every", "2"})
	if err != nil {
		t.Fatal(err)
	}
	h := newServer(o)
	var got []int
	for range 4 {
		got = append(got, post(t, h, chat).Code)
	}
	// Request 1: the scripted 401; 2 and 4: every 2nd gets 503; 3: a normal answer.
	want := []int{401, 503, 200, 503}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", got, want)
		}
	}
	body := post(t, newServer(options{token: fakehf.DefaultToken, tokens: 3, every: 1, ttft: time.Millisecond}), chat).Body.String()
	if !strings.Contains(body, "token1 token2 token3") {
		t.Errorf("answer = %s, want three tokens", body)
	}
}
