package transport

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// ModelLimits caps how many answers one worker writes at a time per model, so that one
// busy model cannot take every slot. Acquiring never blocks: a job for a model at its
// limit is handed back to JetStream instead. The zero value (and nil) limits nothing.
type ModelLimits struct {
	def int
	per map[string]int

	mu   sync.Mutex
	used map[string]int
}

// ParseModelLimits reads INFERENCE_MODEL_CONCURRENCY: comma-separated `model=n` pairs,
// `default=n` for every other model ("mistralai/Mistral-7B-Instruct-v0.3=4,default=8").
// An empty spec limits nothing; n must be a positive integer.
func ParseModelLimits(spec string) (*ModelLimits, error) {
	l := &ModelLimits{per: map[string]int{}, used: map[string]int{}}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.LastIndexByte(part, '=')
		if i <= 0 {
			return nil, fmt.Errorf("model concurrency %q: want model=n", part)
		}
		model, num := strings.TrimSpace(part[:i]), strings.TrimSpace(part[i+1:])
		n, err := strconv.Atoi(num)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("model concurrency %q: %q is not a positive number", part, num)
		}
		if model == "default" {
			l.def = n
		} else {
			l.per[model] = n
		}
	}
	return l, nil
}

// Limit returns the limit for a model (0 = none).
func (l *ModelLimits) Limit(model string) int {
	if l == nil {
		return 0
	}
	if n, ok := l.per[model]; ok {
		return n
	}
	return l.def
}

// TryAcquire takes a slot for model if it has one free; release gives it back.
func (l *ModelLimits) TryAcquire(model string) (release func(), ok bool) {
	limit := l.Limit(model)
	if limit <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used[model] >= limit {
		return nil, false
	}
	l.used[model]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.used[model]--
		})
	}, true
}
