package pool

import (
	"context"
	"sync"
	"time"
)

// slots admits writers up to an Adaptive limit, first come first served,
// and feeds Adaptive the latency of their transactions. Safe for
// concurrent use.
type slots struct {
	mu      sync.Mutex
	a       *Adaptive
	inUse   int
	waiting []chan struct{} // FIFO; closed when granted
	onLimit func(limit int, reason string)
}

func newSlots(onLimit func(limit int, reason string)) *slots { // onLimit: after each round
	return &slots{a: NewAdaptive(1), onLimit: onLimit}
}

// acquire waits for a slot until ctx ends.
func (s *slots) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.inUse < s.a.Limit() && len(s.waiting) == 0 {
		s.inUse++
		s.mu.Unlock()
		return nil
	}
	granted := make(chan struct{})
	s.waiting = append(s.waiting, granted)
	s.mu.Unlock()
	select {
	case <-granted:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, ch := range s.waiting {
			if ch == granted {
				s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
				return ctx.Err()
			}
		}
		s.inUse-- // granted meanwhile: give it back
		s.grantLocked()
		return ctx.Err()
	}
}

// release returns a slot; with records > 0 its transaction committed
// records records in took, which Adaptive learns from.
func (s *slots) release(records int, took time.Duration) {
	s.mu.Lock()
	s.inUse--
	rounds := s.a.Rounds()
	if records > 0 {
		s.a.Observe(time.Now(), records, took, len(s.waiting))
	}
	decided := s.a.Rounds() > rounds
	limit, reason := s.a.Limit(), s.a.Reason()
	s.grantLocked()
	s.mu.Unlock()
	if decided && s.onLimit != nil {
		s.onLimit(limit, reason)
	}
}

// setCap bounds the limit by the assigned partitions.
func (s *slots) setCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a.SetCap(n)
	s.grantLocked()
}

func (s *slots) grantLocked() {
	for s.inUse < s.a.Limit() && len(s.waiting) > 0 {
		close(s.waiting[0])
		s.waiting = s.waiting[1:]
		s.inUse++
	}
}

// state is the limit, the last round's latency ratio and the writers
// waiting.
func (s *slots) state() (limit int, ratio float64, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a.Limit(), s.a.Ratio(), len(s.waiting)
}
