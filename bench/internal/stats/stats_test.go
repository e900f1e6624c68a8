package stats

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []time.Duration{5}, Summary{N: 1, P50: 5, P95: 5, P99: 5, Max: 5}},
		{"hundred", func() []time.Duration {
			var d []time.Duration
			for i := 100; i >= 1; i-- {
				d = append(d, time.Duration(i))
			}
			return d
		}(), Summary{N: 100, P50: 50, P95: 95, P99: 99, Max: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summarize(tt.in)); diff != "" {
				t.Errorf("Summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMinus(t *testing.T) {
	if diff := cmp.Diff([]time.Duration{-1, 0, 3}, Minus([]time.Duration{1, 2, 5}, 2)); diff != "" {
		t.Error(diff)
	}
}
