package observe

import (
	"errors"
	"fmt"
	"sync"
)

// Health is what /readyz reports: not ready before the first assignment,
// while the start offsets of an assignment cannot be read, and while any
// partition is halted or backing off from a transient error. Partitions
// are named by a key of the caller's choosing ("topic/partition"). All
// methods are safe for concurrent use.
type Health struct {
	mu       sync.Mutex
	joined   bool
	starting bool // reading start offsets failed and is being retried
	halts    map[string]bool
	backoff  map[string]bool
}

// NewHealth returns a Health that is not ready: not yet in the group.
func NewHealth() *Health {
	return &Health{halts: map[string]bool{}, backoff: map[string]bool{}}
}

// SetJoined records the first assignment.
func (h *Health) SetJoined() { h.mu.Lock(); h.joined = true; h.mu.Unlock() }

// SetStarting records whether reading start offsets is failing and being
// retried.
func (h *Health) SetStarting(on bool) { h.mu.Lock(); h.starting = on; h.mu.Unlock() }

// SetHalted marks the partition at key halted (on) or not.
func (h *Health) SetHalted(key string, on bool) { h.set(h.halts, key, on) }

// IsHalted reports whether the partition at key is halted.
func (h *Health) IsHalted(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.halts[key]
}

// SetBackoff marks the partition at key retrying (on) or not.
func (h *Health) SetBackoff(key string, on bool) { h.set(h.backoff, key, on) }

// IsBackingOff reports whether the partition at key is retrying.
func (h *Health) IsBackingOff(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.backoff[key]
}

// Forget clears the state of a partition that is no longer assigned.
func (h *Health) Forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.halts, key)
	delete(h.backoff, key)
}

// Ready is nil when ready, else every reason it is not, joined.
func (h *Health) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	if !h.joined {
		errs = append(errs, errors.New("not yet in the consumer group"))
	}
	if h.starting {
		errs = append(errs, errors.New("start offsets cannot be read from the database, retrying"))
	}
	for k := range h.halts {
		errs = append(errs, fmt.Errorf("partition %s halted", k))
	}
	for k := range h.backoff {
		errs = append(errs, fmt.Errorf("partition %s backing off after a transient error", k))
	}
	return errors.Join(errs...)
}

func (h *Health) set(m map[string]bool, key string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on {
		m[key] = true
	} else {
		delete(m, key)
	}
}

// halted is the number of halted partitions.
func (h *Health) halted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.halts)
}
