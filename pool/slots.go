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
	onLimit func(limit int, reason string, ratio float64)
	history []limitAt // the limits of the last keepIdle, oldest first
}

// keepIdle is how long idle connections are kept for a limit that has come
// down: a limit moving between neighbours must not close and open
// connections (a new backend, its statements prepared again) every round.
const keepIdle = 10 * time.Second

type limitAt struct {
	at    time.Time
	limit int
}

func newSlots(onLimit func(limit int, reason string, ratio float64)) *slots { // onLimit: after each round
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
// records records in took, with fleet transactions of the group open as it
// began (0 unknown), which Adaptive learns from.
func (s *slots) release(records int, took time.Duration, fleet int) {
	s.mu.Lock()
	s.inUse--
	rounds := s.a.Rounds()
	if records > 0 {
		s.a.Observe(time.Now(), records, took, len(s.waiting), fleet)
	}
	decided := s.a.Rounds() > rounds
	limit, reason, ratio := s.a.Limit(), s.a.Reason(), s.a.Ratio()
	s.noteLocked(time.Now())
	s.grantLocked()
	s.mu.Unlock()
	if decided && s.onLimit != nil {
		s.onLimit(limit, reason, ratio)
	}
}

// setCap bounds the limit by the assigned partitions.
func (s *slots) setCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a.SetCap(n)
	s.noteLocked(time.Now())
	s.grantLocked()
}

// setShare: see Adaptive.SetShare.
func (s *slots) setShare(share float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a.SetShare(share)
}

// noteLocked records the limit now and forgets those older than keepIdle.
func (s *slots) noteLocked(now time.Time) {
	if n := len(s.history); n == 0 || s.history[n-1].limit != s.a.Limit() {
		s.history = append(s.history, limitAt{at: now, limit: s.a.Limit()})
	}
	for len(s.history) > 1 && now.Sub(s.history[1].at) > keepIdle {
		s.history = s.history[1:] // its successor took over before the window
	}
}

// kept is the highest limit of the last keepIdle: the connections the pool
// keeps open when idle.
func (s *slots) kept() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteLocked(time.Now())
	n := 0
	for _, h := range s.history {
		n = max(n, h.limit)
	}
	return n
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
