// Package stats summarises latency samples: nearest-rank percentiles.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary is the percentiles of a sample set.
type Summary struct {
	N                  int
	P50, P95, P99, Max time.Duration
}

// Summarize returns the percentiles of d (which it sorts).
func Summarize(d []time.Duration) Summary {
	slices.Sort(d)
	if len(d) == 0 {
		return Summary{}
	}
	return Summary{N: len(d), P50: Percentile(d, 50), P95: Percentile(d, 95), P99: Percentile(d, 99), Max: d[len(d)-1]}
}

// Percentile is the nearest-rank p-th percentile of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Minus returns each sample minus base.
func Minus(d []time.Duration, base time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, v := range d {
		out[i] = v - base
	}
	return out
}
