package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

func TestAnswerParksLongWaits(t *testing.T) {
	tests := []struct {
		name       string
		steps      []fakehf.Step
		job        func(*app.Job)
		maxWait    time.Duration
		wantStatus string
		wantPark   string // reason
		wantCode   string
		wantTries  int
		wantText   string // in the error message
	}{
		{name: "long Retry-After parks", steps: []fakehf.Step{fakehf.RateLimited("2")}, maxWait: time.Minute,
			wantPark: events.WaitRateLimited, wantTries: 1},
		{name: "long loading estimate parks", steps: []fakehf.Step{fakehf.Loading(model, 5)}, maxWait: time.Minute,
			wantPark: events.WaitModelLoading, wantTries: 1},
		{name: "short wait is waited here", steps: []fakehf.Step{fakehf.Loading(model, 0.1)}, maxWait: time.Minute,
			wantStatus: events.StatusComplete, wantTries: 2},
		{name: "resumed attempts keep counting", steps: []fakehf.Step{fakehf.RateLimited("")}, maxWait: time.Minute,
			job:        func(j *app.Job) { j.Attempts, j.RetrySince = 4, time.Now().Add(-time.Second) },
			wantStatus: events.StatusComplete, wantTries: 6},
		{name: "a resumed budget that ran out fails", steps: []fakehf.Step{fakehf.RateLimited("2")}, maxWait: 10 * time.Second,
			job:        func(j *app.Job) { j.Attempts, j.RetrySince = 3, time.Now().Add(-9*time.Second) },
			wantStatus: events.StatusFailed, wantCode: events.CodeProviderRateLimited, wantTries: 4, wantText: "Gave up after 4 attempts"},
		{name: "a hint longer than the whole budget fails at once", steps: []fakehf.Step{fakehf.RateLimited("60")}, maxWait: 10 * time.Second,
			wantStatus: events.StatusFailed, wantCode: events.CodeProviderRateLimited, wantTries: 1, wantText: "asked to wait 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fakehf.New(fakehf.Options{})
			t.Cleanup(f.Close)
			f.Enqueue("", tt.steps...)
			a := newAnswerer(t, f, tt.maxWait)
			a.ParkAfter = time.Second
			j := job("why?")
			if tt.job != nil {
				tt.job(&j)
			}
			out := a.Answer(context.Background(), j, &sink{})
			if out.Attempts != tt.wantTries {
				t.Errorf("attempts = %d, want %d", out.Attempts, tt.wantTries)
			}
			if tt.wantPark != "" {
				if out.Status != "" || out.Park == nil || out.Park.Reason != tt.wantPark || out.Park.Wait <= time.Second ||
					out.RetrySince.IsZero() {
					t.Fatalf("outcome = %+v (park %+v), want parked for %s", out, out.Park, tt.wantPark)
				}
				return
			}
			if out.Status != tt.wantStatus || out.Park != nil {
				t.Fatalf("outcome = %+v (park %+v, err %+v)", out, out.Park, out.Err)
			}
			if tt.wantCode != "" && (out.Err == nil || out.Err.Code != tt.wantCode || !strings.Contains(out.Err.Message, tt.wantText)) {
				t.Errorf("error = %+v, want code %s and %q", out.Err, tt.wantCode, tt.wantText)
			}
		})
	}
}

func TestStrictRolesMatch(t *testing.T) {
	s := app.NewStrictRoles([]string{"acme/strict-model", "org/*-v0.1", " "})
	tests := []struct {
		id   string
		want bool
	}{
		{"mistralai/Mistral-7B-Instruct-v0.1", true},
		{"mistralai/Mistral-7B-Instruct-v0.2", true},
		{"mistralai/Mistral-7B-Instruct-v0.2:featherless-ai", true},
		{"mistralai/Mixtral-8x7B-Instruct-v0.1", true},
		{"mistral:7b-instruct-v0.2-q4_0", true},
		{"mistralai/Mistral-7B-Instruct-v0.3", false},
		{"mistralai/Mistral-Nemo-Instruct-2407", false},
		{"acme/strict-model", true},
		{"acme/strict-model:fastest", true},
		{"org/thing-v0.1", true},
		{"org/thing-v0.2", false},
	}
	for _, tt := range tests {
		if got := s.Match(tt.id); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
