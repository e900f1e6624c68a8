package transport

import (
	"sync"
	"sync/atomic"
)

// listener is one open stream's inbox of live events of a hub (genHub, chatHub). The
// hub never blocks on it: an event that does not fit in ch is dropped, lost is set and
// kick gets a token, and the stream catches up from JetStream (which holds every
// event) itself.
type listener[K comparable, T any] struct {
	key K
	ch  chan T
	// lost is set when an event did not fit in ch; kick then has a token.
	lost atomic.Bool
	kick chan struct{}
}

// offer hands v to the listener without waiting; it reports false when v was dropped.
func (l *listener[K, T]) offer(v T) bool {
	select {
	case l.ch <- v:
		return true
	default:
		if !l.lost.Swap(true) {
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
		return false
	}
}

// listeners are a hub's open streams by key. The zero value is ready to use; it is
// safe for concurrent use.
type listeners[K comparable, T any] struct {
	mu sync.RWMutex
	m  map[K][]*listener[K, T]
}

// add registers a listener of key with room for buffer waiting events; remove must
// follow. locked, when set, runs under the registry's lock right after the listener is
// added, so that no offer runs between the two.
func (ls *listeners[K, T]) add(key K, buffer int, locked func()) *listener[K, T] {
	l := &listener[K, T]{key: key, ch: make(chan T, buffer), kick: make(chan struct{}, 1)}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = make(map[K][]*listener[K, T])
	}
	ls.m[key] = append(ls.m[key], l)
	if locked != nil {
		locked()
	}
	return l
}

func (ls *listeners[K, T]) remove(l *listener[K, T]) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	cur := ls.m[l.key]
	for i, x := range cur {
		if x == l {
			cur[i] = cur[len(cur)-1]
			cur[len(cur)-1] = nil
			cur = cur[:len(cur)-1]
			break
		}
	}
	if len(cur) == 0 {
		delete(ls.m, l.key)
	} else {
		ls.m[l.key] = cur
	}
}

// offer hands v to every listener of key and returns how many dropped it.
func (ls *listeners[K, T]) offer(key K, v T) (dropped int) {
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	for _, l := range ls.m[key] {
		if !l.offer(v) {
			dropped++
		}
	}
	return dropped
}

// count reports the number of registered listeners.
func (ls *listeners[K, T]) count() int {
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	n := 0
	for _, cur := range ls.m {
		n += len(cur)
	}
	return n
}
